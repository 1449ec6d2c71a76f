/**
 * Runs a scenario on the simulator, in virtual time: boots the machine (drivers, devices,
 * cables, media), starts the workload, plays the timeline, and at the end unloads every
 * driver, waits for the operations in flight, and checks the guarantees.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { type DeviceError, Hardware, type Lifecycle } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import { Simulator, VirtualTime } from "@devscope/sim"
import { Oracle } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import type { DeviceSummary, RunRecord, TimelineEntry, UnbindSummary } from "./record.js"
import * as Workloads from "./workloads.js"

/** What the live display shows. */
export interface Progress {
  readonly virtualMillis: number
  readonly duration: number
  readonly devices: ReadonlyArray<{ readonly name: string; readonly state: "bound" | "unbound" | "absent" }>
  readonly resolved: number
  readonly inFlight: number
}

export interface RunOptions {
  readonly seed?: number | undefined
  /** Called as the run goes (wall-clock paced), for a live display. */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Called after each timeline action, in virtual-time order. */
  readonly onAction?: ((entry: TimelineEntry, progress: Progress) => void) | undefined
}

/** Virtual time the end of a run may take to resolve the operations in flight. */
const DRAIN = 1_000

const busOf = (kind: Scenario.Kind): "pci" | "platform" => kind === "sensor" ? "platform" : "pci"

const defaults = (workload: Scenario.Workload | undefined) => ({
  nic: {
    window: workload?.nic?.window ?? 4,
    frameSize: workload?.nic?.frameSize ?? 256,
    interval: workload?.nic?.interval ?? 0.05
  },
  blk: {
    workers: workload?.blk?.workers ?? 4,
    writeRatio: workload?.blk?.writeRatio ?? 0.5,
    sectorsPerRequest: workload?.blk?.sectorsPerRequest ?? 2,
    interval: workload?.blk?.interval ?? 0.1,
    flushEvery: workload?.blk?.flushEvery ?? 16
  },
  sensor: { readers: workload?.sensor?.readers ?? 2, interval: workload?.sensor?.interval ?? 2 }
})

export const run = (scenario: Scenario.Scenario, options: RunOptions = {}): Effect.Effect<RunRecord> =>
  Effect.gen(function*() {
    const seed = options.seed ?? scenario.seed ?? 1
    const wallStart = performance.now()
    const lifecycle: Array<{ readonly bus: "pci" | "platform"; readonly event: Lifecycle.LifecycleEvent }> = []
    const unbindStartedWall = new Map<string, number>()
    const unbinds = new Map<string, Array<UnbindSummary>>()
    const bound = new Set<string>()
    const present = new Set<string>()
    const timeline: Array<TimelineEntry> = []
    const ops = Oracle.makeOps()
    let now = 0

    const progress = (): Progress => ({
      virtualMillis: now,
      duration: scenario.duration,
      devices: scenario.devices.map((d) => ({
        name: d.name,
        state: bound.has(d.name) ? "bound" as const : present.has(d.name) ? "unbound" as const : "absent" as const
      })),
      resolved: ops.resolved,
      inFlight: ops.inFlight
    })

    const onLifecycle = (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => {
      lifecycle.push({ bus, event })
      switch (event._tag) {
        case "Bound":
          bound.add(event.device.name)
          break
        case "Unbinding":
          unbindStartedWall.set(event.device.name, performance.now())
          break
        case "Unbound": {
          const name = event.device.name
          bound.delete(name)
          const list = unbinds.get(name) ?? []
          list.push({
            cause: event.cause,
            at: event.at,
            virtualMillis: event.report.durationMillis,
            wallMillis: performance.now() - (unbindStartedWall.get(name) ?? performance.now()),
            released: event.report.released.length,
            leaks: event.report.leaks.length
          })
          unbinds.set(name, list)
          break
        }
      }
    }

    const program = Effect.scoped(Effect.gen(function*() {
      const sim = yield* Simulator.make({
        seed,
        faults: scenario.faults,
        traceLimit: 1_000_000,
        onLifecycle
      })
      const netDevices = makeNetDevices()
      const blockDevices = makeBlockDevices()
      const hwmon = makeHwmon()
      const context = Context.make(Hardware.Hardware, sim.hardware).pipe(
        Context.add(NetDevices, netDevices),
        Context.add(BlockDevices, blockDevices),
        Context.add(Hwmon, hwmon)
      )

      const driverSpecs = new Map(scenario.drivers.map((d) => [d.kind, d]))
      const load = (kind: Scenario.Kind): Effect.Effect<void, DeviceError.DriverAlreadyRegistered> => {
        const bug = driverSpecs.get(kind)?.bug
        switch (kind) {
          case "nic":
            return Effect.provide(sim.pci.registerDriver(nicDriver({ bug })), context)
          case "blk":
            return Effect.provide(sim.pci.registerDriver(blkDriver({ bug })), context)
          case "sensor":
            return Effect.provide(sim.platform.registerDriver(sensorDriver()), context)
        }
      }

      const cables = new Map<string, NicModel.Cable>()
      const ports = new Map<string, 0 | 1>()
      const stores = new Map<string, BlkModel.BackingStore>()
      for (const device of scenario.devices) {
        if (device.kind === "nic" && device.cable !== undefined) {
          if (!cables.has(device.cable)) cables.set(device.cable, NicModel.cable())
        }
        if (device.kind === "blk") stores.set(device.store ?? device.name, BlkModel.store(device.sectors ?? 4096))
      }
      // Cable ends: the first NIC named on a cable is port 0, the second port 1.
      const cableEnds = new Map<string, number>()
      for (const device of scenario.devices) {
        if (device.kind === "nic" && device.cable !== undefined) {
          const end = cableEnds.get(device.cable) ?? 0
          ports.set(device.name, end === 0 ? 0 : 1)
          cableEnds.set(device.cable, end + 1)
        }
      }

      const plug = (spec: Scenario.DeviceSpec): Effect.Effect<void, DeviceError.DeviceExists> => {
        switch (spec.kind) {
          case "nic":
            return Effect.asVoid(sim.plug({
              bus: "pci",
              name: spec.name,
              ids: NicModel.ids,
              model: NicModel.model({
                cable: spec.cable === undefined ? undefined : cables.get(spec.cable),
                port: ports.get(spec.name),
                loopback: spec.loopback
              })
            }))
          case "blk":
            return Effect.asVoid(
              sim.plug({ bus: "pci", name: spec.name, ids: BlkModel.ids, model: BlkModel.model({ store: stores.get(spec.store ?? spec.name)! }) })
            )
          case "sensor":
            return Effect.asVoid(sim.plug({ bus: "platform", name: spec.name, ids: SensorModel.ids, model: SensorModel.model() }))
        }
      }

      const registered = new Set<Scenario.Kind>()
      for (const driver of scenario.drivers) {
        yield* Effect.orDie(load(driver.kind))
        registered.add(driver.kind)
      }
      for (const device of scenario.devices) {
        if (device.present === false) continue
        yield* Effect.orDie(plug(device))
        present.add(device.name)
      }

      // The workload: user code, started once, for the whole run.
      const config = defaults(scenario.workload)
      const loads = scenario.devices.map((device, index) => {
        switch (device.kind) {
          case "nic":
            return Workloads.nicLoad(ops, netDevices, device.name, index, config.nic)
          case "blk":
            return Workloads.blkLoad(ops, blockDevices, device.name, seed + index, config.blk)
          case "sensor":
            return Workloads.sensorLoad(ops, hwmon, device.name, config.sensor)
        }
      })
      const workload = yield* Effect.fork(Effect.all(loads, { concurrency: "unbounded", discard: true }))

      const act = (event: Scenario.TimelineEvent): Effect.Effect<string | undefined> => {
        const spec = "device" in event ? scenario.devices.find((d) => d.name === event.device)! : undefined
        const outcome = (effect: Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>) =>
          Effect.match(effect, { onFailure: (e) => `refused: ${e.message}`, onSuccess: () => undefined })
        switch (event.action) {
          case "plug":
            return Effect.tap(outcome(plug(spec!)), (r) => Effect.sync(() => r === undefined && present.add(spec!.name)))
          case "unplug":
            return Effect.tap(outcome(sim.unplug(event.device)), () => Effect.sync(() => present.delete(event.device)))
          case "surprise":
            return Effect.tap(outcome(sim.surpriseRemove(event.device)), () => Effect.sync(() => present.delete(event.device)))
          case "unbind":
            return outcome(sim[busOf(spec!.kind)].unbind(event.device))
          case "bind":
            return outcome(sim[busOf(spec!.kind)].bind(event.device))
          case "unload":
            return Effect.tap(
              outcome(sim[busOf(event.driver)].unregisterDriver(event.driver)),
              () => Effect.sync(() => registered.delete(event.driver))
            )
          case "load":
            return Effect.tap(outcome(load(event.driver)), (r) => Effect.sync(() => r === undefined && registered.add(event.driver)))
        }
      }

      const events = [...(scenario.timeline ?? [])].map((e, i) => [e, i] as const).sort((a, b) => a[0].at - b[0].at || a[1] - b[1])
      for (const [event, _] of events) {
        const wait = event.at - now
        if (wait > 0) yield* Effect.sleep(wait)
        now = event.at
        const detail = yield* act(event)
        const entry: TimelineEntry = {
          at: event.at,
          action: event.action,
          target: "device" in event ? event.device : event.driver,
          detail
        }
        timeline.push(entry)
        options.onAction?.(entry, progress())
      }
      if (scenario.duration > now) yield* Effect.sleep(scenario.duration - now)
      now = scenario.duration

      // The end: stop starting operations, unload every driver (which resolves the ones in
      // flight, with a result or DeviceGone), then give them a bounded time to come back.
      ops.stopping = true
      for (const kind of [...registered]) {
        const reports = yield* Effect.option(sim[busOf(kind)].unregisterDriver(kind))
        timeline.push({ at: now, action: "unload", target: kind, detail: Option.isNone(reports) ? "not registered" : "end of run" })
      }
      const drained = yield* Fiber.join(workload).pipe(Effect.timeout(DRAIN), Effect.option)
      if (Option.isNone(drained)) yield* Fiber.interrupt(workload)
      const trace = sim.trace.events()
      const iommuFaults = sim.iommuFaults()
      return { trace, iommuFaults, end: now }
    }))

    const outcome = yield* VirtualTime.run(program, {
      onProgress: options.onProgress === undefined ? undefined : (t) => {
        now = Math.max(now, t)
        options.onProgress!(progress())
      }
    })
    const result = outcome.exit !== undefined && outcome.exit._tag === "Success" ? outcome.exit.value : undefined
    if (outcome.exit !== undefined && outcome.exit._tag === "Failure" && outcome._tag === "Done") {
      return yield* Effect.die(outcome.exit.cause)
    }
    const verdict = Oracle.judge({
      lifecycle,
      trace: result?.trace ?? [],
      iommuFaults: result?.iommuFaults ?? [],
      ops: ops.devices,
      outcome: outcome._tag
    })
    const devices: Array<DeviceSummary> = scenario.devices.map((spec) => {
      const mine = ops.of(spec.name)
      const list = unbinds.get(spec.name) ?? []
      return {
        device: spec.name,
        kind: spec.kind,
        bus: busOf(spec.kind),
        completed: mine.completed,
        failedGone: mine.gone,
        lost: mine.inFlight.size + mine.interrupted,
        inFlight: mine.inFlight.size,
        unbinds: list,
        released: list.reduce((n, u) => n + u.released, 0),
        leaks: list.reduce((n, u) => n + u.leaks, 0),
        iommuFaults: (result?.iommuFaults ?? []).filter((f) => f.device === spec.name).length
      }
    })
    return {
      scenario: scenario.name,
      seed,
      endedAt: outcome.virtualMillis,
      wallMillis: performance.now() - wallStart,
      lifecycle,
      trace: result?.trace ?? [],
      iommuFaults: result?.iommuFaults ?? [],
      timeline,
      devices,
      violations: verdict.violations,
      violationCount: verdict.count
    } satisfies RunRecord
  })
