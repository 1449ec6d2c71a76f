import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { BlkModel, IoRefused, OutOfRange, type Probed } from "../src/index.js"
import { driver } from "../src/index.js"
import { checkDriver, checkReport, disk, pattern, plugBlk, remember, withSim } from "./helpers.js"

describe("blk: normal I/O", () => {
  it.effect("write then read back, flush, stats; the disk appears and disappears in BlockDevices", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => void (probed = remember(p)) }))
        const store = BlkModel.store(256)
        expect(disks.devices()).toEqual([])
        yield* plugBlk(sim, store)
        expect(disks.devices()).toEqual(["blk0"])
        const d = disk(disks)
        expect(d).toBe(probed!.device)
        expect([d.sectors, d.sectorSize]).toEqual([256, 512])

        const data = pattern(512, 3, 1)
        const write = yield* Effect.fork(d.write(10, data))
        yield* TestClock.adjust("100 micros")
        yield* Fiber.join(write)
        expect(store.read(10, 3)).toEqual(data) // on the medium once acknowledged

        const read = yield* Effect.fork(d.read(9, 5))
        const flush = yield* Effect.fork(d.flush())
        yield* TestClock.adjust("100 micros")
        const back = yield* Fiber.join(read)
        yield* Fiber.join(flush)
        expect(back.subarray(0, 512)).toEqual(new Uint8Array(512))
        expect(back.subarray(512, 2048)).toEqual(data)
        expect(back.subarray(2048)).toEqual(new Uint8Array(512))

        expect(d.stats()).toEqual({
          reads: 1,
          writes: 1,
          flushes: 1,
          completed: 3,
          failed: 0,
          errors: 0,
          rejected: 0,
          inFlight: 0,
          bytesRead: 5 * 512,
          bytesWritten: 3 * 512
        })
        // One interrupt per batch, all handled; the CQ doorbell followed.
        const irq = probed!.irq.access(probed!.token)
        expect(irq.stats.unhandled).toBe(0)
        expect(irq.stats.handled).toBe(2)

        const report = yield* sim.unplug("blk0")
        checkReport(report, 2)
        checkDriver(sim, probed!)
        expect(disks.devices()).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("OutOfRange is typed and checked before anything reaches the device", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        const plugged = yield* plugBlk(sim, BlkModel.store(64, 4096))
        const d = disk(disks)
        expect(d.sectorSize).toBe(4096)
        const fail = <A, E>(e: Effect.Effect<A, E>) => Effect.map(Effect.either(e), (r) => Either.getLeft(r).pipe(Option.getOrThrow))
        const reasons = [
          yield* fail(d.read(-1, 1)),
          yield* fail(d.read(0, 0)),
          yield* fail(d.read(63, 2)),
          yield* fail(d.read(1.5, 1)),
          yield* fail(d.write(0, new Uint8Array(100))),
          yield* fail(d.write(64, new Uint8Array(4096))),
          yield* fail(d.write(0, new Uint8Array(0)))
        ]
        for (const e of reasons) expect(e).toBeInstanceOf(OutOfRange)
        expect(reasons.map((e) => (e as OutOfRange).reason)).toEqual([
          "beyond capacity",
          "empty",
          "beyond capacity",
          "beyond capacity",
          "not whole sectors",
          "beyond capacity",
          "empty"
        ])
        expect(reasons[2]).toMatchObject({ device: "blk0", sector: 63, count: 2, sectors: 64 })
        expect(d.stats().reads + d.stats().writes + d.stats().rejected).toBe(0)
        expect(sim.trace.filter({ kind: "MmioWrite", device: "blk0" }).filter((e) => e.register === "SQ_TAIL")).toEqual([])
        expect(plugged.ctx.regions[0].get("SQ_HEAD")).toBe(0)
        yield* sim.unplug("blk0")
      })
    ))

  it.effect("a buffer the platform refuses to map fails its call with IoRefused; its tag goes back, nothing leaks", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        yield* plugBlk(sim, BlkModel.store(64))
        const d = disk(disks)
        // The next streaming mapping of blk0 is refused (a kernel dma_map failure).
        yield* sim.inject({ kind: "fail-nth", request: "dma-map", n: 1, device: "blk0" })
        const refused = yield* Effect.either(d.write(5, pattern(512, 1, 1)))
        expect(Either.getLeft(refused).pipe(Option.getOrThrow)).toEqual(
          new IoRefused({ device: "blk0", op: "write", sector: 5, reason: expect.any(String) as unknown as string })
        )
        expect(d.stats()).toMatchObject({ writes: 0, rejected: 1, inFlight: 0 })
        // Every tag is still there: a full queue of writes goes through, then reads back.
        const writes = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 16 }, (_, i) => i), (i) => d.write(i, pattern(512, 1, i)), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(writes)
        const back = yield* Effect.fork(d.read(3, 1))
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(back)).toEqual(pattern(512, 1, 3))
        const report = yield* sim.unplug("blk0")
        // 16 writes and a read, each mapping released once by its completion.
        checkReport(report, 17)
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("several requests in flight at once, completed out of order, each matched by tag", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver())
        const store = BlkModel.store(64)
        for (let s = 0; s < 16; s++) store.write(s, pattern(512, 1, 100 + s))
        const plugged = yield* plugBlk(sim, store)
        const d = disk(disks)
        const reads = yield* Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (i) => Effect.fork(d.read(i * 2, 1)))
        const writes = yield* Effect.forEach([40, 41, 42, 43], (s) => Effect.fork(d.write(s, pattern(512, 1, s))))
        yield* TestClock.adjust("5 micros") // inside the device's latency
        expect(d.stats().inFlight).toBe(12)
        expect(plugged.ctx.regions[0].getField("STATUS", "IDLE")).toBe(0)
        yield* TestClock.adjust("100 micros")
        const got = yield* Effect.forEach(reads, Fiber.join)
        yield* Effect.forEach(writes, Fiber.join)
        got.forEach((bytes, i) => expect(bytes).toEqual(pattern(512, 1, 100 + i * 2)))
        for (const s of [40, 41, 42, 43]) expect(store.read(s, 1)).toEqual(pattern(512, 1, s))
        // The device completed them in one batch, in an order other than submission order.
        const raises = sim.trace.filter({ kind: "Irq", device: "blk0" })
        expect(raises).toHaveLength(1)
        const unmapOrder = sim.trace.filter({ kind: "Dma", device: "blk0" }).filter((e) => e.op === "unmap").map((e) => e.iova)
        const mapOrder = sim.trace.filter({ kind: "Dma", device: "blk0" }).filter((e) => e.op === "map").map((e) => e.iova)
        expect(unmapOrder).not.toEqual(mapOrder)
        expect([...unmapOrder].sort()).toEqual([...mapOrder].sort())
        expect(plugged.ctx.regions[0].getField("STATUS", "IDLE")).toBe(1)
        yield* sim.unplug("blk0")
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("with every tag busy, a call waits for a free tag; none is lost", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver({ queueDepth: 2 }))
        const store = BlkModel.store(64)
        yield* plugBlk(sim, store)
        const d = disk(disks)
        const writes = yield* Effect.forEach(
          Array.from({ length: 7 }, (_, i) => i),
          (s) => Effect.fork(d.write(s, pattern(512, 1, s)))
        )
        yield* TestClock.adjust("5 micros")
        expect(d.stats().inFlight).toBe(2)
        expect(d.stats().writes).toBe(2)
        // An interrupted waiter gives its place up without taking a tag with it.
        yield* Fiber.interrupt(writes[6]!)
        yield* TestClock.adjust("200 micros")
        yield* Effect.forEach(writes.slice(0, 6), Fiber.join)
        for (let s = 0; s < 6; s++) expect(store.read(s, 1)).toEqual(pattern(512, 1, s))
        expect(store.read(6, 1)).toEqual(new Uint8Array(512))
        expect(d.stats()).toMatchObject({ writes: 6, completed: 6, inFlight: 0 })
        // Both tags are free again: two more calls go in at once.
        const more = yield* Effect.forEach([10, 11], (s) => Effect.fork(d.read(s, 1)))
        yield* TestClock.adjust("5 micros")
        expect(d.stats().inFlight).toBe(2)
        yield* TestClock.adjust("100 micros")
        yield* Effect.forEach(more, Fiber.join)
        yield* sim.unplug("blk0")
      })
    ))
})
