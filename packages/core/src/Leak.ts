/**
 * Leak checks run at the end of every unbind (step 6 of the contract): fibers of the binding
 * that are still running, and driver-lifetime objects registered with {@link track} that the
 * driver did not release. Each report says where the thing was acquired.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Bound } from "./Bound.js"
import * as internal from "./internal/binding.js"

/**
 * One leaked thing.
 *
 * - `FiberLeak`: a fiber started inside the binding was still running after the unbind
 *   (it did not stop within the bus's `fiberStopTimeout`, or it was started from a
 *   captured runtime after the binding ended).
 * - `ObjectLeak`: an object registered with {@link track} was not released.
 * - `Detached`: driver code the unbind (or a probe's clean-up) waited for did not end within
 *   its deadline, even after it was interrupted (it is inside an uninterruptible region):
 *   the sequence stopped waiting and went on, leaving that code running. `phase` says which
 *   wait it was (`probe`, `remove`, `release`, `destroy`), `what` names the code and `site`
 *   where it was started or acquired. Its token is revoked all the same, so a later use of it
 *   fails with `UseAfterUnbind`.
 * - `EscapedFiber`: a fiber that holds the binding's token but runs outside its supervision
 *   (forked inside a Gate section by a caller that is not binding code), adopted by the
 *   binding so the unbind stops it, and reported: binding code should start its fibers
 *   with `Bound.fork` or from the probe.
 *
 * @since 0.1.0
 * @category models
 */
export type LeakReport = Data.TaggedEnum<{
  FiberLeak: {
    readonly device: string
    readonly driver: string
    readonly fiber: string
    readonly startedDuring: "probe" | "binding" | "remove" | "unbind" | "after-unbind"
    readonly startedBy: string
    readonly span: string | undefined
  }
  ObjectLeak: {
    readonly device: string
    readonly driver: string
    readonly label: string
    readonly acquiredAt: string
  }
  Detached: {
    readonly device: string
    readonly driver: string
    readonly phase: "probe" | "remove" | "release" | "destroy"
    readonly what: string
    readonly site: string
    readonly deadlineMillis: number
  }
  EscapedFiber: {
    readonly device: string
    readonly driver: string
    readonly fiber: string
    readonly how: string
  }
}>

/**
 * Constructors and matchers for {@link LeakReport}.
 * @since 0.1.0
 * @category constructors
 */
export const LeakReport = Data.taggedEnum<LeakReport>()

/**
 * A test or a strict bus can turn leak reports into this failure.
 * @since 0.1.0
 * @category errors
 */
export class LeaksDetected extends Data.TaggedError("LeaksDetected")<{
  readonly leaks: ReadonlyArray<LeakReport>
}> {
  override get message() {
    return `${this.leaks.length} leak(s) detected:\n` + this.leaks.map(format).join("\n")
  }
}

/**
 * A one-line human description of a leak.
 * @since 0.1.0
 * @category utils
 */
export const format = (leak: LeakReport): string =>
  LeakReport.$match(leak, {
    FiberLeak: (l) =>
      `fiber ${l.fiber} of "${l.device}" (driver "${l.driver}") still running after unbind; ` +
      `started during ${l.startedDuring} by ${l.startedBy}${l.span ? ` in span "${l.span}"` : ""}`,
    ObjectLeak: (l) =>
      `"${l.label}" of "${l.device}" (driver "${l.driver}") not released; acquired at ${l.acquiredAt}`,
    Detached: (l) =>
      `${l.phase} "${l.what}" of "${l.device}" (driver "${l.driver}") did not end within ${l.deadlineMillis} ms ` +
      `even when interrupted; left running, detached (${l.site})`,
    EscapedFiber: (l) =>
      `fiber ${l.fiber} of "${l.device}" (driver "${l.driver}") held the token outside the binding's supervision ` +
      `(${l.how}); stopped by the unbind`
  })

/**
 * Fails with {@link LeaksDetected} when the list is not empty.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bus, Leak } from "@devscope/core"
 *
 * const noLeaks = (bus: Bus.Service, device: string) =>
 *   Effect.flatMap(bus.unbind(device), (report) => Leak.assertNone(report.leaks))
 * ```
 * @since 0.1.0
 * @category utils
 */
export const assertNone = (leaks: ReadonlyArray<LeakReport>): Effect.Effect<void, LeaksDetected> =>
  leaks.length === 0 ? Effect.void : Effect.fail(new LeaksDetected({ leaks }))

/**
 * A driver-lifetime object registered for the unbind leak check.
 * @since 0.1.0
 * @category models
 */
export interface Tracked {
  readonly label: string
  readonly acquiredAt: string
  /** Marks the object released; the leak check no longer reports it. Idempotent. */
  release(): void
}

/**
 * Registers a driver-lifetime object that the driver promises to release before its binding
 * ends (a buffer handed to a subsystem, a timer registered elsewhere...). If it is still
 * registered when the unbind reaches its leak check, an `ObjectLeak` names it and where it
 * was acquired. Synchronous: call it wherever you hold the token.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Driver, Leak } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const registerFilter = Effect.gen(function*() {
 *   const bound = yield* Nic.Bound
 *   const filter = Leak.track(bound, "rx filter")
 *   // ... later, on the normal teardown path:
 *   filter.release()
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const track = <D extends string>(token: Bound<D>, label: string): Tracked => internal.track(token, label)
