import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Option } from "effect"
import { Hardware } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import { Edu as SimEdu } from "@devscope/sim"
import { Fuzz } from "@devscope/testing"
import { type Bug, driver as eduDriver, type Handle } from "./eduFixture.js"

/** The three example drivers on one machine: two NICs on a cable, a disk, a sensor. */
const machine = (): Fuzz.Spec => {
  const net = makeNetDevices()
  const disks = makeBlockDevices()
  const hwmon = makeHwmon()
  let store = BlkModel.store(64)
  let cable = NicModel.cable()
  const provide = <E>(sim: { readonly hardware: Hardware.Service }, effect: Effect.Effect<void, E, any>) =>
    Effect.provide(
      effect,
      Context.make(Hardware.Hardware, sim.hardware).pipe(
        Context.add(NetDevices, net),
        Context.add(BlockDevices, disks),
        Context.add(Hwmon, hwmon)
      )
    ) as Effect.Effect<void, E>
  const nic = (name: string, port: 0 | 1): Fuzz.DeviceSpec => ({
    name,
    bus: "pci",
    plug: (sim) => sim.plug({ bus: "pci", name, ids: NicModel.ids, model: NicModel.model({ cable, port }) }),
    io: ({ oracle }) =>
      Effect.gen(function*() {
        const dev = net.lookup(name)
        if (Option.isSome(dev)) yield* oracle.track(name, "send", dev.value.send(new Uint8Array(60).fill(port)))
      })
  })
  return {
    name: "machine",
    setup: () =>
      Effect.sync(() => {
        cable = NicModel.cable()
        store = BlkModel.store(64)
      }),
    devices: [
      nic("eth0", 0),
      nic("eth1", 1),
      {
        name: "disk0",
        bus: "pci",
        plug: (sim) => sim.plug({ bus: "pci", name: "disk0", ids: BlkModel.ids, model: BlkModel.model({ store }) }),
        io: ({ oracle }) =>
          Effect.gen(function*() {
            const disk = disks.lookup("disk0")
            if (Option.isSome(disk)) yield* oracle.track("disk0", "write", disk.value.write(3, new Uint8Array(512).fill(7)))
          })
      },
      {
        name: "temp0",
        bus: "platform",
        plug: (sim) => sim.plug({ bus: "platform", name: "temp0", ids: SensorModel.ids, model: SensorModel.model() }),
        io: ({ oracle }) =>
          Effect.gen(function*() {
            const handle = hwmon.lookup("temp0")
            if (Option.isSome(handle)) yield* oracle.track("temp0", "read", handle.value.readTemperature())
          })
      }
    ],
    drivers: [
      { name: "nic", bus: "pci", register: (sim) => provide(sim, sim.pci.registerDriver(nicDriver({ ringSize: 8 }))) },
      { name: "blk", bus: "pci", register: (sim) => provide(sim, sim.pci.registerDriver(blkDriver({ queueDepth: 4 }))) },
      { name: "sensor", bus: "platform", register: (sim) => provide(sim, sim.platform.registerDriver(sensorDriver())) }
    ]
  }
}

const edu = (bug: Bug | undefined): Fuzz.Spec => {
  const handles = new Map<string, Handle>()
  let round = 0
  return {
    name: `edu-x ${bug ?? "correct"}`,
    devices: [{
      name: "edu0",
      bus: "pci",
      plug: (sim) => sim.plug({ bus: "pci", name: "edu0", ids: SimEdu.ids, model: SimEdu.model({ dma: "200 micros" }) }),
      io: ({ oracle }) =>
        Effect.gen(function*() {
          const handle = handles.get("edu0")
          if (handle !== undefined) yield* oracle.track("edu0", "transfer", handle.transfer(round++))
        })
    }],
    drivers: [{
      name: "edu-x",
      bus: "pci",
      register: (sim) => Effect.provideService(sim.pci.registerDriver(eduDriver(bug, handles)), Hardware.Hardware, sim.hardware)
    }]
  }
}

describe("lifecycle fuzzing", () => {
  it.effect("the example drivers survive random lifecycles: 100 sequences, no guarantee broken", () =>
    Effect.gen(function*() {
      const report = yield* Fuzz.check(machine(), { numRuns: 100, seed: 2026 })
      expect(Fuzz.describe(report)).toBe(`100 sequences, no guarantee broken (seed 2026)`)
      // The sequences do exercise the drivers: one of them, replayed, under load and removals.
      const sample = yield* Fuzz.runSequence(machine(), [
        { _tag: "plug", device: "eth0" },
        { _tag: "plug", device: "eth1" },
        { _tag: "plug", device: "disk0" },
        { _tag: "plug", device: "temp0" },
        { _tag: "io", device: "eth0", count: 8 },
        { _tag: "io", device: "disk0", count: 8 },
        { _tag: "io", device: "temp0", count: 3 },
        { _tag: "surprise", device: "disk0" },
        { _tag: "unplug", device: "eth1" },
        { _tag: "wait", micros: 500 }
      ], 2026)
      expect(sample.violations).toEqual([])
      // (An operation whose device is gone before it starts is not started.)
      expect(sample.operations.started).toBeGreaterThanOrEqual(15)
      expect(sample.operations.completed + sample.operations.gone + sample.operations.rejected).toBe(sample.operations.started)
      expect(sample.operations.gone).toBeGreaterThan(0)
    }), 300_000)

  it.effect("a correct edu driver survives; the planted interrupt wait is found and shrunk to its essence", () =>
    Effect.gen(function*() {
      const correct = yield* Fuzz.check(edu(undefined), { numRuns: 100, seed: 5 })
      expect(correct.failed).toBe(false)

      const buggy = yield* Fuzz.check(edu("wait-irq-no-timeout"), { numRuns: 200, seed: 5 })
      expect(buggy.failed).toBe(true)
      const steps = buggy.counterexample!.map(Fuzz.show)
      // Minimal: the device is there and vanishes; remove then waits for an interrupt forever.
      expect(steps).toEqual(["plug edu0", "surprise edu0"])
      expect(buggy.result!.outcome).toBe("Stalled")
      expect(Fuzz.describe(buggy)).toContain("devscope.remove (device=edu0, driver=edu-x)")
    }), 300_000)
})
