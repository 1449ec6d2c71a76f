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
import * as internal from "./internal/fuzz.js"

/**
 * A device the fuzzer can plug and drive.
 * @since 0.1.0
 * @category models
 */
export type DeviceSpec = internal.DeviceSpec

/**
 * A driver the fuzzer can load and unload.
 * @since 0.1.0
 * @category models
 */
export type DriverSpec = internal.DriverSpec

/**
 * The machine under test.
 * @since 0.1.0
 * @category models
 */
export type Spec = internal.Spec

/**
 * One step of a sequence.
 * @since 0.1.0
 * @category models
 */
export type Action = internal.Action

/**
 * A kind of fault a sequence may inject (the simulator's fault rules).
 * @since 0.1.0
 * @category models
 */
export type FaultKind = internal.FaultKind

/**
 * Every kind of fault, the default of `Spec.faults`.
 * @since 0.1.0
 * @category constants
 */
export const faultKinds: ReadonlyArray<FaultKind> = internal.faultKinds

/**
 * @since 0.1.0
 * @category models
 */
export type Options = internal.Options

/**
 * Totals over the sequences a check ran.
 * @since 0.1.0
 * @category models
 */
export type Coverage = internal.Coverage

/**
 * @since 0.1.0
 * @category models
 */
export type Report = internal.Report

/**
 * How one sequence ended.
 * @since 0.1.0
 * @category models
 */
export type RunResult = internal.RunResult

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
