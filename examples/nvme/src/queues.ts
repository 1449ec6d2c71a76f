/**
 * Queues: a submission/completion queue pair in coherent memory with its doorbells and phase
 * tag (NVMe 1.4 sections 4.1 and 4.6), and the tags (command ids) that bound what is in
 * flight on it.
 *
 * Plain synchronous code: the submission path, the interrupt handler and `remove` call it
 * with bound resources in hand.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { DeviceError, Dma, Mmio } from "@devscope/core"
import { type Command, type Cqe, type SqeFields, writeSqe } from "./commands.js"
import type { Spec } from "./registers.js"

/** One completion, as `reap` hands it over. @since 0.1.0 */
export interface Completion {
  readonly cid: number
  /** The 16-bit status field, phase tag included. */
  readonly status: number
  readonly dw0: number
  /** The controller's SQ head when it posted this completion. */
  readonly sqhd: number
}

/**
 * A submission queue and the completion queue it completes on, both `entries` long and
 * physically contiguous (one coherent allocation each). `sqTail` and `cqHead` are the host's
 * indices; `phase` is the tag a new completion carries (1 on the first pass, inverted at
 * each wrap of the CQ), which is how the host tells a new entry from an old one without a
 * register read.
 * @since 0.1.0
 */
export class QueuePair {
  sqTail = 0
  cqHead = 0
  phase = 1
  /** Completions consumed; doorbell writes. */
  reaped = 0

  constructor(
    readonly qid: number,
    readonly entries: number,
    readonly sq: Dma.ArrayView<SqeFields>,
    readonly cq: Dma.ArrayView<typeof Cqe.fields>,
    readonly bar: Mmio.Mmio<Spec>,
    readonly sqDoorbell: number,
    readonly cqDoorbell: number
  ) {}

  /** Writes the command in the next SQ slot, then rings the tail doorbell. */
  submit(cid: number, command: Command): void {
    writeSqe(this.sq, this.sqTail, cid, command)
    this.sqTail = this.sqTail + 1 === this.entries ? 0 : this.sqTail + 1
    // The doorbell write is the point where the entry must be visible to the controller: the
    // backend writes coherent memory to the device before every MMIO write.
    this.bar.write32(this.sqDoorbell, this.sqTail)
  }

  /**
   * Consumes every new completion (phase tag equal to `phase`), calling `f` for each, then
   * tells the controller with one head doorbell write. Returns how many it consumed.
   */
  reap(f: (completion: Completion) => void): number {
    const cq = this.cq
    let consumed = 0
    while ((cq.get(this.cqHead, "status") & 1) === this.phase) {
      const i = this.cqHead
      const completion: Completion = { cid: cq.get(i, "cid"), status: cq.get(i, "status"), dw0: cq.get(i, "dw0"), sqhd: cq.get(i, "sqhd") }
      if (++this.cqHead === this.entries) {
        this.cqHead = 0
        this.phase ^= 1
      }
      consumed++
      f(completion)
    }
    if (consumed > 0) {
      this.reaped += consumed
      this.bar.write32(this.cqDoorbell, this.cqHead)
    }
    return consumed
  }
}

interface Ticket {
  tag: number | undefined
  resume: ((effect: Effect.Effect<number, DeviceError.DeviceGone>) => void) | undefined
}

/**
 * Command ids, FIFO to waiters (after examples/blk's `TagPool`). Callers wait for a tag
 * *before* entering the gate, so a wait never holds the gate's close up. `shutdown` fails the
 * waiters with `DeviceGone`; a tag returned after it is never handed out again.
 * @since 0.1.0
 */
export class TagPool {
  private readonly free: Array<number> = []
  private readonly waiters: Array<Ticket> = []
  private shut = false

  constructor(readonly size: number, private readonly gone: DeviceError.DeviceGone) {
    for (let tag = size - 1; tag >= 0; tag--) this.free.push(tag)
  }

  get isShutdown(): boolean {
    return this.shut
  }

  /** Tags free now. */
  get available(): number {
    return this.free.length
  }

  /**
   * Waits (interruptibly, through `restore`) for a free tag. Call it from an uninterruptible
   * region: a tag handed over at the moment of an interrupt goes back to the pool.
   */
  take(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<number, DeviceError.DeviceGone> {
    return Effect.suspend(() => {
      if (this.shut) return Effect.fail(this.gone)
      const now = this.free.pop()
      if (now !== undefined) return Effect.succeed(now)
      const ticket: Ticket = { tag: undefined, resume: undefined }
      return restore(Effect.async<number, DeviceError.DeviceGone>((resume) => {
        if (this.shut) return resume(Effect.fail(this.gone))
        const later = this.free.pop()
        if (later !== undefined) {
          ticket.tag = later
          return resume(Effect.succeed(later))
        }
        ticket.resume = resume
        this.waiters.push(ticket)
      })).pipe(Effect.onInterrupt(() => Effect.sync(() => this.cancel(ticket))))
    })
  }

  put(tag: number): void {
    if (this.shut) return
    const waiter = this.waiters.shift()
    if (waiter === undefined) return void this.free.push(tag)
    waiter.tag = tag
    waiter.resume!(Effect.succeed(tag))
  }

  shutdown(): void {
    if (this.shut) return
    this.shut = true
    for (const waiter of this.waiters.splice(0)) waiter.resume!(Effect.fail(this.gone))
  }

  private cancel(ticket: Ticket): void {
    const i = this.waiters.indexOf(ticket)
    if (i >= 0) this.waiters.splice(i, 1)
    else if (ticket.tag !== undefined) this.put(ticket.tag)
  }
}
