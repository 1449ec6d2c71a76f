/**
 * Bounded waits on code devscope does not control (a driver's probe, `remove`, releases,
 * destroy callbacks, its fibers), and fibers that run a sequence apart from its caller.
 *
 * # Invariants
 * - `bounded` always ends, after at most twice its deadline: the code runs in a fiber of its
 *   own; at the deadline that fiber is interrupted, and if it has not ended one more deadline
 *   later (it is inside an uninterruptible region) the wait stops anyway and the fiber is
 *   left running, *detached*, for the caller to report. Nothing here waits on the detached
 *   fiber again.
 * - A fiber started here starts at once, on the caller's stack (`Runtime.runFork` starts a
 *   fiber synchronously), with the caller's FiberRefs (clock, scheduler, logger, context) but
 *   no supervisor of the caller's: so code that completes without suspending costs one fiber
 *   and no scheduler turn, and a fiber started from a binding fiber is not one of the
 *   binding's fibers.
 * - Waiting is safe in an uninterruptible region: a wait is a callback (the awaited fiber's
 *   observer, an alarm of internal/alarms.ts), never an interruptible region of the caller,
 *   and only the awaited fiber is ever interrupted, by `cut`.
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Supervisor from "effect/Supervisor"
import type * as Tracer from "effect/Tracer"
import { setAlarm } from "./alarms.js"

/** Fibers devscope itself runs (sequences, callbacks, timers): never a binding's escapee. */
export const ownFibers = new WeakSet<Fiber.RuntimeFiber<any, any>>()

type FiberIdOf = Parameters<typeof FiberRefs.updateAs>[1]["fiberId"]

const supervisedBy = (supervisor: Supervisor.Supervisor<any>): Runtime.RunForkOptions => ({
  updateRefs: (refs: FiberRefs.FiberRefs, fiberId: FiberIdOf) =>
    FiberRefs.updateAs(refs, { fiberId, fiberRef: FiberRef.currentSupervisor, value: supervisor })
})

const runOptions = supervisedBy(Supervisor.none)

/**
 * Starts `effect` now, interruptible, in a root fiber with `parent`'s FiberRefs and no
 * supervisor (see the invariants above), or `supervisor` (a binding's, for its probe and
 * `remove`: every slice of theirs is then seen by it). Returns the fiber, which may have
 * completed already.
 */
export const startNow = <A, E>(
  parent: Fiber.RuntimeFiber<any, any>,
  runtimeFlags: RuntimeFlags.RuntimeFlags,
  effect: Effect.Effect<A, E>,
  supervisor?: Supervisor.Supervisor<any>
): Fiber.RuntimeFiber<A, E> => {
  const runtime = Runtime.make({
    context: parent.getFiberRef(FiberRef.currentContext),
    fiberRefs: parent.getFiberRefs(),
    runtimeFlags: RuntimeFlags.enable(runtimeFlags, RuntimeFlags.Interruption)
  })
  const fiber = Runtime.runFork(runtime, effect, supervisor === undefined ? runOptions : supervisedBy(supervisor))
  ownFibers.add(fiber)
  return fiber
}

/**
 * How a bounded wait ended:
 * - `Done`: the code ended by itself within the deadline;
 * - `Cut`: it was interrupted at the deadline and then ended (its exit says how);
 * - `Detached`: it did not end even after being interrupted; `fiber` still runs.
 */
export type Outcome<A, E> =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "Cut"; readonly exit: Exit.Exit<A, E>; readonly waitingIn: string }
  | { readonly _tag: "Detached"; readonly fiber: Fiber.RuntimeFiber<A, E>; readonly waitingIn: string }

/**
 * Where a fiber is waiting, from its spans (innermost first, up to 8), for a report of code
 * that outlived its deadline: `"in devscope.remove (device=edu0) < ..."`, or `""`.
 */
export const waitSite = (fiber: Fiber.RuntimeFiber<any, any>): string => {
  const spans: Array<string> = []
  let span = fiber.currentSpan as Tracer.AnySpan | undefined
  while (span !== undefined && spans.length < 8) {
    if (span._tag !== "Span") break
    const attributes = Array.from(span.attributes, ([k, v]) => `${k}=${String(v)}`).join(", ")
    spans.push(attributes === "" ? span.name : `${span.name} (${attributes})`)
    span = Option.getOrUndefined(span.parent)
  }
  return spans.length === 0 ? "" : `in ${spans.join(" < ")}`
}

/**
 * The fiber's exit if it ends within `deadline`. Never cuts the fiber itself, and never
 * makes the caller interruptible: the wait is a plain callback (the fiber's observer, an
 * alarm of internal/alarms.ts), so in an uninterruptible region it cannot be interrupted, and in
 * an interruptible one an interrupt ends only the wait. (`Effect.timeoutOption` around an
 * interruptible `Fiber.await` would let an interrupt of the caller through, even inside an
 * uninterruptible region.)
 */
export const awaitAtMost = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  deadline: Duration.DurationInput
): Effect.Effect<Option.Option<Exit.Exit<A, E>>> =>
  Effect.suspend(() => {
    const exit = fiber.unsafePoll()
    return exit !== null ? Effect.succeed(Option.some(exit)) : waitWithAlarm(fiber, deadline)
  })

const waitWithAlarm = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  deadline: Duration.DurationInput
): Effect.Effect<Option.Option<Exit.Exit<A, E>>> =>
  Effect.clockWith((clock) => Effect.withFiberRuntime((self, status) =>
    Effect.async<Option.Option<Exit.Exit<A, E>>>((resume) => {
      let settled = false
      const stop = () => {
        settled = true
        fiber.removeObserver(observer)
        timer.clear()
      }
      const settle = (result: Option.Option<Exit.Exit<A, E>>) => {
        if (settled) return
        stop()
        resume(Effect.succeed(result))
      }
      const observer = (exit: Exit.Exit<A, E>) => settle(Option.some(exit))
      // One timer per Clock for every wait in flight (internal/alarms.ts).
      const timer = setAlarm(clock, self, status.runtimeFlags, deadline, () => settle(Option.none()), startNow)
      fiber.addObserver(observer)
      return Effect.sync(stop)
    })
  ))

/**
 * Waits for `fiber` up to `deadline`; then interrupts it and waits up to `deadline` again;
 * then gives up on it (see {@link Outcome}).
 */
export const awaitBounded = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  deadline: Duration.DurationInput
): Effect.Effect<Outcome<A, E>> =>
  Effect.flatMap(awaitAtMost(fiber, deadline), (first): Effect.Effect<Outcome<A, E>> =>
    Option.isSome(first) ? Effect.succeed({ _tag: "Done", exit: first.value }) : cut(fiber, deadline))

/**
 * The second half of a bounded wait: interrupts `fiber` (noting where it was waiting) and
 * waits up to `deadline` once more; `Cut` if it then ends, else `Detached`.
 */
export const cut = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  deadline: Duration.DurationInput
): Effect.Effect<Exclude<Outcome<A, E>, { readonly _tag: "Done" }>> =>
  Effect.withFiberRuntime((self) => {
    const waitingIn = waitSite(fiber)
    fiber.unsafeInterruptAsFork(self.id())
    return Effect.map(awaitAtMost(fiber, deadline), (second) =>
      Option.isSome(second)
        ? { _tag: "Cut" as const, exit: second.value, waitingIn }
        : { _tag: "Detached" as const, fiber, waitingIn })
  })

/**
 * Runs `effect` (driver code) in a fiber of its own started now, and waits for it as
 * {@link awaitBounded} does. Code that ends without suspending costs no timer and no
 * scheduler turn. Safe to call from an uninterruptible region. `supervisor`: see `startNow`.
 */
export const bounded = <A, E>(
  effect: Effect.Effect<A, E>,
  deadline: Duration.DurationInput,
  supervisor?: Supervisor.Supervisor<any>
): Effect.Effect<Outcome<A, E>> =>
  Effect.withFiberRuntime((self, status) => {
    const fiber = startNow(self, status.runtimeFlags, effect, supervisor)
    const exit = fiber.unsafePoll()
    return exit !== null ? Effect.succeed<Outcome<A, E>>({ _tag: "Done", exit }) : awaitBounded(fiber, deadline)
  })

/**
 * Runs `effect` as a sequence apart from the caller: in a fiber of its own started now, so
 * that interrupting the caller never stops it halfway. The caller waits for its result; an
 * interrupted caller stops waiting at once.
 */
export const detached = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.withFiberRuntime<A, E>((self, status) => {
    const fiber = startNow(self, status.runtimeFlags, effect)
    const exit = fiber.unsafePoll()
    return exit !== null ? exit : Effect.flatten(Fiber.await(fiber))
  })

/**
 * `effect`'s value if it succeeds within `deadline` ({@link bounded}); `None` if it failed,
 * was cut at the deadline or had to be detached.
 */
export const waitAtMost = <A>(effect: Effect.Effect<A>, deadline: Duration.DurationInput): Effect.Effect<Option.Option<A>> =>
  Effect.map(bounded(effect, deadline), (outcome) =>
    outcome._tag === "Done" && outcome.exit._tag === "Success" ? Option.some(outcome.exit.value) : Option.none())
