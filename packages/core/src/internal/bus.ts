import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Bus from "../Bus.js"
import type * as Device from "../Device.js"
import {
  AlreadyBound,
  DeviceExists,
  DeviceNotFound,
  DeviceRemoved,
  DriverAlreadyRegistered,
  DriverNotFound,
  NoMatchingDriver,
  NotBound,
  ProbeDeferred,
  ProbeFailed
} from "../DeviceError.js"
import * as Driver from "../Driver.js"
import { LeaksDetected, type LeakReport } from "../Leak.js"
import type { LifecycleEvent, UnbindCause, UnbindReport } from "../Lifecycle.js"
import { Binding, type Revocation } from "./binding.js"
import { DeviceImpl } from "./device.js"
import { callSite } from "./site.js"

interface Entry {
  readonly device: DeviceImpl
  readonly lock: Effect.Semaphore
  binding: Binding | undefined
}

interface Registered {
  readonly driver: Driver.Any
  readonly context: Context.Context<never>
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** @internal */
export const make = (options: Bus.Options = {}): Effect.Effect<Bus.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const busName = options.name ?? "bus"
    const autoBind = options.autoBind ?? true
    const strict = options.strict ?? false
    const historySize = options.historySize ?? 10_000
    const fiberStopTimeout = Duration.decode(options.fiberStopTimeout ?? "5 seconds")
    const clock: Clock.Clock = yield* Effect.clock
    const pubsub = yield* PubSub.unbounded<LifecycleEvent>()
    const entries = new Map<string, Entry>()
    const drivers = new Map<string, Registered>()
    const deferred = new Set<Entry>()
    const history: Array<LifecycleEvent> = []
    const leaks: Array<LeakReport> = []
    let seq = 0

    const publish = (event: DistributiveOmit<LifecycleEvent, "seq" | "at">): void => {
      const full = { ...event, seq: seq++, at: clock.unsafeCurrentTimeMillis() } as LifecycleEvent
      options.onEvent?.(full)
      history.push(full)
      // Trim in batches, so a long run does not pay a full array move per event.
      if (history.length >= historySize + Math.max(16, historySize >> 3)) {
        history.splice(0, history.length - historySize)
      }
      pubsub.unsafeOffer(full)
    }

    const recordLeaks = (found: ReadonlyArray<LeakReport>) => {
      for (const leak of found) leaks.push(leak)
    }

    const onLateLeak = (leak: LeakReport) => {
      leaks.push(leak)
      publish({ _tag: "LeakDetected", leak })
    }

    // Resolves a device reference to its entry; a stale Device object is "removed".
    const resolve = (ref: Device.Device | string): Effect.Effect<Entry, DeviceNotFound | DeviceRemoved> =>
      Effect.suspend((): Effect.Effect<Entry, DeviceNotFound | DeviceRemoved> => {
        const name = typeof ref === "string" ? ref : ref.name
        const entry = entries.get(name)
        if (entry !== undefined && (typeof ref === "string" || (entry.device as Device.Device) === ref)) return Effect.succeed(entry)
        if (typeof ref !== "string" && ref.state === "removed") return Effect.fail(new DeviceRemoved({ device: name }))
        return Effect.fail(new DeviceNotFound({ device: name }))
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
      startedAt: number
    ): UnbindReport => ({
      device: binding.device.name,
      driver: binding.driver,
      cause: revocation.cause,
      site: revocation.site,
      gates: binding.gateReports.slice(),
      fibersInterrupted: torn.fibersInterrupted,
      released: binding.released.slice(),
      releaseFailures: binding.releaseFailures.slice(),
      removeFailure,
      leaks: torn.leaks,
      durationMillis: clock.unsafeCurrentTimeMillis() - startedAt
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
    const bindLocked = (entry: Entry, registered: Registered, site: string) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const { device } = entry
          const { driver } = registered
          const scope = yield* Scope.make()
          const binding = new Binding(device, driver.name, scope, { fiberStopTimeout, onLateLeak })
          binding.removeHook = driver.remove
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
          const exit = yield* Effect.exit(
            restore(binding.supervised(provideAll(buildProbe(driver, device, scope), context)))
          )
          binding.core.held = false
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
          const report = makeReport(binding, revocation, torn, undefined, startedAt)
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

    // The unbind contract, steps 1-7, with the device lock held. Never interrupted.
    const unbindLocked = (entry: Entry, cause: UnbindCause, site: string): Effect.Effect<UnbindReport> =>
      Effect.uninterruptible(Effect.gen(function*() {
        const binding = entry.binding!
        const { device } = entry
        const startedAt = clock.unsafeCurrentTimeMillis()
        device.state = "unbinding"
        publish({ _tag: "Unbinding", device, driver: binding.driver, cause })
        yield* binding.runHooks(1)
        yield* binding.runHooks(2)
        let removeFailure: Cause.Cause<unknown> | undefined
        const remove = binding.removeHook
        if (remove !== undefined) {
          binding.phase = "remove"
          binding.core.held = true
          const removed = yield* Effect.exit(
            binding.supervised(provideAll(Effect.suspend(() => remove(device)), binding.context!))
          )
          binding.core.held = false
          if (Exit.isFailure(removed)) removeFailure = removed.cause
        }
        const revocation: Revocation = { cause, site }
        const torn = yield* binding.teardown(Exit.void, revocation)
        entry.binding = undefined
        device.state = "unbound"
        device.driver = undefined
        const report = makeReport(binding, revocation, torn, removeFailure, startedAt)
        recordLeaks(torn.leaks)
        publish({ _tag: "Unbound", device, driver: binding.driver, cause, report })
        return report
      }))

    const failIfStrict = (report: UnbindReport): Effect.Effect<UnbindReport> =>
      strict && report.leaks.length > 0 ? Effect.die(new LeaksDetected({ leaks: report.leaks })) : Effect.succeed(report)

    // Binds an unbound entry to `registered` (or the first matching driver). True if bound.
    const tryBind = (entry: Entry, registered: Registered | undefined, site: string): Effect.Effect<boolean> =>
      entry.lock.withPermits(1)(Effect.suspend(() => {
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

    const service: Bus.Service = {
      name: busName,

      addDevice: (spec) =>
        Effect.suspend(() => {
          if (entries.has(spec.name)) return Effect.fail(new DeviceExists({ device: spec.name }))
          const device = new DeviceImpl(spec.name, busName, spec.ids ?? {})
          const entry: Entry = { device, lock: Effect.unsafeMakeSemaphore(1), binding: undefined }
          entries.set(spec.name, entry)
          publish({ _tag: "DeviceAdded", device })
          if (!autoBind) return Effect.succeed(device)
          return tryBind(entry, undefined, "device add").pipe(Effect.flatMap(afterBind), Effect.as(device))
        }),

      removeDevice: (ref, removeOptions) => {
        const site = callSite()
        const cause = removeOptions?.cause ?? "hot-unplug"
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withPermits(1)(Effect.gen(function*() {
            yield* checkPresent(entry)
            const report = entry.binding === undefined ? undefined : yield* unbindLocked(entry, cause, site)
            entry.device.state = "removed"
            entries.delete(entry.device.name)
            deferred.delete(entry)
            publish({ _tag: "DeviceRemoved", device: entry.device, cause })
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
            entry.lock.withPermits(1)(Effect.suspend(() => {
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
          entry.lock.withPermits(1)(Effect.gen(function*() {
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
          entry.lock.withPermits(1)(Effect.gen(function*() {
            yield* checkPresent(entry)
            if (entry.binding === undefined) return yield* new NotBound({ device: entry.device.name })
            return yield* unbindLocked(entry, "manual", site)
          }))).pipe(Effect.flatMap(failIfStrict))
      },

      device: (name) =>
        Effect.suspend(() => {
          const entry = entries.get(name)
          return entry === undefined ? Effect.fail(new DeviceNotFound({ device: name })) : Effect.succeed(entry.device)
        }),
      devices: Effect.sync(() => Array.from(entries.values(), (e) => e.device)),
      drivers: Effect.sync(() => Array.from(drivers.keys())),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub),
      history: Effect.sync(() => history.slice(-historySize)),
      leaks: Effect.sync(() => leaks.slice())
    }

    // Bus shutdown unloads every driver, so no binding outlives the bus.
    yield* Effect.addFinalizer(() =>
      Effect.forEach(Array.from(entries.values()), (entry) =>
        entry.lock.withPermits(1)(
          entry.binding === undefined ? Effect.void : Effect.asVoid(unbindLocked(entry, "unload", "bus shutdown"))
        ), { discard: true })
    )
    return service
  })

// The binding's context is complete: it holds everything the driver declared it needs.
const provideAll = <A, E>(effect: Effect.Effect<A, E, any>, context: Context.Context<any>): Effect.Effect<A, E> =>
  Effect.provide(effect, context) as Effect.Effect<A, E>

const isProbeDefer = (e: unknown): e is { readonly _tag: "ProbeDefer"; readonly reason: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ProbeDefer"
