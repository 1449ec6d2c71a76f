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
import * as Option from "effect/Option"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * A virtual time or duration, decoded to milliseconds.
 * @since 0.1.0
 * @category schemas
 */
export const Millis = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String),
  Schema.NonNegative,
  {
    strict: true,
    decode: (input, _, ast) => {
      const decoded = typeof input === "number"
        ? (Number.isFinite(input) && input >= 0 ? Option.some(Duration.millis(input)) : Option.none())
        : Duration.decodeUnknown(input)
      if (Option.isNone(decoded)) {
        return ParseResult.fail(
          new ParseResult.Type(ast, input, `expected non-negative milliseconds or a duration such as "150 millis", got ${JSON.stringify(input)}`)
        )
      }
      const millis = Duration.toMillis(decoded.value)
      return millis >= 0 && Number.isFinite(millis)
        ? ParseResult.succeed(millis)
        : ParseResult.fail(new ParseResult.Type(ast, input, `expected a finite, non-negative time, got ${JSON.stringify(input)}`))
    },
    encode: (millis) => ParseResult.succeed(millis)
  }
).annotations({ identifier: "Millis" })

const Name = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z][A-Za-z0-9_.-]{0,31}$/, {
    message: () => "expected a name: a letter, then up to 31 letters, digits, '_', '.' or '-'"
  })
)
const PositiveInt = Schema.Int.pipe(Schema.positive())

/**
 * A NIC: `cable` names a virtual cable; the two NICs on one cable exchange frames.
 * @since 0.1.0
 * @category schemas
 */
export const NicDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("nic"),
  cable: Schema.optional(Name),
  loopback: Schema.optional(Schema.Boolean),
  present: Schema.optional(Schema.Boolean)
})

/**
 * A block device: `store` names the medium, which survives unplug and re-plug.
 * @since 0.1.0
 * @category schemas
 */
export const BlkDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("blk"),
  store: Schema.optional(Name),
  sectors: Schema.optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(1 << 20))),
  present: Schema.optional(Schema.Boolean)
})

/**
 * A platform temperature sensor.
 * @since 0.1.0
 * @category schemas
 */
export const SensorDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("sensor"),
  present: Schema.optional(Schema.Boolean)
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
 * catches it): `free-dma-before-stop` frees DMA memory while the device still uses it.
 * @since 0.1.0
 * @category schemas
 */
export const DriverSpec = Schema.Struct({
  kind: Schema.Literal("nic", "blk", "sensor"),
  bug: Schema.optional(Schema.Literal("free-dma-before-stop"))
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const Workload = Schema.Struct({
  nic: Schema.optional(Schema.Struct({
    /** Frames each NIC keeps in flight. */
    window: Schema.optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(256))),
    frameSize: Schema.optional(Schema.Int.pipe(Schema.between(16, 1514))),
    /** Pause between frames of one sender. */
    interval: Schema.optional(Millis)
  })),
  blk: Schema.optional(Schema.Struct({
    /** Concurrent submitters per device, each on its own sector range. */
    workers: Schema.optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Share of writes among reads and writes, 0 to 1. */
    writeRatio: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
    /** Sectors per request. */
    sectorsPerRequest: Schema.optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    interval: Schema.optional(Millis),
    /** One request in `flushEvery` is a flush (0: none). */
    flushEvery: Schema.optional(Schema.Int.pipe(Schema.nonNegative()))
  })),
  sensor: Schema.optional(Schema.Struct({
    readers: Schema.optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    interval: Schema.optional(Millis)
  }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Workload = typeof Workload.Type

const deviceEvent = <A extends string>(action: A) =>
  Schema.Struct({ at: Millis, action: Schema.Literal(action), device: Name })
const driverEvent = <A extends string>(action: A) =>
  Schema.Struct({ at: Millis, action: Schema.Literal(action), driver: Schema.Literal("nic", "blk", "sensor") })

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
    device: Schema.optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("delay-completions"),
    by: Millis,
    probability: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
    device: Schema.optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("drop-completions"),
    probability: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
    device: Schema.optional(Name)
  }),
  Schema.Struct({
    kind: Schema.Literal("irq-storm"),
    device: Name,
    line: Schema.Int.pipe(Schema.nonNegative()),
    count: PositiveInt.pipe(Schema.lessThanOrEqualTo(100_000)),
    at: Schema.optional(Millis),
    interval: Schema.optional(Millis)
  }),
  Schema.Struct({ kind: Schema.Literal("all-ones-reads"), device: Name, at: Schema.optional(Millis) })
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
  description: Schema.optional(Schema.String),
  seed: Schema.optional(Schema.Int.pipe(Schema.between(0, 0xffffffff))),
  /** When the workload stops and every driver is unloaded (virtual time). */
  duration: Millis,
  devices: Schema.Array(DeviceSpec).pipe(Schema.minItems(1)),
  drivers: Schema.Array(DriverSpec),
  workload: Schema.optional(Workload),
  timeline: Schema.optional(Schema.Array(TimelineEvent)),
  faults: Schema.optional(Schema.Array(FaultRule))
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

/** Cross-field checks the schema cannot express: names refer to things that exist. */
const crossCheck = (scenario: Scenario): Array<Issue> => {
  const issues: Array<Issue> = []
  const devices = new Map<string, DeviceSpec>()
  scenario.devices.forEach((device, i) => {
    if (devices.has(device.name)) {
      issues.push({ path: `devices[${i}].name`, message: `duplicate device name "${device.name}"` })
    }
    devices.set(device.name, device)
  })
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
      issues.push({ path: `timeline[${i}].device`, message: `unknown device "${event.device}" (devices: ${[...devices.keys()].join(", ")})` })
    }
    if ("driver" in event && !driverKinds.has(event.driver)) {
      issues.push({ path: `timeline[${i}].driver`, message: `driver "${event.driver}" is not in drivers` })
    }
    if (event.at > scenario.duration) {
      issues.push({ path: `timeline[${i}].at`, message: `${event.at} ms is after the end of the scenario (duration ${scenario.duration} ms)` })
    }
  })
  ;(scenario.faults ?? []).forEach((fault, i) => {
    if (fault.device !== undefined && !devices.has(fault.device)) {
      issues.push({ path: `faults[${i}].device`, message: `unknown device "${fault.device}"` })
    }
  })
  return issues
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
  if (Either.isLeft(decoded)) {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left).map((issue) => ({
      path: formatPath(issue.path),
      message: issue.message
    }))
    return Either.left(new InvalidScenario({ source, issues }))
  }
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
