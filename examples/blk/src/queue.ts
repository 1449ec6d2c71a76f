/**
 * The driver's request bookkeeping: the tag pool, the table of requests the device holds, the
 * submission and completion rings' CPU-side indices, and how a request is resolved. All of it
 * is plain synchronous code (the per-request path); Effects are only where a caller waits.
 *
 * Exactly once: a request is *claimed* synchronously by whoever resolves it (the interrupt
 * handler reaping its completion, or `remove` failing what is left); only the claimer resolves
 * it, unmaps its buffer and completes its Deferred. A second claim (a completion arriving for a
 * request already failed) finds it claimed and does nothing.
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Exit, FiberId, Option } from "effect"
import type { Duration } from "effect"
import { type DeviceError, Dma, type Mmio } from "@devscope/core"
import * as BlkModel from "./model.js"

type Regs = Mmio.Mmio<typeof BlkModel.registers.spec>

/**
 * The submission ring's layout for `entries` entries.
 * @internal
 */
export const sqRing = (entries: number) => Dma.array(BlkModel.Sqe, entries)
/**
 * The completion ring's layout for `entries` entries.
 * @internal
 */
export const cqRing = (entries: number) => Dma.array(BlkModel.Cqe, entries)

/** @internal */
export type SqRing = Dma.Coherent<ReturnType<typeof sqRing>>
/** @internal */
export type CqRing = Dma.Coherent<ReturnType<typeof cqRing>>

/**
 * A request the device completed with a status other than OK: a driver bug, so a defect.
 * @since 0.1.0
 */
export class BlkIoError extends Error {
  /** @since 0.1.0 */
  readonly _tag = "BlkIoError"
  constructor(readonly device: string, readonly op: number, readonly sector: number, readonly status: number) {
    super(`blk ${device}: op ${op} at sector ${sector} completed with status ${status}`)
  }
}

/**
 * Mutable counters behind `BlockDevice.stats()` (plain memory: readable after unbind).
 * @internal
 */
export interface Counters {
  reads: number
  writes: number
  flushes: number
  completed: number
  failed: number
  errors: number
  rejected: number
  inFlight: number
  bytesRead: number
  bytesWritten: number
}

/** @internal */
export const counters = (): Counters => ({
  reads: 0,
  writes: 0,
  flushes: 0,
  completed: 0,
  failed: 0,
  errors: 0,
  rejected: 0,
  inFlight: 0,
  bytesRead: 0,
  bytesWritten: 0
})

/**
 * One request handed to the device.
 * @since 0.1.0
 */
export interface Request {
  readonly tag: number
  readonly op: number
  readonly sector: number
  readonly count: number
  /** The data buffer (undefined for a flush). */
  readonly buffer: Uint8Array | undefined
  /** Its streaming mapping, unmapped by whoever claims the request. */
  readonly mapping: Dma.Mapping | undefined
  readonly result: Deferred.Deferred<Uint8Array | undefined, DeviceError.DeviceGone>
  claimed: boolean
}

const GONE = "gone"

interface Ticket {
  tag: number | undefined
  resume: ((effect: Effect.Effect<number, DeviceError.DeviceGone>) => void) | undefined
}

/**
 * Tags, FIFO to waiters. Lives outside the binding (callers wait for a tag *before* entering
 * the gate, so a wait never holds the gate's close up); `shutdown` fails the waiters with
 * `DeviceGone`, and tags returned after it are never handed out again (a device that was
 * stopped late could still hold them). `refused` is told of each call failed with `DeviceGone`.
 * @since 0.1.0
 */
export class TagPool {
  private readonly free: Array<number> = []
  private readonly waiters: Array<Ticket> = []
  private shut = false

  constructor(
    readonly size: number,
    private readonly gone: DeviceError.DeviceGone,
    private readonly refused: () => void = () => {}
  ) {
    for (let tag = size - 1; tag >= 0; tag--) this.free.push(tag)
  }

  get isShutdown(): boolean {
    return this.shut
  }

  /**
   * Waits (interruptibly, through `restore`) for a free tag. Call it from an uninterruptible
   * region: a tag handed over at the moment of an interrupt goes back to the pool.
   * @since 0.1.0
   */
  take(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<number, DeviceError.DeviceGone> {
    return Effect.suspend(() => {
      const now = this.tryTake()
      if (now === GONE) return Effect.fail(this.gone)
      if (now !== undefined) return Effect.succeed(now)
      const ticket: Ticket = { tag: undefined, resume: undefined }
      return restore(Effect.async<number, DeviceError.DeviceGone>((resume) => {
        // The fiber may have yielded since the first look: look again, then queue. A ticket
        // is only queued with its `resume`, so `put` and `shutdown` can always answer it.
        const later = this.tryTake()
        if (later === GONE) return resume(Effect.fail(this.gone))
        if (later !== undefined) {
          ticket.tag = later // handed over: an interrupt from here on gives it back
          return resume(Effect.succeed(later))
        }
        ticket.resume = resume
        this.waiters.push(ticket)
      })).pipe(Effect.onInterrupt(() => Effect.sync(() => this.cancel(ticket))))
    })
  }

  /**
   * A free tag, `GONE` after the shutdown (counted as refused), or undefined: wait.
   * @internal
   */
  private tryTake(): number | typeof GONE | undefined {
    if (this.shut) {
      this.refused()
      return GONE
    }
    return this.free.pop()
  }

  /** @since 0.1.0 */
  put(tag: number): void {
    if (this.shut) return
    const waiter = this.waiters.shift()
    if (waiter === undefined) return void this.free.push(tag)
    waiter.tag = tag
    waiter.resume!(Effect.succeed(tag))
  }

  /** @since 0.1.0 */
  shutdown(): void {
    if (this.shut) return
    this.shut = true
    for (const waiter of this.waiters.splice(0)) {
      this.refused()
      waiter.resume!(Effect.fail(this.gone))
    }
  }

  /** @internal */
  private cancel(ticket: Ticket): void {
    const i = this.waiters.indexOf(ticket)
    if (i >= 0) this.waiters.splice(i, 1)
    else if (ticket.tag !== undefined) this.put(ticket.tag)
  }
}

/**
 * The requests the device holds, by tag, and the rings' CPU-side indices. A Devres of the
 * binding: reached with the token, inside the gate, the interrupt handler and `remove`.
 * @since 0.1.0
 */
export class Requests {
  /** @since 0.1.0 */
  readonly slots: Array<Request | undefined>
  /** @since 0.1.0 */
  sqTail = 0
  /** @since 0.1.0 */
  cqHead = 0
  /**
   * The phase bit the next valid completion carries; flips at each wrap.
   * @since 0.1.0
   */
  phase = 1
  /**
   * Completions for a tag that was not in flight (already failed): ignored.
   * @since 0.1.0
   */
  late = 0
  /**
   * Resolutions performed (one per claim): equals submitted requests once all resolved.
   * @since 0.1.0
   */
  resolutions = 0
  private idle: Deferred.Deferred<void> | undefined = undefined

  constructor(
    readonly device: string,
    readonly ringSize: number,
    readonly pool: TagPool,
    readonly stats: Counters,
    readonly gone: DeviceError.DeviceGone
  ) {
    this.slots = new Array(pool.size).fill(undefined)
  }

  /**
   * Writes the descriptor and rings the doorbell. Synchronous.
   * @since 0.1.0
   */
  submit(sq: SqRing, bar: Regs, request: Request): void {
    this.slots[request.tag] = request
    this.stats.inFlight++
    const i = this.sqTail
    const ring = sq.view
    ring.set(i, "op", request.op)
    ring.set(i, "tag", request.tag)
    ring.set(i, "sector", request.sector)
    ring.set(i, "count", request.count)
    ring.set(i, "addr", request.mapping?.iova ?? 0)
    this.sqTail = i + 1 === this.ringSize ? 0 : i + 1
    bar.write("SQ_TAIL", this.sqTail)
  }

  /**
   * Takes the request out of the table; false if someone else already did.
   * @since 0.1.0
   */
  claim(request: Request): boolean {
    if (request.claimed) return false
    request.claimed = true
    this.slots[request.tag] = undefined
    if (--this.stats.inFlight === 0 && this.idle !== undefined) {
      Deferred.unsafeDone(this.idle, Exit.void)
      this.idle = undefined
    }
    return true
  }

  /**
   * Consumes the new completions (synchronously), claims their requests and resolves them as
   * it goes; tells the device through `CQ_HEAD`. Returns how many completions it took. The
   * interrupt handler's pass, and `remove`'s for what was posted before the device stopped.
   * @since 0.1.0
   */
  complete(cq: CqRing, bar: Regs): number {
    const ring = cq.view
    let consumed = 0
    while (ring.get(this.cqHead, "phase") === this.phase) {
      const tag = ring.get(this.cqHead, "tag")
      const status = ring.get(this.cqHead, "status")
      if (++this.cqHead === this.ringSize) {
        this.cqHead = 0
        this.phase ^= 1
      }
      consumed++
      const request = this.slots[tag]
      if (request === undefined || !this.claim(request)) this.late++
      else this.resolve(request, status)
    }
    if (consumed > 0) bar.write("CQ_HEAD", this.cqHead)
    return consumed
  }

  /**
   * Claims every request still in flight and shuts the tag pool down.
   * @since 0.1.0
   */
  failAll(): Array<Request> {
    const failed: Array<Request> = []
    for (const request of this.slots) if (request !== undefined && this.claim(request)) failed.push(request)
    this.pool.shutdown()
    return failed
  }

  /**
   * Waits until nothing is in flight, at most `timeout`; true if it drained.
   * @since 0.1.0
   */
  waitIdle(timeout: Duration.DurationInput): Effect.Effect<boolean> {
    return Effect.suspend(() => {
      if (this.stats.inFlight === 0) return Effect.succeed(true)
      const idle = this.idle ??= Deferred.unsafeMake<void>(FiberId.none)
      return Effect.map(Effect.timeoutOption(Deferred.await(idle), timeout), Option.isSome)
    })
  }

  /**
   * Resolves a claimed request: hands a read's buffer to the CPU, unmaps, returns the tag,
   * completes the caller's Deferred. `"gone"` fails it with `DeviceGone`. Synchronous: the
   * interrupt handler and `remove` resolve what they claimed in a plain loop.
   * @since 0.1.0
   */
  resolve(request: Request, outcome: number | "gone"): void {
    this.resolutions++
    const { stats } = this
    let exit: Exit.Exit<Uint8Array | undefined, DeviceError.DeviceGone>
    if (outcome === "gone") {
      stats.failed++
      exit = Exit.fail(this.gone)
    } else if (outcome !== BlkModel.Status.OK) {
      stats.errors++
      exit = Exit.die(new BlkIoError(this.device, request.op, request.sector, outcome))
    } else {
      stats.completed++
      if (request.op === BlkModel.Op.READ) {
        try {
          request.mapping!.syncForCpu()
          stats.bytesRead += request.buffer!.length
          exit = Exit.succeed(request.buffer)
        } catch (defect) {
          // Unmapped under the request's feet (a driver bug): the caller still hears back.
          exit = Exit.die(defect)
        }
      } else {
        if (request.op === BlkModel.Op.WRITE) stats.bytesWritten += request.buffer!.length
        exit = Exit.succeed(undefined)
      }
    }
    try {
      request.mapping?.unmap()
    } catch (defect) {
      // The platform refused to unmap (recorded on the binding): the caller hears of it.
      exit = Exit.die(defect)
    }
    this.pool.put(request.tag)
    Deferred.unsafeDone(request.result, exit)
  }

  /**
   * Fails what `failAll` returned with `DeviceGone`.
   * @since 0.1.0
   */
  failAllNow(requests: ReadonlyArray<Request>): void {
    for (const request of requests) this.resolve(request, "gone")
  }
}
