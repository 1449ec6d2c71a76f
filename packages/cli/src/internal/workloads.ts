/**
 * The load a scenario puts on its devices, written as user code: it finds devices through
 * their class registries (net devices, block devices, hwmon), has no token, and keeps
 * going across unplug and re-plug (a device that is gone is looked up again).
 *
 * Each load checks what it gets back: NIC frames carry their origin and a checksummed
 * payload; block workers own disjoint sector ranges and know what every acknowledged write
 * left on the medium; sensor readings must be in the model's range, and an attribute read
 * outside the binding must say None once that binding has ended; an edu's factorials must be
 * right, and a DMA round trip through its buffer must bring back what was sent.
 *
 * Pauses are random (exponentially distributed with the interval as mean, as the gaps of
 * Poisson arrivals, from the seed), and each sender, worker or reader starts at a random point
 * of its first interval: loads started together do not run in lockstep, so a scenario action
 * at a round time finds operations in flight rather than an idle gap between rounds.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { BlockDevice, BlockDevicesRegistry } from "@devscope/example-blk"
import type { EduDevicesRegistry } from "@devscope/example-edu"
import type { NetDevice, NetDevicesRegistry } from "@devscope/example-nic"
import { type HwmonRegistry, type SensorHandle, SensorModel } from "@devscope/example-sensor"
import { Simulator } from "@devscope/sim"
import type { Oracle } from "@devscope/testing"
import type { Violation } from "./record.js"

type Ops = Oracle.Ops

/** A deterministic generator, one per load so loads do not interfere. */
export const random = Simulator.random

const isGone = (e: { readonly _tag: string }) => e._tag === "DeviceGone" ? "gone" as const : "rejected" as const

/** Operations in flight, per device and operation: what a scenario action finds running. */
export class Busy {
  private readonly devices = new Map<string, Map<string, number>>()

  /** `ops.track`, counting the operation as in flight (by name) until it resolves. */
  track<A, E, R>(
    ops: Ops,
    device: string,
    what: string,
    op: Effect.Effect<A, E, R>,
    classify: (error: E) => "gone" | "rejected"
  ): Effect.Effect<Option.Option<A>, never, R> {
    return Effect.suspend(() => {
      let mine = this.devices.get(device)
      if (mine === undefined) this.devices.set(device, mine = new Map())
      const counts = mine
      counts.set(what, (counts.get(what) ?? 0) + 1)
      return Effect.ensuring(ops.track(device, what, op, classify), Effect.sync(() => void counts.set(what, counts.get(what)! - 1)))
    })
  }

  /** The operations of `device` in flight now, by operation (only the nonzero ones). */
  of(device: string): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [what, n] of this.devices.get(device) ?? []) if (n > 0) out[what] = n
    return out
  }
}

/** What every load gets. */
export interface LoadContext {
  readonly ops: Ops
  readonly busy: Busy
  /** How many bindings of `device` have ended so far (its `Unbound` events). */
  readonly bindingsEnded: (device: string) => number
  /** A guarantee the load saw broken itself (a value read outside an ended binding). */
  readonly violation: (violation: Violation) => void
}

/** Waits for `lookup` to find the device, polling every `poll` ms; None once the run stops. */
const waitFor = <A>(ops: Ops, lookup: () => Option.Option<A>, poll: number): Effect.Effect<Option.Option<A>> =>
  Effect.gen(function*() {
    for (;;) {
      if (ops.stopping) return Option.none()
      const found = lookup()
      if (Option.isSome(found)) return found
      yield* Effect.sleep(poll)
    }
  })

/**
 * A pause of `interval` ms on average, exponentially distributed (the gaps of Poisson
 * arrivals), capped at five times the mean; a yield when the interval is 0.
 */
export const pauseMillis = (interval: number, rand: () => number): number =>
  interval * Math.min(5, -Math.log(1 - rand()))

const pause = (interval: number, rand: () => number): Effect.Effect<void> =>
  interval > 0 ? Effect.sleep(pauseMillis(interval, rand)) : Effect.yieldNow()

/** A random start within the first interval. */
const stagger = (interval: number, rand: () => number): Effect.Effect<void> =>
  interval > 0 ? Effect.sleep(interval * rand()) : Effect.void

// ---------------------------------------------------------------------------------------
// NIC: frames carry [magic][origin index][sequence][length] and a payload derived from them.

const MAGIC = 0xd5c0

export const makeFrame = (origin: number, seq: number, size: number): Uint8Array => {
  const frame = new Uint8Array(size)
  const view = new DataView(frame.buffer)
  view.setUint16(0, MAGIC)
  view.setUint16(2, origin)
  view.setUint32(4, seq)
  view.setUint16(8, size)
  for (let i = 10; i < size; i++) frame[i] = (seq * 31 + origin * 7 + i) & 0xff
  return frame
}

/** The frame's origin and sequence, or undefined when it is not a well-formed workload frame. */
export const checkFrame = (frame: Uint8Array): { readonly origin: number; readonly seq: number } | undefined => {
  if (frame.length < 10) return undefined
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  if (view.getUint16(0) !== MAGIC || view.getUint16(8) !== frame.length) return undefined
  const origin = view.getUint16(2)
  const seq = view.getUint32(4)
  for (let i = 10; i < frame.length; i++) if (frame[i] !== ((seq * 31 + origin * 7 + i) & 0xff)) return undefined
  return { origin, seq }
}

export interface NicLoad {
  readonly window: number
  readonly frameSize: number
  readonly interval: number
}

/** `window` senders and one receiver for one NIC, for the whole run. */
export const nicLoad = (
  context: LoadContext,
  registry: NetDevicesRegistry,
  device: string,
  origin: number,
  seed: number,
  load: NicLoad
) => {
  const { busy, ops } = context
  const lookup = () => registry.lookup(device)
  let seq = 0
  const sender = (index: number) =>
    Effect.gen(function*() {
      const rand = random(seed * 1_000 + index)
      yield* stagger(load.interval, rand)
      while (!ops.stopping) {
        const found = yield* waitFor<NetDevice>(ops, lookup, 1)
        if (Option.isNone(found)) return
        const frame = makeFrame(origin, seq++, load.frameSize)
        yield* busy.track(ops, device, "send", found.value.send(frame), isGone)
        yield* pause(load.interval, rand)
      }
    })
  const seen = new Map<number, Set<number>>()
  const receiver = Effect.gen(function*() {
    while (!ops.stopping) {
      const found = yield* waitFor<NetDevice>(ops, lookup, 1)
      if (Option.isNone(found)) return
      const frame = yield* busy.track(ops, device, "receive", found.value.receive(), isGone)
      if (Option.isNone(frame)) {
        // Gone: the device is going away; look it up again once it is back.
        yield* Effect.sleep(1)
        continue
      }
      const header = checkFrame(frame.value)
      const mine = ops.of(device)
      if (header === undefined) {
        mine.corrupt++
        ops.problem(device, `received a corrupt frame (${frame.value.length} bytes)`)
        continue
      }
      let fromOrigin = seen.get(header.origin)
      if (fromOrigin === undefined) seen.set(header.origin, fromOrigin = new Set())
      if (fromOrigin.has(header.seq)) {
        mine.corrupt++
        ops.problem(device, `received frame ${header.seq} from origin ${header.origin} twice`)
      }
      fromOrigin.add(header.seq)
    }
  })
  return Effect.all([...Array.from({ length: load.window }, (_, i) => sender(i)), receiver], {
    concurrency: "unbounded",
    discard: true
  })
}

// ---------------------------------------------------------------------------------------
// Block: each worker owns a sector range and knows what the medium holds there.

export interface BlkLoad {
  readonly workers: number
  readonly writeRatio: number
  readonly sectorsPerRequest: number
  readonly interval: number
  readonly flushEvery: number
}

/** The bytes of `sector` after write number `version` to it (version 0: never written). */
export const sectorContents = (sector: number, version: number, size: number): Uint8Array => {
  const data = new Uint8Array(size)
  if (version === 0) return data
  const view = new DataView(data.buffer)
  view.setUint32(0, sector)
  view.setUint32(4, version)
  for (let i = 8; i < size; i++) data[i] = (sector * 13 + version * 29 + i) & 0xff
  return data
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** What a worker knows of a sector: the version last acknowledged, or unknown after a failed write. */
type Known = number | "unknown"

export const blkLoad = (context: LoadContext, registry: BlockDevicesRegistry, device: string, seed: number, load: BlkLoad) => {
  const { busy, ops } = context
  const lookup = () => registry.lookup(device)
  // The medium outlives the device: what the workers know survives unplug and re-plug.
  const known = new Map<number, Known>()
  const worker = (index: number) =>
    Effect.gen(function*() {
      const rand = random(seed * 1_000 + index)
      // A stream of its own for the pauses: the requests stay what they were for a seed.
      const jitter = random(seed * 1_000 + 500 + index)
      yield* stagger(load.interval, jitter)
      let requests = 0
      while (!ops.stopping) {
        const found = yield* waitFor<BlockDevice>(ops, lookup, 1)
        if (Option.isNone(found)) return
        const blk = found.value
        const span = Math.max(load.sectorsPerRequest, Math.floor(blk.sectors / load.workers))
        const base = index * span
        const count = load.sectorsPerRequest
        const sector = base + Math.floor(rand() * Math.max(1, span - count))
        requests++
        if (load.flushEvery > 0 && requests % load.flushEvery === 0) {
          yield* busy.track(ops, device, "flush", blk.flush(), isGone)
        } else if (rand() < load.writeRatio) {
          const data = new Uint8Array(count * blk.sectorSize)
          const versions: Array<number> = []
          for (let s = 0; s < count; s++) {
            const previous = known.get(sector + s)
            const version = (typeof previous === "number" ? previous : 1_000_000 + requests) + 1
            versions.push(version)
            data.set(sectorContents(sector + s, version, blk.sectorSize), s * blk.sectorSize)
          }
          const written = yield* busy.track(ops, device, "write", Effect.as(blk.write(sector, data), true), isGone)
          for (let s = 0; s < count; s++) known.set(sector + s, Option.isSome(written) ? versions[s]! : "unknown")
        } else {
          const data = yield* busy.track(ops, device, "read", blk.read(sector, count), isGone)
          if (Option.isSome(data)) {
            for (let s = 0; s < count; s++) {
              const expected = known.get(sector + s) ?? 0
              if (expected === "unknown") continue
              const got = data.value.subarray(s * blk.sectorSize, (s + 1) * blk.sectorSize)
              if (!equalBytes(got, sectorContents(sector + s, expected, blk.sectorSize))) {
                ops.of(device).corrupt++
                ops.problem(device, `sector ${sector + s} does not hold its acknowledged write (version ${expected})`)
              }
            }
          }
        }
        yield* pause(load.interval, jitter)
      }
    })
  return Effect.all(Array.from({ length: load.workers }, (_, i) => worker(i)), { concurrency: "unbounded", discard: true })
}

// ---------------------------------------------------------------------------------------
// Sensor: readers through the gate, and attribute reads from outside the binding.

export interface SensorLoad {
  readonly readers: number
  readonly interval: number
}

/** Attributes read from outside the binding; each must be None once its binding has ended. */
const ATTRIBUTES = ["temp1_input", "temp1_max", "samples"] as const

export const sensorLoad = (context: LoadContext, registry: HwmonRegistry, device: string, seed: number, load: SensorLoad) => {
  const { busy, ops } = context
  const lookup = () => registry.lookup(device)
  /**
   * Reads a handle's attributes as code outside the binding does (`tryAccess`). A handle
   * belongs to the binding it was published by: once that binding has ended (the device's
   * `Unbound` count went past `epoch`), every read must be None. A value then is a revoked
   * resource returning a value: G1 broken.
   */
  const readAttributes = (handle: SensorHandle, epoch: number) => {
    const ended = context.bindingsEnded(device) > epoch
    for (const name of ATTRIBUTES) {
      const value = handle.attribute(name)
      if (Option.isNone(value)) continue
      if (ended) {
        context.violation({
          guarantee: "G1",
          device,
          message: `attribute ${name} read outside the binding returned ${value.value} after the binding had ended ` +
            `(tryAccess must say None)`
        })
      } else if (name === "temp1_input" && (value.value < SensorModel.TEMP_MIN || value.value >= SensorModel.TEMP_MAX + SensorModel.NOISE)) {
        ops.of(device).corrupt++
        ops.problem(device, `attribute temp1_input ${value.value} out of the model's range`)
      }
    }
    return ended
  }
  const reader = (index: number) =>
    Effect.gen(function*() {
      const rand = random(seed * 1_000 + index)
      yield* stagger(load.interval, rand)
      // Handles of bindings this reader used, read again once their binding has ended.
      let retired: Array<{ readonly handle: SensorHandle; readonly epoch: number }> = []
      let current: { readonly handle: SensorHandle; readonly epoch: number } | undefined
      while (!ops.stopping) {
        const found = yield* waitFor(ops, lookup, 1)
        if (Option.isNone(found)) break
        if (current?.handle !== found.value) {
          if (current !== undefined) retired.push(current)
          current = { handle: found.value, epoch: context.bindingsEnded(device) }
        }
        const value = yield* busy.track(ops, device, "readTemperature", found.value.readTemperature(), isGone)
        if (Option.isSome(value) && (value.value < SensorModel.TEMP_MIN || value.value >= SensorModel.TEMP_MAX + SensorModel.NOISE)) {
          ops.of(device).corrupt++
          ops.problem(device, `temperature ${value.value} out of the model's range`)
        }
        readAttributes(current.handle, current.epoch)
        // An old handle is checked once its binding has ended, then dropped.
        retired = retired.filter((r) => !readAttributes(r.handle, r.epoch))
        yield* pause(load.interval, rand)
      }
      // At the end every binding has ended: no handle this reader held may return a value.
      for (const r of current === undefined ? retired : [...retired, current]) readAttributes(r.handle, r.epoch)
    })
  return Effect.all(Array.from({ length: load.readers }, (_, i) => reader(i)), { concurrency: "unbounded", discard: true })
}

// ---------------------------------------------------------------------------------------
// edu: each worker computes a factorial, then sends bytes into its part of the device's
// buffer and reads them back.

export interface EduLoad {
  readonly workers: number
  readonly dmaBytes: number
  readonly interval: number
}

/** Bytes of the device's buffer each worker owns (8 workers of at most 448 bytes stay clear of its end). */
const EDU_SLICE = 512

const factorialU32 = (n: number) => {
  let r = 1
  for (let i = 2; i <= n; i++) r = Math.imul(r, i) >>> 0
  return r
}

export const eduLoad = (context: LoadContext, registry: EduDevicesRegistry, device: string, seed: number, load: EduLoad) => {
  const { busy, ops } = context
  const lookup = () => registry.lookup(device)
  const worker = (index: number) =>
    Effect.gen(function*() {
      const rand = random(seed * 1_000 + index)
      yield* stagger(load.interval, rand)
      const offset = index * EDU_SLICE
      let round = 0
      while (!ops.stopping) {
        const found = yield* waitFor(ops, lookup, 1)
        if (Option.isNone(found)) return
        const edu = found.value
        round++
        const n = Math.floor(rand() * 13)
        const fact = yield* busy.track(ops, device, "factorial", edu.factorial(n), isGone)
        if (Option.isSome(fact) && fact.value !== factorialU32(n)) {
          ops.of(device).corrupt++
          ops.problem(device, `${n}! came back as ${fact.value} (expected ${factorialU32(n)})`)
        }
        const data = Uint8Array.from({ length: load.dmaBytes }, (_, i) => (seed * 7 + index * 31 + round * 13 + i) & 0xff)
        // The round trip is checked only within one binding: a re-plugged device's buffer is new.
        const epoch = context.bindingsEnded(device)
        const sent = yield* busy.track(ops, device, "dmaToDevice", Effect.as(edu.dmaToDevice(data, { offset }), true), isGone)
        if (Option.isSome(sent)) {
          const back = yield* busy.track(ops, device, "dmaFromDevice", edu.dmaFromDevice(load.dmaBytes, { offset }), isGone)
          if (Option.isSome(back) && context.bindingsEnded(device) === epoch && !equalBytes(back.value, data)) {
            ops.of(device).corrupt++
            ops.problem(device, `a DMA round trip of ${load.dmaBytes} bytes at offset ${offset} came back different`)
          }
        }
        yield* pause(load.interval, rand)
      }
    })
  return Effect.all(Array.from({ length: load.workers }, (_, i) => worker(i)), { concurrency: "unbounded", discard: true })
}
