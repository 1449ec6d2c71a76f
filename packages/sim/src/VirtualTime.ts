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
 * Options of {@link run}.
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
   * interrupted and the run is `TimedOut`. Default: no limit.
   */
  readonly until?: number | undefined
  /**
   * Called as virtual time advances (with the virtual time, in milliseconds), at most every
   * `progressEvery` wall milliseconds.
   */
  readonly onProgress?: ((virtualMillis: number) => void) | undefined
  /** Wall-clock milliseconds between two `onProgress` calls, at least (default 100). */
  readonly progressEvery?: number | undefined
  /**
   * Stops the run when aborted (Ctrl-C, a wall-clock timeout): at the world's next step
   * (within about 20 ms of wall time, even in a world busy at one virtual instant) the program
   * is interrupted, as for `until`, and given 60 000 ms of virtual time and 500 ms of wall
   * time to run its finalizers; the run is then `Interrupted`. A signal already aborted stops
   * the run before its first step. An abort after the program finished changes nothing.
   */
  readonly signal?: AbortSignal | undefined
}

/**
 * What an `onTask` hook can do: look at virtual time, start a fiber in the world.
 * @since 0.1.0
 * @category models
 */
export interface Control {
  /** The world's virtual time, in milliseconds since the run started. */
  readonly now: number
  /** Starts `effect` as a new fiber of the world (it runs at the next drain, in virtual time). */
  fork(effect: Effect.Effect<unknown, unknown>): void
}

/**
 * A fiber that was still waiting when a run stalled, with the spans it was in (innermost
 * first; a driver's `remove` runs in the span `devscope.remove`).
 * @since 0.1.0
 * @category models
 */
export interface Waiting {
  /** The fiber's id (`#42`); ids are process-wide, so they differ from run to run. */
  readonly fiber: string
  /**
   * The spans the fiber was in, innermost first (at most 8), each as `name` or
   * `name (key=value, ...)` with its attributes.
   */
  readonly spans: ReadonlyArray<string>
}

/**
 * The program finished on its own, successfully or not.
 * @since 0.1.0
 * @category models
 */
export interface Done<A, E> {
  /** The tag. */
  readonly _tag: "Done"
  /** The program's exit. */
  readonly exit: Exit.Exit<A, E>
  /** Virtual time at the end of the run, in milliseconds. */
  readonly virtualMillis: number
}

/**
 * Every fiber waited on something that could never happen (nothing could run, nothing
 * slept): the program was then interrupted.
 * @since 0.1.0
 * @category models
 */
export interface Stalled<A, E> {
  /** The tag. */
  readonly _tag: "Stalled"
  /**
   * The program's exit after the interruption; `undefined` if even the interruption could
   * not finish (within 60 000 ms of virtual time).
   */
  readonly exit: Exit.Exit<A, E> | undefined
  /** Virtual time at the end of the run, in milliseconds. */
  readonly virtualMillis: number
  /** The fibers that were waiting when nothing could run any more, those inside spans first. */
  readonly waiting: ReadonlyArray<Waiting>
}

/**
 * Virtual time reached `RunOptions.until`: the program was interrupted.
 * @since 0.1.0
 * @category models
 */
export interface TimedOut<A, E> {
  /** The tag. */
  readonly _tag: "TimedOut"
  /**
   * The program's exit after the interruption; `undefined` if even the interruption could
   * not finish (within 60 000 ms of virtual time).
   */
  readonly exit: Exit.Exit<A, E> | undefined
  /** Virtual time at the end of the run, in milliseconds. */
  readonly virtualMillis: number
}

/**
/**
 * `RunOptions.signal` was aborted before the program finished: the program was interrupted.
 * @since 0.1.0
 * @category models
 */
export interface Interrupted<A, E> {
  /** The tag. */
  readonly _tag: "Interrupted"
  /**
   * The program's exit after the interruption; `undefined` if even the interruption could
   * not finish (within 60 000 ms of virtual time and 500 ms of wall time).
   */
  readonly exit: Exit.Exit<A, E> | undefined
  /** Virtual time at the end of the run (after the wind-down), in milliseconds. */
  readonly virtualMillis: number
}

/**
 * How a run ended:
 * - `Done`: the program finished (successfully or not) on its own;
 * - `Stalled`: every fiber waited on something that could never happen; `waiting` lists
 *   them with their spans (the wait sites); the program was then interrupted (`exit` is its
 *   exit after the interruption, if it finished);
 * - `TimedOut`: virtual time reached `until`; the program was interrupted;
 * - `Interrupted`: `signal` was aborted; the program was interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome<A, E> = Done<A, E> | Stalled<A, E> | TimedOut<A, E> | Interrupted<A, E>

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
