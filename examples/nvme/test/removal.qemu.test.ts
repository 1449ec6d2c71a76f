/**
 * The NVMe example driver removed under load, on QEMU: orderly unplug and surprise removal
 * with requests in flight and callers waiting for command ids, re-plug after an orderly
 * unplug (the data written before reads back: the image file persists), and QEMU killed
 * mid-I/O. Every request resolves exactly once: with its result or a typed error.
 */
import * as fs from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import type { NvmeDevice } from "../src/index.js"
import { BLOCK, failedWith, isGone, nvme, pattern, withNvme, type World } from "./helpers.js"
import { skipReason } from "./qemuAvailable.js"

const skip = skipReason !== undefined

/** Workers, more than command ids (16): some wait for an id when the removal comes. */
const WORKERS = 24

type Kind = "ok" | "DeviceGone" | "NvmeTimeout" | "NvmeStatusError" | "InvalidRequest" | "IoRefused" | "Die" | "Interrupt"

const kind = (exit: Exit.Exit<unknown, unknown>): Kind =>
  Exit.isSuccess(exit) ? "ok" : exit.cause._tag === "Fail" ? (exit.cause.error as { _tag: Kind })._tag : exit.cause._tag === "Interrupt" ? "Interrupt" : "Die"

/**
 * Starts the load: each worker issues requests one after the other (writes of 1-3 blocks, reads,
 * now and then a flush) until one fails; each request's outcome is recorded once.
 */
const startLoad = (d: NvmeDevice) =>
  Effect.forEach(Array.from({ length: WORKERS }, (_, k) => k), (k) =>
    Effect.fork(Effect.gen(function*() {
      const seen: Array<Kind> = []
      for (let n = 0; ; n++) {
        const blocks = 1 + ((k + n) % 3)
        const lba = 16 * k + (n % 8)
        const op = n % 10 === 9 ? d.flush() : (k + n) % 2 === 0 ? d.write(lba, pattern(blocks * BLOCK, k + n)) : d.read(lba, blocks)
        const outcome = kind(yield* Effect.exit(op as Effect.Effect<unknown, unknown>))
        seen.push(outcome)
        if (outcome !== "ok") return seen
      }
    })))

/** Runs until the controller holds at least `atLeast` commands (the load has reached it). */
const underLoad = (d: NvmeDevice, atLeast: number) =>
  Effect.gen(function*() {
    yield* Effect.sleep("5 millis")
    for (let i = 0; i < 2000 && d.stats().onController < atLeast; i++) {
      yield* i % 2 === 0 ? Effect.yieldNow() : Effect.sleep("50 micros")
    }
    return d.stats().onController
  })

/** Awaits every worker; every outcome is a success or one of `allowed`; the counts. */
const outcomes = (fibers: ReadonlyArray<Fiber.RuntimeFiber<ReadonlyArray<Kind>>>, allowed: ReadonlyArray<Kind>) =>
  Effect.gen(function*() {
    const counts: Partial<Record<Kind, number>> = {}
    let total = 0
    for (const fiber of fibers) {
      for (const outcome of yield* Fiber.join(fiber)) {
        expect(["ok", ...allowed]).toContain(outcome)
        counts[outcome] = (counts[outcome] ?? 0) + 1
        total++
      }
    }
    return { counts, total }
  })

/** The driver's own books: every submitted request resolved once, nothing left on the controller. */
const balanced = (w: World) => {
  const s = w.probed().engine.stats()
  expect(s.pending).toBe(0)
  expect(s.onController).toBe(0)
  expect(s.resolutions).toBe(s.submitted)
  expect(s.submitted).toBe(s.completed + s.statusErrors + s.gone + s.timedOut + s.abandoned)
  return s
}

describe.skipIf(skip)("the nvme driver removed under load", () => {
  it.live("orderly unplug with requests in flight: each completes or fails with DeviceGone, once; no leak, no DMA fault", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        const fibers = yield* startLoad(d)
        const inFlight = yield* underLoad(d, 8)
        const report = yield* w.q.unplug("nvme0")
        expect(report?.cause).toBe("hot-unplug")
        expect(report?.leaks).toEqual([])
        const { counts, total } = yield* outcomes(fibers, ["DeviceGone"])
        const s = balanced(w)
        console.log(`orderly unplug: ${inFlight} on the controller at the unplug; ${total} requests: ${JSON.stringify(counts)}; driver ${JSON.stringify(s)}`)
        expect(inFlight).toBeGreaterThan(0)
        // Every worker ended on DeviceGone; each request was counted once by the driver.
        expect(counts.DeviceGone).toBe(WORKERS)
        expect(total).toBe(s.submitted + s.refused)
        // Submitted commands completed in remove's drain: none was cut off.
        expect(s.gone).toBe(0)
        expect(isGone(yield* Effect.exit(d.read(0, 1)))).toBe(true)
        expect(w.q.dmaFaults()).toEqual([])
        expect(w.q.problems()).toEqual([])
      }), { ioTimeout: "10 seconds" }), 60_000)

  it.live("surprise removal with requests in flight: each completes or fails with DeviceGone, once; no leak, no DMA fault", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        const fibers = yield* startLoad(d)
        const inFlight = yield* underLoad(d, 8)
        const report = yield* w.q.surpriseRemove("nvme0")
        expect(report?.cause).toBe("surprise")
        expect(report?.leaks).toEqual([])
        const { counts, total } = yield* outcomes(fibers, ["DeviceGone"])
        const s = balanced(w)
        console.log(`surprise removal: ${inFlight} on the controller at the removal; ${total} requests: ${JSON.stringify(counts)}; driver ${JSON.stringify(s)}`)
        expect(inFlight).toBeGreaterThan(0)
        expect(counts.DeviceGone).toBe(WORKERS)
        expect(total).toBe(s.submitted + s.refused)
        // The controller held commands when its slot lost power: they failed with DeviceGone.
        expect(s.gone).toBeGreaterThan(0)
        expect(w.log.some((l) => l.includes("gone;"))).toBe(true)
        expect(w.q.dmaFaults()).toEqual([])
        expect(w.q.problems()).toEqual([])
      }), { ioTimeout: "10 seconds" }), 60_000)

  it.live("re-plug after an orderly unplug: a new binding reads back what the last one wrote (the image persists)", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const first = nvme(w)
        const data = pattern(3 * BLOCK, 42)
        yield* first.write(300, data)
        yield* first.write(7, pattern(BLOCK, 7))
        yield* first.flush()
        yield* w.q.unplug("nvme0")
        expect(Option.isNone(w.devices.lookup("nvme0"))).toBe(true)
        // On the medium: the image file holds the blocks.
        const onDisk = fs.readFileSync(w.file).subarray(300 * BLOCK, 303 * BLOCK)
        expect(Buffer.compare(onDisk, Buffer.from(data))).toBe(0)
        const device = yield* w.q.plug("nvme0")
        expect(device.state).toBe("bound")
        const second = nvme(w)
        expect(second).not.toBe(first)
        expect([...(yield* second.read(300, 3))]).toEqual([...data])
        expect([...(yield* second.read(7, 1))]).toEqual([...pattern(BLOCK, 7)])
        // And it still writes: unplug, plug, read once more.
        yield* second.write(301, pattern(BLOCK, 9))
        yield* w.q.unplug("nvme0")
        yield* w.q.plug("nvme0")
        expect([...(yield* nvme(w).read(301, 1))]).toEqual([...pattern(BLOCK, 9)])
        expect(w.q.dmaFaults()).toEqual([])
        expect(w.q.problems()).toEqual([])
      })), 60_000)

  it.live("QEMU killed mid-I/O: every request resolves with a typed error (DeviceGone, or NvmeTimeout), once", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        const fibers = yield* startLoad(d)
        const inFlight = yield* underLoad(d, 8)
        w.q.machine.machine.kill("SIGKILL")
        const { counts, total } = yield* outcomes(fibers, ["DeviceGone", "NvmeTimeout"])
        for (let i = 0; i < 100 && w.q.device("nvme0").pipe(Option.exists((x) => x.device !== undefined)); i++) yield* Effect.sleep("20 millis")
        const s = balanced(w)
        console.log(`QEMU killed: ${inFlight} on the controller at the kill; ${total} requests: ${JSON.stringify(counts)}; driver ${JSON.stringify(s)}`)
        expect(inFlight).toBeGreaterThan(0)
        expect(w.q.lost()?.signal).toBe("SIGKILL")
        expect((counts.DeviceGone ?? 0) + (counts.NvmeTimeout ?? 0)).toBe(WORKERS)
        expect(total).toBe(s.submitted + s.refused)
        expect(w.log.some((l) => l.includes("gone;"))).toBe(true)
        expect(failedWith(yield* Effect.exit(d.read(0, 1)), "DeviceGone")).toBe(true)
        expect(w.q.dmaFaults()).toEqual([])
      }), { ioTimeout: "3 seconds" }), 60_000)
})
