import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Fiber, LogLevel, Logger, Option, TestClock } from "effect"
import { Bound, DeviceError } from "@devscope/core"
import { Iommu } from "@devscope/sim"
import { BlkModel, driver, type Probed } from "../src/index.js"
import {
  checkCalls,
  checkDriver,
  checkReport,
  disk,
  equalBytes,
  makeWorker,
  pattern,
  plugBlk,
  prng,
  remember,
  runWorker,
  withSim,
  type Worker
} from "./helpers.js"

const SECTORS = 256

/** Six workers on disjoint 8-sector ranges, each making calls until the device is gone. */
const startLoad = (d: ReturnType<typeof disk>, store: BlkModel.BackingStore, seed: number) =>
  Effect.gen(function*() {
    const random = prng(seed)
    const workers = Array.from({ length: 6 }, (_, i) => makeWorker(store, i * 8, 8))
    const fibers = yield* Effect.forEach(workers, (w) => Effect.fork(runWorker(d, w, random, 400)))
    return { workers, fibers }
  })

const submitted = (workers: ReadonlyArray<Worker>) => workers.reduce((n, w) => n + w.calls.length, 0)

describe("blk: removal", () => {
  it.effect("orderly unbind under load: in-flight requests drain and complete; later calls get DeviceGone; nothing leaks", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.pci.registerDriver(driver({ queueDepth: 4, log: (l) => log.push(l), onProbe: (p) => void (probed = remember(p)) }))
        const store = BlkModel.store(SECTORS)
        yield* plugBlk(sim, store)
        const d = disk(disks)
        const { fibers, workers } = yield* startLoad(d, store, 7)
        yield* TestClock.adjust("105 micros") // mid-batch: requests are inside the device
        const inFlight = d.stats().inFlight
        expect(inFlight).toBeGreaterThan(0)

        const removal = yield* Effect.fork(sim.unplug("blk0"))
        yield* TestClock.adjust("15 millis")
        const report = Option.getOrThrow(yield* Fiber.poll(removal)).pipe(Exit.getOrElse(() => undefined))
        yield* checkCalls(fibers, workers)

        const stats = checkDriver(sim, probed!)
        // The device still worked: what it held completed; nothing failed, later calls were refused.
        expect(stats.failed).toBe(0)
        expect(stats.rejected).toBe(6)
        expect(submitted(workers)).toBe(stats.reads + stats.writes + stats.flushes + stats.rejected)
        checkReport(report, stats.reads + stats.writes)
        expect(report!.cause).toBe("hot-unplug")
        expect(log).toEqual(["remove: drained; device stopped; 0 completed late, 0 failed with DeviceGone"])
        expect(sim.iommuFaults()).toEqual([])
        // Acknowledged data is on the medium.
        for (const w of workers) expect(equalBytes(store.read(w.base, w.size), w.expected)).toBe(true)
      })
    ))

  it.effect("surprise removal under load: in-flight requests fail with DeviceGone at once; nothing leaks", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.pci.registerDriver(driver({ queueDepth: 4, log: (l) => log.push(l), onProbe: (p) => void (probed = remember(p)) }))
        const store = BlkModel.store(SECTORS)
        yield* plugBlk(sim, store)
        const d = disk(disks)
        const { fibers, workers } = yield* startLoad(d, store, 8)
        yield* TestClock.adjust("105 micros")
        const inFlight = d.stats().inFlight
        expect(inFlight).toBeGreaterThan(0)

        // No clock advance needed: remove does not wait for a device that is gone.
        const report = yield* sim.surpriseRemove("blk0")
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        yield* checkCalls(fibers, workers)
        const stats = checkDriver(sim, probed!)
        expect(stats.failed).toBe(inFlight)
        expect(stats.failed + stats.rejected).toBe(6) // each worker ended with one DeviceGone
        checkReport(report, stats.reads + stats.writes)
        expect(report!.cause).toBe("surprise")
        expect(report!.durationMillis).toBe(0)
        expect(log).toEqual([`remove: device gone; 0 completed, ${inFlight} failed with DeviceGone`])
        expect(sim.iommuFaults()).toEqual([])
        for (const w of workers) {
          const last = w.calls[w.calls.length - 1]!
          expect(last.outcome).toBe("gone")
          // Acknowledged data persists; the failed write (if any) never reached the medium.
          expect(equalBytes(store.read(w.base, w.size), w.expected)).toBe(true)
        }
      })
    ))

  it.effect("dropped completions: remove's drain times out, the device is stopped, requests fail once; no hang", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.pci.registerDriver(
          driver({ drainTimeout: "1 millis", log: (l) => log.push(l), onProbe: (p) => void (probed = remember(p)) })
        )
        const store = BlkModel.store(SECTORS)
        yield* plugBlk(sim, store)
        const d = disk(disks)
        const data = pattern(512, 2, 9)
        const calls = yield* Effect.forEach([0, 1, 2], (i) => Effect.fork(Effect.either(i === 0 ? d.write(4, data) : d.read(i, 1))))
        yield* TestClock.adjust("100 micros")
        expect(d.stats().inFlight).toBe(3) // executed by the device, never reported

        const removal = yield* Effect.fork(sim.unplug("blk0"))
        yield* TestClock.adjust("5 millis")
        const report = yield* Fiber.join(removal)
        for (const call of calls) {
          const result = Option.getOrThrow(yield* Fiber.poll(call)).pipe(Exit.getOrElse(() => undefined))
          expect(Either.getLeft(result!).pipe(Option.getOrThrow)).toBeInstanceOf(DeviceError.DeviceGone)
        }
        const stats = checkDriver(sim, probed!)
        expect(stats).toMatchObject({ failed: 3, completed: 0 })
        checkReport(report, 3)
        expect(report!.durationMillis).toBeGreaterThanOrEqual(1)
        expect(log).toEqual(["remove: drain timed out; device stopped; 0 completed late, 3 failed with DeviceGone"])
        expect(sim.iommuFaults()).toEqual([])
        // Why a failed write's sectors hold old *or* new data: this one reached the medium.
        expect(store.read(4, 2)).toEqual(data)
      }), { faults: [{ kind: "drop-completions", device: "blk0" }] }))

  it.effect("rebind after unplug on the same store: acknowledged writes read back identically", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        yield* sim.pci.registerDriver(driver({ queueDepth: 4 }))
        const store = BlkModel.store(SECTORS)
        for (let s = 0; s < 48; s++) store.write(s, pattern(512, 1, 1000 + s))
        yield* plugBlk(sim, store)
        const old = disk(disks)
        const { fibers, workers } = yield* startLoad(old, store, 9)
        yield* TestClock.adjust("213 micros")
        const removal = yield* Effect.fork(sim.unplug("blk0"))
        yield* TestClock.adjust("15 millis")
        yield* Fiber.join(removal)
        yield* checkCalls(fibers, workers)
        expect(disks.lookup("blk0")).toEqual(Option.none())

        const again = yield* plugBlk(sim, store)
        expect(again.device.state).toBe("bound")
        const fresh = disk(disks)
        expect(fresh).not.toBe(old)
        const reads = yield* Effect.forEach(workers, (w) => Effect.fork(fresh.read(w.base, w.size)))
        yield* TestClock.adjust("100 micros")
        const back = yield* Effect.forEach(reads, Fiber.join)
        workers.forEach((w, i) => expect(equalBytes(back[i]!, w.expected)).toBe(true))
        // Some writes were acknowledged before the unplug, so this compared real data.
        expect(workers.some((w) => w.calls.some((c) => c.op === "write" && c.outcome === "ok"))).toBe(true)
        // The old handle stays dead; its stats are still readable.
        const stale = yield* Effect.either(old.read(0, 1))
        expect(Either.getLeft(stale).pipe(Option.getOrThrow)).toBeInstanceOf(DeviceError.DeviceGone)
        expect(old.stats().completed).toBeGreaterThan(0)
        const removal2 = yield* Effect.fork(sim.unplug("blk0"))
        yield* TestClock.adjust("1 millis")
        checkReport(yield* Fiber.join(removal2), workers.length)
      })
    ))

  it.effect("first wins: a completion for a request already failed is ignored, its buffer unmapped once", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => void (probed = remember(p)) }))
        yield* plugBlk(sim, BlkModel.store(SECTORS))
        const d = disk(disks)
        const calls = yield* Effect.forEach([0, 1], (i) =>
          Effect.fork(Effect.either(i === 0 ? d.write(3, pattern(512, 1, 3)) : d.read(5, 1))))
        yield* TestClock.adjust("5 micros")
        // The path remove takes on a device it believes gone, taken while this one still works.
        const { requests, token } = probed!
        const table = requests.access(token)
        const failed = table.failAll()
        expect(failed).toHaveLength(2)
        table.failAllNow(failed)
        expect(table.failAll()).toEqual([]) // claimed already: nothing to fail twice
        yield* TestClock.adjust("100 micros") // the device completes both anyway
        for (const call of calls) {
          const result = yield* Fiber.join(call)
          expect(Either.getLeft(result).pipe(Option.getOrThrow)).toBeInstanceOf(DeviceError.DeviceGone)
        }
        expect(table.late).toBe(2)
        expect(table.resolutions).toBe(2)
        expect(d.stats()).toMatchObject({ completed: 0, failed: 2, inFlight: 0 })
        const dma = sim.trace.filter({ kind: "Dma", device: "blk0" })
        expect(dma.filter((e) => e.op === "unmap")).toHaveLength(2)
        // The device touched the buffers after they were unmapped: reported, never silent (G5).
        expect(sim.iommuFaults().map((f) => `${f.access} ${f.reason} ${f.window?.kind}`).sort()).toEqual([
          "read stale streaming", // the write's data buffer
          "write stale streaming" // the read's data buffer
        ])
        yield* sim.unplug("blk0")
      })
    ))

  it.effect("G1: stale Mmio, ring and Devres accesses after unbind die with UseAfterUnbind; tryAccess is None", () =>
    withSim((sim, disks) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ onProbe: (p) => void (probed = p) }))
        yield* plugBlk(sim, BlkModel.store(SECTORS))
        const d = disk(disks)
        const write = yield* Effect.fork(d.write(0, pattern(512, 1, 1)))
        yield* TestClock.adjust("100 micros")
        yield* Fiber.join(write)
        const { bar, cq, requests, sq, token } = probed!
        const mmio = bar.access(token)
        const ring = sq.access(token)
        expect(Option.isSome(requests.tryAccess())).toBe(true)
        const statsBefore = d.stats()

        yield* sim.unplug("blk0")
        expect(Bound.isLive(token)).toBe(false)
        const dies = (f: () => unknown) =>
          Effect.gen(function*() {
            const exit = yield* Effect.exit(Effect.sync(f))
            expect(Exit.isFailure(exit)).toBe(true)
            if (Exit.isFailure(exit)) {
              expect(Option.getOrThrow(Cause.dieOption(exit.cause))).toBeInstanceOf(DeviceError.UseAfterUnbind)
            }
          })
        yield* dies(() => mmio.read("STATUS"))
        yield* dies(() => mmio.write("SQ_TAIL", 1))
        yield* dies(() => ring.view.get(0, "tag"))
        yield* dies(() => requests.access(token))
        yield* dies(() => cq.access(token))
        for (const devres of [bar, sq, cq, requests]) expect(devres.tryAccess()).toEqual(Option.none())
        const late = yield* Effect.either(d.read(0, 1))
        expect(Either.getLeft(late).pipe(Option.getOrThrow)).toBeInstanceOf(DeviceError.DeviceGone)
        expect(d.stats()).toEqual({ ...statsBefore, rejected: 1 })
      })
    ))

  it.effect("G5: the planted bug (free before stop) yields IOMMU faults naming allocation and free sites; the correct driver none", () =>
    Effect.gen(function*() {
      const scenario = (bug: "free-dma-before-stop" | undefined) =>
        withSim((sim, disks) =>
          Effect.gen(function*() {
            let probed: Probed | undefined
            yield* sim.pci.registerDriver(driver({ queueDepth: 4, bug, drainTimeout: "1 millis", onProbe: (p) => void (probed = remember(p)) }))
            const store = BlkModel.store(SECTORS)
            yield* plugBlk(sim, store)
            const { fibers, workers } = yield* startLoad(disk(disks), store, 11)
            yield* TestClock.adjust("105 micros")
            expect(disk(disks).stats().inFlight).toBeGreaterThan(0)
            const removal = yield* Effect.fork(sim.unplug("blk0"))
            yield* TestClock.adjust("15 millis")
            const report = yield* Fiber.join(removal)
            // Even the buggy driver resolves every call exactly once, and leaks nothing.
            yield* checkCalls(fibers, workers)
            const stats = checkDriver(sim, probed!)
            expect(report?.leaks).toEqual([])
            return { faults: sim.iommuFaults(), stats }
          })
        )
      const correct = yield* scenario(undefined)
      expect(correct.faults).toEqual([])

      const buggy = yield* scenario("free-dma-before-stop").pipe(Logger.withMinimumLogLevel(LogLevel.None))
      expect(buggy.faults.length).toBeGreaterThan(0)
      for (const fault of buggy.faults) {
        expect(fault.reason).toBe("stale")
        expect(fault.window?.mappedAt).toMatch(/examples[\\/]blk[\\/]src[\\/]driver\.ts:\d+/)
        expect(fault.window?.unmappedAt).toMatch(/examples[\\/]blk[\\/]src[\\/]driver\.ts:\d+/)
        expect(Iommu.format(fault)).toMatch(/: stale; window 0x[0-9a-f]+\+\d+ \((coherent|streaming), [a-z-]+\) mapped at .*(freed|unmapped) at /)
      }
      // Both kinds of memory were hit: a ring (freed) and data buffers (unmapped).
      const kinds = new Set(buggy.faults.map((f) => f.window!.kind))
      expect(kinds).toEqual(new Set(["coherent", "streaming"]))
      expect(buggy.stats.failed).toBeGreaterThan(0)
    }))
})
