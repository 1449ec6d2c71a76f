/**
 * Runs an Effect program in a world of its own: virtual time (Effect's `Clock`) and a
 * scheduler that runs fibers synchronously. When no fiber can run, time jumps to the next
 * sleeper's deadline, so a program that sleeps for minutes of device latency finishes in
 * the wall time its computation takes, and the same program gives the same run every time.
 *
 * Unlike `TestClock`, nothing has to advance the clock by hand and no real timer is waited
 * on per sleep. It also notices when the program can no longer make progress (every fiber
 * waits and nothing sleeps) and reports the run as `Stalled` instead of hanging.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as internal from "./internal/virtualTime.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /**
   * Called before every task the world runs: each task is a fiber resuming from a
   * suspension point (a yield, a wake-up, a completed wait). Explorers count them, and can
   * start a fiber in the world at a chosen point with `control.fork`.
   */
  readonly onTask?: ((control: Control) => void) | undefined
  /**
   * Virtual instant (milliseconds) past which time does not advance: the program is then
   * interrupted and the run is `TimedOut`.
   */
  readonly until?: number | undefined
  /** Called as virtual time advances, at most every `progressEvery` wall milliseconds. */
  readonly onProgress?: ((virtualMillis: number) => void) | undefined
  /** Default 100. */
  readonly progressEvery?: number | undefined
}

/**
 * What an `onTask` hook can do.
 * @since 0.1.0
 * @category models
 */
export type Control = internal.Control

/**
 * A fiber that was still waiting when a run stalled, with the spans it was in (innermost
 * first; a driver's `remove` runs in the span `devscope.remove`).
 * @since 0.1.0
 * @category models
 */
export type Waiting = internal.Waiting

/**
 * How a run ended:
 * - `Done`: the program finished (successfully or not) on its own;
 * - `Stalled`: every fiber waited on something that could never happen; `waiting` lists
 *   them with their spans (the wait sites); the program was then interrupted (`exit` is its
 *   exit after the interruption, if it finished);
 * - `TimedOut`: virtual time reached `until`; the program was interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome<A, E> = internal.Outcome<A, E>

/**
 * Runs `effect` in virtual time. The returned Effect waits (in real time) for the run.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { VirtualTime } from "@devscope/sim"
 *
 * const program = Effect.gen(function*() {
 *   yield* Effect.sleep("1 hour")
 *   return "done"
 * })
 * // Finishes at once: virtual time jumps to the sleeper's deadline.
 * Effect.runPromise(VirtualTime.run(program)).then((outcome) => console.log(outcome._tag, outcome.virtualMillis))
 * ```
 * @since 0.1.0
 * @category running
 */
export const run: <A, E>(effect: Effect.Effect<A, E>, options?: RunOptions) => Effect.Effect<Outcome<A, E>> =
  internal.run

/**
 * The exit of a run, when the program finished.
 * @since 0.1.0
 * @category getters
 */
export const exitOf = <A, E>(outcome: Outcome<A, E>): Exit.Exit<A, E> | undefined => outcome.exit
