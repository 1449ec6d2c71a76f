/**
 * Shared test pieces: a simulator with a BlockDevices registry, a seeded workload of workers
 * that each own a sector range, and the exactly-once / release / IOMMU checks every removal
 * test makes.
 */
import { expect } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Option } from "effect"
import { DeviceError, type Hardware, type Lifecycle } from "@devscope/core"
import { Simulator } from "@devscope/sim"
import {
  BlkModel,
  type BlockDevice,
  BlockDevices,
  type BlockDevicesRegistry,
  makeBlockDevices,
  type Probed,
  type Requests
} from "../src/index.js"

export const withSim = <A, E>(
  f: (sim: Simulator.Service, disks: BlockDevicesRegistry) => Effect.Effect<A, E, Hardware.Hardware | BlockDevices | Simulator.Simulator>,
  options?: Simulator.Options
) => {
  const disks = makeBlockDevices()
  return Effect.flatMap(Simulator.Simulator, (sim) => f(sim, disks)).pipe(
    Effect.provide(Simulator.layer(options)),
    Effect.provideService(BlockDevices, disks)
  )
}

export const plugBlk = (sim: Simulator.Service, store: BlkModel.BackingStore, config: Omit<BlkModel.Config, "store"> = {}) =>
  sim.plug({ bus: "pci", name: "blk0", ids: BlkModel.ids, model: BlkModel.model({ store, ...config }) })

export const disk = (disks: BlockDevicesRegistry, name = "blk0"): BlockDevice => Option.getOrThrow(disks.lookup(name))

/** Every resource the probe acquires, in reverse order of acquisition. */
export const RELEASED = ["block device registration", "irq 0", "completion queue", "submission queue", "request table", "BAR0"]

/** mulberry32, for workloads independent of the simulator's generator. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Distinct, recognisable sector contents. */
export const pattern = (sectorSize: number, count: number, stamp: number) => {
  const data = new Uint8Array(sectorSize * count)
  for (let i = 0; i < data.length; i++) data[i] = (stamp * 31 + i * 7 + (i >> 9)) & 0xff
  return data
}

/** One call a worker made, and how it resolved (set exactly once). */
export interface Call {
  readonly op: "read" | "write" | "flush"
  readonly sector: number
  readonly count: number
  readonly data: Uint8Array | undefined
  outcome: "ok" | "gone" | undefined
  resolutions: number
}

/** A worker: sequential calls on its own range `[base, base + size)`, until the device is gone. */
export interface Worker {
  readonly base: number
  readonly size: number
  readonly calls: Array<Call>
  /** The range's content after every acknowledged write (what must persist). */
  readonly expected: Uint8Array
  /** Reads that did not return the acknowledged content. */
  readonly mismatches: Array<string>
}

export const makeWorker = (store: BlkModel.BackingStore, base: number, size: number): Worker => ({
  base,
  size,
  calls: [],
  expected: store.read(base, size),
  mismatches: []
})

export const runWorker = (d: BlockDevice, w: Worker, random: () => number, maxCalls: number) =>
  Effect.gen(function*() {
    const ss = d.sectorSize
    for (let i = 0; i < maxCalls; i++) {
      const r = random()
      const offset = Math.floor(random() * w.size)
      const count = 1 + Math.floor(random() * Math.min(3, w.size - offset))
      const op = r < 0.45 ? "write" : r < 0.9 ? "read" : "flush"
      const data = op === "write" ? pattern(ss, count, Math.floor(random() * 1e6)) : undefined
      const call: Call = { op, sector: w.base + offset, count, data, outcome: undefined, resolutions: 0 }
      w.calls.push(call)
      const result = op === "write"
        ? yield* Effect.either(Effect.as(d.write(call.sector, data!), undefined))
        : op === "read"
        ? yield* Effect.either(d.read(call.sector, count))
        : yield* Effect.either(Effect.as(d.flush(), undefined))
      call.resolutions++
      if (Either.isLeft(result)) {
        call.outcome = "gone"
        expect(result.left).toBeInstanceOf(DeviceError.DeviceGone)
        return
      }
      call.outcome = "ok"
      if (op === "write") w.expected.set(data!, offset * ss)
      if (op === "read") {
        const want = w.expected.subarray(offset * ss, (offset + count) * ss)
        if (!equalBytes(result.right!, want)) w.mismatches.push(`read ${call.sector}+${count} at call ${i}`)
      }
    }
  })

export const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i])

/** Every worker finished (none hangs) and every call resolved exactly once; no stale read. */
export const checkCalls = (fibers: ReadonlyArray<Fiber.RuntimeFiber<void, unknown>>, workers: ReadonlyArray<Worker>) =>
  Effect.gen(function*() {
    for (const fiber of fibers) {
      const exit = Option.getOrThrowWith(yield* Fiber.poll(fiber), () => new Error("a worker hangs"))
      expect(Exit.isSuccess(exit)).toBe(true)
    }
    for (const w of workers) {
      expect(w.mismatches).toEqual([])
      for (const call of w.calls) {
        expect(call.resolutions).toBe(1)
        expect(call.outcome).toBeDefined()
      }
    }
  })

/**
 * The driver's side of exactly-once: every submitted request resolved once (resolutions equal
 * submissions, no late completion), every data mapping unmapped exactly once.
 */
export const checkDriver = (sim: Simulator.Service, probed: Probed, device = "blk0") => {
  const stats = probed.device.stats()
  const submitted = stats.reads + stats.writes + stats.flushes
  expect(stats.inFlight).toBe(0)
  expect(stats.errors).toBe(0)
  expect(stats.completed + stats.failed).toBe(submitted)
  const table = lastTable.get(probed)!
  expect(table.resolutions).toBe(submitted)
  expect(table.late).toBe(0)
  // Each streaming mapping: mapped once, unmapped once.
  const dma = sim.trace.filter({ kind: "Dma", device })
  const maps = dma.filter((e) => e.op === "map").map((e) => e.iova)
  const unmaps = dma.filter((e) => e.op === "unmap").map((e) => e.iova)
  expect(maps).toHaveLength(stats.reads + stats.writes)
  expect([...unmaps].sort()).toEqual([...maps].sort())
  return stats
}

/** The request table of a probe, kept so that checks can run after the unbind revoked it. */
export const lastTable = new WeakMap<Probed, Requests>()
export const remember = (probed: Probed) => {
  lastTable.set(probed, probed.requests.access(probed.token))
  return probed
}

/**
 * Released exactly once, in reverse order; each data mapping released once, early (by the
 * request path or `remove`), so the unbind releases only the probe's resources.
 */
export const checkReport = (report: Lifecycle.UnbindReport | undefined, mappings: number) => {
  expect(report).toBeDefined()
  expect(report!.released).toEqual(RELEASED)
  expect(report!.releasedEarly).toBe(mappings)
  expect(report!.releaseFailures).toEqual([])
  expect(report!.removeFailure).toBeUndefined()
  expect(report!.leaks).toEqual([])
  expect(report!.gates.every((g) => g.interrupted.length === 0 && g.stuck === 0)).toBe(true)
}
