/**
 * The driver's hot path: descriptor rings, the buffer pools and the completions waiting on
 * them. Everything here is plain synchronous code on the binding's resources, reached with
 * `devres.access(token)` (one identity compare each, no Option, no Effect), so one poll batch
 * or one `send` costs a few function calls and the byte copies.
 *
 * @since 0.1.0
 */
import { Deferred, Exit, FiberId } from "effect"
import type { Bound, DeviceError, Devres, Mmio } from "@devscope/core"
import { Dma } from "@devscope/core"
import * as NicModel from "./model.js"
import type { NetStats } from "./netdevice.js"

/**
 * Bytes per frame buffer; also the largest frame `send` accepts.
 * @since 0.1.0
 */
export const BUFFER_SIZE = 2048

/**
 * A descriptor ring of `size` descriptors.
 * @internal
 */
export const ringLayout = (size: number) => Dma.array(NicModel.Desc, size)

const Byte = Dma.struct({ byte: "u8" })
/**
 * A pool of `size` frame buffers, one per descriptor, `BUFFER_SIZE` bytes each.
 * @internal
 */
export const poolLayout = (size: number) => Dma.array(Byte, size * BUFFER_SIZE)

/** @since 0.1.0 */
export type Ring = Dma.Coherent<ReturnType<typeof ringLayout>>
/** @since 0.1.0 */
export type Pool = Dma.Coherent<ReturnType<typeof poolLayout>>
/** @since 0.1.0 */
export type Regs = Mmio.Mmio<NicModel.Registers>

/**
 * Mutable counters behind `NetDevice.stats()`; plain memory, so they outlive the binding.
 * @internal
 */
export type MutableStats = { -readonly [K in keyof NetStats]: NetStats[K] }

/** @internal */
export const emptyStats = (): MutableStats => ({
  txFrames: 0,
  txBytes: 0,
  rxFrames: 0,
  rxBytes: 0,
  rxDropped: 0,
  txErrors: 0,
  txQueueFull: 0,
  interrupts: 0,
  polls: 0,
  linkChanges: 0
})

const ALL_ONES = 0xffffffff

/**
 * A `receive` call waiting for a frame.
 * @internal
 */
export interface Waiter {
  readonly deferred: Deferred.Deferred<Uint8Array, DeviceError.DeviceGone>
  /** Set when a frame was handed over, so an interrupted receiver can give it back. */
  frame: Uint8Array | undefined
}

/**
 * Operations in flight: one Deferred per queued TX descriptor, the receivers waiting, and
 * received frames nobody has asked for yet. Completion is first-wins, so whichever of the
 * poll fiber (success) and the unbind (`DeviceGone`) gets there first decides, once.
 * @since 0.1.0
 */
export class Completions {
  /** @since 0.1.0 */
  readonly tx: Array<Deferred.Deferred<void, DeviceError.DeviceGone> | undefined>
  /** @since 0.1.0 */
  readonly waiters: Array<Waiter> = []
  /** @since 0.1.0 */
  readonly backlog: Array<Uint8Array> = []
  constructor(
    readonly gone: DeviceError.DeviceGone,
    ringSize: number,
    readonly backlogLimit: number,
    readonly stats: MutableStats
  ) {
    this.tx = new Array(ringSize).fill(undefined)
  }

  /**
   * Hands a frame to the oldest receiver, or keeps it; false if the backlog is full.
   * @since 0.1.0
   */
  deliver(frame: Uint8Array): boolean {
    const waiter = this.waiters.shift()
    if (waiter !== undefined) {
      waiter.frame = frame
      Deferred.unsafeDone(waiter.deferred, Exit.succeed(frame))
      return true
    }
    if (this.backlog.length >= this.backlogLimit) return false
    this.backlog.push(frame)
    return true
  }

  /**
   * A frame if one is waiting, else a new waiter.
   * @since 0.1.0
   */
  take(): Uint8Array | Waiter {
    const frame = this.backlog.shift()
    if (frame !== undefined) return frame
    const waiter: Waiter = { deferred: Deferred.unsafeMake(FiberId.none), frame: undefined }
    this.waiters.push(waiter)
    return waiter
  }

  /**
   * An interrupted receiver: forget it, and put back a frame it was given but never saw.
   * @since 0.1.0
   */
  abandon(waiter: Waiter) {
    const i = this.waiters.indexOf(waiter)
    if (i >= 0) this.waiters.splice(i, 1)
    if (waiter.frame !== undefined) this.backlog.unshift(waiter.frame)
  }

  /**
   * Fails every pending send and receiver with `DeviceGone`. Returns how many there were.
   * @since 0.1.0
   */
  failAll(): number {
    let failed = 0
    const gone = Exit.fail(this.gone)
    for (let i = 0; i < this.tx.length; i++) {
      const pending = this.tx[i]
      if (pending === undefined) continue
      this.tx[i] = undefined
      Deferred.unsafeDone(pending, gone)
      failed++
    }
    for (const waiter of this.waiters.splice(0, this.waiters.length)) {
      Deferred.unsafeDone(waiter.deferred, gone)
      failed++
    }
    return failed
  }
}

/**
 * The binding's resources the datapath works on.
 * @internal
 */
export interface Resources {
  readonly bar: Devres.Devres<Regs, "nic">
  readonly txRing: Devres.Devres<Ring, "nic">
  readonly txBuffers: Devres.Devres<Pool, "nic">
  readonly rxRing: Devres.Devres<Ring, "nic">
  readonly rxBuffers: Devres.Devres<Pool, "nic">
  readonly completions: Devres.Devres<Completions, "nic">
}

/**
 * Ring indices and the synchronous operations on them. TX: the driver fills `txTail` and
 * reaps from `txClean`; RX: the driver reads completed descriptors from `rxNext` and
 * re-posts one buffer at `rxTail` for each.
 * @since 0.1.0
 */
export class Datapath {
  /** @since 0.1.0 */
  txTail = 0
  /** @since 0.1.0 */
  txClean = 0
  /** @since 0.1.0 */
  rxNext = 0
  /** @since 0.1.0 */
  rxTail = 0
  private hwDropped = 0

  constructor(readonly res: Resources, readonly size: number, readonly stats: MutableStats) {}

  /** TX descriptors the device has not completed (and the driver not reaped) yet. */
  get txInFlight(): number {
    return (this.txTail - this.txClean + this.size) % this.size
  }

  /**
   * Programs both rings and posts every RX buffer but one (head === tail means empty).
   * @since 0.1.0
   */
  setup(token: Bound.Bound<"nic">) {
    const bar = this.res.bar.access(token)
    const tx = this.res.txRing.access(token)
    const rx = this.res.rxRing.access(token)
    const rxPool = this.res.rxBuffers.access(token)
    for (let i = 0; i < this.size; i++) {
      tx.view.set(i, "addr", this.res.txBuffers.access(token).iova + i * BUFFER_SIZE)
      tx.view.set(i, "len", 0)
      tx.view.set(i, "flags", 0)
      rx.view.set(i, "flags", 0)
    }
    for (let i = 0; i < this.size - 1; i++) this.post(rx, rxPool, i)
    this.rxTail = this.size - 1
    bar.write("TX_RING_BASE", tx.iova)
    bar.write("TX_RING_SIZE", this.size)
    bar.write("TX_TAIL", 0)
    bar.write("RX_RING_BASE", rx.iova)
    bar.write("RX_RING_SIZE", this.size)
    bar.write("RX_TAIL", this.rxTail)
  }

  /** @internal */
  private post(rx: Ring, pool: Pool, i: number) {
    rx.view.set(i, "addr", pool.iova + i * BUFFER_SIZE)
    rx.view.set(i, "len", BUFFER_SIZE)
    rx.view.set(i, "flags", NicModel.DESC_OWN)
  }

  /**
   * Copies `frame` into the next TX buffer, hands the descriptor to the device and rings the
   * doorbell. Returns the Deferred the poll fiber completes, or `undefined` if the ring is full.
   * @since 0.1.0
   */
  queueTx(token: Bound.Bound<"nic">, frame: Uint8Array): Deferred.Deferred<void, DeviceError.DeviceGone> | undefined {
    if (this.txInFlight === this.size - 1) return undefined
    const ring = this.res.txRing.access(token).view
    const pool = this.res.txBuffers.access(token).view
    const completions = this.res.completions.access(token)
    const slot = this.txTail
    const base = slot * BUFFER_SIZE
    pool.copyIn(base, frame)
    ring.set(slot, "len", frame.byteLength)
    ring.set(slot, "flags", NicModel.DESC_OWN)
    const done = Deferred.unsafeMake<void, DeviceError.DeviceGone>(FiberId.none)
    completions.tx[slot] = done
    this.txTail = (slot + 1) % this.size
    this.res.bar.access(token).write("TX_TAIL", this.txTail)
    return done
  }

  /**
   * Completes up to `budget` sent frames. Returns how many.
   * @since 0.1.0
   */
  reapTx(token: Bound.Bound<"nic">, budget: number): number {
    const ring = this.res.txRing.access(token).view
    const completions = this.res.completions.access(token)
    let n = 0
    while (n < budget && this.txClean !== this.txTail) {
      const slot = this.txClean
      const flags = ring.get(slot, "flags")
      if ((flags & NicModel.DESC_DONE) === 0) break
      if ((flags & NicModel.DESC_ERR) !== 0) {
        this.stats.txErrors++
      } else {
        this.stats.txFrames++
        this.stats.txBytes += ring.get(slot, "len")
      }
      ring.set(slot, "flags", 0)
      const pending = completions.tx[slot]
      completions.tx[slot] = undefined
      // The device is done with the frame, even after an error: the send resolves.
      if (pending !== undefined) Deferred.unsafeDone(pending, Exit.void)
      this.txClean = (slot + 1) % this.size
      n++
    }
    return n
  }

  /**
   * Takes up to `budget` received frames off the ring, re-posting a buffer for each.
   * @since 0.1.0
   */
  reapRx(token: Bound.Bound<"nic">, budget: number): number {
    const ring = this.res.rxRing.access(token)
    const pool = this.res.rxBuffers.access(token)
    const completions = this.res.completions.access(token)
    const view = ring.view
    let n = 0
    while (n < budget) {
      const slot = this.rxNext
      const flags = view.get(slot, "flags")
      if ((flags & NicModel.DESC_DONE) === 0) break
      if ((flags & NicModel.DESC_ERR) === 0) {
        const len = view.get(slot, "len")
        const frame = new Uint8Array(len)
        const base = slot * BUFFER_SIZE
        pool.view.copyOut(base, frame)
        this.stats.rxFrames++
        this.stats.rxBytes += len
        if (!completions.deliver(frame)) this.stats.rxDropped++
      }
      view.set(slot, "flags", 0)
      this.rxNext = (slot + 1) % this.size
      this.post(ring, pool, this.rxTail)
      this.rxTail = (this.rxTail + 1) % this.size
      n++
    }
    if (n > 0) this.res.bar.access(token).write("RX_TAIL", this.rxTail)
    return n
  }

  /**
   * One NAPI batch: acknowledge the causes, then TX completions and RX frames up to `budget`.
   * @since 0.1.0
   */
  poll(token: Bound.Bound<"nic">, budget: number): number {
    this.stats.polls++
    const bar = this.res.bar.access(token)
    bar.write("INT_STATUS", NicModel.INT_TX_DONE | NicModel.INT_RX)
    const tx = this.reapTx(token, budget)
    const rx = this.reapRx(token, budget - tx)
    this.readDropped(bar)
    return tx + rx
  }

  /**
   * Folds the device's drop counter into the stats (the device drops without interrupting).
   * @since 0.1.0
   */
  readDropped(bar: Regs) {
    const dropped = bar.read("RX_DROPPED")
    if (dropped === ALL_ONES) return
    this.stats.rxDropped += dropped - this.hwDropped
    this.hwDropped = dropped
  }
}
