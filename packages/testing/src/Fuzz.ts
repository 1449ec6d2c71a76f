/**
 * Property-based lifecycle fuzzing: random sequences of plug, bind, I/O, unbind, surprise
 * removal, driver unload and reload, waits and faults (the simulator's fault rules injected
 * on one device from that step on: the n-th allocation, mapping or interrupt request fails,
 * completions delayed or dropped, an interrupt storm, all-ones reads), each run in its own
 * virtual world and judged by the invariant oracle. A failing sequence is shrunk by
 * fast-check (`effect/FastCheck`) to a minimal one, printed step by step with what broke.
 *
 * Devices start absent: a sequence plugs them. At the end of every sequence each driver is
 * unloaded, which must resolve every operation still in flight.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as FastCheck from "effect/FastCheck"
import type * as Scope from "effect/Scope"
import type { Simulator } from "@devscope/sim"
import * as internal from "./internal/fuzz.js"
import type * as Oracle from "./Oracle.js"

/**
 * A device the fuzzer can plug and drive.
 * @since 0.1.0
 * @category models
 */
export interface DeviceSpec {
  /** The device's name, as `plug` names it on the simulator (and as the actions name it). */
  readonly name: string
  /** The bus it sits on: the one `bind` and `unbind` steps go through. */
  readonly bus: "pci" | "platform"
  /** Plugs the device (a fresh model on the same medium each time). Its failure is ignored. */
  readonly plug: (sim: Simulator.Service) => Effect.Effect<unknown, unknown>
  /** One user operation on the device, through the oracle (it may find the device gone). */
  readonly io: (ctx: {
    /** The sequence's simulator. */
    readonly sim: Simulator.Service
    /** The sequence's oracle: run the operation through `oracle.track`. */
    readonly oracle: Oracle.Oracle
  }) => Effect.Effect<void>
  /**
   * The faults sequences may inject on this device (default: those of the spec); only kinds
   * the spec allows are drawn.
   */
  readonly faults?: ReadonlyArray<FaultKind> | undefined
}

/**
 * A driver the fuzzer can load and unload.
 * @since 0.1.0
 * @category models
 */
export interface DriverSpec {
  /** The driver's name, as registered on its bus (`unregisterDriver` is given it). */
  readonly name: string
  /** The bus it registers on. */
  readonly bus: "pci" | "platform"
  /**
   * Registers the driver: at the start of every run (a failure is a defect), and at each
   * `load` step while it is unloaded (a failure is ignored).
   */
  readonly register: (sim: Simulator.Service) => Effect.Effect<void, unknown>
}

/**
 * The machine under test.
 * @since 0.1.0
 * @category models
 */
export interface Spec {
  /** A name for the machine under test (a label: the fuzzer does not read it). */
  readonly name: string
  /** The devices the sequences plug and drive (absent at the start of each run). */
  readonly devices: ReadonlyArray<DeviceSpec>
  /** The drivers, each registered at the start of each run and unloaded at its end. */
  readonly drivers: ReadonlyArray<DriverSpec>
  /**
   * Fault steps the sequences may contain: `false` for none, or the kinds allowed. Default:
   * every kind ({@link faultKinds}).
   */
  readonly faults?: false | ReadonlyArray<FaultKind> | undefined
  /** Simulator options (fault rules present from the start...); `seed` and `onLifecycle` are the fuzzer's. */
  readonly simulator?: Omit<Simulator.Options, "seed" | "onLifecycle"> | undefined
  /** Sets up what the drivers need (registries...), once per run, before the drivers register. */
  readonly setup?: ((sim: Simulator.Service) => Effect.Effect<void, unknown, Scope.Scope>) | undefined
}

/**
 * A step on one device: `plug` it (`DeviceSpec.plug`), `unplug` it (orderly removal),
 * `surprise` (surprise removal), `unbind` or `bind` it on its bus. Refusals are ignored.
 * @since 0.1.0
 * @category models
 */
export interface DeviceAction {
  /** What is done to the device. */
  readonly _tag: "plug" | "unplug" | "surprise" | "unbind" | "bind"
  /** The device's name (`DeviceSpec.name`). */
  readonly device: string
}

/**
 * Starts `count` user operations on one device (`DeviceSpec.io`), each in a fiber of its own.
 * @since 0.1.0
 * @category models
 */
export interface IoAction {
  /** The tag. */
  readonly _tag: "io"
  /** The device's name (`DeviceSpec.name`). */
  readonly device: string
  /** How many operations are started (1 to 8 in drawn sequences). */
  readonly count: number
}

/**
 * Unloads a driver (`unregisterDriver`: its devices are unbound) or loads it again
 * (`DriverSpec.register`, if it is unloaded).
 * @since 0.1.0
 * @category models
 */
export interface DriverAction {
  /** What is done to the driver. */
  readonly _tag: "unload" | "load"
  /** The driver's name (`DriverSpec.name`). */
  readonly driver: string
}

/**
 * Lets virtual time pass.
 * @since 0.1.0
 * @category models
 */
export interface WaitAction {
  /** The tag. */
  readonly _tag: "wait"
  /** How long, in microseconds of virtual time (1 to 2000 in drawn sequences). */
  readonly micros: number
}

/**
 * Injects a fault rule on one device from this step on (`Simulator.inject`).
 * @since 0.1.0
 * @category models
 */
export interface FaultAction {
  /** The tag. */
  readonly _tag: "fault"
  /** The device's name (`DeviceSpec.name`). */
  readonly device: string
  /** The rule injected (its `device` is this step's). */
  readonly rule: Simulator.FaultRule
}

/**
 * One step of a sequence.
 * @since 0.1.0
 * @category models
 */
export type Action = DeviceAction | IoAction | DriverAction | WaitAction | FaultAction

/**
 * A kind of fault a sequence may inject: the simulator's fault rules, with `fail-nth` told
 * apart by the request that fails (`fail-dma-alloc`, `fail-dma-map`, `fail-irq`).
 * @since 0.1.0
 * @category models
 */
export type FaultKind =
  | "fail-dma-alloc"
  | "fail-dma-map"
  | "fail-irq"
  | "delay-completions"
  | "drop-completions"
  | "irq-storm"
  | "all-ones-reads"

/**
 * Every kind of fault, the default of `Spec.faults`.
 * @since 0.1.0
 * @category constants
 */
export const faultKinds: ReadonlyArray<FaultKind> = internal.faultKinds

/**
 * Options of {@link check}.
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How many random sequences are run (default 100). */
  readonly numRuns?: number | undefined
  /**
   * fast-check's seed (default 42): the same seed generates the same sequences. It is also
   * the simulator's seed of every sequence.
   */
  readonly seed?: number | undefined
  /**
   * Steps run before every random sequence (e.g. plugging every device, so that the random
   * steps find a machine at work). Not shrunk; part of every replay. Default none.
   */
  readonly prefix?: ReadonlyArray<Action> | undefined
}

/**
 * Operations started, and how they resolved.
 * @since 0.1.0
 * @category models
 */
export interface Operations {
  /** Operations started. */
  readonly started: number
  /** Operations that succeeded. */
  readonly completed: number
  /** Operations that failed with `DeviceGone`. */
  readonly gone: number
  /** Operations refused with a typed error that is part of the API (a full ring...). */
  readonly rejected: number
}

/**
 * Totals over the sequences a check ran.
 * @since 0.1.0
 * @category models
 */
export interface Coverage {
  /** Sequences run, the shrinking runs included. */
  readonly sequences: number
  /** Steps run, per kind of action (prefixes included). */
  readonly steps: Readonly<Record<Action["_tag"], number>>
  /** Faults the simulator injected (see `RunResult.faultsFired`). */
  readonly faultsFired: number
  /** Probes that failed (see `RunResult.probeFailures`). */
  readonly probeFailures: number
  /** Operations started, and how they resolved. */
  readonly operations: Operations
}

/**
 * The outcome of {@link check}.
 * @since 0.1.0
 * @category models
 */
export interface Report {
  /** Sequences fast-check ran (shrinking runs not counted). */
  readonly runs: number
  /** fast-check's seed (`Options.seed`, default 42). */
  readonly seed: number
  /** A sequence broke a guarantee or failed. */
  readonly failed: boolean
  /** The smallest failing sequence fast-check shrank to (without the prefix); `undefined` if none failed. */
  readonly counterexample: ReadonlyArray<Action> | undefined
  /** How the counterexample ran (prefix included); `undefined` if none failed. */
  readonly result: RunResult | undefined
  /** fast-check's path to the counterexample (pass with `seed` to replay); `undefined` if none failed. */
  readonly path: string | undefined
  /** The steps run before each sequence (`Options.prefix`). */
  readonly prefix: ReadonlyArray<Action>
  /** What the sequences run did (prefixes and shrinking runs included). */
  readonly coverage: Coverage
}

/**
 * How one sequence ended.
 * @since 0.1.0
 * @category models
 */
export interface RunResult {
  /** How the virtual world ended (see `VirtualTime.Outcome`; a run is cut after 600 000 ms of virtual time). */
  readonly outcome: "Done" | "Stalled" | "TimedOut"
  /** Operations started, and how many completed, failed with `DeviceGone` or were rejected. */
  readonly operations: Operations
  /** The oracle's sample of the violations (see `Oracle.Verdict`). */
  readonly violations: ReadonlyArray<Oracle.Violation>
  /** How many violations the oracle found (the sample may show fewer). */
  readonly violationCount: number
  /** Per guarantee and device, the violations the sample leaves out. */
  readonly omitted: ReadonlyArray<Oracle.Omitted>
  /**
   * Why the run itself failed, in one line (a stall with its wait sites, no end, a defect);
   * `undefined` when it ran to its end.
   */
  readonly failure: string | undefined
  /** Faults the simulator injected (its `fault-injected` trace events; delays are not traced). */
  readonly faultsFired: number
  /** Probes that failed (an injected allocation, mapping or interrupt failure, typically). */
  readonly probeFailures: number
}

/**
 * The sequences the fuzzer draws for a spec.
 * @since 0.1.0
 * @category arbitraries
 */
export const actions: (spec: Spec) => FastCheck.Arbitrary<ReadonlyArray<Action>> = internal.actions

/**
 * Runs one sequence (with a simulator seed) and judges it.
 * @since 0.1.0
 * @category running
 */
export const runSequence: (spec: Spec, sequence: ReadonlyArray<Action>, seed: number) => Effect.Effect<RunResult> =
  internal.runSequence

/**
 * Runs `numRuns` random sequences; on a failure, shrinks it and reports the minimal sequence.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Fuzz } from "@devscope/testing"
 *
 * declare const spec: Fuzz.Spec
 * const fuzz = Effect.gen(function*() {
 *   const report = yield* Fuzz.check(spec, { numRuns: 100, seed: 7 })
 *   console.log(Fuzz.describe(report))
 * })
 * ```
 * @since 0.1.0
 * @category running
 */
export const check: (spec: Spec, options?: Options) => Effect.Effect<Report> = internal.check

/**
 * A report in a few lines: the shrunk sequence, step by step, and what broke.
 * @since 0.1.0
 * @category utils
 */
export const describe: (report: Report) => string = internal.describe

/**
 * One action as text.
 * @since 0.1.0
 * @category utils
 */
export const show: (action: Action) => string = internal.show
