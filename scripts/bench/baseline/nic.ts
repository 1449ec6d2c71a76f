/**
 * B4 baseline: a plain-TypeScript driver for the acme NIC (examples/nic), written without
 * devscope's driver model, on the same simulator. It exists only to measure what devscope's
 * driver model costs on the example's datapath; it has no unbind story at all.
 *
 * How it maps to the example (examples/nic/src/driver.ts, datapath.ts):
 *
 * - Same device model (`NicModel.model`), register map (offsets taken from
 *   `NicModel.registers`), descriptor layout (`NicModel.Desc`: addr u32 @0, len u16 @4,
 *   flags u16 @6) and ring protocol; same ring size, NAPI budget and RX backlog.
 * - The device is plugged with no driver registered; the baseline takes its register window,
 *   interrupt line and DMA port from the simulator's `Hardware` service (`sim.hardware`, what
 *   `Hardware.iomap`, `Irq.request` and `Dma.allocCoherent` wrap) and reads and writes
 *   registers by offset (`region.read32` / `write32`): no `Mmio`, no Devres, no token.
 * - Same memory: one coherent allocation per ring and per buffer pool (2 KiB per descriptor),
 *   allocated once; descriptors are read and written through a `DataView` over the coherent
 *   memory instead of a `Dma.view`.
 * - Same copies: one copy of a frame into its TX buffer, one copy out of its RX buffer into a
 *   fresh `Uint8Array` (the device model makes its own copies, the same on both sides). The
 *   copy primitive is an option: `"bulk"` (`Uint8Array.set` / `slice`, what a plain driver
 *   would write; the default) or `"bytewise"` (a byte at a time through a `DataView`, as the
 *   example's `Dma.view` loop does, since devscope's coherent views have no bulk copy).
 * - Same interrupt scheme: the hard handler (a plain callback on the line, run synchronously
 *   when the device raises it, instead of devscope's dispatcher fiber) reads `INT_STATUS`,
 *   masks the card, acknowledges link changes and wakes the poll fiber through the same
 *   `Queue.dropping(1)`; the poll fiber (a plain scoped fiber instead of `Bound.fork`) runs
 *   the same loop: acknowledge `TX_DONE | RX`, reap TX then RX up to `budget`, yield between
 *   batches, unmask once a batch comes in under budget.
 * - Same user calls: `send` claims a descriptor, copies, rings the doorbell and registers a
 *   `Deferred` (no Gate section around it), then awaits it; a full ring fails at once.
 *   `receive` takes a backlogged frame or registers a waiter, as the example's `Completions`.
 */
import { Data, Deferred, Effect, Exit, FiberId, Queue } from "effect"
import type * as Scope from "effect/Scope"
import type { Simulator } from "@devscope/sim"
// The examples are workspace packages the root does not depend on: import their sources.
import { BUFFER_SIZE, NicModel } from "../../../examples/nic/src/index.js"

/** Register offsets, from the example's register map. */
const R = Object.fromEntries(
  Object.entries(NicModel.registers.registers).map(([name, reg]) => [name, reg.offset])
) as { readonly [K in keyof NicModel.Registers]: number }

/** Descriptor field offsets (`NicModel.Desc`), and its size. */
const D_ADDR = NicModel.Desc.offsets.addr
const D_LEN = NicModel.Desc.offsets.len
const D_FLAGS = NicModel.Desc.offsets.flags
const D_SIZE = NicModel.Desc.size

const ALL_ONES = 0xffffffff
const RUN = NicModel.CTRL_ENABLE | NicModel.CTRL_RX_ENABLE | NicModel.CTRL_TX_ENABLE
const SITE = "scripts/bench/baseline/nic.ts"

export class BaselineTxQueueFull extends Data.TaggedError("TxQueueFull")<{ readonly device: string }> {}

export interface Options {
  readonly budget?: number | undefined
  readonly ringSize?: number | undefined
  readonly backlog?: number | undefined
  readonly copy?: "bulk" | "bytewise" | undefined
}

export interface Stats {
  txFrames: number
  txBytes: number
  rxFrames: number
  rxBytes: number
  rxDropped: number
  txErrors: number
  txQueueFull: number
  interrupts: number
  polls: number
  linkChanges: number
}

export interface BaselineNic {
  readonly device: string
  send(frame: Uint8Array): Effect.Effect<void, BaselineTxQueueFull>
  receive(): Effect.Effect<Uint8Array>
  stats(): Stats
}

interface Waiter {
  readonly deferred: Deferred.Deferred<Uint8Array>
  frame: Uint8Array | undefined
}

/**
 * Drives the plugged card `dev` (plugged with no driver bound) until `Scope` closes: sets it
 * up as the example's probe does and returns its user calls.
 */
export const attach = (
  sim: Simulator.Service,
  dev: Pick<Simulator.SimDevice, "name" | "device">,
  options: Options = {}
): Effect.Effect<BaselineNic, never, Scope.Scope> =>
  Effect.gen(function*() {
    const budget = options.budget ?? 16
    const size = options.ringSize ?? 64
    const backlogLimit = options.backlog ?? 1024
    const bytewise = options.copy === "bytewise"
    const name = dev.name
    const regs = yield* Effect.orDie(sim.hardware.region(dev.device, 0))
    const line = yield* Effect.orDie(sim.hardware.irq(dev.device, 0))
    const port = sim.hardware.dma(dev.device)
    port.setMask(32)
    if (regs.read32(R.ID) !== NicModel.ID_VALUE) return yield* Effect.dieMessage(`${name}: not an acme nic`)
    regs.write32(R.CTRL, NicModel.CTRL_RESET)

    const stats: Stats = {
      txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0,
      txErrors: 0, txQueueFull: 0, interrupts: 0, polls: 0, linkChanges: 0
    }
    // Completions: a Deferred per queued TX descriptor, waiting receivers, the RX backlog.
    const txPending: Array<Deferred.Deferred<void> | undefined> = new Array(size).fill(undefined)
    const waiters: Array<Waiter> = []
    const backlog: Array<Uint8Array> = []
    const deliver = (frame: Uint8Array): boolean => {
      const waiter = waiters.shift()
      if (waiter !== undefined) {
        waiter.frame = frame
        Deferred.unsafeDone(waiter.deferred, Exit.succeed(frame))
        return true
      }
      if (backlog.length >= backlogLimit) return false
      backlog.push(frame)
      return true
    }

    // Rings and buffer pools: coherent memory, as the example's four Dma.allocCoherent.
    const alloc = (bytes: number) => Effect.orDie(port.allocCoherent(bytes, SITE))
    const txRing = yield* alloc(size * D_SIZE)
    const txPool = yield* alloc(size * BUFFER_SIZE)
    const rxRing = yield* alloc(size * D_SIZE)
    const rxPool = yield* alloc(size * BUFFER_SIZE)
    const dv = (m: Uint8Array) => new DataView(m.buffer, m.byteOffset, m.byteLength)
    const tx = dv(txRing.memory)
    const rx = dv(rxRing.memory)
    const txBytes = txPool.memory
    const rxBytes = rxPool.memory
    const txBytesView = dv(txBytes)
    const rxBytesView = dv(rxBytes)

    let txTail = 0
    let txClean = 0
    let rxNext = 0
    let rxTail = 0
    let hwDropped = 0
    const txInFlight = () => (txTail - txClean + size) % size

    const post = (i: number) => {
      rx.setUint32(i * D_SIZE + D_ADDR, rxPool.iova + i * BUFFER_SIZE, true)
      rx.setUint16(i * D_SIZE + D_LEN, BUFFER_SIZE, true)
      rx.setUint16(i * D_SIZE + D_FLAGS, NicModel.DESC_OWN, true)
    }
    for (let i = 0; i < size; i++) {
      tx.setUint32(i * D_SIZE + D_ADDR, txPool.iova + i * BUFFER_SIZE, true)
      tx.setUint16(i * D_SIZE + D_LEN, 0, true)
      tx.setUint16(i * D_SIZE + D_FLAGS, 0, true)
      rx.setUint16(i * D_SIZE + D_FLAGS, 0, true)
    }
    for (let i = 0; i < size - 1; i++) post(i)
    rxTail = size - 1
    regs.write32(R.TX_RING_BASE, txRing.iova)
    regs.write32(R.TX_RING_SIZE, size)
    regs.write32(R.TX_TAIL, 0)
    regs.write32(R.RX_RING_BASE, rxRing.iova)
    regs.write32(R.RX_RING_SIZE, size)
    regs.write32(R.RX_TAIL, rxTail)

    const queueTx = (frame: Uint8Array): Deferred.Deferred<void> | undefined => {
      if (txInFlight() === size - 1) return undefined
      const slot = txTail
      const base = slot * BUFFER_SIZE
      if (bytewise) for (let i = 0; i < frame.byteLength; i++) txBytesView.setUint8(base + i, frame[i]!)
      else txBytes.set(frame, base)
      tx.setUint16(slot * D_SIZE + D_LEN, frame.byteLength, true)
      tx.setUint16(slot * D_SIZE + D_FLAGS, NicModel.DESC_OWN, true)
      const done = Deferred.unsafeMake<void>(FiberId.none)
      txPending[slot] = done
      txTail = (slot + 1) % size
      regs.write32(R.TX_TAIL, txTail)
      return done
    }

    const reapTx = (limit: number): number => {
      let n = 0
      while (n < limit && txClean !== txTail) {
        const slot = txClean
        const flags = tx.getUint16(slot * D_SIZE + D_FLAGS, true)
        if ((flags & NicModel.DESC_DONE) === 0) break
        if ((flags & NicModel.DESC_ERR) !== 0) stats.txErrors++
        else {
          stats.txFrames++
          stats.txBytes += tx.getUint16(slot * D_SIZE + D_LEN, true)
        }
        tx.setUint16(slot * D_SIZE + D_FLAGS, 0, true)
        const pending = txPending[slot]
        txPending[slot] = undefined
        if (pending !== undefined) Deferred.unsafeDone(pending, Exit.void)
        txClean = (slot + 1) % size
        n++
      }
      return n
    }

    const reapRx = (limit: number): number => {
      let n = 0
      while (n < limit) {
        const slot = rxNext
        const flags = rx.getUint16(slot * D_SIZE + D_FLAGS, true)
        if ((flags & NicModel.DESC_DONE) === 0) break
        if ((flags & NicModel.DESC_ERR) === 0) {
          const len = rx.getUint16(slot * D_SIZE + D_LEN, true)
          const base = slot * BUFFER_SIZE
          let frame: Uint8Array
          if (bytewise) {
            frame = new Uint8Array(len)
            for (let i = 0; i < len; i++) frame[i] = rxBytesView.getUint8(base + i)
          } else {
            frame = rxBytes.slice(base, base + len)
          }
          stats.rxFrames++
          stats.rxBytes += len
          if (!deliver(frame)) stats.rxDropped++
        }
        rx.setUint16(slot * D_SIZE + D_FLAGS, 0, true)
        rxNext = (slot + 1) % size
        post(rxTail)
        rxTail = (rxTail + 1) % size
        n++
      }
      if (n > 0) regs.write32(R.RX_TAIL, rxTail)
      return n
    }

    const readDropped = () => {
      const dropped = regs.read32(R.RX_DROPPED)
      if (dropped === ALL_ONES) return
      stats.rxDropped += dropped - hwDropped
      hwDropped = dropped
    }

    const poll = (limit: number): number => {
      stats.polls++
      regs.write32(R.INT_STATUS, NicModel.INT_TX_DONE | NicModel.INT_RX)
      const t = reapTx(limit)
      const r = reapRx(limit - t)
      readDropped()
      return t + r
    }

    // Hard handler: a plain callback on the line.
    const wake = yield* Queue.dropping<void>(1)
    const unlisten = line.listen(() => {
      const status = regs.read32(R.INT_STATUS)
      if (status === ALL_ONES || (status & NicModel.INT_ALL) === 0) return
      regs.write32(R.INT_MASK, NicModel.INT_ALL)
      stats.interrupts++
      if ((status & NicModel.INT_LINK_CHANGE) !== 0) {
        regs.write32(R.INT_STATUS, NicModel.INT_LINK_CHANGE)
        stats.linkChanges++
      }
      if ((status & (NicModel.INT_TX_DONE | NicModel.INT_RX)) !== 0) Queue.unsafeOffer(wake, undefined)
      else regs.write32(R.INT_MASK, 0)
    })

    // The poll fiber (NAPI), a plain fiber of the caller's scope.
    yield* Effect.forkScoped(Effect.gen(function*() {
      for (;;) {
        yield* Queue.take(wake)
        while (poll(budget) >= budget) yield* Effect.yieldNow()
        regs.write32(R.INT_MASK, 0)
      }
    }))

    // Teardown (not measured): stop the card, stop listening, free the memory. The model's
    // engines are synchronous between latencies and check CTRL when they wake, so no DMA
    // follows the stop.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        regs.write32(R.INT_MASK, NicModel.INT_ALL)
        regs.write32(R.CTRL, 0)
        unlisten()
        for (const m of [txRing, txPool, rxRing, rxPool]) port.freeCoherent(m.iova, SITE)
      })
    )

    regs.write32(R.INT_STATUS, NicModel.INT_ALL)
    regs.write32(R.INT_MASK, 0)
    regs.write32(R.CTRL, RUN)

    return {
      device: name,
      send: (frame) =>
        Effect.flatMap(
          Effect.suspend(() => {
            const done = queueTx(frame)
            if (done !== undefined) return Effect.succeed(done)
            stats.txQueueFull++
            return Effect.fail(new BaselineTxQueueFull({ device: name }))
          }),
          Deferred.await
        ),
      receive: () =>
        Effect.flatMap(
          Effect.sync((): Uint8Array | Waiter => {
            const frame = backlog.shift()
            if (frame !== undefined) return frame
            const waiter: Waiter = { deferred: Deferred.unsafeMake(FiberId.none), frame: undefined }
            waiters.push(waiter)
            return waiter
          }),
          (next) =>
            next instanceof Uint8Array
              ? Effect.succeed(next)
              : Effect.onInterrupt(Deferred.await(next.deferred), () =>
                Effect.sync(() => {
                  const i = waiters.indexOf(next)
                  if (i >= 0) waiters.splice(i, 1)
                  if (next.frame !== undefined) backlog.unshift(next.frame)
                }))
        ),
      stats: () => ({ ...stats })
    }
  })
