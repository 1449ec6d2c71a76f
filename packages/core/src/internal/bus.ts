import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import type * as Bus from "../Bus.js"
import type * as Device from "../Device.js"
import {
  AlreadyBound,
  DeviceExists,
  DeviceNotFound,
  DeviceRemoved,
  DriverAlreadyRegistered,
  DriverNotFound,
  LinkCycle,
  NoMatchingDriver,
  NotBound,
  ProbeDefer,
  ProbeDeferred,
  ProbeFailed
} from "../DeviceError.js"
import * as Driver from "../Driver.js"
import { LeaksDetected, type LeakReport } from "../Leak.js"
import type { UnbindCause, UnbindReport } from "../Lifecycle.js"
import { Binding, type Revocation } from "./binding.js"
import { EventLog } from "./events.js"
import { DeviceLock } from "./lock.js"
import { LazySite, type Site, UNCAPTURED } from "./site.js"
import { DeviceImpl } from "./device.js"
import {
  addLink,
  collectLeaks,
  dropLink,
  type Entry,
  isBusy,
  supplierPath,
  unboundSupplier
} from "./links.js"


interface Registered {
  readonly driver: Driver.Any
  readonly context: Context.Context<never>
}


/** @internal */
export const make = (options: Bus.Options = {}): Effect.Effect<Bus.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const busName = options.name ?? "bus"
    const autoBind = options.autoBind ?? true
    const strict = options.strict ?? false
    const historySize = options.historySize ?? 10_000
    const fiberStopTimeout = Duration.decode(options.fiberStopTimeout ?? "5 seconds")
    const captureSites = options.captureSites ?? "unlabelled"
    // The caller's site, formatted only if a report or defect reads it.
    const callSite = (): LazySite => captureSites !== "never" ? new LazySite(callSite) : UNCAPTURED
    const clock: Clock.Clock = yield* Effect.clock
    const log = yield* EventLog.make(clock, historySize, options.onEvent)
    const entries = new Map<string, Entry>()
    const drivers = new Map<string, Registered>()
    const deferred = new Set<Entry>()
    const leaks: Array<LeakReport> = []
    const publish = (event: Parameters<EventLog["publish"]>[0]) => log.publish(event)

    const recordLeaks = (found: ReadonlyArray<LeakReport>) => {
      for (const leak of found) leaks.push(leak)
    }

    const onLateLeak = (leak: LeakReport) => {
      leaks.push(leak)
      publish({ _tag: "LeakDetected", leak })
    }

    // Resolves a device reference to its entry; a stale Device object is "removed".
    const lookup = (ref: Device.Device | string): Entry | DeviceNotFound | DeviceRemoved => {
      const name = typeof ref === "string" ? ref : ref.name
      const entry = entries.get(name)
      if (entry !== undefined && (typeof ref === "string" || (entry.device as Device.Device) === ref)) return entry
      if (typeof ref !== "string" && ref.state === "removed") return new DeviceRemoved({ device: name })
      return new DeviceNotFound({ device: name })
    }

    const isEntry = (found: Entry | DeviceNotFound | DeviceRemoved): found is Entry =>
      !(found instanceof DeviceNotFound || found instanceof DeviceRemoved)

    const resolve = (ref: Device.Device | string): Effect.Effect<Entry, DeviceNotFound | DeviceRemoved> =>
      Effect.suspend(() => {
        const found = lookup(ref)
        return isEntry(found) ? Effect.succeed(found) : Effect.fail(found)
      })

    const checkPresent = (entry: Entry): Effect.Effect<void, DeviceRemoved> =>
      entry.device.state === "removed" ? Effect.fail(new DeviceRemoved({ device: entry.device.name })) : Effect.void

    const firstMatch = (device: DeviceImpl): Registered | undefined => {
      for (const registered of drivers.values()) {
        if (Driver.matches(registered.driver, device)) return registered
      }
      return undefined
    }

    const makeReport = (
      binding: Binding,
      revocation: Revocation,
      torn: { readonly fibersInterrupted: number; readonly leaks: Array<LeakReport> },
      removeFailure: Cause.Cause<unknown> | undefined,
      startedAt: number,
      consumers: ReadonlyArray<UnbindReport>
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
      durationMillis: clock.unsafeCurrentTimeMillis() - startedAt,
      consumers
    })

    const buildProbe = (
      driver: Driver.Any,
      device: DeviceImpl,
      scope: Scope.Scope
    ): Effect.Effect<Context.Context<never>, unknown, any> =>
      Effect.suspend(() => {
        const result = driver.probe(device)
        const layer: Effect.Effect<Layer.Layer<any, unknown, any>, unknown, any> = Layer.isLayer(result)
          ? Effect.succeed(result)
          : result as Effect.Effect<Layer.Layer<any, unknown, any>, unknown, any>
        return Effect.flatMap(layer, (l) => Layer.buildWithScope(l, scope))
      })

    // Probe with the device lock held. On any failure, steps 4-7 run for what was acquired.
    const bindLocked = (entry: Entry, registered: Registered, site: Site) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const { device } = entry
          const { driver } = registered
          const scope = yield* Scope.make()
          // Device links: no probe while a supplier is not bound. This check and the state
          // change below happen in one synchronous step, so a supplier's unbind, which
          // waits for every consumer that is probing, cannot miss this one.
          const blocking = unboundSupplier(entry)
          if (blocking !== undefined) {
            const reason = `supplier "${blocking.device.name}" is not bound`
            device.state = "deferred"
            deferred.add(entry)
            publish({ _tag: "ProbeDeferred", device, driver: driver.name, reason })
            yield* Scope.close(scope, Exit.void)
            return yield* new ProbeDeferred({ device: device.name, driver: driver.name, reason })
          }
          // The supplier bindings the probe starts with; each must still be there when it ends.
          const suppliedBy = new Map(Array.from(entry.suppliers, (s) => [s, s.binding] as const))
          const binding = new Binding(device, driver.name, scope, { fiberStopTimeout, captureSites, onLateLeak })
          binding.removeHook = driver.remove
          binding.environment = registered.context
          // Set during the probe too (all readers hold the device lock, except driver
          // unregister, which must see an in-flight probe to unbind it afterwards).
          entry.binding = binding
          deferred.delete(entry)
          device.state = "probing"
          publish({ _tag: "Probing", device, driver: driver.name })
          const context = registered.context.pipe(
            Context.add(driver.brand.Bound, binding.bound),
            Context.add(driver.brand.Core, binding.core)
          )
          const startedAt = clock.unsafeCurrentTimeMillis()
          binding.core.held = true
          let exit: Exit.Exit<Context.Context<never>, unknown> = yield* Effect.exit(
            restore(binding.within(buildProbe(driver, device, scope), context))
          )
          binding.core.held = false
          if (Exit.isSuccess(exit)) {
            // A supplier may have started to unbind during the probe: then its unbind is
            // waiting for this lock and unbinds this device next. A supplier that is gone or
            // rebound (or was linked during the probe and is not bound) defers the probe.
            for (const supplier of entry.suppliers) {
              const before = suppliedBy.get(supplier)
              const ok = supplier.binding !== undefined &&
                (suppliedBy.has(supplier) ? before === supplier.binding : supplier.device.state === "bound") &&
                (supplier.device.state === "bound" || supplier.device.state === "unbinding")
              if (!ok) {
                exit = Exit.fail(
                  new ProbeDefer({ reason: `supplier "${supplier.device.name}" was unbound during the probe` })
                )
                break
              }
            }
          }
          if (Exit.isSuccess(exit)) {
            binding.context = Context.merge(context, exit.value)
            binding.phase = "binding"
            device.state = "bound"
            device.driver = driver.name
            publish({ _tag: "Bound", device, driver: driver.name })
            return
          }
          const revocation: Revocation = { cause: "probe-failure", site }
          const torn = yield* binding.teardown(exit, revocation)
          entry.binding = undefined
          const report = makeReport(binding, revocation, torn, undefined, startedAt, [])
          recordLeaks(torn.leaks)
          const defer = Option.filter(Cause.failureOption(exit.cause), isProbeDefer)
          device.state = Option.isSome(defer) ? "deferred" : "unbound"
          publish({ _tag: "Unbound", device, driver: driver.name, cause: "probe-failure", report })
          if (Option.isSome(defer)) {
            deferred.add(entry)
            publish({ _tag: "ProbeDeferred", device, driver: driver.name, reason: defer.value.reason })
            return yield* new ProbeDeferred({ device: device.name, driver: driver.name, reason: defer.value.reason })
          }
          publish({ _tag: "ProbeFailed", device, driver: driver.name, cause: exit.cause })
          return yield* new ProbeFailed({
            device: device.name,
            driver: driver.name,
            cause: exit.cause,
            releaseFailures: report.releaseFailures
          })
        })
      )

    // Step 1: with the supplier's lock held and its state "unbinding" (so no consumer can
    // start a probe), unbind every linked consumer that is bound, waiting for those that are
    // probing or unbinding (their lock), until none is. Lock order: supplier, then consumer.
    const unbindConsumers = (
      entry: Entry,
      cause: UnbindCause,
      site: Site
    ): Effect.Effect<Array<UnbindReport>> => {
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
        return consumer.lock.withLock(Effect.suspend(() =>
          consumer.binding !== undefined && consumer.device.state === "bound" && entry.consumers.has(consumer)
            ? Effect.map(unbindLocked(consumer, cause, site), (report) => void reports.push(report))
            : Effect.void
        )).pipe(Effect.zipRight(loop))
      })
      return loop
    }

    // The unbind contract, steps 1-7, with the device lock held. Never interrupted.
    const unbindLocked = (entry: Entry, cause: UnbindCause, site: Site): Effect.Effect<UnbindReport> =>
      Effect.uninterruptible(Effect.gen(function*() {
        const binding = entry.binding!
        const { device } = entry
        const startedAt = clock.unsafeCurrentTimeMillis()
        device.state = "unbinding"
        publish({ _tag: "Unbinding", device, driver: binding.driver, cause })
        const consumers = yield* unbindConsumers(entry, cause, site)
        yield* binding.runHooks(1)
        yield* binding.runHooks(2)
        let removeFailure: Cause.Cause<unknown> | undefined
        const remove = binding.removeHook
        if (remove !== undefined) {
          binding.phase = "remove"
          binding.core.held = true
          const removed = yield* runRemove(binding, Effect.suspend(() => remove(device)))
          binding.core.held = false
          if (Exit.isFailure(removed)) removeFailure = removed.cause
        }
        const revocation: Revocation = { cause, site }
        const torn = yield* binding.teardown(Exit.void, revocation)
        entry.binding = undefined
        device.state = "unbound"
        device.driver = undefined
        const report = makeReport(binding, revocation, torn, removeFailure, startedAt, consumers)
        recordLeaks(torn.leaks)
        publish({ _tag: "Unbound", device, driver: binding.driver, cause, report })
        return report
      }))

    // Unbinds (if bound) and removes a device, with its lock held; uninterruptible.
    const forget = (
      entry: Entry,
      cause: "hot-unplug" | "surprise",
      site: Site,
      unbindCause: UnbindCause = cause
    ): Effect.Effect<UnbindReport | undefined> =>
      Effect.gen(function*() {
        const report = entry.binding !== undefined && entry.device.state === "bound"
          ? yield* unbindLocked(entry, unbindCause, site)
          : undefined
        entry.device.state = "removed"
        entries.delete(entry.device.name)
        deferred.delete(entry)
        for (const supplier of Array.from(entry.suppliers)) dropLink(entry, supplier)
        for (const consumer of Array.from(entry.consumers)) dropLink(consumer, entry)
        publish({ _tag: "DeviceRemoved", device: entry.device, cause })
        return report
      })

    const failIfStrict = (report: UnbindReport): Effect.Effect<UnbindReport> => {
      if (!strict) return Effect.succeed(report)
      const found = collectLeaks(report)
      return found.length > 0 ? Effect.die(new LeaksDetected({ leaks: found })) : Effect.succeed(report)
    }

    // Binds an unbound entry to `registered` (or the first matching driver). True if bound.
    const tryBind = (entry: Entry, registered: Registered | undefined, site: Site): Effect.Effect<boolean> =>
      entry.lock.withLock(Effect.suspend(() => {
        const { state } = entry.device
        if (state !== "unbound" && state !== "deferred") return Effect.succeed(false)
        const chosen = registered ?? firstMatch(entry.device)
        if (chosen === undefined || !drivers.has(chosen.driver.name)) return Effect.succeed(false)
        return bindLocked(entry, chosen, site).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      }))

    // EPROBE_DEFER: after any successful bind, retry every deferred device, until a round binds nothing.
    let retrying = false
    let retryAgain = false
    const retryDeferred: Effect.Effect<void> = Effect.suspend(() => {
      if (deferred.size === 0) return Effect.void
      if (retrying) {
        retryAgain = true
        return Effect.void
      }
      retrying = true
      const round: Effect.Effect<void> = Effect.suspend(() => {
        retryAgain = false
        const waiting = Array.from(deferred)
        return Effect.forEach(waiting, (entry) => tryBind(entry, undefined, "deferred probe retry")).pipe(
          Effect.flatMap((bound) => (bound.includes(true) || retryAgain) && deferred.size > 0 ? round : Effect.void)
        )
      })
      return Effect.ensuring(round, Effect.sync(() => (retrying = false)))
    })

    const afterBind = (bound: boolean) => bound ? retryDeferred : Effect.void

    // Queues an unbound consumer until its suppliers are bound; binds it now if they already are.
    const deferConsumer = (entry: Entry, driver: string, site: Site): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (entry.device.state !== "unbound") return Effect.void
        const blocking = unboundSupplier(entry)
        if (blocking === undefined) return Effect.flatMap(tryBind(entry, undefined, site), afterBind)
        entry.device.state = "deferred"
        deferred.add(entry)
        publish({
          _tag: "ProbeDeferred",
          device: entry.device,
          driver,
          reason: `supplier "${blocking.device.name}" is not bound`
        })
        return Effect.void
      })

    // `link`: a bound consumer of a supplier that is not bound is unbound (and later deferred)
    // before the link exists, so there is no moment where a link joins a bound consumer to a
    // supplier that is not bound. Only a bound consumer's lock is taken, so a probe may link
    // its own device; a link made during a probe is checked when the probe ends.
    const linkEntries = (
      consumerRef: Device.Device | string,
      supplierRef: Device.Device | string,
      site: Site
    ): Effect.Effect<void, DeviceNotFound | DeviceRemoved | LinkCycle> => {
      let unbound: string | undefined
      const attempt: Effect.Effect<void, DeviceNotFound | DeviceRemoved | LinkCycle> = Effect.suspend(() => {
        const consumer = lookup(consumerRef)
        if (!isEntry(consumer)) return Effect.fail(consumer)
        const supplier = lookup(supplierRef)
        if (!isEntry(supplier)) return Effect.fail(supplier)
        if (consumer.suppliers.has(supplier)) return Effect.void
        const path = supplierPath(supplier, consumer)
        if (path !== undefined || consumer === supplier) {
          return Effect.fail(
            new LinkCycle({
              consumer: consumer.device.name,
              supplier: supplier.device.name,
              path: [consumer, ...(path ?? [supplier])].map((e) => e.device.name)
            })
          )
        }
        if (consumer.device.state === "bound" && supplier.device.state !== "bound") {
          return consumer.lock.withLock(Effect.suspend(() => {
            const binding = consumer.binding
            if (binding === undefined || consumer.device.state !== "bound" || supplier.device.state === "bound") {
              return Effect.void
            }
            unbound = binding.driver
            return Effect.flatMap(unbindLocked(consumer, "manual", site), failIfStrict)
          })).pipe(Effect.zipRight(attempt))
        }
        addLink(consumer, supplier)
        return unbound === undefined ? Effect.void : deferConsumer(consumer, unbound, site)
      })
      return attempt
    }

    const addDevice = (
      spec: Device.Spec,
      addOptions?: Bus.AddOptions
    ): Effect.Effect<Device.Device, DeviceExists | DeviceNotFound | DeviceRemoved> =>
      Effect.suspend((): Effect.Effect<Device.Device, DeviceExists | DeviceNotFound | DeviceRemoved> => {
        if (entries.has(spec.name)) return Effect.fail(new DeviceExists({ device: spec.name }))
        const suppliers: Array<Entry> = []
        for (const ref of addOptions?.suppliers ?? []) {
          const found = lookup(ref)
          if (!isEntry(found)) return Effect.fail(found)
          suppliers.push(found)
        }
        const device = new DeviceImpl(spec.name, busName, spec.ids ?? {})
        const entry: Entry = {
          device,
          lock: new DeviceLock(),
          binding: undefined,
          suppliers: new Set(),
          consumers: new Set()
        }
        entries.set(spec.name, entry)
        // Linked before the device is offered to drivers; a new device cannot close a cycle.
        for (const supplier of suppliers) addLink(entry, supplier)
        publish({ _tag: "DeviceAdded", device })
        if (!autoBind) return Effect.succeed(device)
        return tryBind(entry, undefined, "device add").pipe(Effect.flatMap(afterBind), Effect.as(device))
      })

    const service: Bus.Service = {
      name: busName,

      addDevice: addDevice as Bus.Service["addDevice"],

      removeDevice: (ref, removeOptions) => {
        const site = callSite()
        const cause = removeOptions?.cause ?? "hot-unplug"
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            // Uninterruptible from here: an unbound device must not stay half-removed.
            const report = yield* Effect.uninterruptible(forget(entry, cause, site))
            return report === undefined ? undefined : yield* failIfStrict(report)
          })))
      },

      registerDriver: (driver) =>
        Effect.contextWithEffect((context: Context.Context<never>) => {
          if (drivers.has(driver.name)) return Effect.fail(new DriverAlreadyRegistered({ driver: driver.name }))
          const registered: Registered = { driver, context }
          drivers.set(driver.name, registered)
          publish({ _tag: "DriverRegistered", driver: driver.name })
          if (!autoBind) return Effect.void
          const candidates = Array.from(entries.values()).filter((e) =>
            e.device.state === "unbound" && Driver.matches(driver, e.device)
          )
          return Effect.forEach(candidates, (entry) => tryBind(entry, registered, "driver register")).pipe(
            Effect.flatMap((bound) => afterBind(bound.includes(true)))
          )
        }) as any,

      unregisterDriver: (ref) => {
        const site = callSite()
        const name = typeof ref === "string" ? ref : ref.name
        return Effect.suspend(() => {
          if (!drivers.has(name)) return Effect.fail(new DriverNotFound({ driver: name }))
          drivers.delete(name)
          const bound = Array.from(entries.values()).filter((e) => e.binding?.driver === name)
          return Effect.forEach(bound, (entry) =>
            entry.lock.withLock(Effect.suspend(() => {
              if (entry.binding?.driver !== name || entry.device.state !== "bound") return Effect.succeed(undefined)
              return unbindLocked(entry, "unload", site)
            }))).pipe(
              Effect.map((reports) => reports.filter((r): r is UnbindReport => r !== undefined)),
              Effect.tap(() => publish({ _tag: "DriverUnregistered", driver: name })),
              Effect.tap((reports) => Effect.forEach(reports, failIfStrict, { discard: true }))
            )
        })
      },

      bind: (ref, driverName) => {
        const site = callSite()
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            if (entry.binding !== undefined) {
              return yield* new AlreadyBound({ device: entry.device.name, driver: entry.binding.driver })
            }
            let registered: Registered | undefined
            if (driverName !== undefined) {
              registered = drivers.get(driverName)
              if (registered === undefined) return yield* new DriverNotFound({ driver: driverName })
              if (!Driver.matches(registered.driver, entry.device)) {
                return yield* new NoMatchingDriver({ device: entry.device.name, driver: driverName })
              }
            } else {
              registered = firstMatch(entry.device)
              if (registered === undefined) return yield* new NoMatchingDriver({ device: entry.device.name })
            }
            yield* bindLocked(entry, registered, site)
          }))).pipe(Effect.tap(() => retryDeferred))
      },

      unbind: (ref) => {
        const site = callSite()
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            if (entry.binding === undefined) return yield* new NotBound({ device: entry.device.name })
            return yield* unbindLocked(entry, "manual", site)
          }))).pipe(Effect.flatMap(failIfStrict))
      },

      link: (consumer, supplier) => linkEntries(consumer, supplier, callSite()),

      unlink: (consumerRef, supplierRef) => {
        const site = callSite()
        return Effect.suspend(() => {
          const consumer = lookup(consumerRef)
          const supplier = lookup(supplierRef)
          if (!isEntry(consumer) || !isEntry(supplier) || !consumer.suppliers.has(supplier)) return Effect.void
          dropLink(consumer, supplier)
          return consumer.device.state === "deferred" && unboundSupplier(consumer) === undefined
            ? Effect.flatMap(tryBind(consumer, undefined, site), afterBind)
            : Effect.void
        })
      },

      links: Effect.sync(() =>
        Array.from(entries.values()).flatMap((consumer) =>
          Array.from(consumer.suppliers, (supplier): Bus.Link => ({ consumer: consumer.device, supplier: supplier.device }))
        )
      ),
      suppliersOf: (ref) => Effect.map(resolve(ref), (entry) => Array.from(entry.suppliers, (e) => e.device)),
      consumersOf: (ref) => Effect.map(resolve(ref), (entry) => Array.from(entry.consumers, (e) => e.device)),

      device: (name) =>
        Effect.suspend(() => {
          const entry = entries.get(name)
          return entry === undefined ? Effect.fail(new DeviceNotFound({ device: name })) : Effect.succeed(entry.device)
        }),
      devices: Effect.sync(() => Array.from(entries.values(), (e) => e.device)),
      drivers: Effect.sync(() => Array.from(drivers.keys())),
      events: log.events,
      subscribe: log.subscribe,
      history: log.recent,
      leaks: Effect.sync(() => leaks.slice())
    }

    // Bus shutdown unbinds every device (cause unload) and removes it, so no binding outlives
    // the bus and nothing binds during or after the shutdown. Each device is checked under its
    // lock (a probe may be in flight), and one failure does not stop the others.
    yield* Effect.addFinalizer(() =>
      Effect.forEach(Array.from(entries.values()), (entry) =>
        Effect.exit(entry.lock.withLock(Effect.suspend(() =>
          entry.device.state === "removed" ? Effect.void : Effect.asVoid(forget(entry, "hot-unplug", "bus shutdown", "unload"))
        ))), { discard: true })
    )
    return service
  })

/**
 * Step 3: the driver's `remove`, as binding code (supervised, with the binding's context), run
 * interruptibly in a fiber of its own that the unbind joins uninterruptibly (as `waitAtMost`
 * does for bounded waits). So a timeout or race inside `remove` can interrupt its loser (in
 * the unbind's own uninterruptible fiber it could not: `timeoutOption` waited forever), while
 * an interrupt of the fiber calling unbind, which waits for the end of the unbind, still
 * cannot cut `remove` short. The fiber itself is not a binding fiber (no supervisor of the
 * caller's either); the fibers `remove` forks are.
 */
const runRemove = (binding: Binding, remove: Effect.Effect<void, unknown, any>): Effect.Effect<Exit.Exit<void, unknown>> =>
  Effect.uninterruptible(
    Effect.flatMap(
      Effect.forkDaemon(Effect.interruptible(binding.within(remove, binding.context!))),
      Fiber.await
    )
  ).pipe(Effect.locally(FiberRef.currentSupervisor, Supervisor.none))

const isProbeDefer = (e: unknown): e is { readonly _tag: "ProbeDefer"; readonly reason: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ProbeDefer"
