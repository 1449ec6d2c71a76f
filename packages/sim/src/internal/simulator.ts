import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { Bus, type Device, DeviceError, Hardware, type Lifecycle } from "@devscope/core"
import * as Iommu from "../Iommu.js"
import type * as Model from "../Model.js"
import * as RegisterFile from "../RegisterFile.js"
import type * as Simulator from "../Simulator.js"
import * as Trace from "../Trace.js"

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class SimIrqLine implements Hardware.IrqLine {
  private readonly listeners = new Set<() => void>()
  private masked = false
  private pending = false
  disconnected = false
  constructor(readonly device: string, readonly line: number, private readonly trace: Trace.Service) {}
  listen(listener: () => void) {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }
  mask() {
    this.masked = true
  }
  unmask() {
    this.masked = false
    // A device that is gone delivers nothing, not even what was pending before it went.
    if (this.pending && !this.disconnected) {
      this.pending = false
      this.deliver()
    }
  }
  raise() {
    if (this.disconnected) return
    this.trace.record({ _tag: "Irq", device: this.device, line: this.line, kind: "raise" })
    if (this.masked) {
      this.pending = true
      return
    }
    this.deliver()
  }
  private deliver() {
    if (this.listeners.size === 0) {
      this.trace.record({ _tag: "Irq", device: this.device, line: this.line, kind: "spurious" })
      return
    }
    for (const listener of Array.from(this.listeners)) listener()
  }
}

interface Entry {
  readonly sim: Simulator.SimDevice<any>
  readonly scope: Scope.CloseableScope
  readonly lines: ReadonlyArray<SimIrqLine>
  readonly files: ReadonlyArray<RegisterFile.RegisterFile<any>>
  readonly domain: Iommu.Domain
  state: "present" | "disconnected" | "removed"
  /** Set while the simulator itself removes the device. */
  removing: boolean
}

const matches = (rule: { readonly device?: string | undefined }, device: string) =>
  rule.device === undefined || rule.device === device

/** @internal */
export const make = (options: Simulator.Options = {}): Effect.Effect<Simulator.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const random = prng(options.seed ?? 1)
    // Rules given to `make`, then those added with `inject`.
    const rules: Array<Simulator.FaultRule> = [...(options.faults ?? [])]
    const trace = yield* Trace.fromClock({ enabled: options.trace ?? true, limit: options.traceLimit })
    const clock = yield* Effect.clock
    const runtime = yield* Effect.runtime<never>()
    const simScope = yield* Effect.scope
    // A device removed through its bus directly (not through unplug/surpriseRemove) is gone
    // from the simulator too: it stops, and its name can be plugged again.
    const retire = (device: Device.Device) => {
      const entry = entries.get(device.name)
      if (entry === undefined || entry.removing || entry.sim === undefined || entry.sim.device !== device) return
      disconnect(entry)
      entry.state = "removed"
      entries.delete(device.name)
      trace.record({ _tag: "Lifecycle", device: device.name, event: "removed", detail: "removed through its bus" })
      Runtime.runFork(runtime)(Scope.close(entry.scope, Exit.void))
    }

    // Bus lifecycle events go into the trace synchronously, in order with device activity.
    const onEvent = (event: Lifecycle.LifecycleEvent) => {
      const device = "device" in event ? event.device.name : "leak" in event ? event.leak.device : "-"
      const detail = event._tag === "Unbound"
        ? `${event.cause}; released ${event.report.released.join(", ") || "nothing"}; ${event.report.leaks.length} leak(s)`
        : event._tag === "Unbinding" || event._tag === "DeviceRemoved"
        ? event.cause
        : event._tag === "ProbeDeferred"
        ? event.reason
        : "driver" in event
        ? event.driver
        : undefined
      trace.record({ _tag: "Lifecycle", device, event: event._tag, detail })
      if (event._tag === "DeviceRemoved") retire(event.device)
    }
    const observe = (bus: "pci" | "platform") => (event: Lifecycle.LifecycleEvent) => {
      onEvent(event)
      options.bus?.onEvent?.(event)
      options.onLifecycle?.(bus, event)
    }
    const pci = yield* Bus.make({ ...options.bus, name: "pci", onEvent: observe("pci") })
    const platform = yield* Bus.make({ ...options.bus, name: "platform", onEvent: observe("platform") })
    const entries = new Map<string, Entry>()
    const iommuFaults: Array<Iommu.Fault> = []
    const requestCounts = new Map<string, number>()

    // fail-nth: count each request kind, globally and per device.
    const refuse = (device: string, request: "dma-alloc" | "dma-map" | "irq"): string | undefined => {
      const global = (requestCounts.get(request) ?? 0) + 1
      const local = (requestCounts.get(`${device}/${request}`) ?? 0) + 1
      requestCounts.set(request, global)
      requestCounts.set(`${device}/${request}`, local)
      for (const rule of rules) {
        if (rule.kind !== "fail-nth" || rule.request !== request || !matches(rule, device)) continue
        if ((rule.device === undefined ? global : local) === rule.n) {
          trace.record({ _tag: "Lifecycle", device, event: "fault-injected", detail: `fail ${request} #${rule.n}` })
          return `injected fault: ${request} #${rule.n} fails`
        }
      }
      return undefined
    }

    const completion = (device: string) => (what: string, latency: Duration.DurationInput) =>
      Effect.suspend(() => {
        let delay = Duration.decode(latency)
        for (const rule of rules) {
          if (!matches(rule, device)) continue
          if (rule.kind === "drop-completions" && random() < (rule.probability ?? 1)) {
            trace.record({ _tag: "Lifecycle", device, event: "fault-injected", detail: `dropped completion: ${what}` })
            return Effect.as(Effect.sleep(delay), false)
          }
          if (rule.kind === "delay-completions" && random() < (rule.probability ?? 1)) {
            delay = Duration.sum(delay, rule.by)
          }
        }
        return Effect.as(Effect.sleep(delay), true)
      })

    // A Device object of an earlier plug under the same name is "removed", never a match.
    const entryOf = (device: Device.Device): Entry | undefined => {
      const entry = entries.get(device.name)
      return entry !== undefined && entry.state !== "removed" && device.state !== "removed" ? entry : undefined
    }

    const hardware: Hardware.Service = {
      region: (device, index) =>
        Effect.suspend(() => {
          const file = entryOf(device)?.files[index]
          return file === undefined
            ? Effect.fail(new Hardware.NoSuchRegion({ device: device.name, index }))
            : Effect.succeed(file)
        }),
      irq: (device, line) =>
        Effect.suspend((): Effect.Effect<Hardware.IrqLine, Hardware.NoSuchIrq | Hardware.HardwareRefused> => {
          const entry = entryOf(device)
          const irq = entry?.lines[line]
          if (entry === undefined || irq === undefined) {
            return Effect.fail(new Hardware.NoSuchIrq({ device: device.name, line }))
          }
          const refused = refuse(device.name, "irq")
          return refused === undefined
            ? Effect.succeed(irq)
            : Effect.fail(new Hardware.HardwareRefused({ device: device.name, request: "irq", reason: refused }))
        }),
      dma: (device) => {
        const entry = entryOf(device)
        if (entry === undefined) throw new Error(`no simulated device "${device.name}"`)
        return entry.domain
      }
    }

    // Device activity runs in the device's scope with the simulator's runtime (and Clock).
    const spawnIn = (scope: Scope.Scope, device: string) => (what: string, effect: Effect.Effect<void>) => {
      Runtime.runFork(runtime)(
        Effect.forkIn(
          effect.pipe(
            Effect.onInterrupt(() =>
              Effect.sync(() => trace.record({ _tag: "Lifecycle", device, event: "aborted", detail: what }))
            )
          ),
          scope
        )
      )
    }

    const disconnect = (entry: Entry) => {
      entry.state = "disconnected"
      for (const file of entry.files) file.disconnect()
      for (const line of entry.lines) line.disconnected = true
      entry.domain.disconnect()
    }

    const scheduleRule = (entry: Entry, rule: Simulator.FaultRule): Effect.Effect<unknown> => {
      if (rule.kind === "irq-storm" && rule.device === entry.sim.name) {
        return Effect.forkIn(
          Effect.sleep(rule.at ?? 0).pipe(
            Effect.zipRight(Effect.sync(() =>
              trace.record({ _tag: "Lifecycle", device: rule.device, event: "fault-injected", detail: `irq storm x${rule.count}` })
            )),
            Effect.zipRight(Effect.repeatN(
              Effect.zipRight(Effect.sync(() => entry.lines[rule.line]?.raise()), Effect.sleep(rule.interval ?? "1 micros")),
              rule.count - 1
            ))
          ),
          entry.scope
        )
      }
      if (rule.kind === "all-ones-reads" && rule.device === entry.sim.name) {
        return Effect.forkIn(
          Effect.sleep(rule.at ?? 0).pipe(Effect.zipRight(Effect.sync(() => {
            trace.record({ _tag: "Lifecycle", device: rule.device, event: "fault-injected", detail: "all-ones reads" })
            // The link is down: no register, DMA or interrupt gets through any more (a device
            // that kept DMAing with dead registers could not be stopped by any driver). It
            // stays on its bus and bound, as a device that died in place does.
            if (entry.state === "present") disconnect(entry)
          }))),
          entry.scope
        )
      }
      return Effect.void
    }

    const scheduleRules = (entry: Entry) => Effect.forEach(rules, (rule) => scheduleRule(entry, rule), { discard: true })

    // A rule added while the simulator runs applies from now on: `fail-nth` counts the
    // requests made from now, and a storm or all-ones reads start `at` from now on a device
    // that is present (and from their plug on devices plugged later, like any rule).
    const inject = (rule: Simulator.FaultRule): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (rule.kind === "fail-nth") {
          const made = requestCounts.get(rule.device === undefined ? rule.request : `${rule.device}/${rule.request}`) ?? 0
          rules.push({ ...rule, n: made + rule.n })
          return Effect.void
        }
        rules.push(rule)
        if (rule.kind !== "irq-storm" && rule.kind !== "all-ones-reads") return Effect.void
        const entry = entries.get(rule.device)
        return entry === undefined || entry.state !== "present" || entry.sim === undefined
          ? Effect.void
          : Effect.asVoid(scheduleRule(entry, rule))
      })

    const busOf = (bus: "pci" | "platform") => (bus === "pci" ? pci : platform)

    const remove = (name: string, cause: "hot-unplug" | "surprise") =>
      Effect.uninterruptible(Effect.gen(function*() {
        const entry = entries.get(name)
        if (entry === undefined || entry.state === "removed") {
          return yield* new DeviceError.DeviceNotFound({ device: name })
        }
        entry.removing = true
        trace.record({ _tag: "Lifecycle", device: name, event: cause === "surprise" ? "surprise-removal" : "unplug", detail: undefined })
        if (cause === "surprise") {
          // The device is gone before software learns of it.
          disconnect(entry)
          yield* Scope.close(entry.scope, Exit.void)
        }
        const report = yield* busOf(entry.sim.bus).removeDevice(entry.sim.device, { cause }).pipe(
          Effect.catchAll(() => Effect.succeed(undefined))
        )
        if (cause === "hot-unplug") {
          // Orderly: the driver has let go; now the device stops.
          disconnect(entry)
          yield* Scope.close(entry.scope, Exit.void)
        }
        entry.state = "removed"
        entries.delete(name)
        trace.record({ _tag: "Lifecycle", device: name, event: "removed", detail: cause })
        return report as Lifecycle.UnbindReport | undefined
      }))

    const service: Simulator.Service = {
      pci,
      platform,
      trace,
      hardware,
      plug: (spec) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            if (entries.has(spec.name)) return yield* new DeviceError.DeviceExists({ device: spec.name })
            const scope = yield* Scope.fork(simScope, ExecutionStrategy.sequential)
            const files = spec.model.regions.map((map) => RegisterFile.make(map, { device: spec.name, trace }))
            const lines = Array.from({ length: spec.model.irqs }, (_, i) => new SimIrqLine(spec.name, i, trace))
            const domain = Iommu.make({
              device: spec.name,
              trace,
              refuse: (request) => refuse(spec.name, request),
              onFault: (fault) => void iommuFaults.push(fault),
              now: () => clock.unsafeCurrentTimeMillis()
            })
            const entry: Entry = {
              // Filled in below, once the bus has made the Device.
              sim: undefined as never,
              scope,
              lines,
              files,
              domain,
              state: "present",
              removing: false
            }
            const ctx: Model.Context<any> = {
              device: spec.name,
              regions: files as never,
              raise: (line) => lines[line]?.raise(),
              dma: domain,
              trace,
              get disconnected() {
                return entry.state !== "present"
              },
              completion: completion(spec.name),
              spawn: spawnIn(scope, spec.name),
              random
            }
            trace.record({ _tag: "Lifecycle", device: spec.name, event: "plug", detail: `${spec.bus} ${spec.model.kind}` })
            if (spec.model.start !== undefined) yield* Scope.extend(spec.model.start(ctx), scope)
            // The device exists (registers, lines, IOMMU) before the bus offers it to drivers.
            entries.set(spec.name, entry)
            const device = yield* restore(busOf(spec.bus).addDevice({ name: spec.name, ids: spec.ids ?? {} })).pipe(
              Effect.onError(() =>
                // Interrupted during the probe: take the device off the bus too, or the bus and
                // the simulator would disagree about it for good.
                Effect.sync(() => {
                  entry.state = "removed"
                  entries.delete(spec.name)
                }).pipe(
                  Effect.zipRight(Effect.ignore(busOf(spec.bus).removeDevice(spec.name))),
                  Effect.zipRight(Scope.close(scope, Exit.void))
                )
              )
            )
            const sim: Simulator.SimDevice<any> = {
              name: spec.name,
              bus: spec.bus,
              device,
              model: spec.model,
              ctx,
              get state() {
                return entry.state
              }
            }
            ;(entry as { sim: Simulator.SimDevice<any> }).sim = sim
            yield* scheduleRules(entry)
            return sim
          })
        ),
      unplug: (name) => remove(name, "hot-unplug"),
      surpriseRemove: (name) => remove(name, "surprise"),
      inject,
      device: (name) => Option.map(Option.fromNullable(entries.get(name)), (e) => e.sim),
      iommuFaults: () => iommuFaults.slice()
    }
    return service
  })
