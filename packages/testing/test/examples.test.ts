/**
 * Exploration applied to every example driver: each is removed (surprise, orderly, surprise
 * during its own remove) at every suspension point of a small workload, spread over at most
 * `POINTS` points per mode, and judged by the oracle.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Option } from "effect"
import { Hardware } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import { Explore } from "@devscope/testing"

// Every point today (sensor 99, nic 239, blk 192 bound points): the whole run takes ~10 s.
const POINTS = 400

const expectClean = (report: Explore.Report) => {
  expect(report.failures.map(Explore.describe)).toEqual([])
  expect(report.points.bound).toBeGreaterThan(10)
  expect(report.cases).toBeGreaterThan(2 * Math.min(POINTS, report.points.bound))
  // Each mode explored every point it had (up to POINTS), and the removal was injected in
  // every case: at a point of the bound device (surprise, unplug), or inside the unbind of
  // the middle unplug (surprise-in-remove: the gate drain, remove, the teardown).
  expect(report.modes.map((m) => m.mode)).toEqual(["surprise", "unplug", "surprise-in-remove"])
  for (const mode of report.modes) {
    // Inside the unbind, the points are the driver's own waits and the fiber stops.
    if (mode.mode === "surprise-in-remove") expect(mode.points, mode.mode).toBeGreaterThanOrEqual(3)
    else expect(mode.points, mode.mode).toBe(report.points.bound)
    expect(mode.cases, mode.mode).toBe(Math.min(POINTS, mode.points))
    expect(mode.injected, mode.mode).toBe(mode.cases)
  }
}

const sensor: Explore.Scenario = {
  name: "sensor",
  device: "temp0",
  seed: 3,
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      const hwmon = makeHwmon()
      yield* Effect.provide(sim.platform.registerDriver(sensorDriver({ period: "1 millis" })), Context.make(Hwmon, hwmon).pipe(Context.add(Hardware.Hardware, sim.hardware)))
      yield* sim.plug({ bus: "platform", name: "temp0", ids: SensorModel.ids, model: SensorModel.model() })
      const reader = Effect.gen(function*() {
        for (let i = 0; i < 12; i++) {
          const handle = hwmon.lookup("temp0")
          if (Option.isNone(handle)) return
          const value = yield* oracle.track("temp0", `read ${i}`, handle.value.readTemperature())
          if (Option.isNone(value)) return
          yield* Effect.sleep("500 micros")
        }
      })
      yield* Effect.all([reader, reader, reader], { concurrency: "unbounded", discard: true })
    }).pipe(Effect.orDie)
}

const nic: Explore.Scenario = {
  name: "nic",
  device: "eth1",
  seed: 4,
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      const net = makeNetDevices()
      const context = Context.make(Hardware.Hardware, sim.hardware).pipe(Context.add(NetDevices, net))
      yield* Effect.provide(sim.pci.registerDriver(nicDriver({ ringSize: 8 })), context)
      const cable = NicModel.cable()
      for (const [name, port] of [["eth0", 0], ["eth1", 1]] as const) {
        yield* sim.plug({ bus: "pci", name, ids: NicModel.ids, model: NicModel.model({ cable, port }) })
      }
      const sender = (name: string) =>
        Effect.gen(function*() {
          for (let i = 0; i < 10; i++) {
            const dev = net.lookup(name)
            if (Option.isNone(dev)) return
            const sent = yield* oracle.track(name, `send ${i}`, dev.value.send(new Uint8Array(64).fill(i)))
            if (Option.isNone(sent)) return
          }
        })
      const receiver = (name: string) =>
        Effect.gen(function*() {
          for (;;) {
            const dev = net.lookup(name)
            if (Option.isNone(dev)) return
            const frame = yield* oracle.track(name, "receive", dev.value.receive())
            if (Option.isNone(frame)) return
          }
        })
      const receivers = yield* Effect.fork(Effect.all([receiver("eth0"), receiver("eth1")], { concurrency: "unbounded" }))
      yield* Effect.all([sender("eth0"), sender("eth1"), sender("eth0")], { concurrency: "unbounded", discard: true })
      // The end: unloading the driver wakes the receivers with DeviceGone.
      yield* sim.pci.unregisterDriver("nic")
      yield* Fiber.join(receivers)
    }).pipe(Effect.orDie)
}

const blk: Explore.Scenario = {
  name: "blk",
  device: "disk0",
  seed: 6,
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      const disks = makeBlockDevices()
      const context = Context.make(Hardware.Hardware, sim.hardware).pipe(Context.add(BlockDevices, disks))
      yield* Effect.provide(sim.pci.registerDriver(blkDriver({ queueDepth: 4 })), context)
      yield* sim.plug({ bus: "pci", name: "disk0", ids: BlkModel.ids, model: BlkModel.model({ store: BlkModel.store(64) }) })
      const worker = (w: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 6; i++) {
            const disk = disks.lookup("disk0")
            if (Option.isNone(disk)) return
            const sector = w * 8 + (i % 4)
            const data = new Uint8Array(512).fill(w * 16 + i)
            const written = yield* oracle.track("disk0", `write ${w}/${i}`, disk.value.write(sector, data))
            if (Option.isNone(written)) return
            const read = yield* oracle.track("disk0", `read ${w}/${i}`, disk.value.read(sector, 1))
            if (Option.isNone(read)) return
            // Acknowledged data reads back: a mismatch is a broken completion.
            if (read.value[0] !== w * 16 + i) oracle.ops.problem("disk0", `sector ${sector} lost an acknowledged write`)
          }
        })
      yield* Effect.all([worker(0), worker(1), worker(2)], { concurrency: "unbounded", discard: true })
    }).pipe(Effect.orDie)
}

describe("exploration of the example drivers", () => {
  for (const scenario of [sensor, nic, blk]) {
    it.effect(`${scenario.name}: removal at every suspension point breaks no guarantee`, () =>
      Effect.gen(function*() {
        const report = yield* Explore.explore(scenario, { maxPoints: POINTS })
        expectClean(report)
      }), 300_000)
  }
})
