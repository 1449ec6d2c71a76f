/**
 * The machine a scenario file describes, built on a given host (the simulator, or QEMU for
 * `run --backend qemu`): the class registries, its drivers (with their planted bugs), its
 * devices (cables, ports and media as the runner makes them) and its workload. Shared by
 * exploration and fuzzing, which make a fresh machine for every case.
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { type Bus, type DeviceError, type Driver, Hardware } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as eduDriver, EduDevices, makeEduDevices } from "@devscope/example-edu"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { RustDriverPci } from "@devscope/example-rust-samples"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import type { Qemu } from "@devscope/qemu"
import { Edu, type Iommu, PciTestdev, type Simulator, type Trace } from "@devscope/sim"
import type { Oracle } from "@devscope/testing"
import * as Scenario from "../Scenario.js"
import type { LogBook } from "./logbook.js"
import { EDU_DMA, EDU_FACTORIAL, workloadDefaults } from "./defaults.js"
import * as Workloads from "./workloads.js"

/** Never resumes, and holds no timer: a wait for an interrupt that never comes. */
const neverInterrupted = Effect.withSpan(
  Effect.async<void>(() => {}),
  "waiting for an interrupt that never comes (planted bug hang-in-remove)"
)

/** `hang-in-remove`, a planted bug added to any driver: its remove does its work, then waits forever. */
export const plant = <D extends Driver.Any>(driver: D, bug: Scenario.Bug | undefined): D =>
  bug !== "hang-in-remove" ? driver : {
    ...driver,
    remove: (device) =>
      Effect.withSpan(
        Effect.zipRight(driver.remove?.(device) ?? Effect.void, neverInterrupted),
        "devscope.remove",
        { attributes: { device: device.name, driver: driver.name, bug } }
      )
  }

/** The bus a kind of device sits on (and its driver registers on). */
export const busOf = (kind: Scenario.Kind): "pci" | "platform" => Scenario.kinds[kind].bus

/** The name of a kind's driver on its bus (what `unload` unregisters). */
export const driverOf = (kind: Scenario.Kind): string => Scenario.kinds[kind].driver

/** What a host refuses an action with (its message goes into the timeline). */
export interface Refusal {
  readonly _tag: string
  readonly message: string
}

/**
 * Where a scenario runs: the simulator, or QEMU's machine (whose devices are those the
 * scenario names, in their slots; `plug` puts one on the bus, after a removal back in its
 * slot). The runner reads evidence (the trace, the DMA faults) from it however a run ends.
 */
export interface Host {
  readonly name: "sim" | "qemu"
  readonly hardware: Hardware.Service
  readonly pci: Bus.Service
  /** `undefined` on QEMU (no platform devices: a scenario with one is refused before it runs). */
  readonly platform: Bus.Service | undefined
  readonly unplug: (name: string) => Effect.Effect<unknown, Refusal>
  readonly surpriseRemove: (name: string) => Effect.Effect<unknown, Refusal>
  readonly trace: Trace.Service
  readonly iommuFaults: () => ReadonlyArray<Iommu.Fault>
  /** What the host itself saw go wrong (QEMU lost, a handler that threw), as notes. */
  readonly problems: () => ReadonlyArray<string>
  /** Plugs a device of the scenario; `onSimulator` plugs the simulator's model of it (unused on QEMU). */
  readonly plug: (spec: Scenario.DeviceSpec, onSimulator: (sim: Simulator.Service) => Effect.Effect<unknown, Refusal>) => Effect.Effect<void, Refusal>
}

/** The simulator as a host. */
export const onSimulator = (sim: Simulator.Service): Host => ({
  name: "sim",
  hardware: sim.hardware,
  pci: sim.pci,
  platform: sim.platform,
  unplug: sim.unplug,
  surpriseRemove: sim.surpriseRemove,
  trace: sim.trace,
  iommuFaults: sim.iommuFaults,
  problems: () => [],
  plug: (_spec, onSimulator) => Effect.asVoid(onSimulator(sim))
})

/** QEMU's machine as a host (its devices are the scenario's, by name). */
export const onQemu = (qemu: Qemu.Service): Host => ({
  name: "qemu",
  hardware: qemu.hardware,
  pci: qemu.pci,
  platform: undefined,
  unplug: qemu.unplug,
  surpriseRemove: qemu.surpriseRemove,
  trace: qemu.trace,
  iommuFaults: qemu.iommuFaults,
  problems: qemu.problems,
  plug: (spec) => Effect.asVoid(qemu.plug(spec.name))
})

/** The bus of `kind` on `host` (a platform kind on QEMU is refused before a run, so this is a defect). */
export const busFor = (host: Host, kind: Scenario.Kind): Bus.Service => {
  const bus = busOf(kind) === "pci" ? host.pci : host.platform
  if (bus === undefined) throw new Error(`${kind} devices need the simulator's platform bus`)
  return bus
}

/** A scenario's machine on one host. */
export interface Machine {
  readonly net: ReturnType<typeof makeNetDevices>
  readonly disks: ReturnType<typeof makeBlockDevices>
  readonly hwmon: ReturnType<typeof makeHwmon>
  readonly edus: ReturnType<typeof makeEduDevices>
  /** Registers the driver of `kind`, with the bug the scenario plants in it. */
  readonly load: (kind: Scenario.Kind) => Effect.Effect<void, DeviceError.DriverAlreadyRegistered | DeviceError.BusShutDown>
  /** Plugs a device of the scenario (a fresh model on the same cable or medium). */
  readonly plug: (device: Scenario.DeviceSpec) => Effect.Effect<void, Refusal>
  /** The scenario's workload on its devices (until `context.ops.stopping`). */
  readonly workload: (context: Workloads.LoadContext) => Effect.Effect<void>
}

/**
 * Builds the machine of `scenario` on `host` (nothing registered or plugged yet). Cables and
 * media are made here: a machine per case, so cases do not share state.
 */
export const make = (scenario: Scenario.Scenario, host: Host, seed: number): Machine => {
  const net = makeNetDevices()
  const disks = makeBlockDevices()
  const hwmon = makeHwmon()
  const edus = makeEduDevices()
  const context = Context.make(Hardware.Hardware, host.hardware).pipe(
    Context.add(NetDevices, net),
    Context.add(BlockDevices, disks),
    Context.add(Hwmon, hwmon),
    Context.add(EduDevices, edus)
  )
  const bugs = new Map(scenario.drivers.map((d) => [d.kind, d.bug]))
  const load = (kind: Scenario.Kind) => {
    const bug = bugs.get(kind)
    const own = bug === "free-dma-before-stop" ? bug : undefined
    const bus = busFor(host, kind)
    switch (kind) {
      case "nic":
        return Effect.provide(bus.registerDriver(plant(nicDriver({ bug: own }), bug)), context)
      case "blk":
        return Effect.provide(bus.registerDriver(plant(blkDriver({ bug: own }), bug)), context)
      case "sensor":
        return Effect.provide(bus.registerDriver(plant(sensorDriver(), bug)), context)
      case "edu":
        return Effect.provide(bus.registerDriver(plant(eduDriver(), bug)), context)
      case "pci-testdev":
        return Effect.provide(bus.registerDriver(plant(RustDriverPci.driver(), bug)), context)
    }
  }
  const cables = new Map<string, NicModel.Cable>()
  const ports = new Map<string, 0 | 1>()
  const stores = new Map<string, BlkModel.BackingStore>()
  const ends = new Map<string, number>()
  for (const device of scenario.devices) {
    if (device.kind === "nic" && device.cable !== undefined) {
      if (!cables.has(device.cable)) cables.set(device.cable, NicModel.cable())
      // The first NIC named on a cable is port 0, the second port 1.
      const end = ends.get(device.cable) ?? 0
      ports.set(device.name, end === 0 ? 0 : 1)
      ends.set(device.cable, end + 1)
    }
    if (device.kind === "blk" && !stores.has(device.store ?? device.name)) {
      stores.set(device.store ?? device.name, BlkModel.store(device.sectors ?? 4096))
    }
  }
  const plug = (spec: Scenario.DeviceSpec) =>
    host.plug(spec, (sim) => {
      switch (spec.kind) {
        case "nic":
          return sim.plug({
            bus: "pci",
            name: spec.name,
            ids: NicModel.ids,
            model: NicModel.model({
              cable: spec.cable === undefined ? undefined : cables.get(spec.cable),
              port: ports.get(spec.name),
              loopback: spec.loopback,
              latency: spec.latency
            })
          })
        case "blk":
          return sim.plug({
            bus: "pci",
            name: spec.name,
            ids: BlkModel.ids,
            model: BlkModel.model({ store: stores.get(spec.store ?? spec.name)!, latency: spec.latency })
          })
        case "sensor":
          return sim.plug({ bus: "platform", name: spec.name, ids: SensorModel.ids, model: SensorModel.model() })
        case "edu":
          // QEMU's timing: the scenario runs alike on both hosts.
          return sim.plug({ bus: "pci", name: spec.name, ids: Edu.ids, model: Edu.model({ factorial: Duration.millis(EDU_FACTORIAL), dma: Duration.millis(EDU_DMA) }) })
        case "pci-testdev":
          return sim.plug({ bus: "pci", name: spec.name, ids: PciTestdev.ids, model: PciTestdev.model() })
      }
    })
  const workload = (context: Workloads.LoadContext) => {
    const config = workloadDefaults(scenario.workload)
    const loads = scenario.devices.map((device, index) => {
      switch (device.kind) {
        case "nic":
          return Workloads.nicLoad(context, net, device.name, index, seed + index, config.nic)
        case "blk":
          return Workloads.blkLoad(context, disks, device.name, seed + index, config.blk)
        case "sensor":
          return Workloads.sensorLoad(context, hwmon, device.name, seed + index, config.sensor)
        case "edu":
          return Workloads.eduLoad(context, edus, device.name, seed + index, config.edu)
        case "pci-testdev":
          // rust_driver_pci's work is its probe; user code has nothing to call.
          return Effect.void
      }
    })
    return Effect.all(loads, { concurrency: "unbounded", discard: true })
  }
  return { net, disks, hwmon, edus, load, plug, workload }
}

/** The load context of a workload judged by `oracle` (exploration and fuzzing). */
export const oracleLoads = (oracle: Oracle.Oracle): Workloads.LoadContext => ({
  ops: oracle.ops,
  busy: new Workloads.Busy(),
  bindingsEnded: (device) => oracle.lifecycle.filter(({ event }) => event._tag === "Unbound" && event.device.name === device).length,
  // What a load sees broken itself counts as a problem of the device for the oracle.
  violation: (v) => oracle.ops.problem(v.device, `${v.guarantee}: ${v.message}`)
})

/**
 * From now on, what the current fiber and the fibers it forks log goes to `book` (not the
 * console), with fibers that die unhandled logged at Error, as the runner's logging is. (The
 * explorer and the fuzzer run each case in a world of its own, which inherits nothing of
 * ours: this is set from inside the case.)
 */
export const logInto = (book: LogBook): Effect.Effect<void> =>
  Effect.getFiberRefs.pipe(
    Effect.withUnhandledErrorLogLevel(Option.some(LogLevel.Error)),
    Effect.provide(Logger.replace(Logger.defaultLogger, book.logger)),
    Effect.flatMap(Effect.setFiberRefs)
  )

/** The first driver failure a book holds, in one line; `undefined` if none. */
export const driverFailure = (book: LogBook): string | undefined => {
  const failures = [...book.failures.values()]
  const first = failures[0]
  if (first === undefined) return undefined
  return `driver code failed (${failures.length} kind(s)): ${first.device}: ${first.where}: ${first.error}` +
    (first.count > 1 ? ` (${first.count} times)` : "")
}
