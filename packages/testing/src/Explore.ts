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
import * as internal from "./internal/explore.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Scenario<E = never> = internal.Scenario<E>

/**
 * @since 0.1.0
 * @category models
 */
export type Mode = internal.Mode

/**
 * @since 0.1.0
 * @category models
 */
export type Case = internal.Case

/**
 * @since 0.1.0
 * @category models
 */
export type CaseResult = internal.CaseResult

/**
 * @since 0.1.0
 * @category models
 */
export type Options = internal.Options

/**
 * What one mode explored: its points, the cases run, the cases whose removal was injected.
 * @since 0.1.0
 * @category models
 */
export type ModeCoverage = internal.ModeCoverage

/**
 * @since 0.1.0
 * @category models
 */
export type Report = internal.Report

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
