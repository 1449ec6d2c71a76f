/**
 * Steps 4 to 6 of the unbind contract (docs/concepts.md section 5) for one binding: stop its
 * fibers, release its resources, revoke its token, check for leaks. Also run for what a
 * failed probe acquired.
 *
 * # Invariants
 * - Every wait here is bounded, whatever the driver's code does: stopping the fibers by the
 *   bus's `fiberStopTimeout`, each release by `releaseTimeout` (see internal/deadline.ts).
 *   Code that outlives its deadline even after an interrupt is left running, reported as a
 *   `Detached` leak (or, for a fiber, a `FiberLeak`), and the sequence goes on.
 * - Releases run one at a time, the last acquired first; none waits on another: a release
 *   that is detached does not hold back the next one.
 * - The token is revoked (step 5) only after every release has ended or been detached, so
 *   detached code that uses the token afterwards fails with `UseAfterUnbind`.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Leak from "../Leak.js"
import { type Binding, REVOKED, type Revocation, type TrackedEntry } from "./binding.js"
import type { ReleaseEntry } from "./bindingScope.js"
import { bounded, waitAtMost } from "./deadline.js"
import { adoptRoots } from "./escape.js"
import { fiberLeak } from "./supervision.js"

/** What steps 4 to 6 found. */
export interface Torn {
  readonly fibersInterrupted: number
  readonly leaks: Array<Leak.LeakReport>
}

/** A `Detached` leak: driver code of `binding` that outlived its deadline twice. */
export const detachedLeak = (
  binding: Binding,
  phase: "probe" | "remove" | "release" | "destroy",
  what: string,
  site: unknown,
  deadline: Duration.Duration
): Leak.LeakReport => ({
  _tag: "Detached",
  device: binding.device.name,
  driver: binding.driver,
  phase,
  what,
  site: String(site),
  deadlineMillis: Duration.toMillis(deadline)
})

/**
 * Driver code of `binding` cut at its deadline: a `Detached` leak if it did not end even then,
 * and, in both cases, the failure to report for it, naming where it was waiting.
 */
export const overDeadline = (
  binding: Binding,
  phase: "probe" | "remove" | "release" | "destroy",
  what: string,
  site: unknown,
  deadline: Duration.Duration,
  outcome: { readonly _tag: "Cut" | "Detached"; readonly waitingIn: string }
): Cause.Cause<never> => {
  const where = outcome.waitingIn === "" ? "" : ` ${outcome.waitingIn}`
  if (outcome._tag === "Detached") binding.abandoned.push(detachedLeak(binding, phase, `${what}${where}`, site, deadline))
  return Cause.die(new Error(`${phase} did not finish within ${Duration.format(deadline)}; interrupted${where}`))
}

/**
 * Step 4a: interrupt every fiber of the binding (but the caller) and wait for them, up to the
 * stop timeout. Returns how many were interrupted and the ones that did not stop.
 */
export const stopFibers = (
  binding: Binding
): Effect.Effect<{ readonly interrupted: number; readonly survivors: Array<Leak.LeakReport> }> =>
  Effect.withFiberRuntime((self) => {
    const selfId = self.id()
    const interrupted = new Set<Fiber.RuntimeFiber<any, any>>()
    // Interrupts every fiber of the binding but this one; returns them.
    const interruptAll = (): Array<Fiber.RuntimeFiber<any, any>> => {
      const fibers = Array.from(binding.fibers.keys()).filter((f) => f !== self)
      for (const fiber of fibers) {
        if (interrupted.has(fiber)) continue
        interrupted.add(fiber)
        fiber.unsafeInterruptAsFork(selfId)
      }
      return fibers
    }
    const round: Effect.Effect<void> = Effect.suspend(() => {
      const fibers = interruptAll()
      if (fibers.length === 0) return Effect.void
      // Finalizers of interrupted fibers may start new ones: go again until none is left.
      return Effect.zipRight(Fiber.awaitAll(fibers), round)
    })
    // Fast path: interrupt every fiber and let them run. Fibers that are merely suspended
    // (the usual case) end within a turn or a few of the scheduler, and then no bounded wait
    // (a fiber and a timer) is needed. The turns go on while fibers keep ending; if a turn
    // ends none (one is busy in an uninterruptible region) or they started new ones, the
    // bounded wait below.
    const remaining = (): number => binding.fibers.size - (binding.fibers.has(self) ? 1 : 0)
    const settle = (before: number): Effect.Effect<void> =>
      Effect.flatMap(Effect.yieldNow(), () => {
        const now = remaining()
        return now > 0 && now < before ? settle(now) : Effect.void
      })
    const first: Effect.Effect<boolean> = Effect.suspend(() => {
      const fibers = interruptAll()
      return fibers.length === 0 ? Effect.succeed(true) : Effect.as(settle(fibers.length + 1), false)
    })
    const wait = Effect.flatMap(first, (none) =>
      none || remaining() === 0 ? Effect.void : Effect.asVoid(waitAtMost(round, binding.options.fiberStopTimeout)))
    return Effect.map(wait, () => ({
      interrupted: interrupted.size,
      survivors: Array.from(binding.fibers)
        .filter(([fiber]) => fiber !== self)
        .map(([fiber, info]) => fiberLeak(binding, fiber, info))
    }))
  })

/**
 * Step 4b: every entry of the binding scope, the last added first, each in a bounded step of
 * its own. A release that completes without suspending (most do) costs no fiber.
 */
const releaseAll = (binding: Binding, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
  const entries = binding.scope.take(exit)
  const timeout = binding.options.releaseTimeout
  const failed = (entry: ReleaseEntry, cause: Cause.Cause<unknown>) =>
    binding.releaseFailures.push({ resource: entry.label, cause, atUnbind: true })
  // Starts `entry`; returns the wait if it did not end at once.
  const start = (entry: ReleaseEntry): Effect.Effect<void> | undefined => {
    let release: Effect.Effect<void, unknown>
    try {
      release = entry.run(exit)
    } catch (defect) {
      failed(entry, Cause.die(defect))
      return undefined
    }
    if (Exit.isExit(release)) {
      if (Exit.isFailure(release)) failed(entry, release.cause)
      return undefined
    }
    return Effect.map(bounded(release, timeout), (outcome) => {
      if (outcome._tag === "Done") {
        // A Devres records its own failures (its release never fails): this is a finalizer
        // of the probe Layer.
        if (Exit.isFailure(outcome.exit)) failed(entry, outcome.exit.cause)
        return
      }
      // A join of an early release still running: the release itself goes on, detached.
      const detached = entry.joinsEarlyRelease === true ? { ...outcome, _tag: "Detached" as const } : outcome
      const cause = overDeadline(binding, "release", entry.label, entry.site, timeout, detached)
      if (detached._tag === "Cut") failed(entry, cause)
    })
  }
  const from = (i: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      for (; i < entries.length; i++) {
        const wait = start(entries[i]!)
        if (wait !== undefined) return Effect.zipRight(wait, from(i + 1))
      }
      return Effect.void
    })
  return entries.length === 0 ? Effect.void : from(0)
}

/**
 * Steps 4 to 6 of the unbind contract; must run uninterruptibly. Returns the leaks.
 */
export const teardown = (
  binding: Binding,
  exit: Exit.Exit<unknown, unknown>,
  revocation: Revocation
): Effect.Effect<Torn> =>
  Effect.gen(function*() {
    // A failed probe may have opened gates: close them before anything is released.
    yield* binding.runHooks(1)
    yield* binding.runHooks(2)
    binding.phase = "unbind"
    binding.core.held = false
    // Fibers that escaped supervision holding the token are stopped with the others, and named.
    yield* adoptRoots(binding)
    const escaped: Array<Leak.LeakReport> = []
    for (const [fiber, info] of binding.fibers) {
      if (info.escaped === undefined) continue
      escaped.push({
        _tag: "EscapedFiber",
        device: binding.device.name,
        driver: binding.driver,
        fiber: FiberId.threadName(fiber.id()),
        how: info.escaped
      })
    }
    const stopped = yield* stopFibers(binding)
    yield* releaseAll(binding, exit)
    // Step 5: revoke.
    binding.revocation = revocation
    binding.bound.key = REVOKED
    binding.phase = "after-unbind"
    // Step 6: leak checks.
    const leaks: Array<Leak.LeakReport> = [...escaped, ...stopped.survivors, ...binding.abandoned]
    const objectLeak = (tracked: TrackedEntry): Leak.LeakReport => ({
      _tag: "ObjectLeak",
      device: binding.device.name,
      driver: binding.driver,
      label: tracked.label,
      acquiredAt: tracked.acquiredAt
    })
    for (const tracked of binding.tracked) leaks.push(objectLeak(tracked))
    binding.tracked.clear()
    binding.drainListed((entry) => leaks.push(objectLeak(entry)))
    // A binding fiber that unbound its own device must not outlive it either: it is
    // interrupted as soon as it leaves the (uninterruptible) unbind.
    yield* Effect.withFiberRuntime<void>((self) => {
      if (binding.fibers.has(self)) self.unsafeInterruptAsFork(self.id())
      return Effect.void
    })
    return { fibersInterrupted: stopped.interrupted, leaks }
  })
