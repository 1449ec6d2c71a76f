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
import * as JSONSchema from "effect/JSONSchema"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as internalKinds from "./internal/kinds.js"
import { show } from "./internal/kinds.js"
import * as scenarioChecks from "./internal/scenarioChecks.js"
import * as scenarioIssues from "./internal/scenarioIssues.js"
import * as internalInput from "./internal/input.js"
import * as internalEstimate from "./internal/estimate.js"
import * as onePass from "./internal/onePass.js"

/** An optional field: absent or of the schema (no `undefined` member, so no noise in errors). */
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })


/**
 * The duration strings `Millis` accepts, as a JSON Schema pattern (those `effect/Duration`
 * reads, without a sign): `"150 millis"`, `"40 micros"`, `"2 seconds"`.
 */
const DURATION_PATTERN = "^[0-9]+(\\.[0-9]+)?\\s+(nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$"

/** The JSON Schema of a time: a number of milliseconds with `bound`, or a duration string. */
const millisJsonSchema = (bound: { readonly minimum: number } | { readonly exclusiveMinimum: number }, description: string) => ({
  anyOf: [
    { type: "number", ...bound },
    { type: "string", pattern: DURATION_PATTERN }
  ],
  description
})

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
).annotations({
  identifier: "Millis",
  jsonSchema: millisJsonSchema(
    { minimum: 0 },
    "Virtual time: a non-negative number of milliseconds (150, 0.5) or a duration (\"150 millis\", \"40 micros\", \"2 seconds\")"
  )
})

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
 * A workload's mean pause, at least 1 µs: a pause of 0 would never let virtual time move
 * (the load would spin at one instant and the run never end).
 */
const Interval = Millis.pipe(
  Schema.filter((millis) => millis >= 0.001 || `expected a mean interval of at least 1 µs (0.001 ms), got ${millis} ms`, {
    jsonSchema: millisJsonSchema(
      { minimum: 0.001 },
      "A mean pause: milliseconds (at least 0.001) or a duration (\"50 micros\"), at least 1 µs"
    )
  })
)

/**
 * An interrupt storm's interval, at least 1 ns: 0 (or a denormal such as 5e-324) would raise
 * every interrupt at one instant, and virtual time would stand still for the storm. Storms
 * denser than the estimate's limit per virtual second are refused by the limits
 * (`--allow-large`), not by the schema.
 */
const StormInterval = Millis.pipe(
  Schema.filter((millis) => millis >= 1e-6 || `expected an interval of at least 1 ns (0.000001 ms), got ${millis} ms`, {
    jsonSchema: millisJsonSchema(
      { minimum: 1e-6 },
      "The pause between a storm's interrupts: milliseconds (at least 0.000001) or a duration (\"20 micros\"), at least 1 ns"
    )
  })
)

/**
 * What the scenario format knows of one kind of device.
 * @since 0.1.0
 * @category models
 */
export interface KindInfo {
  /** The bus its devices sit on (and its driver registers on). */
  readonly bus: "pci" | "platform"
  /** How many interrupt lines its devices have: an `irq-storm` rule's `line` must be below it. */
  readonly irqLines: number
  /** The bugs its driver can have planted (`DriverSpec`'s `bug`). */
  readonly bugs: ReadonlyArray<Bug>
  /** The name of its driver on the bus. */
  readonly driver: string
  /** QEMU's device model for it (`--backend qemu`), if QEMU has one. */
  readonly qemu: string | undefined
}

/**
 * What the scenario format knows of each kind of device: its bus, its interrupt lines (for
 * `irq-storm` rules), and the bugs its driver can have planted.
 * @since 0.1.0
 * @category models
 */
export const kinds: { readonly [K in Kind]: KindInfo } = internalKinds.kinds

/**
 * A planted driver bug (see `DriverSpec`): `free-dma-before-stop` (nic, blk: frees DMA memory
 * while the device still uses it) or `hang-in-remove` (any driver: `remove` waits for an
 * interrupt that never comes, so the unbind hangs).
 * @since 0.1.0
 * @category models
 */
export type Bug = "free-dma-before-stop" | "hang-in-remove"

const KindLiteral = Schema.Literal("nic", "blk", "sensor", "edu", "pci-testdev")

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
 * QEMU's educational PCI device (1234:11e8: factorial, interrupts, DMA through a 4 KiB
 * buffer), driven by the edu example driver; the simulator's `Edu` model, or QEMU's own with
 * `--backend qemu`.
 * @since 0.1.0
 * @category schemas
 */
export const EduDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("edu"),
  present: optional(Schema.Boolean)
})

/**
 * QEMU's PCI test device (1b36:0005), driven by the port of Rust-for-Linux's
 * `rust_driver_pci` (its tests run at probe; it has no load); the simulator's `PciTestdev`
 * model, or QEMU's own with `--backend qemu`.
 * @since 0.1.0
 * @category schemas
 */
export const PciTestdevDevice = Schema.Struct({
  name: Name,
  kind: Schema.Literal("pci-testdev"),
  present: optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const DeviceSpec = Schema.Union(NicDevice, BlkDevice, SensorDevice, EduDevice, PciTestdevDevice).annotations({ identifier: "Device" })

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
    interval: optional(Interval)
  })),
  blk: optional(Schema.Struct({
    /** Concurrent submitters per device, each on its own sector range. */
    workers: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Share of writes among reads and writes, 0 to 1. */
    writeRatio: optional(Schema.Number.pipe(Schema.between(0, 1))),
    /** Sectors per request. */
    sectorsPerRequest: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Mean pause between requests of one worker. */
    interval: optional(Interval),
    /** One request in `flushEvery` is a flush (0: none). */
    flushEvery: optional(Schema.Int.pipe(Schema.nonNegative()))
  })),
  sensor: optional(Schema.Struct({
    readers: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(64))),
    /** Mean pause between readings of one reader. */
    interval: optional(Interval)
  })),
  edu: optional(Schema.Struct({
    /** Users per device, each with its own part of the device's buffer: a factorial, then a DMA round trip, in a loop. */
    workers: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(8))),
    /** Bytes of each DMA transfer (a worker's part of the 4 KiB buffer holds it). */
    dmaBytes: optional(PositiveInt.pipe(Schema.lessThanOrEqualTo(448))),
    /** Mean pause between rounds of one worker. */
    interval: optional(Interval)
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
    interval: optional(StormInterval)
  }),
  Schema.Struct({ kind: Schema.Literal("all-ones-reads"), device: Name, at: optional(Millis) })
)

/**
 * @since 0.1.0
 * @category models
 */
export type FaultRule = typeof FaultRule.Type

/**
 * A scenario's name, printed in headers and summaries: one line of printable characters, at
 * most 120 (a control character would reach the terminal as an escape sequence).
 */
const ScenarioName = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(120, { message: (issue) => `expected a name of at most 120 characters, got ${show(issue.actual)}` }),
  Schema.filter((name) =>
    // eslint-disable-next-line no-control-regex
    !/[\u0000-\u001f\u007f-\u009f]/.test(name) ||
    `expected a name with no control characters (no line breaks or escapes), got ${show(name)}`
  )
)

/**
 * A whole scenario.
 * @since 0.1.0
 * @category schemas
 */
export const Scenario = Schema.Struct({
  /** The JSON Schema an editor validates the file with (`scenario.schema.json`); ignored. */
  $schema: optional(Schema.String),
  name: ScenarioName,
  description: optional(Schema.String),
  seed: optional(Seed),
  /** When the workload stops and every driver is unloaded (virtual time). */
  duration: Millis.pipe(Schema.filter((millis) => millis > 0 || `expected a duration greater than 0, got ${millis}`, {
    jsonSchema: millisJsonSchema(
      { exclusiveMinimum: 0 },
      "When the workload stops and every driver is unloaded: milliseconds (more than 0) or a duration (\"300 millis\")"
    )
  })),
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

/**
 * One issue per problem of a parse error, each naming its field.
 * @since 0.1.0
 * @category decoding
 */
export const issuesOf: (error: ParseResult.ParseError) => Array<Issue> = scenarioIssues.issuesOf

/**
 * What is statically obvious about a valid scenario but not an error: timeline actions that
 * will be refused when they run (unplugging a device that is not plugged then, unbinding one
 * twice, loading a loaded driver), devices that never get a driver. The run still goes; each
 * refused action is shown as `refused` when it happens.
 * @since 0.1.0
 * @category decoding
 */
export const warnings: (scenario: Scenario) => Array<Issue> = scenarioChecks.warnings

/**
 * Decodes and checks a scenario from parsed JSON, reporting every problem in one pass: the
 * schema's errors; the cross-checks (names that refer to nothing, times past the end) of the
 * parts that decode, even when others do not; and, unless `allowLarge`, the `limits` on the
 * run's work (see `estimate`). Issues are ordered by field, then element.
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
export const decode = (input: unknown, source: string, options: DecodeOptions = {}): Either.Either<Scenario, InvalidScenario> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    const got = input === null ? "null" : Array.isArray(input) ? "an array" : `${typeof input} ${internalInput.echo(input)}`
    return Either.left(new InvalidScenario({ source, issues: [{ path: "(root)", message: `expected a JSON object (a scenario), got ${got}` }] }))
  }
  // One pass: the schema, the cross-checks of whatever decoded, and the limits on the work.
  return Either.mapLeft(
    onePass.decodeAll({ scenario: Scenario, device: DeviceSpec, driver: DriverSpec, event: TimelineEvent, fault: FaultRule }, input, options),
    (issues) => new InvalidScenario({ source, issues })
  )
}

/**
 * Parses JSON text and decodes it; a syntax error is reported as an issue at the root.
 * @since 0.1.0
 * @category decoding
 */
export const parse = (text: string, source: string, options: DecodeOptions = {}): Effect.Effect<Scenario, InvalidScenario> =>
  Effect.suspend(() => {
    const tooLarge = internalInput.sizeIssue(text.length, "character")
    if (tooLarge !== undefined) return Effect.fail(new InvalidScenario({ source, issues: [tooLarge] }))
    const tooDeep = internalInput.depthIssue(text)
    if (tooDeep !== undefined) return Effect.fail(new InvalidScenario({ source, issues: [tooDeep] }))
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return Effect.fail(new InvalidScenario({ source, issues: [{ path: "(root)", message: `not JSON: ${(e as Error).message}` }] }))
    }
    return decode(json, source, options)
  })

/**
 * Decodes a scenario file's bytes: at most `MAX_FILE_BYTES`, UTF-8 (a byte-order mark is
 * fine; UTF-16 and other encodings are refused with a hint), nested at most `MAX_DEPTH`
 * levels, then `parse`d. Every check is linear in the input.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Scenario } from "@devscope/cli"
 *
 * const latin1 = new Uint8Array([0x7b, 0x22, 0xe9, 0x22, 0x7d]) // {"é"} in Latin-1
 * const exit = Effect.runSyncExit(Scenario.parseBytes(latin1, "x.json"))
 * // a failure: (file): is not UTF-8: byte 0xE9 at offset 2 (line 1) ...
 * ```
 * @since 0.1.0
 * @category decoding
 */
export const parseBytes = (bytes: Uint8Array, source: string, options: DecodeOptions = {}): Effect.Effect<Scenario, InvalidScenario> =>
  Effect.suspend(() => {
    const decoded = internalInput.decodeText(bytes)
    return "issue" in decoded ? Effect.fail(new InvalidScenario({ source, issues: [decoded.issue] })) : parse(decoded.text, source, options)
  })

/**
 * The largest scenario file read, in bytes (1 MiB); larger files are refused before reading.
 * @since 0.1.0
 * @category limits
 */
export const MAX_FILE_BYTES: number = internalInput.MAX_BYTES

/**
 * The deepest nesting of arrays and objects a scenario file may have.
 * @since 0.1.0
 * @category limits
 */
export const MAX_DEPTH: number = internalInput.MAX_DEPTH

/**
 * The scenario format as a JSON Schema (draft 2020-12), generated from the `Scenario` schema
 * (`devscope schema` prints it; `examples/scenarios/scenario.schema.json` is its output). An
 * editor validates scenario files with it when they name it in `"$schema"`. It checks the
 * shape and the ranges; the cross-checks of `decode` (unique names, times within the
 * duration, a planted bug the driver has) are beyond it.
 * @since 0.1.0
 * @category schemas
 */
export const jsonSchema = (): JSONSchema.JsonSchema7Root => {
  const made = JSONSchema.make(Scenario, { target: "jsonSchema2020-12" })
  // The meta-schema first, then what the file is, then the schema itself.
  return {
    $schema: made.$schema,
    title: "devscope scenario",
    description: "A scenario file of the devscope command (devscope run FILE): devices, drivers, a workload, a timeline and fault rules. " +
      "Times are milliseconds or duration strings.",
    ...made
  } as JSONSchema.JsonSchema7Root
}

/**
 * How `decode`, `parse` and `parseBytes` check a scenario.
 * @since 0.1.0
 * @category decoding
 */
export interface DecodeOptions {
  /** Skip the `limits` on the work of the run (the command's `--allow-large`). */
  readonly allowLarge?: boolean | undefined
}

/**
 * The limits a scenario must stay within to run by default (`decode` refuses one over them,
 * naming the field that drives it; `--allow-large` lifts them). Calibrated so that a run
 * within them ends on one machine in well under a minute and 500 MB of memory.
 * @since 0.1.0
 * @category limits
 */
export interface Limits {
  /** Devices in the scenario. */
  readonly devices: number
  /** Timeline events. */
  readonly timeline: number
  /** Fault rules. */
  readonly faults: number
  /** Simulator events of the whole run, as `estimate` counts them. */
  readonly events: number
  /** Simulator events per virtual second of any one source (a load, an interrupt storm while it lasts). */
  readonly eventsPerSecond: number
  /** Memory the run holds, as `estimate` counts it (events, disk media, devices). */
  readonly memoryBytes: number
}

/**
 * The default limits: 256 devices, 10,000 timeline events, 1,000 fault rules, 1e6 simulator
 * events in all (the simulator keeps a trace of 1e6 events, so nothing is dropped from it),
 * 1e8 events per virtual second from one source, 512 MiB of memory.
 *
 * @example
 * ```ts
 * import { Scenario } from "@devscope/cli"
 *
 * Scenario.limits.devices // 256
 * Scenario.limits.events // 1000000
 * ```
 * @since 0.1.0
 * @category limits
 */
export const limits: Limits = internalEstimate.limits

/**
 * What a run of a scenario will cost, estimated before it runs (an upper bound: every
 * sender, worker and reader always busy).
 * @since 0.1.0
 * @category limits
 */
export interface Estimate {
  /** Devices in the scenario. */
  readonly devices: number
  /** Virtual time the run lasts: the duration, plus the bus's 5 s deadline for a planted hang in `remove`. */
  readonly virtualMillis: number
  /** Simulator events per virtual second while the workload runs. */
  readonly eventsPerSecond: number
  /** Simulator events of the whole run: the workload's, the interrupt storms', the lifecycle actions'. */
  readonly events: number
  /** Memory the run holds: its events, the disks' media, the devices' models. */
  readonly memoryBytes: number
}

/**
 * Estimates the work of a run of `scenario`: from the workload's intervals, windows, workers
 * and readers per device, the devices' latencies and delayed completions, the interrupt
 * storms' counts, the timeline's length and the duration.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Scenario } from "@devscope/cli"
 *
 * const scenario = Effect.runSync(Scenario.parse(JSON.stringify({
 *   name: "x",
 *   duration: "1 second",
 *   devices: [{ name: "temp0", kind: "sensor" }],
 *   drivers: [{ kind: "sensor" }]
 * }), "inline"))
 * const estimate = Scenario.estimate(scenario)
 * estimate.events < Scenario.limits.events // true
 * ```
 * @since 0.1.0
 * @category limits
 */
export const estimate = (scenario: Scenario): Estimate => {
  const { devices, events, eventsPerSecond, memoryBytes, virtualMillis } = internalEstimate.estimateWithSources(scenario)
  return { devices, virtualMillis, eventsPerSecond, events, memoryBytes }
}
