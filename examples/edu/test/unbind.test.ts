import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, TestClock } from "effect"
import { driver, type Probed } from "../src/index.js"
import { checkEngine, checkReport, edu, exitOf, expectGone, plugEdu, withSim } from "./helpers.js"

const pattern = (length: number, stamp: number) => Uint8Array.from({ length }, (_, i) => (stamp * 17 + i * 5) & 0xff)

/** The seq of the first trace event matching `f`. */
const seqOf = (events: ReadonlyArray<{ readonly seq: number }>) => events[0]?.seq ?? -1

describe("edu: removal", () => {
  it.effect("orderly unplug with a DMA in flight: remove waits for it before the buffer is freed; queued and later calls get DeviceGone", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim, { dma: "100 millis" })
        const d = edu(devices)
        const data = pattern(512, 1)
        const inFlight = yield* Effect.fork(d.dmaToDevice(data))
        const queued = yield* Effect.fork(d.dmaFromDevice(512))
        yield* TestClock.adjust("40 millis") // the first transfer is inside the device
        expect(d.stats()).toMatchObject({ started: 1, inFlight: 1 })

        const removal = yield* Effect.fork(sim.unplug("edu0"))
        yield* Effect.repeatN(Effect.yieldNow(), 5)
        // The gate is closed: a new call is refused at once, nothing reaches the device.
        expectGone(yield* Effect.exit(d.factorial(3)))
        // The unbind waits for the transfer (60 ms more)...
        yield* TestClock.adjust("50 millis")
        expect(Option.isNone(yield* Fiber.poll(removal))).toBe(true)
        yield* TestClock.adjust("20 millis")
        const report = Exit.getOrElse(yield* exitOf(removal), () => undefined)
        checkReport(report)
        expect(report!.durationMillis).toBeGreaterThanOrEqual(60)

        // ...which completed; the queued one never started.
        expect(yield* exitOf(inFlight)).toEqual(Exit.void)
        expectGone(yield* exitOf(queued))
        const stats = checkEngine(probed!)
        expect(stats).toMatchObject({ started: 1, completed: 1, failed: 0, refused: 2 })
        expect(log.at(-1)).toBe("remove: edu0: 1 in flight, drained; 0 failed with DeviceGone")

        // The device read the buffer before it was freed: no IOMMU fault, the free comes after.
        const dma = sim.trace.filter({ kind: "Dma", device: "edu0" })
        expect(seqOf(dma.filter((e) => e.op === "device-read"))).toBeLessThan(seqOf(dma.filter((e) => e.op === "free-coherent")))
        expect(sim.iommuFaults()).toEqual([])
        expect(dev.ctx.dma.windows).toEqual([])
        // Gone from the registry; the old handle answers DeviceGone.
        expect(devices.lookup("edu0")).toEqual(Option.none())
        expectGone(yield* Effect.exit(d.dmaFromDevice(4)))
      })
    ))

  it.effect("surprise removal with a DMA in flight: ID reads all-ones, nothing is waited for, every call resolves once with DeviceGone", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim, { dma: "100 millis", factorial: "200 millis" })
        const d = edu(devices)
        const calls: Array<Fiber.RuntimeFiber<void, unknown>> = [
          yield* Effect.fork(Effect.asVoid(d.dmaToDevice(pattern(4096, 2)))),
          yield* Effect.fork(Effect.asVoid(d.dmaFromDevice(4096))), // queued behind it
          yield* Effect.fork(Effect.asVoid(d.factorial(9))),
          yield* Effect.fork(Effect.asVoid(d.factorial(10))) // queued behind it
        ]
        yield* TestClock.adjust("50 millis")
        expect(d.stats()).toMatchObject({ started: 2, inFlight: 2 })

        // No clock advance needed: remove does not wait for a device that is gone.
        const report = yield* sim.surpriseRemove("edu0")
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        checkReport(report)
        expect(report!.cause).toBe("surprise")
        expect(report!.durationMillis).toBe(0)
        for (const call of calls) expectGone(yield* exitOf(call))
        const stats = checkEngine(probed!)
        expect(stats).toMatchObject({ started: 2, completed: 0, failed: 2, refused: 2 })
        expect(log.at(-1)).toBe("remove: edu0 gone; 2 in flight failed with DeviceGone")
        // remove read ID once (all-ones) and wrote nothing to the gone device.
        const after = sim.trace.events().filter((e) => e.device === "edu0" && e.seq > seqOf(sim.trace.filter({ kind: "Lifecycle", device: "edu0" }).filter((l) => l.event === "Unbinding")))
        expect(after.filter((e) => e._tag === "MmioWrite")).toEqual([])
        expect(after.filter((e) => e._tag === "MmioRead").map((e) => e._tag === "MmioRead" && `${e.register}=0x${e.value.toString(16)}`)).toEqual(["ID=0xffffffff"])
        expect(sim.iommuFaults()).toEqual([])
        expect(dev.ctx.dma.windows).toEqual([])
        // Nothing happens afterwards.
        const events = sim.trace.events().length
        yield* TestClock.adjust("300 millis")
        expect(sim.trace.events().length).toBe(events)
      })
    ))

  it.effect("the link goes down while bound (all-ones reads): the pollers fail the calls in flight with DeviceGone, no deadline waited", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim, { dma: "100 millis" })
        const d = edu(devices)
        const call = yield* Effect.fork(d.dmaToDevice(pattern(64, 3)))
        yield* TestClock.adjust("10 millis")
        yield* sim.inject({ kind: "all-ones-reads", device: "edu0" })
        yield* TestClock.adjust("15 millis") // one poll interval at most
        expectGone(yield* exitOf(call))
        expect(dev.device.state).toBe("bound")
        // A new call starts (the gate is open), its poller sees all-ones and fails it.
        const late = yield* Effect.fork(d.factorial(5))
        yield* TestClock.adjust("15 millis")
        expectGone(yield* exitOf(late))
        checkReport(yield* sim.unplug("edu0"))
        expect(checkEngine(probed!)).toMatchObject({ started: 2, failed: 2, timedOut: 0 })
      })
    ))

  it.effect("a DMA that never completes: remove's drain times out, the call fails once, the unbind ends", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(
          driver({ dmaTimeout: "10 seconds", drainTimeout: "20 millis", log: (l) => log.push(l), onProbe: (p) => (probed = p) })
        )
        yield* plugEdu(sim)
        yield* sim.inject({ kind: "drop-completions", device: "edu0" })
        const d = edu(devices)
        const call = yield* Effect.fork(d.dmaFromDevice(64))
        yield* TestClock.adjust("5 millis")
        const removal = yield* Effect.fork(sim.unplug("edu0"))
        yield* TestClock.adjust("30 millis")
        checkReport(Exit.getOrElse(yield* exitOf(removal), () => undefined))
        expectGone(yield* exitOf(call))
        checkEngine(probed!)
        expect(log.at(-1)).toBe(
          "remove: edu0: 1 in flight, drain timed out (DMA still running: its buffer is freed anyway); 1 failed with DeviceGone"
        )
      })
    ))

  for (const [mode, at] of [["unplug", "0 millis"], ["unplug", "1 millis"], ["unplug", "2500 micros"], ["surprise", "0 millis"], ["surprise", "1500 micros"], ["surprise", "3 millis"]] as const) {
    it.effect(`${mode} at ${at} under a mixed workload: every call resolves exactly once (success or DeviceGone), nothing leaks`, () =>
      withSim((sim, devices) =>
        Effect.gen(function*() {
          let probed: Probed | undefined
          yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
          yield* plugEdu(sim)
          const d = edu(devices)
          const outcomes: Array<string> = []
          // Workers: each calls until the device is gone; every call's outcome is recorded once.
          const worker = (i: number) =>
            Effect.gen(function*() {
              for (let round = 0; round < 1000; round++) {
                const call: Effect.Effect<void, unknown> = i === 0
                  ? Effect.asVoid(d.factorial(round % 14))
                  : i === 1
                  ? Effect.asVoid(d.raise(0x2 << (round % 4)))
                  : i === 2
                  ? d.dmaToDevice(pattern(256, round), { offset: 256 * (round % 8) })
                  : Effect.asVoid(d.dmaFromDevice(256, { offset: 256 * (round % 8) }))
                const exit = yield* Effect.exit(call)
                outcomes.push(Exit.isSuccess(exit) ? "ok" : "gone")
                if (Exit.isFailure(exit)) {
                  expectGone(exit)
                  return
                }
                yield* Effect.sleep("100 micros") // raises take no device time: pace them
              }
            })
          const fibers = yield* Effect.forEach([0, 1, 2, 3], (i) => Effect.fork(worker(i)))
          yield* TestClock.adjust(at)
          const removal = yield* Effect.fork(mode === "unplug" ? sim.unplug("edu0") : sim.surpriseRemove("edu0"))
          yield* TestClock.adjust("20 millis")
          checkReport(Exit.getOrElse(yield* exitOf(removal), () => undefined))
          for (const f of fibers) expect(yield* exitOf(f)).toEqual(Exit.void)
          // Each worker ended with exactly one DeviceGone; the engine resolved every started call once.
          expect(outcomes.filter((o) => o === "gone")).toHaveLength(4)
          const stats = checkEngine(probed!)
          expect(stats.completed + stats.refused + stats.failed).toBe(outcomes.length)
          if (at !== "0 millis") expect(stats.completed).toBeGreaterThan(0)
          expect(sim.iommuFaults()).toEqual([])
        })
      ))
  }
})
