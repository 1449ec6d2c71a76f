import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { DeviceError } from "@devscope/core"
import { driver, NicModel, type Probed, TxQueueFull } from "../src/index.js"
import { frame, lookup, plugNic, plugPair, RELEASED, withSim } from "./helpers.js"

/** Unplugs with the clock moving, since `remove` waits (bounded) on virtual time. */
const unplug = (sim: Parameters<Parameters<typeof withSim>[0]>[0], name: string) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(sim.unplug(name))
    yield* TestClock.adjust("5 millis")
    return yield* Fiber.join(fiber)
  })

describe("nic: operation", () => {
  it.effect("frames sent on nic0 arrive intact and in order on nic1 over the cable, both ways; stats count them", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        const cable = yield* plugPair(sim)
        const nic0 = lookup(devs, "nic0")
        const nic1 = lookup(devs, "nic1")
        expect(devs.devices()).toEqual(["nic0", "nic1"])
        expect(nic0.mac).toBe(NicModel.defaultMac(0))
        expect(nic1.mac).toBe(NicModel.defaultMac(1))
        expect([nic0.link(), nic1.link()]).toEqual(["up", "up"])

        const count = 40
        const sizes = Array.from({ length: count }, (_, i) => (i === 7 ? 1500 : 60 + (i * 37) % 200))
        const sent = (tag: number) => sizes.map((n, i) => frame(tag, i, n))
        // nic0 -> nic1 one frame at a time; nic1 -> nic0 pipelined (all queued at once).
        const rx1 = yield* Effect.fork(Effect.forEach(sizes, () => nic1.receive()))
        const rx0 = yield* Effect.fork(Effect.forEach(sizes, () => nic0.receive()))
        const tx0 = yield* Effect.fork(Effect.forEach(sent(1), (f) => nic0.send(f)))
        const tx1 = yield* Effect.fork(Effect.forEach(sent(2), (f) => nic1.send(f), { concurrency: "unbounded" }))
        yield* TestClock.adjust("5 millis")
        yield* Fiber.join(tx0)
        yield* Fiber.join(tx1)
        expect(yield* Fiber.join(rx1)).toEqual(sent(1))
        expect(yield* Fiber.join(rx0)).toEqual(sent(2))

        const bytes = sizes.reduce((a, b) => a + b, 0)
        const s0 = nic0.stats()
        const s1 = nic1.stats()
        expect([s0.txFrames, s0.txBytes, s0.rxFrames, s0.rxBytes]).toEqual([count, bytes, count, bytes])
        expect([s1.txFrames, s1.txBytes, s1.rxFrames, s1.rxBytes]).toEqual([count, bytes, count, bytes])
        expect([s0.rxDropped, s0.txErrors, s0.txQueueFull, s1.rxDropped, s1.txErrors]).toEqual([0, 0, 0, 0, 0])
        expect(s0.interrupts).toBeGreaterThan(0)
        expect(s0.polls).toBeGreaterThanOrEqual(s0.interrupts - s0.linkChanges)
        expect(cable.carried).toEqual([count, count])
        // The device's own counters agree with the driver's.
        const regs0 = Option.getOrThrow(sim.device("nic0")).ctx.regions[0]
        expect(regs0.get("TX_FRAMES")).toBe(count)
        expect(regs0.get("RX_BYTES")).toBe(bytes)

        const report = yield* unplug(sim, "nic0")
        expect(report?.released).toEqual(RELEASED)
        expect(report?.leaks).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
        // Last values stay readable after unbind.
        expect(nic0.stats()).toEqual(s0)
      })
    ))

  it.effect("loopback: a single card hears its own frames; without a cable the link is down", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        yield* plugNic(sim, "lo0", { loopback: true, mac: 0x0a0b0c0d0e0f })
        yield* plugNic(sim, "lonely0")
        const lo = lookup(devs, "lo0")
        expect(lo.mac).toBe(0x0a0b0c0d0e0f)
        expect(lo.link()).toBe("up")
        expect(lookup(devs, "lonely0").link()).toBe("down")

        const frames = Array.from({ length: 10 }, (_, i) => frame(9, i))
        const rx = yield* Effect.fork(Effect.forEach(frames, () => lo.receive()))
        const tx = yield* Effect.fork(Effect.forEach(frames, (f) => lo.send(f)))
        yield* TestClock.adjust("2 millis")
        yield* Fiber.join(tx)
        expect(yield* Fiber.join(rx)).toEqual(frames)
        expect(lo.stats().txFrames).toBe(10)
        expect(lo.stats().rxFrames).toBe(10)

        // A card with no cable still completes its sends (into the void) and receives nothing.
        const lonely = lookup(devs, "lonely0")
        const sent = yield* Effect.fork(lonely.send(frame(1, 1)))
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(sent)
        expect(lonely.stats().txFrames).toBe(1)
        expect(lonely.stats().rxFrames).toBe(0)
      })
    ))

  it.effect("NAPI budget: a burst larger than the budget is polled in several batches with interrupts masked", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver({ budget: 16 }))
        yield* plugPair(sim)
        const nic0 = lookup(devs, "nic0")
        const nic1 = lookup(devs, "nic1")
        const before = nic0.stats()
        const traced = sim.trace.events().length

        // 40 frames queued at once leave in one TX batch and land in one RX batch: one interrupt.
        const burst = Array.from({ length: 40 }, (_, i) => frame(3, i))
        const tx = yield* Effect.fork(Effect.forEach(burst, (f) => nic1.send(f), { concurrency: "unbounded" }))
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(tx)

        const after = nic0.stats()
        expect(after.rxFrames - before.rxFrames).toBe(40)
        expect(after.interrupts - before.interrupts).toBe(1)
        expect(after.polls - before.polls).toBe(3) // 16 + 16 + 8
        const raises = sim.trace.events().slice(traced).filter((e) =>
          e._tag === "Irq" && e.device === "nic0" && e.kind === "raise"
        )
        expect(raises).toHaveLength(1)
        // Masked by the handler, acked once per poll batch, unmasked once the last batch was short.
        const writes = sim.trace.events().slice(traced).flatMap((e) =>
          e._tag === "MmioWrite" && e.device === "nic0" && (e.register === "INT_MASK" || e.register === "INT_STATUS")
            ? [`${e.register}=${e.value}`]
            : []
        )
        expect(writes).toEqual(["INT_MASK=7", "INT_STATUS=3", "INT_STATUS=3", "INT_STATUS=3", "INT_MASK=0"])
        // Nothing was lost or reordered on the way.
        const got = yield* Effect.forEach(burst, () => nic0.receive())
        expect(got).toEqual(burst)
      })
    ))

  it.effect("NAPI budget: with a budget above the burst, one poll is enough", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver({ budget: 64 }))
        yield* plugPair(sim)
        const before = lookup(devs, "nic0").stats()
        const burst = Array.from({ length: 40 }, (_, i) => frame(3, i))
        const tx = yield* Effect.fork(Effect.forEach(burst, (f) => lookup(devs, "nic1").send(f), { concurrency: "unbounded" }))
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(tx)
        const after = lookup(devs, "nic0").stats()
        expect(after.rxFrames - before.rxFrames).toBe(40)
        expect(after.polls - before.polls).toBe(1)
      })
    ))

  it.effect("back-pressure: a full TX ring fails send with TxQueueFull, and frees up as frames complete", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ ringSize: 4, onProbe: (p) => (probed = p) }))
        yield* plugNic(sim, "nic0", { loopback: true })
        const nic0 = lookup(devs, "nic0")
        const inFlight = yield* Effect.forEach([0, 1, 2], (i) => Effect.fork(nic0.send(frame(1, i))))
        yield* Effect.repeatN(Effect.yieldNow(), 5)
        expect(probed!.datapath.txInFlight).toBe(3)
        const full = yield* Effect.either(nic0.send(frame(1, 3)))
        expect(Either.isLeft(full) && full.left).toBeInstanceOf(TxQueueFull)
        expect(Either.isLeft(full) && full.left).toMatchObject({ device: "nic0", capacity: 3 })
        yield* TestClock.adjust("200 micros")
        yield* Fiber.joinAll(inFlight)
        const again = yield* Effect.fork(nic0.send(frame(1, 4)))
        yield* TestClock.adjust("200 micros")
        yield* Fiber.join(again)
        expect(nic0.stats()).toMatchObject({ txFrames: 4, txQueueFull: 1 })
        // The ring wrapped around more than once on the RX side too (4 frames, 3 buffers posted).
        expect(nic0.stats().rxFrames).toBe(4)
      })
    ))

  it.effect("link state follows the peer: down on unplug and surprise removal, up again on re-plug", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        const cable = yield* plugPair(sim)
        const nic0 = lookup(devs, "nic0")
        const changes = () => nic0.stats().linkChanges
        const raises = () =>
          sim.trace.filter({ kind: "Irq", device: "nic0" }).filter((e) => e.kind === "raise").length
        expect(nic0.link()).toBe("up")
        const c0 = changes()
        const r0 = raises()

        yield* unplug(sim, "nic1")
        expect(cable.isAttached(1)).toBe(false)
        expect(nic0.link()).toBe("down")
        expect(changes()).toBe(c0 + 1)
        expect(raises()).toBe(r0 + 1)

        yield* plugNic(sim, "nic1", { cable, port: 1 })
        yield* TestClock.adjust("10 micros")
        expect(nic0.link()).toBe("up")
        expect(changes()).toBe(c0 + 2)

        yield* sim.surpriseRemove("nic1")
        yield* TestClock.adjust("10 micros")
        expect(nic0.link()).toBe("down")
        expect(changes()).toBe(c0 + 3)
        expect(raises()).toBe(r0 + 3)
      })
    ))

  it.effect("rebind after unplug: plugging again on the same cable binds a fresh card and traffic flows", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        const cable = yield* plugPair(sim)
        const old = lookup(devs, "nic1")
        const first = yield* Effect.fork(old.receive())
        yield* Effect.fork(lookup(devs, "nic0").send(frame(1, 0)))
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(first)).toEqual(frame(1, 0))

        const report = yield* unplug(sim, "nic1")
        expect(report?.released).toEqual(RELEASED)
        expect(devs.devices()).toEqual(["nic0"])
        const plugged = yield* plugNic(sim, "nic1", { cable, port: 1 })
        expect(plugged.device.state).toBe("bound")
        const fresh = lookup(devs, "nic1")
        expect(fresh).not.toBe(old)
        expect(fresh.stats().rxFrames).toBe(0)

        const frames = Array.from({ length: 5 }, (_, i) => frame(1, i + 1))
        const rx = yield* Effect.fork(Effect.forEach(frames, () => fresh.receive()))
        const tx = yield* Effect.fork(Effect.forEach(frames, (f) => lookup(devs, "nic0").send(f)))
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(tx)
        expect(yield* Fiber.join(rx)).toEqual(frames)
        expect(fresh.link()).toBe("up")

        // The old handle stays dead.
        expect(old.link()).toBe("down")
        const stale = yield* Effect.either(old.send(frame(1, 9)))
        expect(Either.isLeft(stale) && stale.left).toBeInstanceOf(DeviceError.DeviceGone)
        const staleRx = yield* Effect.either(old.receive())
        expect(Either.isLeft(staleRx) && staleRx.left).toBeInstanceOf(DeviceError.DeviceGone)
        expect(sim.iommuFaults()).toEqual([])
      })
    ))
})
