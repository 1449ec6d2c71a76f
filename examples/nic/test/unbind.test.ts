import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Fiber, Option, TestClock } from "effect"
import { Bound, DeviceError, type Lifecycle } from "@devscope/core"
import { Iommu, type Simulator } from "@devscope/sim"
import { driver, NicModel, type Probed } from "../src/index.js"
import {
  checkResolvedOnce,
  frame,
  type Load,
  lookup,
  plugNic,
  plugPair,
  receiver,
  RELEASED,
  sender,
  withSim
} from "./helpers.js"

/** Runs a removal with the clock moving: `remove` drains and waits, bounded, in virtual time. */
const removing = (effect: Effect.Effect<Lifecycle.UnbindReport | undefined, unknown>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust("5 millis")
    return yield* Fiber.join(fiber)
  })

/**
 * nic0 and nic1 on a cable, both sending and receiving; returns nic0's probe and its load.
 * nic1's senders are bounded so the traffic ends on its own after the removal.
 */
const underLoad = (
  sim: Simulator.Service,
  devs: Parameters<Parameters<typeof withSim>[0]>[1],
  options = {},
  peerFrames = 60
) =>
  Effect.gen(function*() {
    const probes = new Map<string, Probed>()
    yield* sim.pci.registerDriver(driver({ ...options, onProbe: (p) => probes.set(p.token.device.name, p) }))
    yield* plugPair(sim)
    const nic0 = lookup(devs, "nic0")
    const nic1 = lookup(devs, "nic1")
    const probed = probes.get("nic0")!
    const load: Load = { started: 0, outcomes: [] }
    const peer: Load = { started: 0, outcomes: [] }
    const workers = [
      ...[1, 2, 3].map((tag) => sender(nic0, probed, load, tag)),
      ...[1, 2].map(() => receiver(nic0, probed, load))
    ]
    const fibers = yield* Effect.forEach(workers, (w) => Effect.fork(w))
    const peers = yield* Effect.forEach([4, 5], (tag) => Effect.fork(sender(nic1, undefined, peer, tag, peerFrames)))
    const sink = yield* Effect.fork(receiver(nic1, undefined, peer))
    yield* TestClock.adjust("300 micros") // traffic flows both ways
    expect(load.outcomes.filter((o) => o.op === "send" && o.result === "ok").length).toBeGreaterThan(10)
    expect(load.outcomes.filter((o) => o.op === "receive" && o.result === "ok").length).toBeGreaterThan(10)
    return { nic0, probed, load, fibers, peers, sink }
  })

/** G2/G3/G4 on a report and a load. */
const checkUnbind = (report: Lifecycle.UnbindReport | undefined, load: Load) => {
  expect(report?.released).toEqual(RELEASED)
  expect(report?.releaseFailures).toEqual([])
  expect(report?.removeFailure).toBeUndefined()
  expect(report?.leaks).toEqual([])
  expect(report!.fibersInterrupted).toBeGreaterThanOrEqual(1)
  expect(report?.gates).toHaveLength(1)
  expect(report!.gates[0]!.interrupted).toEqual([])
  checkResolvedOnce(load)
  // Each of the five workers ended with exactly one DeviceGone.
  expect(load.outcomes.filter((o) => o.result === "gone")).toHaveLength(5)
}

const dies = (f: () => unknown) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.sync(f))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) expect(Option.getOrThrow(Cause.dieOption(exit.cause))).toBeInstanceOf(DeviceError.UseAfterUnbind)
  })

describe("nic: unbind", () => {
  it.effect("orderly unbind under load: every op resolves once; queued sends drain; nothing leaks; no IOMMU fault", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const { fibers, load, nic0, peers, probed, sink } = yield* underLoad(sim, devs, { log: (l: string) => log.push(l) })
        const inFlight = probed.datapath.txInFlight
        expect(inFlight).toBe(3) // one frame per sender waiting for its TX completion

        const report = yield* removing(sim.unplug("nic0"))
        yield* Fiber.joinAll(fibers)
        yield* Fiber.joinAll(peers)
        yield* Fiber.interrupt(sink)

        expect(report?.cause).toBe("hot-unplug")
        checkUnbind(report, load)
        // Orderly: the frames queued before the gate closed were sent, not failed; only the two
        // waiting receivers were woken with DeviceGone by remove.
        expect(log).toEqual(["remove: device stopped; 2 pending operation(s) failed with DeviceGone"])
        const sends = load.outcomes.filter((o) => o.op === "send")
        expect(sends.filter((o) => o.result === "gone")).toHaveLength(3)
        expect(nic0.stats().txFrames).toBe(sends.filter((o) => o.result === "ok").length)
        expect(sim.iommuFaults()).toEqual([])
        expect(devs.devices()).toEqual(["nic1"])
      })
    ))

  it.effect("surprise removal under load: remove sees all-ones and waits for nothing; in-flight ops get DeviceGone", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const { fibers, load, peers, sink } = yield* underLoad(sim, devs, { log: (l: string) => log.push(l) })

        const now = yield* TestClock.currentTimeMillis
        // No clock adjustment: a surprise removal must not wait on the (gone) device.
        const report = yield* sim.surpriseRemove("nic0")
        expect(yield* TestClock.currentTimeMillis).toBe(now)
        yield* Fiber.joinAll(fibers)
        yield* TestClock.adjust("2 millis")
        yield* Fiber.joinAll(peers)
        yield* Fiber.interrupt(sink)

        expect(report?.cause).toBe("surprise")
        checkUnbind(report, load)
        // The three frames in flight and the two receivers: all DeviceGone, from remove.
        expect(log).toEqual(["remove: device gone, nothing to stop; 5 pending operation(s) failed with DeviceGone"])
        // remove read STATUS once and saw all-ones.
        const faults = sim.trace.filter({ kind: "Fault", device: "nic0" })
        expect(faults.map((f) => `${f.fault} ${f.register}`)).toEqual(["disconnected-access STATUS"])
        const events = sim.trace.events().filter((e) => e.device === "nic0" && e._tag === "Lifecycle").map((e) =>
          e._tag === "Lifecycle" ? e.event : ""
        )
        const order = ["surprise-removal", "disconnect", "Unbinding", "Unbound", "removed"]
        const positions = order.map((what) => events.indexOf(what))
        expect(positions.every((p) => p >= 0)).toBe(true)
        expect([...positions].sort((a, b) => a - b)).toEqual(positions)
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("a dropped TX completion: the send waits until the unbind, then resolves once with DeviceGone", () =>
    withSim(
      (sim, devs) =>
        Effect.gen(function*() {
          yield* sim.pci.registerDriver(driver())
          yield* plugNic(sim, "nic0", { loopback: true })
          const nic0 = lookup(devs, "nic0")
          const send = yield* Effect.fork(Effect.either(nic0.send(frame(1, 0))))
          yield* TestClock.adjust("1 millis")
          expect(Option.isNone(yield* Fiber.poll(send))).toBe(true) // still waiting, as it should
          const report = yield* removing(sim.unplug("nic0"))
          const result = yield* Fiber.join(send)
          expect(Either.isLeft(result) && result.left).toBeInstanceOf(DeviceError.DeviceGone)
          expect(report?.released).toEqual(RELEASED)
          expect(nic0.stats().txFrames).toBe(0)
        }),
      { faults: [{ kind: "drop-completions", device: "nic0" }] }
    ))

  it.effect("G1: a stale Mmio, ring view or Devres used after unbind dies with UseAfterUnbind; tryAccess is None", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        yield* plugNic(sim, "nic0", { loopback: true })
        const nic0 = lookup(devs, "nic0")
        const tx = yield* Effect.fork(nic0.send(frame(1, 0)))
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(tx)
        const { bar, completions, rxBuffers, token, txRing } = probed!
        const mmio = bar.access(token) // captured while bound
        const ring = txRing.access(token)
        const view = ring.view
        expect(mmio.read("ID")).toBe(NicModel.ID_VALUE)
        expect(Option.isSome(txRing.tryAccess())).toBe(true)
        const stats = nic0.stats()

        yield* removing(sim.unplug("nic0"))
        expect(Bound.isLive(token)).toBe(false)
        yield* dies(() => mmio.read("STATUS"))
        yield* dies(() => mmio.write("TX_TAIL", 1))
        yield* dies(() => view.get(0, "flags"))
        yield* dies(() => ring.view.set(0, "flags", 1))
        yield* dies(() => txRing.access(token))
        yield* dies(() => completions.access(token))
        yield* dies(() => probed!.datapath.reapTx(token, 1))
        for (const devres of [bar, txRing, rxBuffers, completions]) expect(devres.tryAccess()).toEqual(Option.none())
        expect(ring.isFreed).toBe(true)

        expect(nic0.link()).toBe("down")
        expect(nic0.stats()).toEqual(stats)
        const send = yield* Effect.either(nic0.send(frame(1, 1)))
        expect(Either.isLeft(send) && send.left).toBeInstanceOf(DeviceError.DeviceGone)
        const receive = yield* Effect.either(nic0.receive())
        expect(Either.isLeft(receive) && receive.left).toBeInstanceOf(DeviceError.DeviceGone)
      })
    ))

  it.effect("G5: the planted bug (RX memory freed before the device stops) yields IOMMU faults naming both sites", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const { fibers, peers, sink } = yield* underLoad(sim, devs, {
          bug: "free-dma-before-stop",
          log: (l: string) => log.push(l)
        })
        const report = yield* removing(sim.unplug("nic0"))
        yield* Fiber.joinAll(fibers)
        yield* Fiber.joinAll(peers)
        yield* Fiber.interrupt(sink)

        expect(log[0]).toBe("remove: rx ring and buffers freed (device still running)")
        const faults = sim.iommuFaults()
        expect(faults.length).toBeGreaterThanOrEqual(1)
        for (const fault of faults) {
          expect(fault.device).toBe("nic0")
          expect(fault.reason).toBe("stale")
          expect(fault.by).toMatch(/^nic rx engine/)
          expect(fault.window?.kind).toBe("coherent")
          // Provenance: where the driver allocated the memory, and where it freed it.
          expect(fault.window?.mappedAt).toMatch(/examples[\\/]nic[\\/]src[\\/]driver\.ts:\d+/)
          expect(fault.window?.unmappedAt).toMatch(/examples[\\/]nic[\\/]src[\\/]driver\.ts:\d+/)
          expect(fault.window?.mappedAt).not.toEqual(fault.window?.unmappedAt)
          expect(Iommu.format(fault)).toContain(`freed at ${fault.window!.unmappedAt}`)
        }
        expect(sim.trace.filter({ kind: "IommuFault", device: "nic0" })).toHaveLength(faults.length)
        // Released early by remove (counted, not listed), and not released again by the unbind.
        expect(report?.released).toEqual(RELEASED.filter((r) => r !== "rx ring" && r !== "rx buffers"))
        expect(report?.releasedEarly).toBe(2)
      })
    ))

  it.effect("G5: the correct driver, unbound by hand while its peer keeps sending: no IOMMU fault, no more DMA", () =>
    withSim((sim, devs) =>
      Effect.gen(function*() {
        const { fibers, peers, sink } = yield* underLoad(sim, devs, {}, Infinity)
        // A manual unbind leaves the card plugged and connected: only the driver's remove stops it
        // from receiving into memory that the teardown frees right after.
        const report = yield* removing(sim.pci.unbind("nic0"))
        yield* Fiber.joinAll(fibers)
        expect(report?.released).toEqual(RELEASED)
        const regs = Option.getOrThrow(sim.device("nic0")).ctx.regions[0]
        const dropped = regs.get("RX_DROPPED")
        const traced = sim.trace.events().length
        yield* TestClock.adjust("1 millis") // nic1 keeps sending into the cable
        yield* Fiber.interruptAll([...peers, sink])
        expect(sim.iommuFaults()).toEqual([])
        expect(sim.trace.filter({ kind: "IommuFault" })).toEqual([])
        // The card still hears frames, and drops them: it touches no memory and raises nothing.
        expect(regs.get("RX_DROPPED")).toBeGreaterThan(dropped)
        const later = sim.trace.events().slice(traced).filter((e) => e.device === "nic0")
        expect(later.filter((e) => e._tag === "Dma" || e._tag === "Irq")).toEqual([])
        expect(regs.get("CTRL")).toBe(0)
      })
    ))
})
