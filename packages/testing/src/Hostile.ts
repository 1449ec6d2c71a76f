/**
 * Hostile-driver fuzzing: drivers whose probe, `remove`, releases, device-file `destroy`,
 * binding fiber and bus observer misbehave (fail, die, throw synchronously, hang
 * interruptibly, hang uninterruptibly, add child devices, unload their own driver, interrupt
 * themselves, start fibers outside supervision), composed with random lifecycles (plug,
 * bind, unbind, surprise removal, orderly removal, unload, reload, open a handle, the bus
 * shutdown at the end) whose callers are interrupted at random points.
 *
 * Each sequence runs on a fresh bus under TestClock, with short deadlines (fibers, releases
 * and `remove` 50 ms, probe 100 ms), and is judged against the unbind contract:
 * - `bounded`: every step and the shutdown end within their deadlines;
 * - `settled`: no device is left probing or unbinding, none survives the shutdown, every
 *   binding's token is revoked;
 * - `exactly-once` and `lifo`: every resource's release starts exactly once, the last
 *   acquired first (a release that hangs is abandoned, never re-run);
 * - `no-late-fiber`: no fiber of a binding runs after its unbind unless a report names it;
 * - `named`: every misbehaviour is in a report (a release failure, a `Detached` or
 *   `FiberLeak` or `EscapedFiber` leak, a `removeFailure`, an `ObserverFailed` event);
 * - `crashed`: nothing dies that should fail with a typed error or be isolated.
 *
 * A failing sequence is shrunk by fast-check to a minimal one and comes with a replay token.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import * as internal from "./internal/hostile.js"

/**
 * How one callback misbehaves (`throw`: the function throws instead of returning an effect).
 * @since 0.2.0
 * @category models
 */
export type Misbehaviour = internal.Misbehaviour

/**
 * What the hostile driver does, callback by callback.
 * @since 0.2.0
 * @category models
 */
export type Plan = internal.Plan

/**
 * One lifecycle step of a sequence.
 * @since 0.2.0
 * @category models
 */
export type Step = internal.Step

/**
 * A driver plan and the steps run against it.
 * @since 0.2.0
 * @category models
 */
export type Sequence = internal.Sequence

/**
 * A contract break found in a sequence: which rule, and what happened.
 * @since 0.2.0
 * @category models
 */
export type Break = internal.Break

/**
 * What one sequence did and broke.
 * @since 0.2.0
 * @category models
 */
export type Result = internal.Result

/**
 * Options of {@link check}: how many sequences, and fast-check's seed.
 * @since 0.2.0
 * @category models
 */
export type Options = internal.Options

/**
 * The outcome of {@link check}: the shrunk counterexample and its replay token, if any.
 * @since 0.2.0
 * @category models
 */
export type Report = internal.CheckReport

/**
 * Runs one sequence in a world of its own and judges it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hostile } from "@devscope/testing"
 *
 * const result = Effect.runPromise(Hostile.run({
 *   plan: {
 *     probe: "ok", remove: "hang", releases: ["ok", "throw"],
 *     fiber: "ticks", destroy: "ok", observer: "throw-on-unbinding"
 *   },
 *   steps: [{ _tag: "plug", device: "h0" }, { _tag: "surprise", device: "h0" }]
 * }))
 * // []: the hanging remove is cut at its deadline and reported, the unbind ends
 * result.then((r) => console.log(r.breaks))
 * // (A remove that hangs uninterruptibly is detached instead: the run ends too, but that
 * // fiber never does, and keeps a Node process alive.)
 * ```
 * @since 0.2.0
 * @category running
 */
export const run: (sequence: Sequence) => Effect.Effect<Result> = internal.run

/**
 * Runs `numRuns` random sequences (default 100, fast-check seed 42) and shrinks the first
 * one that breaks the contract.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hostile } from "@devscope/testing"
 *
 * const program = Effect.map(Hostile.check({ numRuns: 50, seed: 7 }), Hostile.describe)
 * ```
 * @since 0.2.0
 * @category running
 */
export const check: (options?: Options) => Effect.Effect<Report> = internal.check

/**
 * Runs the sequence a replay token names (from {@link Report.token}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hostile } from "@devscope/testing"
 *
 * // A token as a failed check prints it (here made from a sequence).
 * const token = Hostile.token({
 *   plan: {
 *     probe: "ok", remove: "ok", releases: ["ok", "throw"],
 *     fiber: "ticks", destroy: "ok", observer: "ok"
 *   },
 *   steps: [{ _tag: "plug", device: "h0" }, { _tag: "unplug", device: "h0" }]
 * })
 * const again = Effect.runPromise(Hostile.replay(token))
 * ```
 * @since 0.2.0
 * @category running
 */
export const replay = (token: string): Effect.Effect<Result> => internal.run(internal.fromToken(token))

/**
 * The replay token of a sequence.
 * @since 0.2.0
 * @category running
 */
export const token: (sequence: Sequence) => string = internal.tokenOf

/**
 * A report as text: the shrunk sequence, step by step, and what broke.
 * @since 0.2.0
 * @category formatting
 */
export const describe: (report: Report) => string = internal.describe
