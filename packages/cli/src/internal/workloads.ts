/**
 * The load a scenario puts on its devices, written as user code: it finds devices through
 * their class registries (net devices, block devices, hwmon), has no token, and keeps
 * going across unplug and re-plug (a device that is gone is looked up again).
 *
 * Each load checks what it gets back: NIC frames carry their origin and a checksummed
 * payload; block workers own disjoint sector ranges and know what every acknowledged write
 * left on the medium; sensor readings must be in the model's range.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { BlockDevice, BlockDevicesRegistry } from "@devscope/example-blk"
import type { NetDevice, NetDevicesRegistry } from "@devscope/example-nic"
import { type HwmonRegistry, SensorModel } from "@devscope/example-sensor"
import { Simulator } from "@devscope/sim"
import type { Oracle } from "@devscope/testing"

type Ops = Oracle.Ops

/** A deterministic generator, one per load so loads do not interfere. */
export const random = Simulator.random

const isGone = (e: { readonly _tag: string }) => e._tag === "DeviceGone" ? "gone" as const : "rejected" as const

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
export const nicLoad = (ops: Ops, registry: NetDevicesRegistry, device: string, origin: number, load: NicLoad) => {
  const lookup = () => registry.lookup(device)
  let seq = 0
  const sender = Effect.gen(function*() {
    while (!ops.stopping) {
      const found = yield* waitFor<NetDevice>(ops, lookup, 1)
      if (Option.isNone(found)) return
      const frame = makeFrame(origin, seq++, load.frameSize)
      yield* ops.track(device, "send", found.value.send(frame), isGone)
      if (load.interval > 0) yield* Effect.sleep(load.interval)
      else yield* Effect.yieldNow()
    }
  })
  const seen = new Map<number, Set<number>>()
  const receiver = Effect.gen(function*() {
    while (!ops.stopping) {
      const found = yield* waitFor<NetDevice>(ops, lookup, 1)
      if (Option.isNone(found)) return
      const frame = yield* ops.track(device, "receive", found.value.receive(), isGone)
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
  return Effect.all([...Array.from({ length: load.window }, () => sender), receiver], {
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

export const blkLoad = (ops: Ops, registry: BlockDevicesRegistry, device: string, seed: number, load: BlkLoad) => {
  const lookup = () => registry.lookup(device)
  // The medium outlives the device: what the workers know survives unplug and re-plug.
  const known = new Map<number, Known>()
  const worker = (index: number) =>
    Effect.gen(function*() {
      const rand = random(seed * 1_000 + index)
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
          yield* ops.track(device, "flush", blk.flush(), isGone)
        } else if (rand() < load.writeRatio) {
          const data = new Uint8Array(count * blk.sectorSize)
          const versions: Array<number> = []
          for (let s = 0; s < count; s++) {
            const previous = known.get(sector + s)
            const version = (typeof previous === "number" ? previous : 1_000_000 + requests) + 1
            versions.push(version)
            data.set(sectorContents(sector + s, version, blk.sectorSize), s * blk.sectorSize)
          }
          const written = yield* ops.track(device, "write", Effect.as(blk.write(sector, data), true), isGone)
          for (let s = 0; s < count; s++) known.set(sector + s, Option.isSome(written) ? versions[s]! : "unknown")
        } else {
          const data = yield* ops.track(device, "read", blk.read(sector, count), isGone)
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
        if (load.interval > 0) yield* Effect.sleep(load.interval)
        else yield* Effect.yieldNow()
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

export const sensorLoad = (ops: Ops, registry: HwmonRegistry, device: string, load: SensorLoad) => {
  const lookup = () => registry.lookup(device)
  const reader = Effect.gen(function*() {
    while (!ops.stopping) {
      const found = yield* waitFor(ops, lookup, 1)
      if (Option.isNone(found)) return
      const value = yield* ops.track(device, "readTemperature", found.value.readTemperature(), isGone)
      if (Option.isSome(value) && (value.value < SensorModel.TEMP_MIN || value.value >= SensorModel.TEMP_MAX + SensorModel.NOISE)) {
        ops.of(device).corrupt++
        ops.problem(device, `temperature ${value.value} out of the model's range`)
      }
      // An attribute read outside the binding: None once the device is gone, never a stale value.
      found.value.attribute("temp1_input")
      yield* Effect.sleep(load.interval)
    }
  })
  return Effect.all(Array.from({ length: load.readers }, () => reader), { concurrency: "unbounded", discard: true })
}
