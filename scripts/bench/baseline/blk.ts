/**
 * B4 baseline: a plain-TypeScript driver for the acme blk device (examples/blk), written
 * without devscope's driver model, on the same simulator. It exists only to measure what
 * devscope's driver model costs on the example's request path; it has no unbind story.
 *
 * How it maps to the example (examples/blk/src/driver.ts, queue.ts):
 *
 * - Same device model (`BlkModel.model`), register map (offsets from `BlkModel.registers`),
 *   queue entries (`BlkModel.Sqe`, `BlkModel.Cqe`, fields at the layouts' offsets) and queue
 *   protocol (SQ tail doorbell, CQ phase bit, CQ head doorbell); same queue depth (tags) and
 *   ring size (depth + 1).
 * - The device is plugged with no driver registered; the baseline takes its register window,
 *   interrupt line and DMA port from the simulator's `Hardware` service (`sim.hardware`) and
 *   reads and writes registers by offset: no `Mmio`, no Devres, no token, no Gate.
 * - Same memory and mappings: the SQ and CQ are coherent allocations (read and written through
 *   a `DataView` instead of `Dma.view`); every read or write maps its data buffer with a
 *   streaming mapping of the same direction (`port.map`, the call `Dma.map` wraps, without the
 *   Devres and the leak tracking around it), `syncForCpu` before a read's data is returned,
 *   and unmaps it (`port.unmap`) when the request resolves. A write maps a private copy of the
 *   caller's data (`slice`), a read a fresh buffer, as the example.
 * - Same request path: a FIFO tag pool (a call waits for a tag when all are busy), then the
 *   submission (map, register the request and its Deferred by tag, write the SQE, ring the
 *   doorbell), uninterruptible except where it waits, as the example's `run`; the example
 *   does the submission in a Gate section, the baseline does not.
 * - Same completion path: the interrupt handler (a plain callback on the line, run when the
 *   device raises it, instead of devscope's dispatcher fiber) acknowledges `INT_STATUS`,
 *   reaps every new completion (phase bit), writes `CQ_HEAD`, and resolves each request:
 *   sync for the CPU, unmap, return the tag, complete the Deferred (the example resolves each
 *   through an Effect, `Dma.unmap` being one).
 */
import { Deferred, Effect, Exit, FiberId } from "effect"
import type * as Scope from "effect/Scope"
import type { Hardware } from "@devscope/core"
import type { Simulator } from "@devscope/sim"
// The examples are workspace packages the root does not depend on: import their sources.
import { BlkModel } from "../../../examples/blk/src/index.js"

/** Register offsets, from the example's register map. */
const R = Object.fromEntries(
  Object.entries(BlkModel.registers.registers).map(([name, reg]) => [name, reg.offset])
) as { readonly [K in keyof typeof BlkModel.registers.spec]: number }

const SQE = BlkModel.Sqe.offsets
const SQE_SIZE = BlkModel.Sqe.size
const CQE = BlkModel.Cqe.offsets
const CQE_SIZE = BlkModel.Cqe.size

const ALL_ONES = 0xffffffff
const SITE = "scripts/bench/baseline/blk.ts"

export interface Options {
  /** Tags (requests in flight). Default 16, as the example. */
  readonly queueDepth?: number | undefined
}

export interface Stats {
  reads: number
  writes: number
  completed: number
  errors: number
  inFlight: number
  bytesRead: number
  bytesWritten: number
}

export interface BaselineBlk {
  readonly device: string
  readonly sectors: number
  readonly sectorSize: number
  read(sector: number, count: number): Effect.Effect<Uint8Array>
  write(sector: number, data: Uint8Array): Effect.Effect<void>
  stats(): Stats
}

interface Request {
  readonly tag: number
  readonly op: number
  readonly buffer: Uint8Array
  readonly iova: number
  readonly result: Deferred.Deferred<Uint8Array | undefined>
}

/** Tags, FIFO to waiters (the example's `TagPool`, without its shutdown). */
class Tags {
  private readonly free: Array<number> = []
  private readonly waiters: Array<(tag: number) => void> = []
  constructor(size: number) {
    for (let tag = size - 1; tag >= 0; tag--) this.free.push(tag)
  }
  take(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<number> {
    return Effect.suspend(() => {
      const tag = this.free.pop()
      if (tag !== undefined) return Effect.succeed(tag)
      let handed: number | undefined
      let resume: ((tag: number) => void) | undefined
      return restore(Effect.async<number>((k) => {
        resume = (t) => {
          handed = t
          k(Effect.succeed(t))
        }
        this.waiters.push(resume)
      })).pipe(Effect.onInterrupt(() =>
        Effect.sync(() => {
          const i = resume === undefined ? -1 : this.waiters.indexOf(resume)
          if (i >= 0) this.waiters.splice(i, 1)
          else if (handed !== undefined) this.put(handed)
        })
      ))
    })
  }
  put(tag: number): void {
    const waiter = this.waiters.shift()
    if (waiter === undefined) this.free.push(tag)
    else waiter(tag)
  }
}

/**
 * Drives the plugged device `dev` (plugged with no driver bound) until `Scope` closes: sets it
 * up as the example's probe does and returns its user calls.
 */
export const attach = (
  sim: Simulator.Service,
  dev: Pick<Simulator.SimDevice, "name" | "device">,
  options: Options = {}
): Effect.Effect<BaselineBlk, never, Scope.Scope> =>
  Effect.gen(function*() {
    const name = dev.name
    const regs = yield* Effect.orDie(sim.hardware.region(dev.device, 0))
    const line = yield* Effect.orDie(sim.hardware.irq(dev.device, 0))
    const port: Hardware.DmaPort = sim.hardware.dma(dev.device)
    port.setMask(32)
    if (regs.read32(R.ID) !== BlkModel.ID_VALUE) return yield* Effect.dieMessage(`${name}: not an acme blk device`)
    const cap = regs.read32(R.CAP)
    const maxEntries = cap & 0xffff
    const sectorSize = 2 ** ((cap >>> 16) & 0x1f)
    const sectors = regs.read32(R.CAPACITY)
    const depth = Math.max(1, Math.min(options.queueDepth ?? 16, maxEntries - 1))
    const ringSize = depth + 1

    const stats: Stats = { reads: 0, writes: 0, completed: 0, errors: 0, inFlight: 0, bytesRead: 0, bytesWritten: 0 }
    const tags = new Tags(depth)
    const slots: Array<Request | undefined> = new Array(depth).fill(undefined)
    let sqTail = 0
    let cqHead = 0
    let phase = 1

    const sqMem = yield* Effect.orDie(port.allocCoherent(ringSize * SQE_SIZE, SITE))
    const cqMem = yield* Effect.orDie(port.allocCoherent(ringSize * CQE_SIZE, SITE))
    const sq = new DataView(sqMem.memory.buffer, sqMem.memory.byteOffset, sqMem.memory.byteLength)
    const cq = new DataView(cqMem.memory.buffer, cqMem.memory.byteOffset, cqMem.memory.byteLength)

    const resolve = (request: Request, status: number) => {
      let exit: Exit.Exit<Uint8Array | undefined>
      if (status !== BlkModel.Status.OK) {
        stats.errors++
        exit = Exit.die(new Error(`blk ${name}: op ${request.op} completed with status ${status}`))
      } else {
        stats.completed++
        if (request.op === BlkModel.Op.READ) {
          port.syncForCpu(request.iova)
          stats.bytesRead += request.buffer.length
          exit = Exit.succeed(request.buffer)
        } else {
          stats.bytesWritten += request.buffer.length
          exit = Exit.succeed(undefined)
        }
      }
      port.unmap(request.iova, SITE)
      tags.put(request.tag)
      Deferred.unsafeDone(request.result, exit)
    }

    /** Consumes the new completions and resolves their requests. */
    const reap = () => {
      let consumed = 0
      while (cq.getUint8(cqHead * CQE_SIZE + CQE.phase) === phase) {
        const tag = cq.getUint16(cqHead * CQE_SIZE + CQE.tag, true)
        const status = cq.getUint8(cqHead * CQE_SIZE + CQE.status)
        if (++cqHead === ringSize) {
          cqHead = 0
          phase ^= 1
        }
        consumed++
        const request = slots[tag]
        if (request === undefined) continue
        slots[tag] = undefined
        stats.inFlight--
        resolve(request, status)
      }
      if (consumed > 0) regs.write32(R.CQ_HEAD, cqHead)
    }

    // The interrupt handler: a plain callback on the line; a raise during a run (none is
    // expected: the CQ has room for every tag) runs it once more.
    let running = false
    let again = false
    const handler = () => {
      if (running) return void (again = true)
      running = true
      do {
        again = false
        const status = regs.read32(R.INT_STATUS)
        if (status === ALL_ONES || status === 0) break
        regs.write32(R.INT_STATUS, status)
        reap()
      } while (again)
      running = false
    }
    const unlisten = line.listen(handler)

    const submit = (tag: number, op: number, sector: number, count: number, data: Uint8Array | undefined) =>
      Effect.map(
        Effect.suspend(() => {
          // A write maps a private copy, a read a fresh buffer, as the example.
          const buffer = op === BlkModel.Op.WRITE ? data!.slice() : new Uint8Array(count * sectorSize)
          return Effect.map(
            Effect.orDie(port.map(buffer, op === BlkModel.Op.WRITE ? "to-device" : "from-device", SITE)),
            (iova) => ({ buffer, iova })
          )
        }),
        ({ buffer, iova }) => {
          const request: Request = { tag, op, buffer, iova, result: Deferred.unsafeMake(FiberId.none) }
          if (op === BlkModel.Op.READ) stats.reads++
          else stats.writes++
          slots[tag] = request
          stats.inFlight++
          const at = sqTail * SQE_SIZE
          sq.setUint8(at + SQE.op, op)
          sq.setUint16(at + SQE.tag, tag, true)
          sq.setUint32(at + SQE.sector, sector, true)
          sq.setUint32(at + SQE.count, count, true)
          sq.setUint32(at + SQE.addr, iova, true)
          sqTail = sqTail + 1 === ringSize ? 0 : sqTail + 1
          regs.write32(R.SQ_TAIL, sqTail)
          return request
        }
      )

    const run = (op: number, sector: number, count: number, data?: Uint8Array) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(tags.take(restore), (tag) =>
          Effect.flatMap(
            Effect.onError(submit(tag, op, sector, count, data), () => Effect.sync(() => tags.put(tag))),
            (request) => restore(Deferred.await(request.result))
          ))
      )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        regs.write32(R.INT_MASK, BlkModel.INT_CQ | BlkModel.INT_ERROR)
        regs.write32(R.CTRL, 0)
        unlisten()
      })
    )

    regs.write32(R.SQ_BASE, sqMem.iova)
    regs.write32(R.SQ_SIZE, ringSize)
    regs.write32(R.CQ_BASE, cqMem.iova)
    regs.write32(R.CQ_SIZE, ringSize)
    regs.write32(R.INT_STATUS, BlkModel.INT_CQ | BlkModel.INT_ERROR)
    regs.write32(R.INT_MASK, 0)
    regs.write32(R.CTRL, BlkModel.CTRL_ENABLE)
    if ((regs.read32(R.STATUS) & BlkModel.STATUS_READY) === 0) return yield* Effect.dieMessage(`${name}: not ready`)

    const fits = (sector: number, count: number) =>
      Number.isInteger(sector) && Number.isInteger(count) && sector >= 0 && count > 0 && sector + count <= sectors
    return {
      device: name,
      sectors,
      sectorSize,
      read: (sector, count) =>
        fits(sector, count)
          ? Effect.map(run(BlkModel.Op.READ, sector, count), (buffer) => buffer!)
          : Effect.dieMessage(`out of range: ${sector}+${count}`),
      write: (sector, data) => {
        const count = data.length / sectorSize
        return Number.isInteger(count) && fits(sector, count)
          ? Effect.asVoid(run(BlkModel.Op.WRITE, sector, count, data))
          : Effect.dieMessage(`out of range: ${sector}+${count}`)
      },
      stats: () => ({ ...stats })
    }
  })
