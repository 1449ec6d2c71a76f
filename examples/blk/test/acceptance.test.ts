/**
 * Acceptance: 100 seeded runs, each with a concurrent read/write workload, an orderly unplug or
 * a surprise removal (chosen by the seed) at a random virtual time, then a re-plug on the same
 * medium. Every run checks G4 (each call resolved exactly once, none lost, none hanging), that
 * acknowledged writes persist, G2 (released once, in reverse order), no leaks and no IOMMU fault.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, TestClock } from "effect"
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
  withSim
} from "./helpers.js"

const WORKERS = 6
const RANGE = 6
const SECTORS = 64

interface RunResult {
  readonly surprise: boolean
  readonly at: number
  readonly calls: number
  readonly acked: number
  readonly failedInFlight: number
}

const run = (seed: number) => {
  const random = prng(seed * 7919 + 1)
  const surprise = random() < 0.5
  const atMicros = Math.floor(random() * 300)
  const store = BlkModel.store(SECTORS)
  for (let s = 0; s < SECTORS; s++) store.write(s, pattern(512, 1, seed * 1000 + s))
  return withSim((sim, disks) =>
    Effect.gen(function*() {
      let probed: Probed | undefined
      yield* sim.pci.registerDriver(driver({ queueDepth: 4, onProbe: (p) => void (probed = remember(p)) }))
      yield* plugBlk(sim, store)
      const d = disk(disks)
      const workers = Array.from({ length: WORKERS }, (_, i) => makeWorker(store, i * RANGE, RANGE))
      const fibers = yield* Effect.forEach(workers, (w) => Effect.fork(runWorker(d, w, random, 1000)))

      yield* TestClock.adjust(`${atMicros} micros`)
      const removal = yield* Effect.fork(surprise ? sim.surpriseRemove("blk0") : sim.unplug("blk0"))
      yield* TestClock.adjust("12 millis") // past the drain timeout: nothing may still be waiting
      const report = Option.getOrThrowWith(yield* Fiber.poll(removal), () => new Error(`seed ${seed}: removal hangs`))
        .pipe(Exit.getOrElse((cause) => {
          throw new Error(`seed ${seed}: removal failed: ${String(cause)}`)
        }))
      yield* checkCalls(fibers, workers)
      const stats = checkDriver(sim, probed!)
      checkReport(report, stats.reads + stats.writes)
      expect(report!.cause).toBe(surprise ? "surprise" : "hot-unplug")
      // Every call: submitted and resolved (completed or failed), or refused at the door.
      expect(workers.reduce((n, w) => n + w.calls.length, 0)).toBe(stats.reads + stats.writes + stats.flushes + stats.rejected)
      if (!surprise) expect(stats.failed).toBe(0) // orderly: the device drains what it holds
      expect(sim.iommuFaults()).toEqual([])

      // Re-plug on the same medium and read every range back through the driver.
      yield* plugBlk(sim, store)
      const fresh = disk(disks)
      const reads = yield* Effect.forEach(workers, (w) => Effect.fork(fresh.read(w.base, w.size)))
      yield* TestClock.adjust("100 micros")
      const back = yield* Effect.forEach(reads, Fiber.join)
      workers.forEach((w, i) => {
        const last = w.calls[w.calls.length - 1]
        const failedWrite = last?.outcome === "gone" && last.op === "write" ? last : undefined
        for (let s = 0; s < w.size; s++) {
          const got = back[i]!.subarray(s * 512, (s + 1) * 512)
          const acked = w.expected.subarray(s * 512, (s + 1) * 512)
          if (equalBytes(got, acked)) continue
          // Only a write that failed with DeviceGone may have left its new data instead.
          const k = w.base + s - (failedWrite?.sector ?? -1)
          expect(failedWrite !== undefined && k >= 0 && k < failedWrite.count, `seed ${seed}: sector ${w.base + s}`).toBe(true)
          expect(equalBytes(got, failedWrite!.data!.subarray(k * 512, (k + 1) * 512))).toBe(true)
        }
      })
      const unplug = yield* Effect.fork(sim.unplug("blk0"))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(unplug)
      return {
        surprise,
        at: atMicros,
        calls: workers.reduce((n, w) => n + w.calls.length, 0),
        acked: workers.reduce((n, w) => n + w.calls.filter((c) => c.op === "write" && c.outcome === "ok").length, 0),
        failedInFlight: stats.failed
      } satisfies RunResult
    }), { seed })
}

describe("blk: acceptance", () => {
  it.effect("100 seeded runs with random unplug times: exactly once, acknowledged writes persist, no leaks, no IOMMU faults", () =>
    Effect.gen(function*() {
      const results: Array<RunResult> = []
      for (let seed = 1; seed <= 100; seed++) results.push(yield* run(seed))
      // The runs covered what they claim to: both removals, requests caught inside the device,
      // acknowledged writes to check.
      const surprises = results.filter((r) => r.surprise)
      expect(surprises.length).toBeGreaterThan(20)
      expect(results.length - surprises.length).toBeGreaterThan(20)
      expect(surprises.filter((r) => r.failedInFlight > 0).length).toBeGreaterThan(10)
      expect(results.filter((r) => r.acked > 0).length).toBeGreaterThan(80)
      expect(results.reduce((n, r) => n + r.calls, 0)).toBeGreaterThan(1000)
    }), 120_000)
})
