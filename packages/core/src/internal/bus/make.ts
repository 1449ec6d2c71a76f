/**
 * The Bus service: each call resolves its arguments, takes the device's lock and runs one
 * of the sequences (internal/bus/bind.ts, unbind.ts, links.ts, shutdown.ts).
 *
 * # Invariants
 * - An unbind or removal, once it holds the device's lock, runs to its end uninterruptibly
 *   in its caller's fiber: every wait in it is bounded, so an interrupted caller is
 *   interrupted when it ends (a caller that is one of the binding's own fibers is stopped
 *   then). A driver unload runs as a sequence of its own (internal/deadline.ts): it takes
 *   many locks in turn, so an interrupted caller, or one of the driver's own fibers that
 *   the unload stops, only stops waiting; a second unload of the same driver joins it. A
 *   bind is the caller's: interrupting it cancels the probe (bounded clean-up).
 * - A device added by binding code is a child of that binding's device.
 * @internal
 */
import * as Context from "effect/Context"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type * as Bus from "../../Bus.js"
import type * as Device from "../../Device.js"
import {
  AlreadyBound,
  type BusShutDown,
  DeviceExists,
  DeviceRemoved,
  DeviceNotFound,
  DriverAlreadyRegistered,
  DriverNotFound,
  NoMatchingDriver,
  NotBound,
  ParentUnbinding
} from "../../DeviceError.js"
import * as Driver from "../../Driver.js"
import type { LeakReport } from "../../Leak.js"
import type { UnbindReport } from "../../Lifecycle.js"
import { startNow } from "../deadline.js"
import { DeviceImpl } from "../device.js"
import { EventLog } from "../events.js"
import { LazySite, type Site, UNCAPTURED } from "../site.js"
import type { Binding } from "../binding.js"
import { bindingOfCurrentFiber } from "../supervision.js"
import { afterBind, bindLocked, retryDeferred, tryBind } from "./bind.js"
import { addLink } from "./graph.js"
import { link, unlink } from "./links.js"
import { shutdown } from "./shutdown.js"
import { BusState, Entry, isEntry, type Registered, type Settings } from "./state.js"
import { failIfStrict, forget, unbindLocked } from "./unbind.js"

const settingsOf = (options: Bus.Options, onLateLeak: (leak: LeakReport) => void): Settings => {
  const captureSites = options.captureSites ?? "unlabelled"
  return {
    autoBind: options.autoBind ?? true,
    strict: options.strict ?? false,
    probeTimeout: options.probeTimeout === undefined ? undefined : Duration.decode(options.probeTimeout),
    removeTimeout: Duration.decode(options.removeTimeout ?? "5 seconds"),
    captureSites,
    binding: {
      fiberStopTimeout: Duration.decode(options.fiberStopTimeout ?? "5 seconds"),
      releaseTimeout: Duration.decode(options.releaseTimeout ?? "5 seconds"),
      captureSites,
      onLateLeak
    }
  }
}

/** @internal */
export const make = (options: Bus.Options = {}): Effect.Effect<Bus.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock: Clock.Clock = yield* Effect.clock
    const log = yield* EventLog.make(clock, options.historySize ?? 10_000, options.onEvent)
    const onLateLeak = (leak: LeakReport) => {
      bus.leaks.push(leak)
      bus.publish({ _tag: "LeakDetected", leak })
    }
    const bus: BusState = new BusState(options.name ?? "bus", settingsOf(options, onLateLeak), clock, log)
    // The caller's site, formatted only if a report or defect reads it.
    const callSite = (): Site => bus.settings.captureSites !== "never" ? new LazySite(callSite) : UNCAPTURED

    const resolve = (ref: Device.Device | string): Effect.Effect<Entry, DeviceNotFound | DeviceRemoved> =>
      Effect.suspend(() => {
        const found = bus.lookup(ref)
        return isEntry(found) ? Effect.succeed(found) : Effect.fail(found)
      })

    const checkPresent = (entry: Entry): Effect.Effect<void, DeviceRemoved> =>
      entry.device.state === "removed" ? Effect.fail(new DeviceRemoved({ device: entry.device.name })) : Effect.void

    // `parentBinding`: the binding adding a child (`Auxiliary.register`); by default, the
    // binding whose code the current fiber runs, if any.
    const addDevice = (
      spec: Device.Spec,
      addOptions?: Bus.AddOptions,
      parentBinding?: Binding,
      onCreated?: (device: Device.Device) => void
    ) =>
      Effect.suspend((): Effect.Effect<
        Device.Device,
        DeviceExists | DeviceNotFound | DeviceRemoved | BusShutDown | ParentUnbinding
      > => {
        const refused = bus.refusal()
        if (refused !== undefined) return Effect.fail(refused)
        if (bus.entries.has(spec.name)) return Effect.fail(new DeviceExists({ device: spec.name }))
        const suppliers: Array<Entry> = []
        for (const ref of addOptions?.suppliers ?? []) {
          const found = bus.lookup(ref)
          if (!isEntry(found)) return Effect.fail(found)
          suppliers.push(found)
        }
        // Added by binding code of a device on this bus: a child of that device.
        const adder = parentBinding ?? bindingOfCurrentFiber()
        const parent = adder === undefined ? undefined : bus.entries.get(adder.device.name)
        const isChild = adder !== undefined && parent !== undefined && parent.binding === adder
        // Code of a binding that is ending (or ended: a detached remove, a leaked fiber) adds
        // nothing: the device would outlive it.
        const ending = adder !== undefined && (adder.phase === "unbind" || adder.phase === "after-unbind")
        if (ending || (isChild && parent.closingChildren)) {
          return Effect.fail(new ParentUnbinding({ device: spec.name, parent: adder!.device.name }))
        }
        const device = new DeviceImpl(spec.name, bus.name, spec.ids ?? {}, isChild ? parent.device.name : undefined)
        onCreated?.(device)
        const entry = new Entry(device, isChild ? parent : undefined)
        bus.entries.set(spec.name, entry)
        if (isChild) parent.children.add(entry)
        // Linked before the device is offered to drivers; a new device cannot close a cycle.
        for (const supplier of suppliers) addLink(entry, supplier)
        bus.publish({ _tag: "DeviceAdded", device })
        if (!bus.settings.autoBind) return Effect.succeed(device as Device.Device)
        return tryBind(bus, entry, undefined, "device add").pipe(
          Effect.flatMap((bound) => afterBind(bus, bound)),
          Effect.as(device as Device.Device)
        )
      })

    // Unbinds every device bound by this registration of the driver (a driver registered
    // again meanwhile under the same name is another registration, left alone).
    const unload = (registered: Registered, site: Site): Effect.Effect<ReadonlyArray<UnbindReport>> => {
      const name = registered.driver.name
      const ours = (entry: Entry) => entry.binding?.registered === registered
      const bound = Array.from(bus.entries.values()).filter(ours)
      return Effect.forEach(bound, (entry) =>
        entry.lock.withLock(Effect.suspend(() => {
          if (!ours(entry) || entry.device.state !== "bound") return Effect.succeed(undefined)
          return unbindLocked(bus, entry, "unload", site)
        }))).pipe(
          Effect.map((reports) => reports.filter((r): r is UnbindReport => r !== undefined)),
          Effect.tap(() => bus.publish({ _tag: "DriverUnregistered", driver: name })),
          Effect.ensuring(Effect.sync(() => {
            if (bus.unloading.get(name)?.registered === registered) bus.unloading.delete(name)
          }))
        )
    }

    const service: Bus.Service = {
      name: bus.name,

      addDevice: ((spec: Device.Spec, addOptions?: Bus.AddOptions) => addDevice(spec, addOptions)) as Bus.Service["addDevice"],

      removeDevice: (ref, removeOptions) => {
        const site = callSite()
        const cause = removeOptions?.cause ?? "hot-unplug"
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            const report = yield* forget(bus, entry, cause, site)
            return report === undefined ? undefined : yield* failIfStrict(bus, report)
          })))
      },

      registerDriver: (driver) =>
        Effect.contextWithEffect((context: Context.Context<never>): Effect.Effect<void, DriverAlreadyRegistered | BusShutDown> => {
          const refused = bus.refusal()
          if (refused !== undefined) return Effect.fail(refused)
          if (bus.drivers.has(driver.name)) return Effect.fail(new DriverAlreadyRegistered({ driver: driver.name }))
          const registered: Registered = { driver, context }
          bus.drivers.set(driver.name, registered)
          bus.publish({ _tag: "DriverRegistered", driver: driver.name })
          if (!bus.settings.autoBind) return Effect.void
          const candidates = Array.from(bus.entries.values()).filter((e) =>
            e.device.state === "unbound" && Driver.matches(driver, e.device)
          )
          return Effect.forEach(candidates, (entry) => tryBind(bus, entry, registered, "driver register")).pipe(
            Effect.flatMap((bound) => afterBind(bus, bound.includes(true)))
          )
        }) as any,

      unregisterDriver: (ref) => {
        const site = callSite()
        const name = typeof ref === "string" ? ref : ref.name
        return Effect.withFiberRuntime((self, status) => {
          const registered = bus.drivers.get(name)
          if (registered === undefined) {
            // Being unloaded (and not registered again since): join that unload.
            const inFlight = bus.unloading.get(name)
            return inFlight !== undefined ? Fiber.join(inFlight.fiber) : Effect.fail(new DriverNotFound({ driver: name }))
          }
          bus.drivers.delete(name)
          const fiber = startNow(self, status.runtimeFlags, unload(registered, site))
          if (fiber.unsafePoll() === null) bus.unloading.set(name, { registered, fiber })
          return Effect.flatMap(
            Fiber.join(fiber),
            (reports) => Effect.as(Effect.forEach(reports, (r) => failIfStrict(bus, r), { discard: true }), reports)
          )
        })
      },

      bind: (ref, driverName) => {
        const site = callSite()
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            const refused = bus.refusal()
            if (refused !== undefined) return yield* refused
            if (entry.binding !== undefined) {
              return yield* new AlreadyBound({ device: entry.device.name, driver: entry.binding.driver })
            }
            let registered: Registered | undefined
            if (driverName !== undefined) {
              registered = bus.drivers.get(driverName)
              if (registered === undefined) return yield* new DriverNotFound({ driver: driverName })
              if (!Driver.matches(registered.driver, entry.device)) {
                return yield* new NoMatchingDriver({ device: entry.device.name, driver: driverName })
              }
            } else {
              registered = bus.firstMatch(entry.device)
              if (registered === undefined) return yield* new NoMatchingDriver({ device: entry.device.name })
            }
            yield* bindLocked(bus, entry, registered, site)
          }))).pipe(Effect.tap(() => retryDeferred(bus)))
      },

      unbind: (ref) => {
        const site = callSite()
        return Effect.flatMap(resolve(ref), (entry) =>
          entry.lock.withLock(Effect.gen(function*() {
            yield* checkPresent(entry)
            if (entry.binding === undefined) return yield* new NotBound({ device: entry.device.name })
            return yield* failIfStrict(bus, yield* unbindLocked(bus, entry, "manual", site))
          })))
      },

      link: (consumer, supplier) => link(bus, consumer, supplier, callSite()),
      unlink: (consumer, supplier) => unlink(bus, consumer, supplier, callSite()),

      links: Effect.sync(() =>
        Array.from(bus.entries.values()).flatMap((consumer) =>
          Array.from(consumer.suppliers, (supplier): Bus.Link => ({ consumer: consumer.device, supplier: supplier.device }))
        )
      ),
      suppliersOf: (ref) => Effect.map(resolve(ref), (entry) => Array.from(entry.suppliers, (e) => e.device)),
      consumersOf: (ref) => Effect.map(resolve(ref), (entry) => Array.from(entry.consumers, (e) => e.device)),

      device: (name) =>
        Effect.suspend(() => {
          const entry = bus.entries.get(name)
          return entry === undefined ? Effect.fail(new DeviceNotFound({ device: name })) : Effect.succeed(entry.device)
        }),
      devices: Effect.sync(() => Array.from(bus.entries.values(), (e) => e.device)),
      drivers: Effect.sync(() => Array.from(bus.drivers.keys())),
      events: log.events,
      subscribe: log.subscribe,
      history: log.recent,
      leaks: Effect.sync(() => bus.leaks.slice())
    }

    bus.addChild = (parent, spec, onCreated) => addDevice(spec, undefined, parent, onCreated)
    yield* Effect.addFinalizer(() => shutdown(bus))
    return service
  })
