/**
 * Runs a scenario on the simulator in virtual time and produces its `RunRecord`: what ran,
 * the lifecycle events and trace, per-device totals, and the guarantees found broken.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import * as perfetto from "./internal/perfetto.js"
import type * as record from "./internal/record.js"
import * as recordInternal from "./internal/record.js"
import * as report from "./internal/report.js"
import * as internal from "./internal/runner.js"
import * as summary from "./internal/summary.js"
import type { Scenario } from "./Scenario.js"

/**
 * @since 0.1.0
 * @category models
 */
export type RunRecord = record.RunRecord

/**
 * @since 0.1.0
 * @category models
 */
export type Violation = record.Violation

/**
 * @since 0.1.0
 * @category models
 */
export type DeviceSummary = record.DeviceSummary

/**
 * Driver code that failed where the binding machinery caught it (a failed run).
 * @since 0.1.0
 * @category models
 */
export type DriverFailure = record.DriverFailure

/**
 * A hung action, a stall or a run cut at the time limit, with its wait sites.
 * @since 0.1.0
 * @category models
 */
export type Stall = record.Stall

/**
 * A warning logged during a run.
 * @since 0.1.0
 * @category models
 */
export type Note = record.Note

/**
 * Whether a run passed: no guarantee broken, no driver failure (exit code 0).
 * @since 0.1.0
 * @category models
 */
export const passed: (record: RunRecord) => boolean = recordInternal.passed

/**
 * @since 0.1.0
 * @category models
 */
export type Progress = internal.Progress

/**
 * @since 0.1.0
 * @category models
 */
export type RunOptions = internal.RunOptions

/**
 * Runs a scenario. Deterministic: the same scenario and seed give the same record (but for
 * wall-clock figures).
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Runner, Scenario } from "@devscope/cli"
 *
 * const scenario = Either.getOrThrow(Scenario.decode({
 *   name: "one sensor",
 *   duration: "50 millis",
 *   devices: [{ name: "temp0", kind: "sensor" }],
 *   drivers: [{ kind: "sensor" }]
 * }, "inline"))
 * Effect.runPromise(Runner.run(scenario)).then((record) => console.log(record.violations.length)) // 0
 * ```
 * @since 0.1.0
 * @category running
 */
export const run: (scenario: Scenario, options?: RunOptions) => Effect.Effect<RunRecord> = internal.run

/**
 * The summary table printed at the end of a run.
 * @since 0.1.0
 * @category rendering
 */
export const summaryText: (record: RunRecord) => string = summary.summary

/**
 * The run as a Chrome/Perfetto trace (JSON text).
 * @since 0.1.0
 * @category rendering
 */
export const chromeTrace: (record: RunRecord) => string = perfetto.chromeTraceJson

/**
 * The run as a self-contained HTML page with an SVG timeline.
 * @since 0.1.0
 * @category rendering
 */
export const html: (record: RunRecord) => string = report.toHtml
