import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Either, Exit, Fiber, Option, TestClock } from "effect"
import { Irq } from "@devscope/core"
import { DMA_BUFFER, DmaOutOfRange, driver, EduTimeout, InvalidArgument, type Probed } from "../src/index.js"
import { checkEngine, checkReport, edu, exitOf, failureOf, plugEdu, withSim } from "./helpers.js"

/** n! mod 2^32, computed independently of the model. */
const factorial32 = (n: number) => {
  let r = 1n
  for (let i = 2n; i <= BigInt(n); i++) r *= i
  return Number(r % 2n ** 32n)
}

/** Runs `effect` in a fiber, moves virtual time by `by`, returns its exit (it must be done). */
const timed = <A, E>(effect: Effect.Effect<A, E>, by: Duration.DurationInput) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(by)
    return yield* exitOf(fiber)
  })

const pattern = (length: number, stamp: number) => Uint8Array.from({ length }, (_, i) => (stamp * 31 + i * 7 + (i >> 8)) & 0xff)

describe("edu: factorial", () => {
  it.effect("computes n! mod 2^32 (13! wraps), one at a time, woken by the factorial-done interrupt", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim)
        const d = edu(devices)
        const ns = [0, 1, 5, 10, 12, 13, 20, 33, 34]
        // All at once: they queue for the one factorial unit.
        const fibers = yield* Effect.forEach(ns, (n) => Effect.fork(d.factorial(n)))
        yield* TestClock.adjust("30 millis")
        const results = yield* Effect.forEach(fibers, (f) => Effect.map(exitOf(f), Exit.getOrElse(() => -1)))
        expect(results).toEqual(ns.map(factorial32))
        expect(results[5]).toBe(6227020800 % 2 ** 32) // 13! = 6227020800 wraps to 1932053504
        expect(results[5]).toBe(1932053504)
        expect(results.at(-1)).toBe(0) // 34! has 32 factors of 2

        // Each one: STATUS.IRQ_ON_DONE, FACT = n; never a FACT write while the unit computes.
        const writes = sim.trace.filter({ kind: "MmioWrite", device: "edu0" }).filter((e) => e.register === "FACT").map((e) => e.value)
        expect(writes).toEqual(ns)
        const stats = checkEngine(probed!)
        expect(stats).toMatchObject({ started: ns.length, completed: ns.length, byIrq: ns.length, byPoll: 0, interrupts: ns.length })
        // Every interrupt acknowledged: nothing left in IRQ_STATUS.
        expect(dev.ctx.regions[0].get("IRQ_STATUS")).toBe(0)
        checkReport(yield* sim.unplug("edu0"))
      })
    ))

  it.effect("with the interrupt line masked, polling STATUS.COMPUTING ends the wait; the late interrupt completes nothing twice", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim, { factorial: "2 millis" })
        const d = edu(devices)
        const irq = probed!.irq.access(probed!.token)
        Irq.disable(irq)
        const exit = yield* timed(d.factorial(7), "10 millis")
        expect(exit).toEqual(Exit.succeed(5040))
        expect(d.stats()).toMatchObject({ completed: 1, byPoll: 1, byIrq: 0, interrupts: 0 })
        // The pending interrupt is delivered now: acknowledged, and nothing to complete.
        Irq.enable(irq)
        yield* TestClock.adjust("1 millis")
        expect(d.stats()).toMatchObject({ completed: 1, interrupts: 1 })
        expect(dev.ctx.regions[0].get("IRQ_STATUS")).toBe(0)
        // Next one by interrupt again.
        expect(yield* timed(d.factorial(3), "5 millis")).toEqual(Exit.succeed(6))
        expect(d.stats()).toMatchObject({ completed: 2, byIrq: 1, byPoll: 1 })
        checkEngine(probed!)
        checkReport(yield* sim.unplug("edu0"))
      })
    ))

  it.effect("a factorial the device never finishes: EduTimeout at the deadline, the unit stays busy, the unbind still ends cleanly", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(
          driver({ factorialTimeout: "20 millis", drainTimeout: "5 millis", log: (l) => log.push(l), onProbe: (p) => (probed = p) })
        )
        yield* plugEdu(sim)
        yield* sim.inject({ kind: "drop-completions", device: "edu0" })
        const d = edu(devices)
        const first = yield* timed(d.factorial(4), "25 millis")
        expect(failureOf(first)).toBeInstanceOf(EduTimeout)
        expect(failureOf(first)).toMatchObject({ op: "factorial", timeoutMillis: 20 })
        // The device still computes: the next call waits for the unit, and times out too,
        // without writing FACT (QEMU would ignore it).
        const second = yield* timed(d.factorial(5), "25 millis")
        expect(failureOf(second)).toBeInstanceOf(EduTimeout)
        expect(sim.trace.filter({ kind: "MmioWrite", device: "edu0" }).filter((e) => e.register === "FACT")).toHaveLength(1)
        expect(d.stats()).toMatchObject({ started: 1, timedOut: 2, inFlight: 1 })

        const removal = yield* Effect.fork(sim.unplug("edu0"))
        yield* TestClock.adjust("10 millis")
        const report = Exit.getOrElse(yield* exitOf(removal), () => undefined)
        checkReport(report)
        expect(log.at(-1)).toBe("remove: edu0: 1 in flight, drain timed out; 1 failed with DeviceGone")
        checkEngine(probed!)
      })
    ))
})

describe("edu: raise and acknowledge", () => {
  it.effect("raise writes IRQ_RAISE and completes when the handler has seen and acknowledged the bits; the device's own bits are refused", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim)
        const d = edu(devices)
        expect(yield* timed(d.raise(0x2), "1 millis")).toEqual(Exit.void)
        // Written, read by the handler, acknowledged, read again (0: done).
        const after = sim.trace.filter({ kind: ["MmioRead", "MmioWrite"], device: "edu0" }).slice(-4).map((e) =>
          `${e._tag === "MmioRead" ? "R" : "W"} ${e.register}=0x${e.value.toString(16)}`
        )
        expect(after).toEqual(["W IRQ_RAISE=0x2", "R IRQ_STATUS=0x2", "W IRQ_ACK=0x2", "R IRQ_STATUS=0x0"])
        // The handler acknowledged exactly what it read.
        const acks = sim.trace.filter({ kind: "MmioWrite", device: "edu0" }).filter((e) => e.register === "IRQ_ACK").map((e) => e.value)
        expect(acks).toEqual([0x2])
        expect(dev.ctx.regions[0].get("IRQ_STATUS")).toBe(0)

        // Several at once, overlapping bits included: each resolves once.
        const fibers = yield* Effect.forEach([0x6, 0x10, 0x4, 0x80000000], (bits) => Effect.fork(d.raise(bits)))
        yield* TestClock.adjust("1 millis")
        for (const f of fibers) expect(yield* exitOf(f)).toEqual(Exit.void)
        expect(dev.ctx.regions[0].get("IRQ_STATUS")).toBe(0)

        // Refused before the device: 0, not a u32, the factorial and DMA bits.
        for (const bits of [0, -1, 2 ** 32, 1.5, 0x1, 0x100, 0x101]) {
          const refused = yield* Effect.either(d.raise(bits))
          expect(Either.getLeft(refused).pipe(Option.getOrThrow)).toBeInstanceOf(InvalidArgument)
        }
        const raises = sim.trace.filter({ kind: "MmioWrite", device: "edu0" }).filter((e) => e.register === "IRQ_RAISE").map((e) => e.value)
        expect(raises).toEqual([0x2, 0x6, 0x10, 0x4, 0x80000000])
        expect(d.stats()).toMatchObject({ started: 5, completed: 5, refused: 7, byIrq: 5 })
        checkEngine(probed!)
        checkReport(yield* sim.unplug("edu0"))
      })
    ))
})

describe("edu: DMA", () => {
  it.effect("to the device and back through the coherent buffer, with QEMU's 100 ms per transfer; data checked; one transfer at a time", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim, { dma: "100 millis" })
        const d = edu(devices)
        const iova = probed!.buffer.access(probed!.token).iova

        // A whole buffer's worth, out and back.
        const page = pattern(4096, 1)
        const out = yield* Effect.fork(d.dmaToDevice(page))
        yield* TestClock.adjust("99 millis")
        expect(Option.isNone(yield* Fiber.poll(out))).toBe(true) // the transfer takes 100 ms
        yield* TestClock.adjust("2 millis")
        expect(yield* exitOf(out)).toEqual(Exit.void)
        const back = yield* timed(d.dmaFromDevice(4096), "101 millis")
        expect(Exit.getOrElse(back, () => undefined)).toEqual(page)

        // Three at once, at offsets: serialised on the DMA engine.
        const a = pattern(100, 2)
        const b = pattern(16, 3)
        const calls = yield* Effect.forEach(
          [d.dmaToDevice(a, { offset: 1000 }), d.dmaToDevice(b, { offset: 4080 }), d.dmaFromDevice(116, { offset: 996 })] as const,
          (call) => Effect.fork(call as Effect.Effect<unknown, unknown>)
        )
        yield* TestClock.adjust("350 millis")
        const exits = yield* Effect.forEach(calls, exitOf)
        expect(exits.slice(0, 2)).toEqual([Exit.void, Exit.void])
        const read = Exit.getOrElse(exits[2]!, () => undefined) as Uint8Array
        // 996..999 and 1100..1111 still hold the first page; 1000..1099 the second transfer.
        expect(read).toEqual(Uint8Array.from([...page.subarray(996, 1000), ...a, ...page.subarray(1100, 1112)]))

        // What the device was told, in order: SRC, DST, CNT, then CMD; never a DMA register
        // written while a transfer ran (each CMD is followed by its DMA-done acknowledge).
        const events = sim.trace.filter({ kind: "MmioWrite", device: "edu0" })
          .filter((e) => e.register?.startsWith("DMA_") || (e.register === "IRQ_ACK" && (e.value & 0x100) !== 0))
          .map((e) => `${e.register}=0x${e.value.toString(16)}`)
        const hex = (n: number) => `0x${n.toString(16)}`
        expect(events).toEqual([
          `DMA_SRC=${hex(iova)}`, `DMA_DST=${hex(DMA_BUFFER)}`, "DMA_CNT=0x1000", "DMA_CMD=0x5", "IRQ_ACK=0x100",
          `DMA_SRC=${hex(DMA_BUFFER)}`, `DMA_DST=${hex(iova)}`, "DMA_CNT=0x1000", "DMA_CMD=0x7", "IRQ_ACK=0x100",
          `DMA_SRC=${hex(iova)}`, `DMA_DST=${hex(DMA_BUFFER + 1000)}`, "DMA_CNT=0x64", "DMA_CMD=0x5", "IRQ_ACK=0x100",
          `DMA_SRC=${hex(iova)}`, `DMA_DST=${hex(DMA_BUFFER + 4080)}`, "DMA_CNT=0x10", "DMA_CMD=0x5", "IRQ_ACK=0x100",
          `DMA_SRC=${hex(DMA_BUFFER + 996)}`, `DMA_DST=${hex(iova)}`, "DMA_CNT=0x74", "DMA_CMD=0x7", "IRQ_ACK=0x100"
        ])
        expect(sim.iommuFaults()).toEqual([])
        expect(dev.ctx.regions[0].faultCount()).toBe(0)
        expect(d.stats()).toMatchObject({ started: 5, completed: 5, byIrq: 5 })
        checkEngine(probed!)
        checkReport(yield* sim.unplug("edu0"))
      })
    ))

  it.effect("out-of-range transfers are refused before they reach the device", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        yield* plugEdu(sim)
        const d = edu(devices)
        const cases = [
          [d.dmaToDevice(new Uint8Array(4097)), "beyond the device buffer"],
          [d.dmaToDevice(new Uint8Array(8), { offset: 4089 }), "beyond the device buffer"],
          [d.dmaFromDevice(16, { offset: 4090 }), "beyond the device buffer"],
          [d.dmaFromDevice(1, { offset: -1 }), "beyond the device buffer"],
          [d.dmaFromDevice(0), "empty"],
          [d.dmaToDevice(new Uint8Array(0)), "empty"],
          [d.dmaFromDevice(1.5), "not an integer"],
          [d.dmaFromDevice(4, { offset: 0.5 }), "not an integer"]
        ] as const
        for (const [call, reason] of cases) {
          const result = yield* Effect.either(call as Effect.Effect<unknown, unknown>)
          const error = Either.getLeft(result).pipe(Option.getOrThrow)
          expect(error).toBeInstanceOf(DmaOutOfRange)
          expect(error).toMatchObject({ reason, size: 4096 })
        }
        // Nothing reached the device.
        expect(sim.trace.filter({ kind: "MmioWrite", device: "edu0" }).filter((e) => e.register?.startsWith("DMA_"))).toEqual([])
        expect(d.stats()).toMatchObject({ started: 0, refused: cases.length })
        // The edges that fit are fine.
        expect(yield* timed(d.dmaToDevice(new Uint8Array(1).fill(9), { offset: 4095 }), "2 millis")).toEqual(Exit.void)
        const last = yield* timed(d.dmaFromDevice(1, { offset: 4095 }), "2 millis")
        expect(Exit.getOrElse(last, () => undefined)).toEqual(new Uint8Array([9]))
        checkReport(yield* sim.unplug("edu0"))
      })
    ))
})
