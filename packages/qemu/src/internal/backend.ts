/**
 * The QEMU backend as a service: a devscope PCI bus whose devices are QEMU's, the `Hardware`
 * drivers run on (MMIO through qtest, INTx through the IOAPIC intercept, DMA over shared guest
 * RAM), QEMU's clock driven from devscope's, and removal through the root ports' hotplug.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { Bus, type Device, DeviceError, Hardware, type Lifecycle } from "@devscope/core"
import { type Iommu, Trace } from "@devscope/sim"
import { type Booted, boot, type BootOptions, MachineInvalid } from "./boot.js"
import * as Memory from "./memory.js"
import * as Pci from "./pci.js"
import * as Pcie from "./pcie.js"
import { type QemuExit, QemuStartFailed } from "./process.js"
import * as Hotplug from "./hotplug.js"
import * as Msi from "./msi.js"
import { deviceLine, type Entry, guarded, lost, pollMessages, QemuLost, regionOf, type State } from "./state.js"

/** How long (wall time) closing the backend waits for its bus's unbinds before it stops QEMU anyway. */
const CLOSE_DEADLINE = Duration.seconds(3)

/** A clock whose time is QEMU's (ms from its start); its sleeps are `sleeps`'. */
const qemuClockOf = (millis: () => number, sleeps: Clock.Clock): Clock.Clock => {
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    currentTimeMillis: Effect.sync(millis),
    unsafeCurrentTimeNanos: () => BigInt(Math.round(millis() * 1e6)),
    currentTimeNanos: Effect.sync(() => BigInt(Math.round(millis() * 1e6))),
    sleep: (duration) => sleeps.sleep(duration)
  }
}

/** Options of {@link make}. */
export interface Options extends BootOptions {
  /**
   * How far devscope's clock may run ahead of QEMU's: every `quantum` of virtual time QEMU's
   * clock is stepped to devscope's, then interrupts and DMA are looked at (default 100 µs).
   * Device timers fire at most a quantum late.
   */
  readonly quantum?: Duration.DurationInput | undefined
  /** Options of the PCI bus (its `onEvent` is called too). */
  readonly bus?: Omit<Bus.Options, "name"> | undefined
  /** Called synchronously with every lifecycle event of the bus, after it is in the trace (an oracle's `onLifecycle`). */
  readonly onLifecycle?: ((bus: "pci", event: Lifecycle.LifecycleEvent) => void) | undefined
  /** Most recent trace events kept (default 100,000). */
  readonly traceLimit?: number | undefined
  /**
   * `auto` (the default): QEMU's clock is driven from the clock of the scope that makes the
   * backend. `manual`: nothing drives it until `runClock` runs, typically as a fiber of a
   * VirtualTime world that uses a backend made outside it (QEMU's start is real I/O, which a
   * virtual world would take for a stall).
   */
  readonly clock?: "auto" | "manual" | undefined
}

/** A device of the machine, seen from the backend. */
export interface QemuDevice {
  readonly name: string
  readonly model: string
  /** `absent` (not in its slot), `present`, `gone` (removed: reads all-ones until unbound). */
  readonly state: "absent" | "present" | "gone"
  /** On the bus while present or gone and not yet unbound. */
  readonly device: Device.Device | undefined
  /** Bus, device, function of the device in its slot (`bb:dd.f`), while it is there. */
  readonly address: string | undefined
}

/** The service. */
export interface Service {
  readonly pci: Bus.Service
  readonly hardware: Hardware.Service
  /** Puts a device on the bus (cold-plugged ones are in QEMU already; others are `device_add`ed), binding its driver. */
  plug(name: string): Effect.Effect<Device.Device, DeviceError.DeviceNotFound | DeviceError.DeviceExists | DeviceError.BusShutDown | DeviceError.ParentUnbinding | Hotplug.HotplugFailed | QemuLost>
  /** Orderly removal: `device_del`, the attention button, the driver's unbind while the device works, slot power off, `DEVICE_DELETED`. */
  unplug(name: string): Effect.Effect<Lifecycle.UnbindReport | undefined, DeviceError.DeviceNotFound | Hotplug.HotplugFailed | QemuLost>
  /** Surprise removal: the slot's power cut with no warning, then the unbind (reads all-ones meanwhile). */
  surpriseRemove(name: string): Effect.Effect<Lifecycle.UnbindReport | undefined, DeviceError.DeviceNotFound | QemuLost>
  device(name: string): Option.Option<QemuDevice>
  /** DMA faults seen (a bad free or unmap, a device write into freed memory), in order. */
  readonly dmaFaults: () => ReadonlyArray<Iommu.Fault>
  /** The same, under the simulator's name: with `trace`, what an oracle judges (`Oracle.judge(qemu)`). */
  readonly iommuFaults: () => ReadonlyArray<Iommu.Fault>
  /** Lifecycle events of the bus and the drivers' DMA allocations and mappings, stamped with QEMU's clock (ms). */
  readonly trace: Trace.Service
  /** Driver code that threw in an interrupt handler, and other problems the backend caught. */
  readonly problems: () => ReadonlyArray<string>
  /** Set once QEMU has gone away unasked (a device model's abort, a kill). */
  readonly lost: () => QemuLost | undefined
  /** QEMU's clock, ns. */
  readonly qemuClock: () => bigint
  /**
   * Drives QEMU's clock from the running fiber's `Clock` until interrupted: every quantum,
   * QEMU's clock is stepped to it (QEMU's 0 is the clock when this starts, less QEMU's time).
   * Run it once (the `auto` clock does).
   */
  readonly runClock: Effect.Effect<never>
  /** The booted machine (qtest, QMP, config space), for tests and tools. */
  readonly machine: Booted
}

/** A lifecycle event's detail in the trace, as the simulator writes it (the oracle reads it). */
const lifecycleDetail = (event: Lifecycle.LifecycleEvent): string | undefined =>
  event._tag === "Unbound"
    ? `${event.cause}; released ${event.report.released.join(", ") || "nothing"}; ${event.report.leaks.length} leak(s)`
    : event._tag === "Unbinding" || event._tag === "DeviceRemoved"
    ? event.cause
    : event._tag === "ProbeDeferred"
    ? event.reason
    : "driver" in event
    ? event.driver
    : undefined

/** Makes the backend in the current scope: QEMU stops, and every device is unbound, when it closes. */
export const make = (options: Options): Effect.Effect<Service, import("./boot.js").QemuUnavailable | import("./boot.js").MachineInvalid | import("./process.js").QemuError | import("./qmp.js").QmpConnectFailed | import("./qmp.js").QmpError | import("./qmp.js").QmpClosed, Scope.Scope> =>
  Effect.gen(function*() {
    const booted = yield* boot(options)
    const { qtest, cfg, memory } = booted
    // At least 1 µs: a smaller quantum would cost a qtest round trip per few ns of virtual time.
    const quantumNs = BigInt(Math.max(1000, Math.round(Duration.toMillis(Duration.decode(options.quantum ?? "100 micros")) * 1e6)))
    const state: State = {
      booted,
      entries: new Map(),
      byPin: new Map(),
      dmaFaults: [],
      problems: [],
      lost: undefined,
      qemuNs: 0n
    }
    const qemuMillis = () => Number(state.qemuNs) / 1e6
    const trace = Trace.make({ now: qemuMillis, limit: options.traceLimit })
    // Bus events go into the trace synchronously, in order with the DMA events.
    const onEvent = (event: Lifecycle.LifecycleEvent) => {
      trace.record({ _tag: "Lifecycle", device: "device" in event ? event.device.name : "leak" in event ? event.leak.device : "-", event: event._tag, detail: lifecycleDetail(event) })
      options.bus?.onEvent?.(event)
      options.onLifecycle?.("pci", event)
    }
    // The bus's own scope, closed (its devices unbound) before QEMU stops, with a deadline: an
    // unbind left running in a world that has ended (a VirtualTime run over, a driver's remove
    // still waiting there) never ends, and must not keep QEMU and the caller forever. The wait
    // is a callback: a finalizer cannot be interrupted, so a timeout would wait for the close.
    const busScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    // The bus stamps its events with QEMU's clock, as the trace and the DMA faults are.
    const pci = yield* Scope.extend(Effect.withClock(Bus.make({ ...options.bus, name: "pci", onEvent }), qemuClockOf(qemuMillis, yield* Effect.clock)), busScope)
    // Faults are stamped with QEMU's clock: the virtual time of the machine, in ms.
    const onFault = (fault: Iommu.Fault) => void state.dmaFaults.push({ ...fault, at: Number(state.qemuNs) / 1e6 })

    for (const slot of booted.slots) {
      state.entries.set(slot.spec.name, {
        slot,
        fn: undefined,
        bars: [],
        route: undefined,
        messages: slot.spec.interrupts === "msi" || slot.spec.interrupts === "msix"
          ? Msi.make(booted, slot.index, slot.spec.interrupts, slot.spec.vectors ?? 1)
          : undefined,
        port: Memory.makePort({ device: slot.spec.name, memory, onFault, trace }),
        lines: [],
        status: slot.spec.present === false ? "absent" : "present",
        // (Its slot is powered off below.)
        device: undefined
      })
      // The root ports' hotplug interrupts stay off: the backend polls Slot Status itself, and
      // a root port's INTx shares the IOAPIC input of the device behind it (the swizzle through
      // a PCIe port is the identity), so its events would reach the device's handlers.
      Pcie.disableHotplugInterrupts(cfg, slot.port.address)
    }
    /**
     * Programs MSI or MSI-X of the device in the slot (if asked for); why the device cannot
     * have them (no capability, too few MSI-X entries). A failing request is thrown.
     */
    const programMessages = (entry: Entry): string | undefined => {
      if (entry.messages === undefined || entry.fn === undefined) return undefined
      try {
        entry.messages.program(entry.fn, entry.bars)
        return undefined
      } catch (error) {
        if (!(error instanceof Pci.PciCapabilityMissing || error instanceof Pci.PciBadArgument || error instanceof Msi.MessagesUnavailable)) throw error
        return `${entry.slot.spec.name} (${entry.slot.spec.model}): ${entry.messages.kind} cannot be used: ${error.message}`
      }
    }
    const attach = (entry: Entry) => {
      const fn = booted.functions.find((f) => f.address.bus === entry.slot.bus && f.address.function === 0) ??
        Pci.enumerate(cfg).find((f) => f.address.bus === entry.slot.bus && f.address.function === 0)
      if (fn === undefined) return false
      entry.fn = fn
      entry.bars = Pci.barsOf(booted.resources, fn).length > 0 ? Pci.barsOf(booted.resources, fn) : []
      entry.route = Pci.intxRoute(fn)
      return true
    }
    for (const entry of state.entries.values()) {
      attach(entry)
      const unprogrammable = yield* Effect.try({
        try: () => programMessages(entry),
        catch: (cause) => new QemuStartFailed({ reason: `programming ${entry.slot.spec.name}'s interrupts: ${(cause as Error)?.message ?? String(cause)}`, stderr: booted.machine.stderr(), cause })
      })
      if (unprogrammable !== undefined) return yield* new MachineInvalid({ reason: unprogrammable })
      if (entry.slot.spec.present === false) {
        Pcie.powerOffSlot(cfg, entry.slot.port.address)
        Pcie.acknowledgeSlotEvents(cfg, entry.slot.port.address)
      }
    }

    // --- interrupts: IOAPIC pins to the lines of the devices on them ------------------------
    // An interrupt is delivered when its IOAPIC input rises (QEMU reports changes of level).
    // An input that stays high is not delivered again: a handler must clear every cause it
    // finds (read the status until it is 0), as a level-triggered handler must anyway.
    qtest.onIrq((event) => {
      if (event.level !== "raise") return
      for (const line of state.byPin.get(event.line) ?? []) line.raise()
    })

    // --- the Hardware service ------------------------------------------------------------
    const hardware: Hardware.Service = {
      region: (device, index) =>
        Effect.suspend(() => {
          const entry = state.entries.get(device.name)
          const bar = entry?.bars.find((b) => b.index === index && b.kind !== "io")
          if (entry === undefined || bar === undefined) return Effect.fail(new Hardware.NoSuchRegion({ device: device.name, index }))
          return Effect.succeed(regionOf(state, entry, bar.address, bar.size))
        }),
      irq: (device, line) =>
        Effect.suspend(() => {
          const entry = state.entries.get(device.name)
          const lines = entry === undefined ? 0 : entry.messages !== undefined ? entry.messages.vectors : entry.route !== undefined ? 1 : 0
          if (entry === undefined || !Number.isInteger(line) || line < 0 || line >= lines) return Effect.fail(new Hardware.NoSuchIrq({ device: device.name, line }))
          let irq = entry.lines[line]
          if (irq === undefined) {
            irq = entry.lines[line] = deviceLine(state, entry, device.name, line)
            if (entry.messages === undefined) {
              const pin = entry.route!.ioapicPin
              state.byPin.set(pin, [...(state.byPin.get(pin) ?? []), irq])
            }
          }
          return Effect.succeed(irq)
        }),
      dma: (device) => {
        const entry = state.entries.get(device.name)
        if (entry === undefined) throw new Error(`no QEMU device ${device.name}`)
        return entry.port
      }
    }

    // --- QEMU's clock follows devscope's -----------------------------------------------------
    /** Steps QEMU's clock to `targetNs` (from the clock's epoch), with the DMA sync around it. */
    const stepTo = (targetNs: bigint) => {
      if (state.lost !== undefined || targetNs <= state.qemuNs) return
      guarded(state, "clock_step", () => {
        for (const entry of state.entries.values()) entry.port.flush()
        state.qemuNs = qtest.clockStep(targetNs - state.qemuNs)
        for (const entry of state.entries.values()) entry.port.refresh()
        for (const entry of state.entries.values()) if (entry.messages !== undefined) pollMessages(entry)
        for (const hit of memory.overwritten()) {
          onFault({ device: hit.owner.device, iova: hit.addr + hit.offset, length: 1, access: "write", reason: "stale", by: "the device (a write into freed guest RAM, seen at a clock step)", window: hit.owner.window })
        }
      })
    }
    // Once QEMU is lost, every device on the bus is unbound as a surprise removal (once). With a
    // manual clock this runs from the clock fiber, in the world that drives it (a VirtualTime
    // run), so the unbinds' waits are on that world's clock; otherwise from the exit watcher.
    let unboundAfterLoss = false
    const unbindAfterLoss = Effect.suspend(() => {
      if (unboundAfterLoss || state.lost === undefined) return Effect.void
      unboundAfterLoss = true
      return Effect.forEach([...state.entries.values()].filter((e) => e.device !== undefined), (e) =>
        Effect.ignore(pci.removeDevice(e.device!, { cause: "surprise" })), { discard: true })
    })
    const manual = options.clock === "manual"
    const runClock = Effect.gen(function*() {
      // QEMU's clock 0 is the caller's clock now (a VirtualTime world's, a TestClock's, the real one).
      const epoch = (yield* Clock.currentTimeNanos) - state.qemuNs
      for (;;) {
        yield* Effect.sleep(Duration.nanos(quantumNs))
        stepTo((yield* Clock.currentTimeNanos) - epoch)
        if (manual && state.lost !== undefined && !unboundAfterLoss) yield* Effect.fork(unbindAfterLoss)
      }
    })
    if ((options.clock ?? "auto") === "auto") yield* Effect.forkScoped(runClock)
    // Registered after the clock fiber, so it runs before that fiber is stopped: the drivers'
    // remove (a DMA to wait for, a command to complete) still has QEMU's clock at close.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Effect.forkDaemon(Scope.close(busScope, Exit.void)), (unbinding) =>
        Effect.async<void>((resume) => {
          let settled = false
          const settle = (ended: boolean) => {
            if (settled) return
            settled = true
            clearTimeout(timer)
            if (!ended) state.problems.push(`the bus's unbinds did not end within ${Duration.format(CLOSE_DEADLINE)} of the backend's close; QEMU was stopped anyway`)
            resume(Effect.void)
          }
          const timer = setTimeout(() => settle(false), Duration.toMillis(CLOSE_DEADLINE))
          unbinding.addObserver(() => settle(true))
        })))

    // --- QEMU going away unasked -----------------------------------------------------------
    let closing = false
    yield* Effect.addFinalizer(() => Effect.sync(() => void (closing = true)))
    yield* Effect.forkScoped(Effect.flatMap(Deferred.await(booted.machine.exited), (exit: QemuExit) =>
      closing ? Effect.void : Effect.suspend(() => {
        // (A request may have found QEMU gone first: then this only adds how it ended.)
        lost(state, new QemuLost({ code: exit.code, signal: exit.signal, stderr: exit.stderr.slice(-4000), during: "the run" }))
        return manual ? Effect.void : unbindAfterLoss
      })))

    const find = (name: string) => {
      const entry = state.entries.get(name)
      return entry === undefined ? Effect.fail(new DeviceError.DeviceNotFound({ device: name })) : Effect.succeed(entry)
    }
    /** A device in its slot or on the bus: removing an empty slot is refused, as the simulator refuses an unknown device. */
    const findPresent = (name: string) =>
      Effect.filterOrFail(find(name), (entry) => entry.status !== "absent" || entry.device !== undefined || entry.removal !== undefined, () =>
        new DeviceError.DeviceNotFound({ device: name }))
    const alive = Effect.suspend(() => state.lost === undefined ? Effect.void : Effect.fail(state.lost))

    const service: Service = {
      pci,
      hardware,
      plug: (name) =>
        Effect.gen(function*() {
          const entry = yield* find(name)
          yield* alive
          if (entry.device !== undefined) return yield* new DeviceError.DeviceExists({ device: name })
          if (entry.status !== "present") {
            yield* Hotplug.plugIn(state, entry)
            entry.port = Memory.makePort({ device: name, memory, onFault, trace })
            // The previous device's lines go with it (its handlers were released at its unbind).
            for (const [pin, lines] of state.byPin) state.byPin.set(pin, lines.filter((l) => !entry.lines.includes(l)))
            entry.lines = []
            const unprogrammable = guarded(state, "MSI programming", () => programMessages(entry), undefined)
            if (state.lost !== undefined) return yield* state.lost
            if (unprogrammable !== undefined) return yield* new Hotplug.HotplugFailed({ device: name, step: "interrupts", reason: unprogrammable })
          }
          entry.status = "present"
          const fn = entry.fn!
          // On the bus and in the entry together: an interruption between the two would leave
          // a bound device that removals no longer find.
          return yield* Effect.uninterruptible(Effect.tap(
            pci.addDevice({
              name,
              ids: { vendor: fn.vendorId, device: fn.deviceId, class: fn.classCode, revision: fn.revision, subsystemVendor: fn.subsystemVendorId, subsystem: fn.subsystemId }
            }),
            (device) => Effect.sync(() => void (entry.device = device))
          ))
        }),
      unplug: (name) =>
        Effect.gen(function*() {
          const entry = yield* findPresent(name)
          yield* alive
          return yield* Hotplug.orderlyRemoval(state, entry, pci)
        }),
      surpriseRemove: (name) =>
        Effect.gen(function*() {
          const entry = yield* findPresent(name)
          yield* alive
          return yield* Hotplug.surpriseRemoval(state, entry, pci)
        }),
      device: (name) =>
        Option.map(Option.fromNullable(state.entries.get(name)), (e) => ({
          name,
          model: e.slot.spec.model,
          state: e.status,
          device: e.device,
          address: e.status === "present" ? e.fn?.name : undefined
        })),
      dmaFaults: () => state.dmaFaults.slice(),
      iommuFaults: () => state.dmaFaults.slice(),
      trace,
      problems: () => state.problems.slice(),
      lost: () => state.lost,
      qemuClock: () => state.qemuNs,
      runClock,
      machine: booted
    }
    return service
  })
