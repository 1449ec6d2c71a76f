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
 * import { Effect } from "effect"
 * import { Explore } from "@devscope/testing"
 *
 * declare const scenario: Explore.Scenario
 * const check = Effect.gen(function*() {
 *   const report = yield* Explore.explore(scenario, { maxPoints: 50 })
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
 * import { Effect } from "effect"
 * import { Explore } from "@devscope/testing"
 *
 * declare const scenario: Explore.Scenario
 * const again = Explore.replay(scenario, "edu-dma@1:surprise:17")
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
