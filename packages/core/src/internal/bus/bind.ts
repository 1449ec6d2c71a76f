/**
 * The bind sequence: a probe with the device lock held, deferred probing (EPROBE_DEFER).
 *
 * # Invariants
 * - The probe runs as binding code (its binding's supervisor only, a Core token of its own).
 *   With the bus's `probeTimeout` it runs in a fiber of its own, bounded: cut at the
 *   deadline, and detached (reported) if it does not end even then; a bus shutdown cancels
 *   it. A probe that fails, is cut, or is cancelled (its binder interrupted, the shutdown)
 *   has what it acquired torn down (steps 1-6) before the lock is released.
 * - Device links: no probe starts while a supplier is not bound. The check and the move to
 *   `probing` happen in one synchronous step, so a supplier's unbind (which waits for every
 *   consumer that is probing) cannot miss this one.
 * - Deferred-probe retries run as a sequence of their own: interrupting the binder whose bind
 *   triggered them does not stop them.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ProbeDefer, ProbeDeferred, ProbeFailed } from "../../DeviceError.js"
import type * as Driver from "../../Driver.js"
import { Binding, type Revocation } from "../binding.js"
import { awaitAtMost, cut, detached, startNow } from "../deadline.js"
import type { DeviceImpl } from "../device.js"
import { nextFiberId } from "../fiberIds.js"
import type { Site } from "../site.js"
import { overDeadline, teardown } from "../teardown.js"
import { unboundSupplier } from "./graph.js"
import { type BusState, type Entry, type Registered, transition } from "./state.js"
import { makeReport, removeChildren } from "./unbind.js"

const buildProbe = (driver: Driver.Any, device: DeviceImpl, binding: Binding): Effect.Effect<Context.Context<never>, unknown, any> =>
  Effect.suspend(() => {
    const result = driver.probe(device)
    const layer: Effect.Effect<Layer.Layer<any, unknown, any>, unknown, any> = Layer.isLayer(result)
      ? Effect.succeed(result)
      : result as Effect.Effect<Layer.Layer<any, unknown, any>, unknown, any>
    // The probe runs in a fiber of its own that ends with it: fibers it forks as children
    // (a plain `Effect.fork`) must live on, as binding fibers, until the unbind stops them.
    return Effect.daemonChildren(Effect.flatMap(layer, (l) => Layer.buildWithScope(l, binding.scope)))
  })

/** Marks `entry` deferred (it is retried after the next successful bind). */
const defer = (bus: BusState, entry: Entry, driver: string, reason: string): void => {
  if (entry.device.state !== "deferred") transition(entry, "deferred")
  bus.deferred.add(entry)
  bus.publish({ _tag: "ProbeDeferred", device: entry.device, driver, reason })
}

/**
 * Runs the probe. With the bus's `probeTimeout`, in a fiber of its own, bounded (see the
 * invariants above); a binder interrupted meanwhile cancels it. Without (the default), in the
 * binder's fiber, interruptibly: no fiber of its own (one per bind would cost a quarter of a
 * bind, B2), and an interrupted binder cancels it the same way. Returns its exit.
 */
const runProbe = (
  bus: BusState,
  binding: Binding,
  build: Effect.Effect<Context.Context<never>, unknown, any>,
  context: Context.Context<never>,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<Exit.Exit<Context.Context<never>, unknown>> => {
  const deadline = bus.settings.probeTimeout
  if (deadline === undefined) {
    // The binder's fiber runs binding code from here: its slices are watched from the first
    // one on (internal/escape.ts), which starts now, inside `within`.
    const watched = Effect.suspend(() => {
      binding.prober = Option.getOrUndefined(Fiber.getCurrentFiber())
      binding.sliceStarts.push(nextFiberId())
      return Effect.onExit(build, () =>
        Effect.sync(() => {
          const start = binding.sliceStarts.pop()
          const end = nextFiberId()
          if (start !== undefined && end > start) binding.escapeWindows.push(start, end)
        }))
    })
    return Effect.exit(restore(binding.within(watched, context)))
  }
  return Effect.withFiberRuntime((self, status) => {
    // Supervised by the binding from its first slice, so a root fiber it starts is seen
    // (internal/escape.ts).
    const fiber = startNow(self, status.runtimeFlags, binding.within(build, context), binding.supervisor)
    binding.prober = fiber
    const done = fiber.unsafePoll()
    if (done !== null) return Effect.succeed(done)
    return Effect.flatMap(Effect.exit(restore(awaitAtMost(fiber, deadline))), (waited) => {
      if (Exit.isSuccess(waited) && Option.isSome(waited.value)) return Effect.succeed(waited.value.value)
      // The deadline passed, or the binder was interrupted: cancel the probe, bounded.
      return Effect.map(cut(fiber, deadline), (outcome) => {
        if (outcome._tag === "Cut" && Exit.isSuccess(outcome.exit)) return outcome.exit
        // A detached probe is reported as such, not waited for again as a binding fiber.
        if (outcome._tag === "Detached") binding.fibers.delete(fiber)
        const timedOut = overDeadline(binding, "probe", "probe", `driver "${binding.driver}"`, deadline, outcome)
        return Exit.failCause(Exit.isSuccess(waited) ? timedOut : waited.cause)
      })
    })
  })
}

/**
 * A successful probe may not stand: a supplier started to unbind (its unbind then unbinds
 * this device next), or is gone or rebound; or the bus began to shut down.
 */
const checkAfterProbe = (
  bus: BusState,
  entry: Entry,
  suppliedBy: ReadonlyMap<Entry, Binding | undefined>
): Exit.Exit<never, unknown> | undefined => {
  const refused = bus.refusal()
  if (refused !== undefined) return Exit.fail(refused)
  for (const supplier of entry.suppliers) {
    const before = suppliedBy.get(supplier)
    const ok = supplier.binding !== undefined &&
      (suppliedBy.has(supplier) ? before === supplier.binding : supplier.device.state === "bound") &&
      (supplier.device.state === "bound" || supplier.device.state === "unbinding")
    if (!ok) return Exit.fail(new ProbeDefer({ reason: `supplier "${supplier.device.name}" was unbound during the probe` }))
  }
  return undefined
}

/** Probe with the device lock held. On any failure, steps 1-6 run for what was acquired. */
export const bindLocked = (bus: BusState, entry: Entry, registered: Registered, site: Site) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const { device } = entry
      const { driver } = registered
      const refused = bus.refusal()
      if (refused !== undefined) return yield* refused
      const blocking = unboundSupplier(entry)
      if (blocking !== undefined) {
        const reason = `supplier "${blocking.device.name}" is not bound`
        defer(bus, entry, driver.name, reason)
        return yield* new ProbeDeferred({ device: device.name, driver: driver.name, reason })
      }
      // The supplier bindings the probe starts with; each must still be there when it ends.
      const suppliedBy = new Map(Array.from(entry.suppliers, (s) => [s, s.binding] as const))
      const binding = new Binding(device, driver.name, bus.settings.binding)
      binding.removeHook = driver.remove
      binding.environment = registered.context
      binding.coreTag = driver.brand.Core
      binding.registered = registered
      binding.addChild = (spec, onCreated) => bus.addChild(binding, spec, onCreated)
      entry.binding = binding
      bus.deferred.delete(entry)
      transition(entry, "probing")
      bus.publish({ _tag: "Probing", device, driver: driver.name })
      const core = binding.beginCall()
      const context = registered.context.pipe(
        Context.add(driver.brand.Bound, binding.bound),
        Context.add(driver.brand.Core, core)
      )
      const startedAt = bus.clock.unsafeCurrentTimeMillis()
      let exit = yield* runProbe(bus, binding, buildProbe(driver, device, binding), context, restore)
      core.held = false
      binding.prober = undefined
      if (Exit.isSuccess(exit)) exit = checkAfterProbe(bus, entry, suppliedBy) ?? exit
      if (Exit.isSuccess(exit)) {
        binding.context = Context.merge(context, exit.value)
        binding.phase = "binding"
        transition(entry, "bound")
        device.driver = driver.name
        bus.publish({ _tag: "Bound", device, driver: driver.name })
        return
      }
      const revocation: Revocation = { cause: "probe-failure", site }
      const children = yield* removeChildren(bus, entry, "probe-failure", site)
      const torn = yield* teardown(binding, exit, revocation)
      entry.binding = undefined
      entry.closingChildren = false
      const report = makeReport(bus, binding, revocation, torn, undefined, startedAt, { children, consumers: [] })
      bus.recordLeaks(torn.leaks)
      const deferral = Option.filter(Cause.failureOption(exit.cause), isProbeDefer)
      transition(entry, Option.isSome(deferral) && bus.life === "open" ? "deferred" : "unbound")
      bus.publish({ _tag: "Unbound", device, driver: driver.name, cause: "probe-failure", report })
      if (Option.isSome(deferral) && bus.life === "open") {
        bus.deferred.add(entry)
        bus.publish({ _tag: "ProbeDeferred", device, driver: driver.name, reason: deferral.value.reason })
        return yield* new ProbeDeferred({ device: device.name, driver: driver.name, reason: deferral.value.reason })
      }
      bus.publish({ _tag: "ProbeFailed", device, driver: driver.name, cause: exit.cause })
      return yield* new ProbeFailed({
        device: device.name,
        driver: driver.name,
        cause: exit.cause,
        releaseFailures: report.releaseFailures
      })
    })
  )

/** Binds an unbound entry to `registered` (or the first matching driver). True if bound. */
export const tryBind = (bus: BusState, entry: Entry, registered: Registered | undefined, site: Site): Effect.Effect<boolean> =>
  entry.lock.withLock(Effect.suspend(() => {
    const { state } = entry.device
    if ((state !== "unbound" && state !== "deferred") || bus.life !== "open") return Effect.succeed(false)
    const chosen = registered ?? bus.firstMatch(entry.device)
    if (chosen === undefined || !bus.drivers.has(chosen.driver.name)) return Effect.succeed(false)
    return bindLocked(bus, entry, chosen, site).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
  }))

/**
 * EPROBE_DEFER: after any successful bind, retry every deferred device, until a round binds
 * nothing; as a sequence of its own (see the invariants above). The caller waits for it.
 */
export const retryDeferred = (bus: BusState): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (bus.deferred.size === 0 || bus.life !== "open") return Effect.void
    if (bus.retrying) {
      bus.retryAgain = true
      return Effect.void
    }
    bus.retrying = true
    const round: Effect.Effect<void> = Effect.suspend(() => {
      bus.retryAgain = false
      const waiting = Array.from(bus.deferred)
      return Effect.forEach(waiting, (entry) => tryBind(bus, entry, undefined, "deferred probe retry")).pipe(
        Effect.flatMap((bound) =>
          (bound.includes(true) || bus.retryAgain) && bus.deferred.size > 0 && bus.life === "open" ? round : Effect.void
        )
      )
    })
    return detached(Effect.ensuring(round, Effect.sync(() => (bus.retrying = false))))
  })

export const afterBind = (bus: BusState, bound: boolean): Effect.Effect<void> => bound ? retryDeferred(bus) : Effect.void

/** Queues an unbound consumer until its suppliers are bound; binds it now if they already are. */
export const deferConsumer = (bus: BusState, entry: Entry, driver: string, site: Site): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (entry.device.state !== "unbound") return Effect.void
    const blocking = unboundSupplier(entry)
    if (blocking === undefined) return Effect.flatMap(tryBind(bus, entry, undefined, site), (b) => afterBind(bus, b))
    return entry.lock.withLock(Effect.sync(() => {
      if (entry.device.state === "unbound" && unboundSupplier(entry) !== undefined) {
        defer(bus, entry, driver, `supplier "${unboundSupplier(entry)!.device.name}" is not bound`)
      }
    }))
  })

const isProbeDefer = (e: unknown): e is { readonly _tag: "ProbeDefer"; readonly reason: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ProbeDefer"
