import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { Bound, type Devres, Driver, Hardware, type Mmio } from "@devscope/core"
import { Edu, PciTestdev, Simulator, type Trace } from "@devscope/sim"

const Testdev = Driver.brand("pci-testdev")
class TestBar extends Context.Tag("test/TestBar")<
  TestBar,
  Devres.Devres<Mmio.Mmio<typeof PciTestdev.registers.spec>, "pci-testdev">
>() {}

/** Like Rust-for-Linux's rust_driver_pci: select test 0, do its write, read the count back. */
const testdevDriver = (counts: Array<number>, removeReads: Array<number>) =>
  Driver.make(Testdev, {
    match: [PciTestdev.ids],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const bar = (yield* TestBar).access(yield* Testdev.Bound)
        bar.write("TEST", 0)
        expect(bar.read("OFFSET")).toBe(0x20)
        bar.write("TEST0", bar.read("DATA"))
        counts.push(bar.read("COUNT"))
      })).pipe(Layer.provideMerge(Layer.effect(TestBar, Hardware.iomap(Testdev, PciTestdev.registers, 0)))),
    remove: () =>
      Effect.gen(function*() {
        const bar = (yield* TestBar).access(yield* Testdev.Bound)
        removeReads.push(bar.read("COUNT"))
      })
  })

const lifecycle = (trace: Trace.Service, device: string) =>
  trace.filter({ kind: "Lifecycle", device }).map((e) => e.event)

const withSim = <A, E>(f: (sim: Simulator.Service) => Effect.Effect<A, E, Hardware.Hardware>, options?: Simulator.Options) =>
  Effect.flatMap(Simulator.Simulator, f).pipe(Effect.provide(Simulator.layer(options)))

describe("Simulator", () => {
  it.effect("a driver maps a simulated BAR through Hardware and drives the device model", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        const removeReads: Array<number> = []
        yield* sim.pci.registerDriver(testdevDriver(counts, removeReads))
        const dev = yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        expect(dev.device.state).toBe("bound")
        expect(counts).toEqual([1])
        // Rebinding runs the test again: selecting it zeroed its count, as in QEMU.
        yield* sim.pci.unbind(dev.device)
        yield* sim.pci.bind(dev.device)
        expect(counts).toEqual([1, 1])
        const writes = sim.trace.filter({ kind: "MmioWrite", device: "testdev0" }).map((e) => e.register)
        expect(writes).toEqual(["TEST", "TEST0", "TEST", "TEST0"])
      })
    ))

  it.effect("orderly unplug: the driver unbinds while the device works, then the device stops", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const removeReads: Array<number> = []
        yield* sim.pci.registerDriver(testdevDriver([], removeReads))
        yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        const report = yield* sim.unplug("testdev0")
        expect(removeReads).toEqual([1])
        expect(report?.cause).toBe("hot-unplug")
        expect(report?.released).toEqual(["pci-testdev@0"])
        expect(report?.leaks).toEqual([])
        expect(lifecycle(sim.trace, "testdev0")).toEqual([
          "plug", "DeviceAdded", "Probing", "Bound", "unplug", "Unbinding", "Unbound", "DeviceRemoved", "disconnect", "removed"
        ])
        expect(Option.isNone(sim.device("testdev0"))).toBe(true)
        expect(yield* Effect.flip(sim.unplug("testdev0"))).toMatchObject({ _tag: "DeviceNotFound" })
      })
    ))

  it.effect("surprise removal: disconnected first, so remove() reads all-ones and writes are dropped; then unbind", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const removeReads: Array<number> = []
        yield* sim.pci.registerDriver(testdevDriver([], removeReads))
        const dev = yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        const report = yield* sim.surpriseRemove("testdev0")
        expect(removeReads).toEqual([0xffffffff])
        expect(report?.cause).toBe("surprise")
        expect(report?.leaks).toEqual([])
        expect(dev.state).toBe("removed")
        expect(dev.device.state).toBe("removed")
        expect(lifecycle(sim.trace, "testdev0")).toEqual([
          "plug", "DeviceAdded", "Probing", "Bound", "surprise-removal", "disconnect", "Unbinding", "Unbound",
          "DeviceRemoved", "removed"
        ])
        const faults = sim.trace.filter({ kind: "Fault", device: "testdev0" })
        expect(faults.map((f) => [f.fault, f.register])).toEqual([["disconnected-access", "COUNT"]])
        // The all-ones read came after the disconnect and before the unbind finished.
        const seqOf = (event: string) =>
          sim.trace.filter({ kind: "Lifecycle", device: "testdev0" }).find((e) => e.event === event)!.seq
        expect(faults[0]!.seq).toBeGreaterThan(seqOf("disconnect"))
        expect(faults[0]!.seq).toBeLessThan(seqOf("Unbound"))
      })
    ))

  it.effect("a re-plugged device under the same name is a new device; the old Device maps nothing", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        yield* sim.pci.registerDriver(testdevDriver(counts, []))
        const first = yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        yield* sim.surpriseRemove("testdev0")
        const second = yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        expect(second.device).not.toBe(first.device)
        expect(second.device.state).toBe("bound")
        expect(counts).toEqual([1, 1])
        const stale = yield* Effect.flip(sim.hardware.region(first.device, 0))
        expect(stale).toEqual(new Hardware.NoSuchRegion({ device: "testdev0", index: 0 }))
        expect(yield* Effect.flip(sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })))
          .toMatchObject({ _tag: "DeviceExists" })
      })
    ))

  it.effect("an unmatched device stays unbound; a driver registered later binds it", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const dev = yield* sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })
        expect(dev.device.state).toBe("unbound")
        yield* sim.platform.registerDriver(testdevDriver([], []))
        expect(dev.device.state).toBe("unbound")
        yield* sim.pci.registerDriver(testdevDriver([], []))
        expect(dev.device.state).toBe("bound")
      })
    ))

  it.effect("the platform bus matches compatible strings; devices on the two buses are independent", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const Sensor = Driver.brand("temp")
        const bound: Array<string> = []
        yield* sim.platform.registerDriver(Driver.make(Sensor, {
          match: [{ compatible: "acme,temp" }],
          probe: (device) => Layer.effectDiscard(Effect.sync(() => bound.push(device.name)))
        }))
        const a = yield* sim.plug({
          bus: "platform",
          name: "sensor@48",
          ids: { compatible: ["acme,temp-v2", "acme,temp"] },
          model: PciTestdev.model()
        })
        const b = yield* sim.plug({ bus: "pci", name: "other", ids: { compatible: ["acme,temp"] }, model: PciTestdev.model() })
        expect(a.device.bus).toBe("platform")
        expect([a.device.state, b.device.state]).toEqual(["bound", "unbound"])
        expect(bound).toEqual(["sensor@48"])
      })
    ))

  it.effect("an interrupted plug takes the device off the bus as well; the name can be plugged again", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const Slow = Driver.brand("slow")
        yield* sim.pci.registerDriver(Driver.make(Slow, {
          match: [PciTestdev.ids],
          probe: () => Layer.effectDiscard(Effect.sleep("1 second"))
        }))
        const plugging = yield* Effect.fork(sim.plug({ bus: "pci", name: "t0", ids: PciTestdev.ids, model: PciTestdev.model() }))
        yield* TestClock.adjust("10 millis")
        yield* Fiber.interrupt(plugging)
        expect(yield* sim.pci.devices).toEqual([])
        expect(Option.isNone(sim.device("t0"))).toBe(true)
        const again = yield* Effect.fork(sim.plug({ bus: "pci", name: "t0", ids: PciTestdev.ids, model: PciTestdev.model() }))
        yield* TestClock.adjust("2 seconds")
        expect((yield* Fiber.join(again)).device.state).toBe("bound")
      })
    ))

  it.effect("a device removed through its bus directly is retired by the simulator too", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const first = yield* sim.plug({ bus: "pci", name: "t0", ids: PciTestdev.ids, model: PciTestdev.model() })
        yield* sim.pci.removeDevice("t0")
        expect(first.state).toBe("removed")
        expect(first.ctx.regions[0].isDisconnected).toBe(true)
        expect(Option.isNone(sim.device("t0"))).toBe(true)
        const again = yield* sim.plug({ bus: "pci", name: "t0", ids: PciTestdev.ids, model: PciTestdev.model() })
        expect(again.device).not.toBe(first.device)
      })
    ))

  it.effect("device latencies run on virtual time: edu's factorial completes after 1 ms of TestClock", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const edu = yield* sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() })
        const [regs] = edu.ctx.regions
        regs.write32(0x08, 5)
        expect(regs.getField("STATUS", "COMPUTING")).toBe(1)
        yield* TestClock.adjust("999 micros")
        expect(regs.getField("STATUS", "COMPUTING")).toBe(1)
        yield* TestClock.adjust("1 micros")
        expect(regs.getField("STATUS", "COMPUTING")).toBe(0)
        expect(regs.read32(0x08)).toBe(120)
        expect(regs.read32(0x00)).toBe(0x010000ed)
        regs.write32(0x04, 0x0f0f0f0f)
        expect(regs.read32(0x04)).toBe(0xf0f0f0f0)
      })
    ))

  it.effect("fault rules: all-ones reads from a virtual time on; delayed and dropped completions", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const slow = yield* sim.plug({ bus: "pci", name: "slow", ids: Edu.ids, model: Edu.model() })
        const lost = yield* sim.plug({ bus: "pci", name: "lost", ids: Edu.ids, model: Edu.model() })
        const flaky = yield* sim.plug({ bus: "pci", name: "flaky", ids: Edu.ids, model: Edu.model() })
        slow.ctx.regions[0].write32(0x08, 3)
        lost.ctx.regions[0].write32(0x08, 3)
        yield* TestClock.adjust("5 millis")
        expect(slow.ctx.regions[0].getField("STATUS", "COMPUTING")).toBe(1)
        expect(lost.ctx.regions[0].getField("STATUS", "COMPUTING")).toBe(1)
        yield* TestClock.adjust("6 millis")
        expect(slow.ctx.regions[0].read32(0x08)).toBe(6)
        expect(lost.ctx.regions[0].getField("STATUS", "COMPUTING")).toBe(1)
        expect(flaky.ctx.regions[0].read32(0x00)).toBe(0xffffffff)
        expect(flaky.ctx.regions[0].faultCount("disconnected-access")).toBe(1)
        // The link is down: the device's DMA and interrupts stop too, and the model sees it
        // is disconnected; it stays on its bus.
        expect(flaky.ctx.disconnected).toBe(true)
        const port = sim.hardware.dma(flaky.device)
        const buffer = yield* port.allocCoherent(64, "test")
        expect(flaky.ctx.dma.deviceRead(buffer.iova, 4, "test")).toBeUndefined()
        expect(flaky.ctx.dma.deviceWrite(buffer.iova, new Uint8Array(4), "test")).toBe(false)
        flaky.ctx.raise(0)
        expect(sim.trace.filter({ kind: "Irq", device: "flaky" })).toHaveLength(0)
        expect((yield* sim.pci.device("flaky")).state).not.toBe("removed")
      }),
    {
      faults: [
        { kind: "delay-completions", by: "10 millis", device: "slow" },
        { kind: "drop-completions", device: "lost" },
        { kind: "all-ones-reads", device: "flaky", at: "2 millis" }
      ]
    }))

  it.effect("fault rules injected while running count from then on: fail-nth, dropped completions, storms, all-ones reads", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const edu = yield* sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() })
        const port = sim.hardware.dma(edu.device)
        const alloc = Effect.either(port.allocCoherent(64, "test"))
        expect((yield* alloc)._tag).toBe("Right")
        expect((yield* alloc)._tag).toBe("Right")
        // n counts from the injection: the next request of edu0 fails, not its first.
        yield* sim.inject({ kind: "fail-nth", request: "dma-alloc", n: 1, device: "edu0" })
        expect((yield* alloc)._tag).toBe("Left")
        expect((yield* alloc)._tag).toBe("Right")
        // A rule for all devices counts every device's requests from now.
        yield* sim.inject({ kind: "fail-nth", request: "dma-alloc", n: 2 })
        expect((yield* alloc)._tag).toBe("Right")
        expect((yield* alloc)._tag).toBe("Left")
        expect((yield* alloc)._tag).toBe("Right")

        const [regs] = edu.ctx.regions
        regs.write32(0x08, 3)
        yield* TestClock.adjust("2 millis")
        expect(regs.read32(0x08)).toBe(6)
        yield* sim.inject({ kind: "drop-completions", device: "edu0" })
        regs.write32(0x08, 4)
        yield* TestClock.adjust("2 millis")
        expect(regs.getField("STATUS", "COMPUTING")).toBe(1)

        // Storms and all-ones reads on a present device start `at` from the injection.
        yield* TestClock.adjust("10 millis")
        yield* sim.inject({ kind: "irq-storm", device: "edu0", line: 0, count: 3, at: "1 millis" })
        yield* sim.inject({ kind: "all-ones-reads", device: "edu0", at: "2 millis" })
        yield* TestClock.adjust("999 micros")
        const raised = () => sim.trace.filter({ kind: "Irq", device: "edu0" }).filter((e) => e.kind === "raise")
        expect(raised()).toHaveLength(0)
        yield* TestClock.adjust("1 millis")
        expect(raised()).toHaveLength(3)
        expect(regs.read32(0x00)).toBe(0x010000ed)
        yield* TestClock.adjust("1 micros")
        expect(regs.read32(0x00)).toBe(0xffffffff)
      })
    ))

  it.effect("the same seed replays the same probabilistic faults", () =>
    Effect.gen(function*() {
      const run = (seed: number) =>
        withSim((sim) =>
          Effect.gen(function*() {
            const results: Array<number> = []
            for (let i = 0; i < 12; i++) {
              const edu = yield* sim.plug({ bus: "pci", name: `edu${i}`, ids: Edu.ids, model: Edu.model() })
              edu.ctx.regions[0].write32(0x08, 4)
            }
            yield* TestClock.adjust("2 millis")
            for (let i = 0; i < 12; i++) {
              results.push(Option.getOrThrow(sim.device(`edu${i}`)).ctx.regions[0].getField("STATUS", "COMPUTING"))
            }
            return results.join("")
          }), { seed, faults: [{ kind: "drop-completions", probability: 0.5 }] })
      const a = yield* run(7)
      expect(yield* run(7)).toBe(a)
      expect(a).toMatch(/1/)
      expect(a).toMatch(/0/)
      expect([yield* run(8), yield* run(9), yield* run(10)]).not.toEqual([a, a, a])
    }))

  it.effect("device activity is not a binding fiber: a surprise removal aborts it and the trace says so", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const Probe = Driver.brand("poller")
        const polled: Array<number> = []
        yield* sim.pci.registerDriver(Driver.make(Probe, {
          match: [Edu.ids],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bar = (yield* Hardware.iomap(Probe, Edu.registers, 0)).access(yield* Probe.Bound)
              const bound = yield* Probe.Bound
              bar.write("FACT", 10)
              yield* Bound.fork(bound, Effect.forever(Effect.zipRight(Effect.sleep("100 micros"), Effect.sync(() => polled.push(bar.read("STATUS"))))))
            }))
        }))
        yield* sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() })
        yield* TestClock.adjust("500 micros")
        const removal = yield* Effect.fork(sim.surpriseRemove("edu0"))
        const report = yield* Fiber.join(removal)
        expect(report?.fibersInterrupted).toBe(1)
        expect(polled.length).toBeGreaterThan(0)
        expect(polled.every((s) => s === 1)).toBe(true)
        expect(lifecycle(sim.trace, "edu0")).toContain("aborted")
      })
    ))
})
