/**
 * Scenario files: a simulated machine (devices, drivers, cables, backing stores), a workload,
 * a timeline of lifecycle events and fault rules, and a seed. Validated with `effect/Schema`:
 * an invalid file is rejected with errors that name the field (`timeline[2].device`) and the
 * problem, and nothing runs.
 *
 * Times are virtual: a number of milliseconds (`150`, `0.5`) or a duration string
 * (`"150 millis"`, `"2 seconds"`, `"40 micros"`).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"

/** An optional field: absent or of the schema (no `undefined` member, so no noise in errors). */
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const show = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * A virtual time or duration, decoded to milliseconds: a finite, non-negative number of
 * milliseconds or a duration string (`"150 millis"`, `"40 micros"`; not negative).
 * @since 0.1.0
 * @category schemas
 */
export const Millis = Schema.transformOrFail(
  Schema.Unknown,
  Schema.NonNegative,
  {
    strict: true,
    decode: (input, _, ast) => {
      const bad = (why: string) =>
        ParseResult.fail(
          new ParseResult.Type(ast, input, `expected ${why}milliseconds or a duration such as "150 millis", got ${show(input)}`)
        )
      if (typeof input === "number") {
        return Number.isFinite(input) && input >= 0 ? ParseResult.succeed(input) : bad("finite, non-negative ")
      }
      // Duration.decodeUnknown reads "-5 millis" as zero: a sign is refused here first.
      if (typeof input !== "string" || input.trim().startsWith("-")) return bad("non-negative ")
      const decoded = Duration.decodeUnknown(input)
      if (Option.isNone(decoded)) return bad("non-negative ")
      const millis = Duration.toMillis(decoded.value)
      return millis >= 0 && Number.isFinite(millis) ? ParseResult.succeed(millis) : bad("finite, non-negative ")
    },
    encode: (millis) => ParseResult.succeed(millis)
  }
).annotations({ identifier: "Millis" })

/**
 * A run's seed: an integer from 0 to 2^32 - 1 (the scenario's `seed` and `--seed`).
 * @since 0.1.0
 * @category schemas
 */
export const Seed = Schema.Int.pipe(
  Schema.between(0, 0xffffffff),
  Schema.annotations({
    message: (issue) => ({ message: `expected an integer from 0 to 4294967295, got ${show(issue.actual)}`, override: true })
  })
)

const Name = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, {
    message: (issue) => `expected a name (a letter, then up to 31 letters, digits, '_', '.' or '-'), got ${show(issue.actual)}`
  })
)
const PositiveInt = Schema.Int.pipe(Schema.positive())

/**
 * What the scenario format knows of each kind of device: its bus, its interrupt lines (for
 * `irq-storm` rules), and the bugs its driver can have planted.
 * @since 0.1.0
 * @category models
 */
export const kinds = {
  nic: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"] },
  blk: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"] },
  sensor: { bus: "platform", irqLines: 1, bugs: ["hang-in-remove"] }
} as const satisfies Record<string, { bus: "pci" | "platform"; irqLines: number; bugs: ReadonlyArray<Bug> }>

/**
 * A planted driver bug (see `DriverSpec`).
 * @since 0.1.0
 * @category models
 */
export type Bug = "free-dma-before-stop" | "hang-in-remove"

const KindLiteral = Schema.Literal("nic", "blk", "sensor")

/**
 * A NIC: `cable` names a virtual cable; the two NICs on one cable exchange frames. `latency`
 * is the device's time for one TX or RX batch (default 20 µs).
 * @since 0.1.0
 * @category schemas
 */
export const NicDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("nic"),
  cable: optional(Name),
  loopback: optional(Schema.Boolean),
  latency: optional(Millis),
  present: optional(Schema.Boolean)
})

/**
 * A block device: `store` names the medium, which survives unplug and re-plug. `latency` is
 * the device's time for one batch of requests (default 20 µs).
 * @since 0.1.0
 * @category schemas
 */
export const BlkDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("blk"),
  store: optional(Name),
  sectors: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(1 << 20))),
  latency: optional(Millis),
  present: optional(Schema.Boolean)
})

/**
 * A platform temperature sensor.
 * @since 0.1.0
 * @category schemas
 */
export const SensorDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("sensor"),
  present: optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const DeviceSpec = Schema.Union(NicDevice, BlkDevice, SensorDevice)

/**
 * @since 0.1.0
 * @category models
 */
export type Kind = DeviceSpec["kind"]

/**
 * @since 0.1.0
 * @category models
 */
export type DeviceSpec = typeof DeviceSpec.Type

/**
 * A driver to register at boot. `bug` plants a known driver bug (for checking that a run
 * catches it): `free-dma-before-stop` (nic, blk) frees DMA memory while the device still
 * uses it; `hang-in-remove` (any driver) makes `remove` wait, after its work, for an
 * interrupt that never comes, so the unbind hangs. A bug the driver does not have is an error.
 * @since 0.1.0
 * @category schemas
 */
export const DriverSpec = Schema.Struct({
  kind: KindLiteral,
  bug: optional(Schema.Literal("free-dma-before-stop", "hang-in-remove"))
}).pipe(Schema.filter((driver) => {
  const bugs: ReadonlyArray<Bug> = kinds[driver.kind].bugs
  return driver.bug === undefined || bugs.includes(driver.bug) || {
    path: ["bug"],
    message: `the ${driver.kind} driver has no planted bug ${show(driver.bug)} (its bugs: ${
      bugs.map((b) => show(b)).join(", ")
    })`
  }
}))

/**
 * @since 0.1.0
 * @category models
 */
export type DriverSpec = typeof DriverSpec.Type

/**
 * The load on the devices. Pauses are random with the interval as mean (exponentially
 * distributed, as the gaps of Poisson arrivals, from the seed), so the loads do not run in
 * lockstep.
 * @since 0.1.0
 * @category schemas
 */
export const Workload = Schema.Struct({
  nic: optional(Schema.Struct({
    /** Frames each NIC keeps in flight. */
    window: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(256))),
    frameSize: optional(Schema.Int.pipe(Schema.between(16, 1514))),
    /** Mean pause between frames of one sender. */
    interval: optional(Millis)
  })),
  blk: optional(Schema.Struct({
    /** Concurrent submitters per device, each on its own sector range. */
    workers: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Share of writes among reads and writes, 0 to 1. */
    writeRatio: optional(Schema.Number.pipe(Schema.between(0, 1))),
    /** Sectors per request. */
    sectorsPerRequest: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Mean pause between requests of one worker. */
    interval: optional(Millis),
    /** One request in `flushEvery` is a flush (0: none). */
    flushEvery: optional(Schema.Int.pipe(Schema.nonNegative()))
  })),
  sensor: optional(Schema.Struct({
    readers: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Mean pause between readings of one reader. */
    interval: optional(Millis)
  }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Workload = typeof Workload.Type

const deviceEvent = <A extends string>(action: A) => Schema.Struct({ at: Millis, action: Schema.Literal(action), device: Name })
const driverEvent = <A extends string>(action: A) => Schema.Struct({ at: Millis, action: Schema.Literal(action), driver: KindLiteral })

/**
 * What happens when: `plug` (the device appears; its driver binds), `unplug` (orderly
 * removal), `surprise` (surprise removal), `unbind` / `bind` (sysfs-like, the device stays),
 * `unload` / `load` (a driver is unregistered, unbinding its devices, or registered again).
 * @since 0.1.0
 * @category schemas
 */
export const TimelineEvent = Schema.Union(
  deviceEvent("plug"),
  deviceEvent("unplug"),
  deviceEvent("surprise"),
  deviceEvent("unbind"),
  deviceEvent("bind"),
  driverEvent("unload"),
  driverEvent("load")
)

/**
 * @since 0.1.0
 * @category models
 */
export type TimelineEvent = typeof TimelineEvent.Type

const Probability = Schema.Number.pipe(Schema.between(0, 1))

/**
 * The simulator's fault rules, with times in the scenario's units.
 * @since 0.1.0
 * @category schemas
 */
export const FaultRule = Schema.Union(
  Schema.Struct({
    kind: Schema.Literal("fail-nth"),
    request: Schema.Literal("dma-alloc", "dma-map", "irq"),
    n: PositiveInt,
    device: optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("delay-completions"),
    by: Millis,
    probability: optional(Probability),
    device: optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("drop-completions"),
    probability: optional(Probability),
    device: optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("irq-storm"),
    device: Name,
    line: Schema.Int.pipe(Schema.nonNegative()),
    count: PositiveInt.pipe(Schema.lessThanOrEqualTo(100_000)),
    at: optional(Millis),
    interval: optional(Millis)
  }),
  Schema.Struct({ kind: Schema.Literal("all-ones-reads"), device: Name, at: optional(Millis) })
)

/**
 * @since 0.1.0
 * @category models
 */
export type FaultRule = typeof FaultRule.Type

/**
 * A whole scenario.
 * @since 0.1.0
 * @category schemas
 */
export const Scenario = Schema.Struct({
  name: Schema.String.pipe(Schema.minLength(1)),
  description: optional(Schema.String),
  seed: optional(Seed),
  /** When the workload stops and every driver is unloaded (virtual time). */
  duration: Millis.pipe(Schema.filter((millis) => millis > 0 || `expected a duration greater than 0, got ${millis}`)),
  devices: Schema.Array(DeviceSpec).pipe(Schema.minItems(1)),
  drivers: Schema.Array(DriverSpec),
  workload: optional(Workload),
  timeline: optional(Schema.Array(TimelineEvent)),
  faults: optional(Schema.Array(FaultRule))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Scenario = typeof Scenario.Type

/**
 * One problem in a scenario file: where (`devices[1].kind`) and what.
 * @since 0.1.0
 * @category models
 */
export interface Issue {
  readonly path: string
  readonly message: string
}

/**
 * A scenario file that cannot run.
 * @since 0.1.0
 * @category errors
 */
export class InvalidScenario extends Data.TaggedError("InvalidScenario")<{
  readonly source: string
  readonly issues: ReadonlyArray<Issue>
}> {
  override get message(): string {
    return `invalid scenario ${this.source}:\n${this.issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")}`
  }
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "(root)"

// ---------------------------------------------------------------------------------------
// Schema errors, one line per problem.

/** `"a" | "b" | "c"` (Effect's rendering of a union of literals) as `one of "a", "b", "c"`. */
const alternatives = (expected: string): string => {
  const parts = expected.split(" | ")
  return parts.length > 1 && parts.every((p) => /^(".*"|-?\d[\d.e+-]*|true|false|null)$/.test(p))
    ? `one of ${parts.join(", ")}`
    : parts.join(" or ")
}

/** Effect's leaf messages (`Expected X, actual Y`, `is missing`, ...) in the CLI's words. */
const reword = (message: string): string => {
  const expected = /^Expected ([\s\S]*), actual ([\s\S]*)$/.exec(message)
  if (expected !== null) return `expected ${alternatives(expected[1]!)}, got ${expected[2]}`
  if (message === "is missing") return "missing (required)"
  const unexpected = /^is unexpected, expected: ([\s\S]*)$/.exec(message)
  if (unexpected !== null) return `unknown field (allowed here: ${unexpected[1]!.split(" | ").join(", ")})`
  return message
}

const leafMessage = (issue: ParseResult.ParseIssue): string =>
  ParseResult.ArrayFormatter.formatIssueSync(issue).map((i) => reword(i.message))[0] ?? "invalid"

/** The expected part of a leaf `Type` issue in a union, when the member failed on its own value. */
const expectedOf = (issue: ParseResult.ParseIssue): string | undefined => {
  if (issue._tag !== "Type") return undefined
  const message = ParseResult.ArrayFormatter.formatIssueSync(issue)[0]?.message ?? ""
  return /^Expected ([\s\S]*), actual /.exec(message)?.[1]
}

/**
 * Walks a parse error: one `Issue` per problem, with its field path. A union whose members
 * all failed on the value itself (`"nic" | "blk" | "sensor"`) is one problem, not one per
 * member.
 */
const collect = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>, out: Array<Issue>): void => {
  switch (issue._tag) {
    case "Pointer":
      return collect(issue.issue, [...path, ...(Array.isArray(issue.path) ? issue.path : [issue.path])], out)
    case "Composite": {
      const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
      if (AST.isUnion(issue.ast) && issues.length > 1) {
        const expected = issues.map(expectedOf)
        if (expected.every((e): e is string => e !== undefined)) {
          out.push({
            path: formatPath(path),
            message: `expected ${alternatives(expected.join(" | "))}, got ${show(issue.actual)}`
          })
          return
        }
      }
      for (const inner of issues) collect(inner, path, out)
      return
    }
    case "Refinement":
      // A refinement's message annotation speaks for its whole chain.
      if (issue.kind === "From" && AST.getMessageAnnotation(issue.ast)._tag === "None") return collect(issue.issue, path, out)
      // A filter that named a field (`{ path: ["bug"], message }`).
      if (issue.kind === "Predicate" && issue.issue._tag === "Pointer") return collect(issue.issue, path, out)
      out.push({ path: formatPath(path), message: leafMessage(issue) })
      return
    case "Transformation":
      if (issue.kind === "Transformation") {
        out.push({ path: formatPath(path), message: leafMessage(issue.issue) })
        return
      }
      return collect(issue.issue, path, out)
    default:
      out.push({ path: formatPath(path), message: leafMessage(issue) })
  }
}

/**
 * One issue per problem of a parse error, each naming its field.
 * @since 0.1.0
 * @category decoding
 */
export const issuesOf = (error: ParseResult.ParseError): Array<Issue> => {
  const out: Array<Issue> = []
  collect(error.issue, [], out)
  // The same problem reached twice (a union tried twice) is shown once.
  const seen = new Set<string>()
  return out.filter((i) => {
    const key = `${i.path}\u0000${i.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

// ---------------------------------------------------------------------------------------
// Checks beyond the schema.

const sortedTimeline = (scenario: Scenario) =>
  (scenario.timeline ?? []).map((event, index) => ({ event, index })).sort((a, b) =>
    a.event.at - b.event.at || a.index - b.index
  )

const ms = (millis: number) => `${Number(millis.toFixed(3))} ms`

/** Cross-field checks the schema cannot express: names refer to things that exist, times fit. */
const crossCheck = (scenario: Scenario): Array<Issue> => {
  const issues: Array<Issue> = []
  const devices = new Map<string, DeviceSpec>()
  scenario.devices.forEach((device, i) => {
    if (devices.has(device.name)) {
      issues.push({ path: `devices[${i}].name`, message: `duplicate device name "${device.name}"` })
    }
    devices.set(device.name, device)
  })
  const known = () => [...devices.keys()].join(", ")
  const cables = new Map<string, Array<string>>()
  scenario.devices.forEach((device, i) => {
    if (device.kind !== "nic" || device.cable === undefined) return
    const ends = cables.get(device.cable) ?? []
    ends.push(device.name)
    cables.set(device.cable, ends)
    if (ends.length > 2) {
      issues.push({ path: `devices[${i}].cable`, message: `cable "${device.cable}" already has two ends (${ends.slice(0, 2).join(", ")})` })
    }
    if (device.loopback === true) {
      issues.push({ path: `devices[${i}].loopback`, message: "a NIC on a cable cannot also be in loopback" })
    }
  })
  const stores = new Map<string, string>()
  scenario.devices.forEach((device, i) => {
    if (device.kind !== "blk") return
    const store = device.store ?? device.name
    const owner = stores.get(store)
    if (owner !== undefined) {
      issues.push({ path: `devices[${i}].store`, message: `store "${store}" is already the medium of ${owner}` })
    }
    stores.set(store, device.name)
  })
  const driverKinds = new Set<string>()
  scenario.drivers.forEach((driver, i) => {
    if (driverKinds.has(driver.kind)) issues.push({ path: `drivers[${i}].kind`, message: `driver "${driver.kind}" listed twice` })
    driverKinds.add(driver.kind)
  })
  ;(scenario.timeline ?? []).forEach((event, i) => {
    if ("device" in event && !devices.has(event.device)) {
      issues.push({ path: `timeline[${i}].device`, message: `unknown device "${event.device}" (devices: ${known()})` })
    }
    if ("driver" in event && !driverKinds.has(event.driver)) {
      issues.push({ path: `timeline[${i}].driver`, message: `driver "${event.driver}" is not in drivers` })
    }
    if (event.at > scenario.duration) {
      issues.push({
        path: `timeline[${i}].at`,
        message: `${ms(event.at)} is after the end of the scenario (duration ${ms(scenario.duration)})`
      })
    }
  })
  ;(scenario.faults ?? []).forEach((fault, i) => {
    const device = fault.device === undefined ? undefined : devices.get(fault.device)
    if (fault.device !== undefined && device === undefined) {
      issues.push({ path: `faults[${i}].device`, message: `unknown device "${fault.device}" (devices: ${known()})` })
    }
    if (fault.kind === "irq-storm" && device !== undefined && fault.line >= kinds[device.kind].irqLines) {
      const lines = kinds[device.kind].irqLines
      issues.push({
        path: `faults[${i}].line`,
        message: `${device.name} (${device.kind}) has ${lines} interrupt line${lines === 1 ? "" : "s"} (0${
          lines > 1 ? ` to ${lines - 1}` : ""
        }), not line ${fault.line}`
      })
    }
    if ((fault.kind === "irq-storm" || fault.kind === "all-ones-reads") && fault.at !== undefined && fault.at > scenario.duration) {
      issues.push({
        path: `faults[${i}].at`,
        message: `${ms(fault.at)} is after the end of the scenario (duration ${ms(scenario.duration)})`
      })
    }
  })
  return issues
}

/**
 * What is statically obvious about a valid scenario but not an error: timeline actions that
 * will be refused when they run (unplugging a device that is not plugged then, unbinding one
 * twice, loading a loaded driver), devices that never get a driver. The run still goes; each
 * refused action is shown as `refused` when it happens.
 * @since 0.1.0
 * @category decoding
 */
export const warnings = (scenario: Scenario): Array<Issue> => {
  const out: Array<Issue> = []
  const spec = new Map(scenario.devices.map((d) => [d.name, d]))
  const present = new Map<string, number | undefined>()
  for (const d of scenario.devices) if (d.present !== false) present.set(d.name, undefined)
  const loaded = new Set<Kind>(scenario.drivers.map((d) => d.kind))
  const everLoaded = new Set<Kind>(loaded)
  // Devices unbound by an `unbind` action, and when; a `bind`, a re-plug or a driver load ends it.
  const unbound = new Map<string, number>()
  // A probe can fail at run time when a fault rule makes a request fail.
  const mayFailProbe = (device: string) =>
    (scenario.faults ?? []).some((f) => f.kind === "fail-nth" && (f.device === undefined || f.device === device))
  const since = (at: number | undefined) => at === undefined ? "since the start" : `since ${ms(at)}`
  for (const { event, index } of sortedTimeline(scenario)) {
    const where = `timeline[${index}]`
    const at = ms(event.at)
    if ("driver" in event) {
      if (event.action === "unload") {
        if (!loaded.has(event.driver)) out.push({ path: where, message: `unload of "${event.driver}" at ${at}: it is not loaded then (refused)` })
        loaded.delete(event.driver)
        for (const d of scenario.devices) if (d.kind === event.driver) unbound.delete(d.name)
      } else {
        if (loaded.has(event.driver)) out.push({ path: where, message: `load of "${event.driver}" at ${at}: it is already loaded (refused)` })
        loaded.add(event.driver)
        everLoaded.add(event.driver)
        for (const d of scenario.devices) if (d.kind === event.driver) unbound.delete(d.name)
      }
      continue
    }
    const device = spec.get(event.device)
    if (device === undefined) continue
    const isPresent = present.has(event.device)
    switch (event.action) {
      case "plug":
        if (isPresent) {
          out.push({ path: where, message: `plug of ${event.device} at ${at}: it is already plugged (${since(present.get(event.device))}; refused)` })
        }
        present.set(event.device, event.at)
        unbound.delete(event.device)
        break
      case "unplug":
      case "surprise":
        if (!isPresent) out.push({ path: where, message: `${event.action} of ${event.device} at ${at}: it is not plugged then (refused)` })
        present.delete(event.device)
        unbound.delete(event.device)
        break
      case "unbind":
        if (!isPresent) out.push({ path: where, message: `unbind of ${event.device} at ${at}: it is not plugged then (refused)` })
        else if (!loaded.has(device.kind)) {
          out.push({ path: where, message: `unbind of ${event.device} at ${at}: the ${device.kind} driver is not loaded then, nothing is bound (refused)` })
        } else if (unbound.has(event.device)) {
          out.push({ path: where, message: `unbind of ${event.device} at ${at}: it was already unbound at ${ms(unbound.get(event.device)!)} (refused)` })
        } else unbound.set(event.device, event.at)
        break
      case "bind":
        if (!isPresent) out.push({ path: where, message: `bind of ${event.device} at ${at}: it is not plugged then (refused)` })
        else if (!loaded.has(device.kind)) {
          out.push({ path: where, message: `bind of ${event.device} at ${at}: the ${device.kind} driver is not loaded then (refused)` })
        } else if (!unbound.has(event.device) && !mayFailProbe(event.device)) {
          out.push({ path: where, message: `bind of ${event.device} at ${at}: it is already bound (refused)` })
        }
        unbound.delete(event.device)
        break
    }
  }
  scenario.devices.forEach((device, i) => {
    if (!everLoaded.has(device.kind)) {
      out.push({ path: `devices[${i}]`, message: `no ${device.kind} driver is ever loaded: ${device.name} is never bound (add { "kind": "${device.kind}" } to drivers)` })
    }
  })
  return out
}

/**
 * Decodes and checks a scenario from parsed JSON.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Scenario } from "@devscope/cli"
 *
 * const result = Scenario.decode({ name: "x", duration: "1 second", devices: [], drivers: [] }, "inline")
 * if (Either.isLeft(result)) console.log(result.left.issues[0]) // { path: "devices", message: ... }
 * ```
 * @since 0.1.0
 * @category decoding
 */
export const decode = (input: unknown, source: string): Either.Either<Scenario, InvalidScenario> => {
  const decoded = Schema.decodeUnknownEither(Scenario, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isLeft(decoded)) return Either.left(new InvalidScenario({ source, issues: issuesOf(decoded.left) }))
  const issues = crossCheck(decoded.right)
  return issues.length > 0 ? Either.left(new InvalidScenario({ source, issues })) : Either.right(decoded.right)
}

/**
 * Parses JSON text and decodes it; a syntax error is reported as an issue at the root.
 * @since 0.1.0
 * @category decoding
 */
export const parse = (text: string, source: string): Effect.Effect<Scenario, InvalidScenario> =>
  Effect.suspend(() => {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return Effect.fail(new InvalidScenario({ source, issues: [{ path: "(root)", message: `not JSON: ${(e as Error).message}` }] }))
    }
    return decode(json, source)
  })
