import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Option } from "effect"
import { Hardware } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import { Edu as SimEdu, type Simulator } from "@devscope/sim"
import { Fuzz } from "@devscope/testing"
import { type Bug, driver as eduDriver, type Handle } from "./eduFixture.js"
import { driver as oracleDriver, type Handle as OracleHandle, type Plant, plug as plugEdu } from "./oracleFixture.js"

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

const edu = (bug: Bug | undefined, faults?: Fuzz.Spec["faults"]): Fuzz.Spec => {
  const handles = new Map<string, Handle>()
  let round = 0
  return {
    name: `edu-x ${bug ?? "correct"}`,
    faults,
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

/** The oracle fixture's driver on one edu device (see oracleFixture.ts). */
const oracleX = (plant: Plant | undefined): Fuzz.Spec => {
  const handles = new Map<string, OracleHandle>()
  return {
    name: `oracle-x ${plant ?? "correct"}`,
    devices: [{
      name: "edu0",
      bus: "pci",
      plug: (sim) => plugEdu(sim),
      io: ({ oracle }) =>
        Effect.gen(function*() {
          const handle = handles.get("edu0")
          if (handle !== undefined) yield* oracle.track("edu0", "event", handle.waitEvent())
        })
    }],
    drivers: [{
      name: "oracle-x",
      bus: "pci",
      register: (sim) => Effect.provideService(sim.pci.registerDriver(oracleDriver(plant, handles)), Hardware.Hardware, sim.hardware)
    }]
  }
}

const plugAll: ReadonlyArray<Fuzz.Action> = ["eth0", "eth1", "disk0", "temp0"].map((device) => ({ _tag: "plug", device }))

describe("lifecycle fuzzing", () => {
  it.effect("the example drivers survive random lifecycles: 100 sequences, no guarantee broken", () =>
    Effect.gen(function*() {
      const report = yield* Fuzz.check(machine(), { numRuns: 100, seed: 2026 })
      expect(Fuzz.describe(report)).toBe(`100 sequences, no guarantee broken (seed 2026)`)
      // Fault steps are drawn and some fire (most land on absent devices or idle moments).
      expect(report.coverage.steps.fault).toBeGreaterThan(40)
      expect(report.coverage.faultsFired).toBeGreaterThan(0)
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

      // Without fault steps (as the fuzzer drew before it had any), the planted wait shrinks
      // to a plug and a surprise removal.
      const buggy = yield* Fuzz.check(edu("wait-irq-no-timeout", false), { numRuns: 200, seed: 5 })
      expect(buggy.failed).toBe(true)
      const steps = buggy.counterexample!.map(Fuzz.show)
      // Minimal: the device is there and vanishes; remove then waits for an interrupt that
      // never comes, until the bus's remove deadline cuts it: the unbind ends, and the report
      // names the wait.
      expect(steps).toEqual(["plug edu0", "surprise edu0"])
      expect(buggy.result!.outcome).toBe("Done")
      expect(buggy.result!.violations.map((v) => v.message).join("\n")).toContain("remove did not finish within 5s")
      expect(Fuzz.describe(buggy)).toContain("devscope.remove (device=edu0, driver=edu-x)")
    }), 300_000)

  it.effect("with every device plugged first, random sequences with faults break no guarantee; faults fire", () =>
    Effect.gen(function*() {
      const report = yield* Fuzz.check(machine(), { numRuns: 150, seed: 7, prefix: plugAll })
      expect(Fuzz.describe(report)).toBe(`150 sequences, no guarantee broken (seed 7)`)
      expect(report.coverage.sequences).toBe(150)
      expect(report.coverage.steps.fault).toBeGreaterThan(80)
      expect(report.coverage.faultsFired).toBeGreaterThan(10)
      const ops = report.coverage.operations
      expect(ops.started).toBeGreaterThan(500)
      expect(ops.gone).toBeGreaterThan(0)
      expect(ops.completed + ops.gone + ops.rejected).toBe(ops.started)
    }), 300_000)

  it.effect("each kind of fault on the example machine: probes fail cleanly, operations resolve, no guarantee broken", () =>
    Effect.gen(function*() {
      const fault = (device: string, rule: Simulator.FaultRule): Fuzz.Action => ({ _tag: "fault", device, rule })
      const io = (device: string, count: number): Fuzz.Action => ({ _tag: "io", device, count })
      const wait = (micros: number): Fuzz.Action => ({ _tag: "wait", micros })
      const load: ReadonlyArray<Fuzz.Action> = [io("eth0", 4), io("eth1", 4), io("disk0", 4), io("temp0", 2)]
      const cases: ReadonlyArray<readonly [string, ReadonlyArray<Fuzz.Action>, (r: Fuzz.RunResult) => void]> = [
        ["allocation, mapping and interrupt requests refused at probe", [
          fault("eth0", { kind: "fail-nth", request: "dma-alloc", n: 2, device: "eth0" }),
          fault("disk0", { kind: "fail-nth", request: "dma-alloc", n: 1, device: "disk0" }),
          fault("temp0", { kind: "fail-nth", request: "irq", n: 1, device: "temp0" }),
          fault("eth1", { kind: "fail-nth", request: "irq", n: 1, device: "eth1" }),
          ...plugAll,
          ...load,
          // The retries bind (each rule failed one request).
          ...["eth0", "eth1", "disk0", "temp0"].map((device): Fuzz.Action => ({ _tag: "bind", device })),
          ...load,
          wait(300)
        ], (r) => {
          expect(r.probeFailures).toBe(4)
          expect(r.operations.completed).toBeGreaterThan(0)
        }],
        ["completions dropped, then removals", [
          ...plugAll,
          fault("disk0", { kind: "drop-completions", device: "disk0" }),
          fault("eth0", { kind: "drop-completions", device: "eth0" }),
          fault("temp0", { kind: "drop-completions", probability: 0.5, device: "temp0" }),
          ...load,
          wait(2_000),
          { _tag: "unplug", device: "disk0" },
          { _tag: "surprise", device: "eth0" },
          wait(100)
        ], (r) => expect(r.operations.gone).toBeGreaterThan(0)],
        ["completions delayed, removal in the middle", [
          ...plugAll,
          ...["eth0", "disk0", "temp0"].map((device) => fault(device, { kind: "delay-completions", by: "1500 micros", device })),
          ...load,
          wait(200),
          { _tag: "surprise", device: "disk0" },
          { _tag: "unbind", device: "eth0" },
          wait(2_000)
        ], (r) => expect(r.operations.started).toBeGreaterThan(5)],
        ["interrupt storms under load", [
          ...plugAll,
          ...["eth0", "eth1", "disk0", "temp0"].map((device) =>
            fault(device, { kind: "irq-storm", device, line: 0, count: 50, interval: "2 micros", at: "10 micros" })
          ),
          ...load,
          wait(500),
          ...load,
          wait(500)
        ], (r) => expect(r.operations.completed).toBeGreaterThan(5)],
        ["all-ones reads under load, then removals", [
          ...plugAll,
          ...load,
          ...["eth0", "disk0", "temp0"].map((device) => fault(device, { kind: "all-ones-reads", device, at: "20 micros" })),
          ...load,
          wait(1_000),
          ...load,
          { _tag: "unplug", device: "disk0" },
          { _tag: "surprise", device: "temp0" },
          wait(500)
        ], (r) => expect(r.operations.started).toBeGreaterThan(5)]
      ]
      for (const [name, sequence, more] of cases) {
        const result = yield* Fuzz.runSequence(machine(), sequence, 2026)
        expect({ name, failure: result.failure, violations: result.violations }).toEqual({ name, failure: undefined, violations: [] })
        // (A delay is not traced as a fault.)
        if (!name.includes("delayed")) expect(result.faultsFired, name).toBeGreaterThan(0)
        const ops = result.operations
        expect(ops.completed + ops.gone + ops.rejected, name).toBe(ops.started)
        more(result)
      }
    }), 300_000)

  it.effect("a probe that leaks on its error path is found only with faults, and shrinks to the fault and the plug", () =>
    Effect.gen(function*() {
      const correct = yield* Fuzz.check(oracleX(undefined), { numRuns: 300, seed: 3 })
      expect(Fuzz.describe(correct)).toBe(`300 sequences, no guarantee broken (seed 3)`)
      expect(correct.coverage.probeFailures).toBeGreaterThan(0)

      const withoutFaults = yield* Fuzz.check({ ...oracleX("probe-error-leak"), faults: false }, { numRuns: 300, seed: 3 })
      expect(withoutFaults.failed).toBe(false)

      const buggy = yield* Fuzz.check(oracleX("probe-error-leak"), { numRuns: 300, seed: 3 })
      expect(buggy.failed).toBe(true)
      expect(buggy.counterexample!.map(Fuzz.show)).toEqual(["fault edu0: fail the next dma-alloc request", "plug edu0"])
      expect(buggy.result!.probeFailures).toBe(1)
      const [violation] = buggy.result!.violations
      expect(violation!.guarantee).toBe("G2")
      expect(violation!.message).toContain(`"status block" of driver "oracle-x" was still mapped at its unbind (probe-failure)`)
      expect(Fuzz.describe(buggy)).toContain("1. fault edu0: fail the next dma-alloc request")
    }), 300_000)

  it.effect("a fault alone (completions dropped) makes the planted interrupt wait outlive the remove deadline of an orderly removal", () =>
    Effect.gen(function*() {
      const sequence: ReadonlyArray<Fuzz.Action> = [
        { _tag: "plug", device: "edu0" },
        { _tag: "fault", device: "edu0", rule: { kind: "drop-completions", device: "edu0" } },
        { _tag: "io", device: "edu0", count: 1 },
        { _tag: "wait", micros: 50 },
        { _tag: "unplug", device: "edu0" }
      ]
      const buggy = yield* Fuzz.runSequence(edu("wait-irq-no-timeout"), sequence, 5)
      // The removal does not hang: remove is cut at its deadline and the report names the wait.
      expect(buggy.outcome).toBe("Done")
      const messages = buggy.violations.map((v) => v.message).join("\n")
      expect(messages).toContain("remove did not finish within 5s")
      expect(messages).toContain("devscope.remove (device=edu0, driver=edu-x)")
      const correct = yield* Fuzz.runSequence(edu(undefined), sequence, 5)
      expect(correct.outcome).toBe("Done")
      expect(correct.violations).toEqual([])
      expect(correct.operations).toMatchObject({ started: 1, gone: 1 })
    }), 300_000)
})
