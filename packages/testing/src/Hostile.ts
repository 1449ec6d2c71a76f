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
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import * as internal from "./internal/hostile.js"

/**
 * How one callback misbehaves: `ok` (behaves), `fail` (fails with an error), `die` (dies with
 * a defect), `throw` (the function throws instead of returning an effect), `hang` (never
 * ends, interruptibly), `hang-uninterruptibly` (never ends, and cannot be interrupted).
 * @since 0.1.0
 * @category models
 */
export type Misbehaviour = "ok" | "fail" | "die" | "throw" | "hang" | "hang-uninterruptibly"

/**
 * What the hostile driver does, callback by callback.
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  /**
   * The probe, after acquiring its resources, forking its fiber and registering its device
   * file: a {@link Misbehaviour}, or `add-child` (adds a child device to the bus),
   * `unload-own-driver` (unregisters the hostile driver), `interrupt-self` (interrupts itself).
   */
  readonly probe: Misbehaviour | "add-child" | "unload-own-driver" | "interrupt-self"
  /** The driver's `remove`: a {@link Misbehaviour}, or `unload-own-driver` (unregisters the hostile driver). */
  readonly remove: Misbehaviour | "unload-own-driver"
  /** One resource per entry, acquired in order; each release behaves as its entry says. */
  readonly releases: ReadonlyArray<Misbehaviour>
  /**
   * The binding fiber (started with `Bound.fork`): `ticks` every millisecond, or
   * `hang-uninterruptibly`, `unload-own-driver` (after 5 ms), `add-child` (adds a child
   * device), `escapes` (a fiber outside the binding's supervision, holding its token, ticks).
   */
  readonly fiber: "ticks" | "hang-uninterruptibly" | "unload-own-driver" | "add-child" | "escapes"
  /** The device file's `destroy` (a handle is open when the step `open` ran). */
  readonly destroy: Misbehaviour
  /** The bus's `onEvent` observer: `ok`, or throws on `Unbinding` events, or on every event. */
  readonly observer: "ok" | "throw-on-unbinding" | "throw-always"
}

/**
 * A step on one device (`h0` or `h1` in drawn sequences): `bind` or `unbind` it, remove it
 * (`surprise`: a surprise removal, `unplug`: an orderly one), `plug` it (add it to the bus),
 * or `open` a handle of its device file.
 * @since 0.1.0
 * @category models
 */
export interface DeviceStep {
  /** What is done to the device. */
  readonly _tag: "bind" | "unbind" | "surprise" | "unplug" | "plug" | "open"
  /** The device's name. */
  readonly device: string
  /** The step's caller is interrupted after this many milliseconds (of TestClock time); default never. */
  readonly interruptAfter?: number | undefined
}

/**
 * A step on the hostile driver: `unload` it (unregister it from the bus) or `reload` it
 * (register it again).
 * @since 0.1.0
 * @category models
 */
export interface DriverStep {
  /** What is done to the driver. */
  readonly _tag: "unload" | "reload"
  /** The step's caller is interrupted after this many milliseconds (of TestClock time); default never. */
  readonly interruptAfter?: number | undefined
}

/**
 * Adds (`link`) or removes (`unlink`) a device link between two devices (the bus may refuse
 * a link; that is not a break).
 * @since 0.1.0
 * @category models
 */
export interface LinkStep {
  /** What is done to the link. */
  readonly _tag: "link" | "unlink"
  /** The consumer device's name (unbound before its supplier). */
  readonly consumer: string
  /** The supplier device's name. */
  readonly supplier: string
}

/**
 * Lets TestClock time pass.
 * @since 0.1.0
 * @category models
 */
export interface WaitStep {
  /** The tag. */
  readonly _tag: "wait"
  /** How long, in milliseconds of TestClock time (1 to 200 in drawn sequences). */
  readonly millis: number
}

/**
 * One lifecycle step of a sequence.
 * @since 0.1.0
 * @category models
 */
export type Step = DeviceStep | DriverStep | LinkStep | WaitStep

/**
 * A driver plan and the steps run against it.
 * @since 0.1.0
 * @category models
 */
export interface Sequence {
  /** How the hostile driver misbehaves. */
  readonly plan: Plan
  /** The steps run, in order; the bus is shut down after the last one. */
  readonly steps: ReadonlyArray<Step>
}

/**
 * A contract break found in a sequence: which rule, and what happened.
 * @since 0.1.0
 * @category models
 */
export interface Break {
  /** The rule broken (see the module's documentation). */
  readonly rule: "bounded" | "exactly-once" | "lifo" | "no-late-fiber" | "settled" | "named" | "crashed"
  /** What happened, in one line. */
  readonly message: string
}

/**
 * What one sequence did and broke.
 * @since 0.1.0
 * @category models
 */
export interface Result {
  /** The contract breaks found (none when the unbind contract held). */
  readonly breaks: ReadonlyArray<Break>
  /** Steps in the sequence. */
  readonly steps: number
  /** Bindings made, the child devices' included (0 if the sequence crashed). */
  readonly bindings: number
}

/**
 * Options of {@link check}: how many sequences, and fast-check's seed.
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How many random sequences are run (default 100). */
  readonly numRuns?: number | undefined
  /** fast-check's seed (default 42): the same seed generates the same sequences. */
  readonly seed?: number | undefined
}

/**
 * The outcome of {@link check}: the shrunk counterexample and its replay token, if any.
 * @since 0.1.0
 * @category models
 */
export interface Report {
  /** Sequences fast-check ran (shrinking runs not counted). */
  readonly runs: number
  /** fast-check's seed (`Options.seed`, default 42). */
  readonly seed: number
  /** A sequence broke the contract. */
  readonly failed: boolean
  /** The smallest breaking sequence fast-check shrank to; `undefined` if none broke it. */
  readonly counterexample: Sequence | undefined
  /** How the counterexample ran; `undefined` if none broke the contract. */
  readonly result: Result | undefined
  /** Replays the counterexample exactly (see {@link replay}); `undefined` if none broke the contract. */
  readonly token: string | undefined
}

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
 * @since 0.1.0
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
 * @since 0.1.0
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
 * @since 0.1.0
 * @category running
 */
export const replay = (token: string): Effect.Effect<Result> => internal.run(internal.fromToken(token))

/**
 * The replay token of a sequence.
 * @since 0.1.0
 * @category running
 */
export const token: (sequence: Sequence) => string = internal.tokenOf

/**
 * A report as text: the shrunk sequence, step by step, and what broke.
 * @since 0.1.0
 * @category formatting
 */
export const describe: (report: Report) => string = internal.describe
