/**
 * The unbind sequence (docs/contract.md), with the device lock held.
 *
 * # Invariants
 * - Runs uninterruptibly from `Unbinding` to `Unbound`, and every wait in it has a deadline
 *   (the children's and consumers' own unbinds, gates, `remove`, fibers, each release), so
 *   it always ends. An unbind or removal runs it uninterruptibly in the caller's fiber, so
 *   interrupting the caller, even one of the driver's own fibers, never stops it; unloads and
 *   deferred retries run it as a sequence of their own (internal/deadline.ts `detached`).
 * - Lock order: a device's lock, then its children's, then its consumers'.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { LeaksDetected } from "../../Leak.js"
import type { UnbindCause, UnbindReport } from "../../Lifecycle.js"
import type { Binding, Revocation } from "../binding.js"
import { bounded } from "../deadline.js"
import { collectLeaks } from "../reports.js"
import type { Site } from "../site.js"
import { overDeadline, teardown, type Torn } from "../teardown.js"
import { dropLink, isBusy } from "./graph.js"
import { type BusState, type Entry, transition } from "./state.js"

/** The report of one binding's end. */
export const makeReport = (
  bus: BusState,
  binding: Binding,
  revocation: Revocation,
  torn: Torn,
  removeFailure: Cause.Cause<unknown> | undefined,
  startedAt: number,
  nested: { readonly children: ReadonlyArray<UnbindReport>; readonly consumers: ReadonlyArray<UnbindReport> }
): UnbindReport => ({
  device: binding.device.name,
  driver: binding.driver,
  cause: revocation.cause,
  get site() {
    return String(revocation.site)
  },
  gates: binding.gateReports.slice(),
  fibersInterrupted: torn.fibersInterrupted,
  released: binding.released.slice(),
  releasedEarly: binding.releasedEarly,
  releaseFailures: binding.releaseFailures.slice(),
  removeFailure,
  leaks: torn.leaks,
  durationMillis: bus.clock.unsafeCurrentTimeMillis() - startedAt,
  children: nested.children,
  consumers: nested.consumers
})

/**
 * A child or consumer whose probe runs in one of `binding`'s own fibers (a bind started from
 * binding code) holds its lock until that probe ends, and step 4a, which would stop the
 * fiber, comes after step 1: the probe is cancelled now, so step 1 never waits on it.
 */
const cancelOwnProbe = (binding: Binding, entry: Entry): void => {
  const prober = entry.device.state === "probing" ? entry.binding?.prober : undefined
  if (prober !== undefined && binding.fibers.has(prober)) prober.unsafeInterruptAsFork(FiberId.none)
}

/**
 * Step 1a: remove every child device of `entry` (each under its own lock, unbinding it first
 * if bound), the last added first. From here on `entry` takes no new child.
 */
export const removeChildren = (bus: BusState, entry: Entry, cause: UnbindCause, site: Site): Effect.Effect<Array<UnbindReport>> => {
  entry.closingChildren = true
  if (entry.children.size === 0) return Effect.succeed([])
  const reports: Array<UnbindReport> = []
  const removal = cause === "surprise" ? "surprise" : "hot-unplug"
  const loop: Effect.Effect<Array<UnbindReport>> = Effect.suspend(() => {
    const children = Array.from(entry.children)
    const child = children[children.length - 1]
    if (child === undefined) return Effect.succeed(reports)
    if (entry.binding !== undefined) cancelOwnProbe(entry.binding, child)
    return child.lock.withLock(Effect.suspend(() =>
      child.device.state === "removed"
        ? Effect.sync(() => entry.children.delete(child))
        : Effect.map(forget(bus, child, removal, site, cause), (report) => {
          if (report !== undefined) reports.push(report)
        })
    )).pipe(Effect.zipRight(loop))
  })
  return loop
}

/**
 * Step 1b: with the supplier's lock held and its state "unbinding" (so no consumer can start
 * a probe), unbind every linked consumer that is bound, waiting for those that are probing
 * or unbinding (their lock), until none is. Lock order: supplier, then consumer.
 */
const unbindConsumers = (bus: BusState, entry: Entry, cause: UnbindCause, site: Site): Effect.Effect<Array<UnbindReport>> => {
  const reports: Array<UnbindReport> = []
  const loop: Effect.Effect<Array<UnbindReport>> = Effect.suspend(() => {
    let next: Entry | undefined
    for (const consumer of entry.consumers) {
      if (isBusy(consumer)) {
        next = consumer
        break
      }
    }
    if (next === undefined) return Effect.succeed(reports)
    const consumer = next
    if (entry.binding !== undefined) cancelOwnProbe(entry.binding, consumer)
    return consumer.lock.withLock(Effect.suspend(() =>
      consumer.binding !== undefined && consumer.device.state === "bound" && entry.consumers.has(consumer)
        ? Effect.map(unbindLocked(bus, consumer, cause, site), (report) => void reports.push(report))
        : Effect.void
    )).pipe(Effect.zipRight(loop))
  })
  return loop
}

/**
 * Step 3: the driver's `remove`, as binding code with a Core token of its own, in a fiber of
 * its own, bounded by the bus's `removeTimeout`: cut at the deadline, detached (and
 * reported) if it does not end even then.
 */
const runRemove = (bus: BusState, binding: Binding): Effect.Effect<Cause.Cause<unknown> | undefined> => {
  const remove = binding.removeHook!
  const core = binding.beginCall()
  const context = binding.coreTag === undefined ? binding.context! : Context.add(binding.context!, binding.coreTag, core)
  const deadline = bus.settings.removeTimeout
  const removal = binding.within(Effect.daemonChildren(Effect.suspend(() => remove(binding.device))), context)
  // Supervised by the binding from its first slice, so a root fiber it starts is seen
  // (internal/escape.ts).
  return Effect.map(bounded(removal, deadline, binding.supervisor), (outcome) => {
    core.held = false
    if (outcome._tag === "Done") return Exit.isFailure(outcome.exit) ? outcome.exit.cause : undefined
    // A detached remove is reported as such, not waited for again as a binding fiber.
    if (outcome._tag === "Detached") binding.fibers.delete(outcome.fiber)
    return overDeadline(binding, "remove", "remove", `driver "${binding.driver}"`, deadline, outcome)
  })
}

/** The unbind contract, steps 1-7, with the device lock held. Never interrupted; always ends. */
export const unbindLocked = (bus: BusState, entry: Entry, cause: UnbindCause, site: Site): Effect.Effect<UnbindReport> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const binding = entry.binding!
    const { device } = entry
    const startedAt = bus.clock.unsafeCurrentTimeMillis()
    transition(entry, "unbinding")
    bus.publish({ _tag: "Unbinding", device, driver: binding.driver, cause })
    const children = yield* removeChildren(bus, entry, cause, site)
    const consumers = yield* unbindConsumers(bus, entry, cause, site)
    yield* binding.runHooks(1)
    yield* binding.runHooks(2)
    let removeFailure: Cause.Cause<unknown> | undefined
    if (binding.removeHook !== undefined) {
      binding.phase = "remove"
      removeFailure = yield* runRemove(bus, binding)
    }
    const revocation: Revocation = { cause, site }
    const torn = yield* teardown(binding, Exit.void, revocation)
    entry.binding = undefined
    entry.closingChildren = false
    transition(entry, "unbound")
    device.driver = undefined
    const report = makeReport(bus, binding, revocation, torn, removeFailure, startedAt, { children, consumers })
    bus.recordLeaks(torn.leaks)
    bus.publish({ _tag: "Unbound", device, driver: binding.driver, cause, report })
    return report
  }))

/** Unbinds (if bound) and removes a device, with its lock held; uninterruptible. */
export const forget = (
  bus: BusState,
  entry: Entry,
  cause: "hot-unplug" | "surprise",
  site: Site,
  unbindCause: UnbindCause = cause
): Effect.Effect<UnbindReport | undefined> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const report = entry.binding !== undefined && entry.device.state === "bound"
      ? yield* unbindLocked(bus, entry, unbindCause, site)
      : undefined
    // An unbound device may still have children (added by a probe that failed, whose
    // clean-up removed them, or by nobody): none may outlive it.
    if (entry.children.size > 0) yield* removeChildren(bus, entry, unbindCause, site)
    transition(entry, "removed")
    bus.entries.delete(entry.device.name)
    bus.deferred.delete(entry)
    entry.parent?.children.delete(entry)
    for (const supplier of Array.from(entry.suppliers)) dropLink(entry, supplier)
    for (const consumer of Array.from(entry.consumers)) dropLink(consumer, entry)
    bus.publish({ _tag: "DeviceRemoved", device: entry.device, cause })
    return report
  }))

/** On a strict bus, a report with leaks (nested ones included) dies, after the fact. */
export const failIfStrict = (bus: BusState, report: UnbindReport): Effect.Effect<UnbindReport> => {
  if (!bus.settings.strict) return Effect.succeed(report)
  const found = collectLeaks(report)
  return found.length > 0 ? Effect.die(new LeaksDetected({ leaks: found })) : Effect.succeed(report)
}
