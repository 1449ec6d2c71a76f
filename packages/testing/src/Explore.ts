/**
 * Exploration: removal of a device at every suspension point of a scenario.
 *
 * `explore(scenario)` runs the scenario once in virtual time and counts the suspension points
 * while the device is bound: every resumption of a fiber (a binding fiber, a gate section, a
 * user operation, the device model) after a yield, a sleep or a wait. Then it re-runs the
 * scenario, each time in a fresh world with the same seed, with
 *
 * - a surprise removal injected at point 1..N (`surprise`),
 * - an orderly removal injected at point 1..N (`unplug`),
 * - an orderly removal in the middle and a surprise removal at each point of that unbind
 *   (`surprise-in-remove`: during the gate drain, the driver's `remove`, the teardown).
 *
 * Every case is judged by the invariant oracle (G1-G5) and by how the world ended: a case
 * that stalls (every fiber waits on something that cannot happen, e.g. an interrupt from a
 * removed device) is reported with the wait sites instead of hanging. Each failure carries a
 * replay token (`scenario@seed:mode:point`) that `replay` turns back into exactly that case.
 *
 * With more points than `maxPoints`, the points explored are spread evenly over the run.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Lifecycle } from "@devscope/core"
import type { Simulator } from "@devscope/sim"
import * as internal from "./internal/explore.js"
import type * as Oracle from "./Oracle.js"

/**
 * A workload the explorer removes a device from: how to set up the world and what to run in
 * it. Every case runs it afresh in a virtual world of its own, with the same seed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scenario<E = never> {
  /**
   * The scenario's name: the first part of every replay token (`name@seed:mode:point`), and
   * checked by `replay`.
   */
  readonly name: string
  /** The name of the device removed at each point (as plugged on the simulator). */
  readonly device: string
  /** The simulator's seed, the same for every case (default 1). */
  readonly seed?: number | undefined
  /**
   * Options of the simulator each case makes (default none); its `seed` and `onLifecycle`
   * are the explorer's.
   */
  readonly simulator?: Omit<Simulator.Options, "seed" | "onLifecycle"> | undefined
  /**
   * Sets up drivers and devices, runs a bounded workload through `oracle.track`, and
   * finishes. The explorer removes `device` somewhere in the middle; the scenario must cope
   * (a device may be gone at any moment). Its scope closes when the case ends.
   */
  readonly run: (ctx: {
    /** The case's simulator. */
    readonly sim: Simulator.Service
    /** The case's oracle: run every user operation through `oracle.track`. */
    readonly oracle: Oracle.Oracle
  }) => Effect.Effect<void, E, Scope.Scope>
}

/**
 * A kind of removal the explorer injects:
 * - `surprise`: a surprise removal (the device vanishes, `Simulator.surpriseRemove`) at a
 *   suspension point of the bound device;
 * - `unplug`: an orderly removal (`Simulator.unplug`) at such a point;
 * - `surprise-in-remove`: an orderly removal in the middle of the run, and a surprise
 *   removal at a suspension point of the unbind that follows (gate drain, `remove`, teardown).
 *
 * @since 0.1.0
 * @category models
 */
export type Mode = "surprise" | "unplug" | "surprise-in-remove"

/**
 * One case of an exploration: where the removal is injected. Printed in a replay token as
 * `mode:point` or `mode:point:inner`.
 * @since 0.1.0
 * @category models
 */
export interface Case {
  /** The removal injected; `baseline` is the run without one (its `point` is 0). */
  readonly mode: Mode | "baseline"
  /** The suspension point of the bound device the removal was injected at (1-based). */
  readonly point: number
  /**
   * For `surprise-in-remove`: the point inside the unbind window that follows the orderly
   * removal (1-based, counted from that removal on: unbinds the scenario did before do not
   * count). Absent for the other modes.
   */
  readonly inner?: number | undefined
}

/**
 * How one case ended and what the oracle found.
 * @since 0.1.0
 * @category models
 */
export interface CaseResult {
  /** The case that ran. */
  readonly case: Case
  /** Its replay token (`scenario@seed:mode:point[:inner]`), for `replay`. */
  readonly token: string
  /** How the virtual world ended (see `VirtualTime.Outcome`); anything but `Done` fails the case. */
  readonly outcome: "Done" | "Stalled" | "TimedOut"
  /**
   * The removal was injected (the run reached the point). For `surprise-in-remove`: both the
   * orderly removal and the surprise removal inside its unbind were.
   */
  readonly injected: boolean
  /** The oracle's sample of the violations (see `Oracle.Verdict`). */
  readonly violations: ReadonlyArray<Oracle.Violation>
  /** How many violations the oracle found (the sample may show fewer). */
  readonly violationCount: number
  /** Per guarantee and device, the violations the sample leaves out. */
  readonly omitted: ReadonlyArray<Oracle.Omitted>
  /**
   * Why the run itself failed, in one line: a stall (with the wait sites), the timeout, or
   * the scenario's own failure; `undefined` when the scenario ran to its end.
   */
  readonly failure: string | undefined
  /**
   * Suspension points seen while the device was bound, while it was unbinding (every unbind
   * of the run), and while it was unbinding after the injected removal (`removal`).
   */
  readonly points: {
    /** Suspension points while the device was bound. */
    readonly bound: number
    /** Suspension points while the device was unbinding, every unbind of the run counted. */
    readonly unbinding: number
    /** Suspension points while the device was unbinding after the injected removal. */
    readonly removal: number
  }
  /** Virtual time the case took, in milliseconds. */
  readonly virtualMillis: number
}

/**
 * Where the cases of an exploration run: what makes the platform of one case, how it removes
 * a device, and what the oracle judges of it. The simulator is the default platform; another
 * backend (`@devscope/qemu`) provides its own.
 * @since 0.1.0
 * @category models
 */
export interface Platform<P, PE = unknown> {
  /**
   * Makes the platform of one case with the case's seed and the oracle's `onLifecycle`; its
   * scope is the case's. Inside the case's virtual world unless `outside`.
   */
  readonly make: (ctx: {
    readonly seed: number
    readonly onLifecycle: (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => void
  }) => Effect.Effect<P, PE, Scope.Scope>
  /**
   * Make it outside the world, in real time (its start does real I/O, which a virtual world
   * would take for a stall); a start that fails is the case's failure.
   */
  readonly outside?: boolean | undefined
  /** Forked in the world before the scenario runs, for the case (e.g. a clock that follows the world's). */
  readonly inWorld?: ((platform: P) => Effect.Effect<unknown>) | undefined
  readonly surpriseRemove: (platform: P, device: string) => Effect.Effect<unknown, unknown>
  readonly unplug: (platform: P, device: string) => Effect.Effect<unknown, unknown>
  /** What the oracle judges: the trace and the DMA faults. */
  readonly evidence: (platform: P) => Oracle.SimEvidence
}

/**
 * A scenario on a platform of its own (see {@link Platform}): as {@link Scenario}, with the
 * platform in place of the simulator.
 * @since 0.1.0
 * @category models
 */
export interface PlatformScenario<P, E = never, PE = unknown> {
  readonly name: string
  readonly device: string
  readonly seed?: number | undefined
  readonly platform: Platform<P, PE>
  readonly run: (ctx: { readonly platform: P; readonly oracle: Oracle.Oracle }) => Effect.Effect<void, E, Scope.Scope>
}

/**
 * Options of {@link explore}.
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Modes to explore, in this order. Default all three: `surprise`, `unplug`, `surprise-in-remove`. */
  readonly modes?: ReadonlyArray<Mode> | undefined
  /** At most this many points per mode, spread evenly over the run (default 200). */
  readonly maxPoints?: number | undefined
  /**
   * Virtual time a case may take, in milliseconds, before it is cut and reported `TimedOut`.
   * Default: 20 times the baseline's virtual time plus 1000 (the baseline itself gets 600 000).
   */
  readonly timeout?: number | undefined
}

/**
 * What one mode explored: its points, the cases run, the cases whose removal was injected.
 * @since 0.1.0
 * @category models
 */
export interface ModeCoverage {
  /** The mode. */
  readonly mode: Mode
  /**
   * Suspension points the mode could inject at: those of the bound device (`surprise`,
   * `unplug`), or of the orderly unbind in the middle of the run (`surprise-in-remove`).
   */
  readonly points: number
  /** Cases run (at most `maxPoints`, spread evenly over the points). */
  readonly cases: number
  /** Cases whose removal was injected (the run reached the point). */
  readonly injected: number
}

/**
 * The outcome of {@link explore}: what was explored, and the failing cases.
 * @since 0.1.0
 * @category models
 */
export interface Report {
  /** The scenario's name. */
  readonly scenario: string
  /** The simulator's seed every case ran with (`Scenario.seed`, default 1). */
  readonly seed: number
  /** Suspension points of the baseline run (see `CaseResult.points`). */
  readonly points: {
    /** Suspension points while the device was bound. */
    readonly bound: number
    /** Suspension points while the device was unbinding. */
    readonly unbinding: number
  }
  /** Cases run in all: the baseline, every mode's, and the middle unplug of `surprise-in-remove`. */
  readonly cases: number
  /** Per mode explored, in order. */
  readonly modes: ReadonlyArray<ModeCoverage>
  /** The failing cases (a failure or a violation), in the order they ran; empty for a correct driver. */
  readonly failures: ReadonlyArray<CaseResult>
}

/**
 * Explores a scenario. The report lists the failing cases (none for a correct driver) and,
 * per mode, how many points it had, how many cases ran and how many of them injected the
 * removal.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Option } from "effect"
 * import { Devres, type DeviceError, Driver, Gate, Hardware } from "@devscope/core"
 * import { Edu } from "@devscope/sim"
 * import { Explore } from "@devscope/testing"
 *
 * // A driver for the simulator's edu card: users read its ID register through a gate.
 * const EduX = Driver.brand("edu-x")
 * const reads = new Map<string, Effect.Effect<number, DeviceError.DeviceGone>>()
 * const driver = Driver.make(EduX, {
 *   match: [{ vendor: Edu.ids.vendor, device: Edu.ids.device }],
 *   probe: () =>
 *     Layer.effectDiscard(Effect.gen(function*() {
 *       const { device } = yield* EduX.Bound
 *       const bar0 = yield* Hardware.iomap(EduX, Edu.registers, 0)
 *       const gate = yield* Gate.make(EduX, { name: "edu reads" })
 *       const read = gate.enter((token) => Effect.sync(() => bar0.access(token).read("ID")))
 *       yield* Devres.acquireRelease(EduX, Effect.sync(() => reads.set(device.name, read)), () =>
 *         Effect.sync(() => reads.delete(device.name)))
 *     }))
 * })
 *
 * const scenario: Explore.Scenario = {
 *   name: "edu-x",
 *   device: "edu0",
 *   run: ({ oracle, sim }) =>
 *     Effect.gen(function*() {
 *       yield* Effect.provideService(sim.pci.registerDriver(driver), Hardware.Hardware, sim.hardware)
 *       yield* sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() })
 *       for (let i = 0; i < 5; i++) {
 *         const read = Option.fromNullable(reads.get("edu0"))
 *         if (Option.isNone(read)) return // removed
 *         yield* oracle.track("edu0", `read ${i}`, read.value)
 *         yield* Effect.sleep("1 millis")
 *       }
 *     }).pipe(Effect.orDie)
 * }
 *
 * Effect.runPromise(Explore.explore(scenario, { maxPoints: 50 })).then((report) => {
 *   // "0 failures": removed by surprise and in order at each of the run's 5 points, the
 *   // card left no read unresolved and broke no guarantee
 *   console.log(`${report.failures.length} failures`)
 *   for (const failure of report.failures) console.log(Explore.describe(failure))
 * })
 * ```
 * @since 0.1.0
 * @category exploring
 */
export const explore: <E>(scenario: Scenario<E>, options?: Options) => Effect.Effect<Report> = internal.explore

/**
 * Explores a scenario on a platform of its own (see {@link Platform}): the cases, points,
 * tokens and verdicts of {@link explore}.
 * @since 0.1.0
 * @category exploring
 */
export const exploreOn: <P, E, PE>(scenario: PlatformScenario<P, E, PE>, options?: Options) => Effect.Effect<Report> = internal.exploreOn

/**
 * Runs one case of a scenario on a platform of its own.
 * @since 0.1.0
 * @category exploring
 */
export const runCaseOn: <P, E, PE>(scenario: PlatformScenario<P, E, PE>, seed: number, c: Case, timeout: number) => Effect.Effect<CaseResult> =
  internal.runCaseOn

/**
 * Runs one case.
 * @since 0.1.0
 * @category exploring
 */
export const runCase: <E>(scenario: Scenario<E>, seed: number, c: Case, timeout: number) => Effect.Effect<CaseResult> =
  internal.runCase

/**
 * Re-runs the case a replay token names (the scenario must be the one the token was made
 * with; its name is checked).
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Driver, Hardware } from "@devscope/core"
 * import { Edu } from "@devscope/sim"
 * import { Explore } from "@devscope/testing"
 *
 * const EduX = Driver.brand("edu-x")
 * const driver = Driver.make(EduX, {
 *   match: [{ vendor: Edu.ids.vendor, device: Edu.ids.device }],
 *   probe: () => Layer.effectDiscard(Hardware.iomap(EduX, Edu.registers, 0))
 * })
 * const scenario: Explore.Scenario = {
 *   name: "edu-x",
 *   device: "edu0",
 *   run: ({ sim }) =>
 *     Effect.gen(function*() {
 *       yield* Effect.provideService(sim.pci.registerDriver(driver), Hardware.Hardware, sim.hardware)
 *       yield* sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() })
 *       yield* Effect.sleep("1 millis")
 *     }).pipe(Effect.orDie)
 * }
 *
 * // A token as a failure of `explore` names it: seed 1, a surprise removal at point 1.
 * Effect.runPromise(Explore.replay(scenario, "edu-x@1:surprise:1")).then((result) =>
 *   console.log(result.outcome, result.injected, result.violationCount) // Done true 0
 * )
 * ```
 * @since 0.1.0
 * @category exploring
 */
export const replay = <E>(scenario: Scenario<E>, token: string, timeout = 600_000): Effect.Effect<CaseResult> => {
  const parsed = internal.parseToken(token)
  if (parsed === undefined) throw new TypeError(`not a replay token: ${token}`)
  if (parsed.scenario !== scenario.name) {
    throw new TypeError(`replay token is for scenario "${parsed.scenario}", not "${scenario.name}"`)
  }
  return internal.runCase(scenario, parsed.seed, parsed.case, timeout)
}

/**
 * A failing case in a few lines: replay token, what went wrong, the violations.
 * @since 0.1.0
 * @category utils
 */
export const describe: (result: CaseResult) => string = internal.describe
