/**
 * A driver for QEMU's NVMe controller (`hw/nvme`, 1b36:0010), after the NVM Express Base
 * Specification 1.4 and Linux's `drivers/nvme/host/pci.c`, written the way a Rust-for-Linux
 * sample is: every resource a Devres of the binding, user calls through a Gate.
 *
 * - **Probe**: DMA mask; BAR0; `CAP` (NVM command set, 4 KiB pages, queue size, timeout,
 *   doorbell stride); disable the controller (`CC.EN = 0`, wait for `CSTS.RDY = 0` within
 *   `CAP.TO`, in Effect `Clock` time); the admin SQ/CQ, the Identify page, the I/O SQ/CQ and
 *   one PRP list page per command id in coherent memory; the request table; the admin and I/O
 *   completion handlers on MSI-X vectors 0 and 1; `AQA`/`ASQ`/`ACQ`; enable (a Devres whose
 *   release disables the controller again, before any of that memory is freed); Identify
 *   Controller; Identify Namespace 1 (size, LBA format); Set Features (one I/O queue pair);
 *   Create I/O CQ (vector 1), Create I/O SQ; the gate; the `NvmeDevice` published.
 * - **A call** takes a command id (waiting for one when all are in flight), then, inside a
 *   Gate section, maps its buffer (a streaming mapping), fills PRP1/PRP2 (a PRP list page for
 *   more than two pages), writes the SQ entry and rings the tail doorbell; it waits for its
 *   completion *outside* the section, with a deadline.
 * - **The I/O interrupt handler** consumes completions by phase tag, resolves each request
 *   by command id (a read's buffer synced for the CPU first), unmaps, frees the id, and writes
 *   the CQ head doorbell once.
 * - **Remove** runs with the gate closed. If `CSTS` reads all-ones the device is gone
 *   (surprise removal, or QEMU died): completions already in memory are taken, the rest fail
 *   with `DeviceGone`. Otherwise it lets in-flight commands drain (bounded), deletes the I/O
 *   queues, sends a normal shutdown notification, disables the controller and waits for
 *   `CSTS.RDY = 0`, and only then fails what is left and unmaps its buffers: the controller
 *   no longer touches memory when it is given back.
 *
 * @since 0.1.0
 */
import { Clock, Context, Data, Deferred, Duration, Effect, Exit, FiberId, Layer, Option } from "effect"
import { type Bound, Devres, DeviceError, Dma, Driver, Gate, Hardware, Irq, type Mmio } from "@devscope/core"
import * as Cmd from "./commands.js"
import {
  InvalidRequest,
  IoRefused,
  type NvmeDevice,
  NvmeDevices,
  type NvmeError,
  NvmeStatusError,
  NvmeTimeout,
  type Op,
  type Passthrough
} from "./NvmeDevices.js"
import { type Completion, QueuePair, TagPool } from "./queues.js"
import * as R from "./registers.js"

/**
 * The brand: types the tokens `Bound<"nvme">` and `Core<"nvme">`.
 * @since 0.1.0
 */
export const NvmeDrv = Driver.brand("nvme")

type Regs = Mmio.Mmio<R.Spec>

/** MSI-X vectors: the admin CQ completes on 0, the I/O CQ on 1. @since 0.1.0 */
export const ADMIN_VECTOR = 0
/** @since 0.1.0 */
export const IO_VECTOR = 1

/** Admin queue entries (the admin queue carries one command at a time). @since 0.1.0 */
export const ADMIN_ENTRIES = 16

/** The namespace the driver publishes. @since 0.1.0 */
export const NSID = 1

/** PRP entries in one list page (8 bytes each). */
const PRPS_PER_PAGE = R.PAGE / 8

/** The transfer a request carries at most, in pages, whatever the controller allows. */
const MAX_PAGES = 128

// ---------------------------------------------------------------------------------------------
// Probe errors
// ---------------------------------------------------------------------------------------------

/**
 * `CSTS` did not follow a change of `CC.EN` within `CAP.TO` (or reported Controller Fatal
 * Status): the probe fails with it.
 * @since 0.1.0
 */
export class NotReady extends Data.TaggedError("NotReady")<{
  readonly device: string
  readonly waitingFor: string
  readonly csts: number
  readonly millis: number
}> {
  override get message() {
    return `${this.device}: CSTS 0x${this.csts.toString(16)}: ${this.waitingFor} not seen within ${this.millis} ms`
  }
}

// ---------------------------------------------------------------------------------------------
// Work in flight
// ---------------------------------------------------------------------------------------------

type Value = Uint8Array | number | undefined

/** One command the controller holds. */
interface Request {
  readonly cid: number
  readonly op: Op
  readonly opcode: number
  readonly lba: number | undefined
  readonly buffer: Uint8Array | undefined
  readonly mapping: Dma.Mapping | undefined
  readonly result: Deferred.Deferred<Value, NvmeError>
  /** The caller has its answer (completion, error, timeout, gone): exactly once. */
  settled: boolean
  /** The controller is done with it (completion seen, or the controller disabled / gone). */
  released: boolean
}

/** An admin command in flight (one at a time). */
interface AdminRequest {
  readonly cid: number
  readonly opcode: number
  readonly result: Deferred.Deferred<Completion, NvmeStatusError>
}

/**
 * The binding's queues and work in flight, and how it completes: the interrupt handlers,
 * the callers' deadlines and `remove` all end requests here, synchronously, each once.
 * A Devres of the binding: its release fails whatever is still in flight with `DeviceGone`.
 * @since 0.1.0
 */
export class Engine {
  io: QueuePair | undefined = undefined
  admin: AdminRequest | undefined = undefined
  private adminCid = 0
  readonly slots: Array<Request | undefined>
  readonly counts = {
    submitted: 0,
    completed: 0,
    statusErrors: 0,
    gone: 0,
    timedOut: 0,
    abandoned: 0,
    resolutions: 0,
    late: 0,
    unknown: 0,
    refused: 0,
    interrupts: 0,
    reads: 0,
    writes: 0,
    flushes: 0,
    prpLists: 0
  }

  constructor(
    readonly name: string,
    readonly bar: Regs,
    readonly adminQueue: QueuePair,
    readonly pool: TagPool,
    readonly gone: DeviceError.DeviceGone
  ) {
    this.slots = new Array(pool.size).fill(undefined)
  }

  /** A removed device (or a dead QEMU) reads all-ones; a live controller's CSTS never does. */
  isGone(): boolean {
    return this.bar.read("CSTS") === R.ALL_ONES
  }

  get onController(): number {
    return this.slots.reduce((n, r) => n + (r === undefined ? 0 : 1), 0)
  }

  get pending(): number {
    return this.counts.submitted - this.counts.resolutions
  }

  stats() {
    return { ...this.counts, pending: this.pending, onController: this.onController }
  }

  // ---- admin ----------------------------------------------------------------------------------

  /** Submits an admin command; its completion (any status) resolves the returned Deferred. */
  submitAdmin(command: Cmd.Command): AdminRequest {
    const cid = this.adminCid
    this.adminCid = (this.adminCid + 1) & 0xffff
    const request: AdminRequest = { cid, opcode: command.opcode, result: Deferred.unsafeMake(FiberId.none) }
    this.admin = request
    this.adminQueue.submit(cid, command)
    return request
  }

  /** The admin vector's handler (and the admin wait's poll). */
  reapAdmin(): number {
    return this.adminQueue.reap((c) => {
      const request = this.admin
      if (request === undefined || request.cid !== c.cid) return void this.counts.unknown++
      this.admin = undefined
      Deferred.unsafeDone(
        request.result,
        Cmd.isSuccess(c.status) ? Exit.succeed(c) : Exit.fail(this.statusError("admin", request.opcode, c.status, undefined))
      )
    })
  }

  statusError(op: Op | "admin", opcode: number, field: number, lba: number | undefined): NvmeStatusError {
    const s = Cmd.decodeStatus(field)
    return new NvmeStatusError({ device: this.name, op, opcode, sct: s.sct, sc: s.sc, dnr: s.dnr, more: s.more, name: Cmd.statusName(s), lba })
  }

  // ---- I/O ------------------------------------------------------------------------------------

  /** Puts a request in the table and submits it on the I/O queue. */
  submitIo(request: Request, command: Cmd.Command): void {
    this.slots[request.cid] = request
    this.counts.submitted++
    this.io!.submit(request.cid, command)
  }

  /** The I/O vector's handler (and a caller's last look at its deadline). */
  reapIo(): number {
    return this.io === undefined ? 0 : this.io.reap((c) => this.completeIo(c))
  }

  private completeIo(c: Completion): void {
    const request = this.slots[c.cid]
    if (request === undefined) return void this.counts.unknown++
    let exit: Exit.Exit<Value, NvmeError>
    if (!Cmd.isSuccess(c.status)) {
      exit = Exit.fail(this.statusError(request.op, request.opcode, c.status, request.lba))
    } else if (request.op === "read") {
      // The device wrote the buffer: hand it to the CPU before the caller sees it.
      request.mapping!.syncForCpu()
      exit = Exit.succeed(request.buffer)
    } else {
      exit = Exit.succeed(request.op === "passthrough" ? c.dw0 : undefined)
    }
    this.release(request)
    if (request.settled) this.counts.late++
    else this.settle(request, exit)
  }

  /** The controller is done with `request`: unmap its buffer, free its command id. */
  private release(request: Request): void {
    if (request.released) return
    request.released = true
    this.slots[request.cid] = undefined
    try {
      request.mapping?.unmap()
    } finally {
      this.pool.put(request.cid)
    }
  }

  /** Gives the caller its answer, once. */
  settle(request: Request, exit: Exit.Exit<Value, NvmeError>): void {
    if (request.settled) return
    request.settled = true
    this.counts.resolutions++
    if (Exit.isSuccess(exit)) this.counts.completed++
    else if (exit.cause._tag === "Fail" && exit.cause.error._tag === "NvmeStatusError") this.counts.statusErrors++
    else if (exit.cause._tag === "Fail" && exit.cause.error._tag === "NvmeTimeout") this.counts.timedOut++
    else this.counts.gone++
    Deferred.unsafeDone(request.result, exit)
  }

  /** The caller stopped waiting (interrupted): resolved, the controller may still hold it. */
  abandon(request: Request): void {
    if (request.settled) return
    request.settled = true
    this.counts.resolutions++
    this.counts.abandoned++
  }

  /**
   * The controller no longer touches memory (disabled, or gone): fail every unresolved
   * request with `DeviceGone`, unmap every buffer, free every id, and shut the ids down so
   * no caller waits for one. Returns how many callers it failed.
   */
  failAll(): number {
    let failed = 0
    for (const request of this.slots) {
      if (request === undefined) continue
      this.release(request)
      if (!request.settled) {
        this.settle(request, Exit.fail(this.gone))
        failed++
      }
    }
    this.pool.shutdown()
    if (this.admin !== undefined) {
      Deferred.unsafeDone(this.admin.result, Exit.die(this.gone))
      this.admin = undefined
    }
    return failed
  }
}

// ---------------------------------------------------------------------------------------------
// The binding's services
// ---------------------------------------------------------------------------------------------

/** The work in flight (and through it BAR0 and the queues), for `remove`. @since 0.1.0 */
export class EngineState extends Context.Tag("@devscope/example-nvme/Engine")<EngineState, Devres.Devres<Engine, "nvme">>() {}

/** Labels of the binding's resources, in acquisition order (unbind reports name them). @since 0.1.0 */
export const LABELS = {
  bar0: "nvme BAR0",
  adminSq: "admin SQ",
  adminCq: "admin CQ",
  identify: "identify page",
  ioSq: "I/O SQ",
  ioCq: "I/O CQ",
  prpLists: "PRP list pages",
  engine: "nvme requests",
  adminIrq: "irq 0 (admin)",
  ioIrq: "irq 1 (I/O)",
  enabled: "controller enabled",
  registration: "nvme device registration"
} as const

/** What a probe set up, for tests and debugging. @since 0.1.0 */
export interface Probed {
  readonly token: Bound.Bound<"nvme">
  readonly engine: Engine
  readonly gate: Gate.Gate<"nvme">
  readonly device: NvmeDevice
}

/** @since 0.1.0 */
export interface Options {
  /** Commands in flight at once on the I/O queue (command ids). Default 16. */
  readonly queueDepth?: number | undefined
  /** Deadline of one read, write, flush or passthrough, from its submission (a wait for a free id is not counted). Default 5 s. */
  readonly ioTimeout?: Duration.DurationInput | undefined
  /** Deadline of one admin command. Default 2 s. */
  readonly adminTimeout?: Duration.DurationInput | undefined
  /** How long `remove` lets in-flight commands complete before shutting the controller down. Default 1 s. */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** Receives one line per notable driver event (probe, remove). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe. */
  readonly onProbe?: ((probed: Probed) => void) | undefined
}

/** Reads `CSTS` with a growing interval (10 µs to 1 ms) until `done(csts)`, all-ones, or the deadline. */
const waitCsts = (bar: Regs, done: (csts: number) => boolean, millis: number) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    let interval = 0.01
    while (true) {
      const csts = bar.read("CSTS")
      if (csts === R.ALL_ONES) return "gone" as const
      if (done(csts)) return "done" as const
      if ((yield* Clock.currentTimeMillis) - start >= millis) return "timeout" as const
      yield* Effect.sleep(Duration.millis(interval))
      interval = Math.min(interval * 2, 1)
    }
  })

/** The PRP list pages: one page of 512 entries per command id. */
const prpListLayout = (ids: number) => Dma.array(Dma.struct({ lo: "u32", hi: "u32" }), ids * PRPS_PER_PAGE)

/**
 * The NVMe driver, matching QEMU's controller (1b36:0010). It needs `NvmeDevices` where it
 * is registered: bound controllers are published there. The device needs MSI-X with two
 * vectors (`interrupts: "msix", vectors: 2` in a QEMU device description).
 * @since 0.1.0
 */
export const driver = (options: Options = {}) => {
  const ioTimeout = Duration.decode(options.ioTimeout ?? "5 seconds")
  const adminMillis = Duration.toMillis(options.adminTimeout ?? "2 seconds")
  const drainMillis = Duration.toMillis(options.drainTimeout ?? "1 second")
  const log = options.log ?? (() => {})

  /** Waits for an admin command, looking at the admin CQ itself with a growing interval (a lost interrupt). */
  const awaitAdmin = (engine: Engine, request: AdminRequest) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      let interval = 0.05
      while (true) {
        const done = yield* Effect.timeoutOption(Effect.exit(Deferred.await(request.result)), Duration.millis(interval))
        if (Option.isSome(done)) return yield* done.value
        engine.reapAdmin()
        if (yield* Deferred.isDone(request.result)) return yield* Deferred.await(request.result)
        if ((yield* Clock.currentTimeMillis) - start >= adminMillis) {
          // A late completion of it is counted as unknown; the next command has another id.
          if (engine.admin === request) engine.admin = undefined
          return yield* new NvmeTimeout({ device: engine.name, op: "admin", opcode: request.opcode, timeoutMillis: adminMillis })
        }
        interval = Math.min(interval * 2, 10)
      }
    })

  const adminCommand = (engine: Engine, command: Cmd.Command) => Effect.suspend(() => awaitAdmin(engine, engine.submitAdmin(command)))

  const probe = Layer.effect(
    EngineState,
    Effect.gen(function*() {
      const core = yield* NvmeDrv.Core
      yield* Dma.setMask(core, 64)
      const token = yield* NvmeDrv.Bound
      const name = token.device.name

      // ---- BAR0 and the capabilities --------------------------------------------------------
      const bar0 = yield* Hardware.iomap(NvmeDrv, R.registers, 0, { label: LABELS.bar0 })
      const bar = bar0.access(token)
      const capLo = bar.read("CAP_LO")
      const capHi = bar.read("CAP_HI")
      if (capLo === R.ALL_ONES && capHi === R.ALL_ONES) return yield* Effect.dieMessage(`${name}: CAP reads all-ones (the device is gone)`)
      const css = bar.readField("CAP_HI", "CSS")
      if ((css & 1) === 0) return yield* Effect.dieMessage(`${name}: no NVM command set (CAP.CSS 0x${css.toString(16)})`)
      if (bar.readField("CAP_HI", "MPSMIN") !== 0) return yield* Effect.dieMessage(`${name}: 4 KiB pages not supported`)
      const mqes = bar.readField("CAP_LO", "MQES") + 1
      const dstrd = bar.readField("CAP_HI", "DSTRD")
      // CAP.TO: the worst case from a CC.EN change to CSTS.RDY following it, in 500 ms units.
      const readyMillis = Math.max(1, bar.readField("CAP_LO", "TO")) * 500
      const depth = Math.max(1, Math.min(options.queueDepth ?? 16, mqes - 1, 1024))
      const ioEntries = depth + 1 // a full queue and an empty one must look different

      // ---- Disable (the controller may be enabled by a previous binding) ---------------------
      bar.write("CC", 0)
      const disabled = yield* waitCsts(bar, (csts) => (csts & R.CSTS_RDY) === 0, readyMillis)
      if (disabled !== "done") return yield* Effect.die(new NotReady({ device: name, waitingFor: "RDY = 0 after CC.EN = 0", csts: bar.read("CSTS"), millis: readyMillis }))

      // ---- Memory the controller uses: queues, Identify page, PRP lists ----------------------
      const adminSq = yield* Dma.allocCoherent(NvmeDrv, Dma.array(Cmd.Sqe, ADMIN_ENTRIES), { label: LABELS.adminSq })
      const adminCq = yield* Dma.allocCoherent(NvmeDrv, Dma.array(Cmd.Cqe, ADMIN_ENTRIES), { label: LABELS.adminCq })
      const identifyPage = yield* Dma.allocCoherent(NvmeDrv, Dma.array(Dma.struct({ b: "u8" }), R.PAGE), { label: LABELS.identify })
      const ioSq = yield* Dma.allocCoherent(NvmeDrv, Dma.array(Cmd.Sqe, ioEntries), { label: LABELS.ioSq })
      const ioCq = yield* Dma.allocCoherent(NvmeDrv, Dma.array(Cmd.Cqe, ioEntries), { label: LABELS.ioCq })
      const prpLists = yield* Dma.allocCoherent(NvmeDrv, prpListLayout(depth), { label: LABELS.prpLists })

      // ---- The request table ------------------------------------------------------------------
      const gate = yield* Gate.make(NvmeDrv, { name: `${name} nvme` })
      const gone = new DeviceError.DeviceGone({ device: name, driver: NvmeDrv.name, gate: gate.name })
      const adminQueue = new QueuePair(
        0,
        ADMIN_ENTRIES,
        adminSq.access(token).view,
        adminCq.access(token).view,
        bar,
        R.sqTailDoorbell(0, dstrd),
        R.cqHeadDoorbell(0, dstrd)
      )
      const engineRes = yield* Devres.acquireRelease(
        NvmeDrv,
        Effect.sync(() => new Engine(name, bar, adminQueue, new TagPool(depth, gone), gone)),
        // Normally `remove` has resolved everything; this covers a `remove` cut at its deadline.
        (engine) => Effect.sync(() => engine.failAll()),
        { label: LABELS.engine }
      )
      const engine = engineRes.access(token)

      // ---- Interrupts: MSI-X vector 0 for the admin CQ, 1 for the I/O CQ ---------------------
      yield* Irq.request(NvmeDrv, ADMIN_VECTOR, Effect.sync((): Irq.Return => (engine.reapAdmin() > 0 ? "handled" : "none")), {
        label: LABELS.adminIrq
      })
      yield* Irq.request(
        NvmeDrv,
        IO_VECTOR,
        Effect.sync((): Irq.Return => {
          if (engine.reapIo() === 0) return "none"
          engine.counts.interrupts++
          return "handled"
        }),
        { label: LABELS.ioIrq }
      )

      // ---- Admin queue, enable ----------------------------------------------------------------
      bar.write("AQA", ((ADMIN_ENTRIES - 1) << 16) | (ADMIN_ENTRIES - 1))
      bar.write("ASQ_LO", adminSq.access(token).iova >>> 0)
      bar.write("ASQ_HI", Math.floor(adminSq.access(token).iova / 0x1_0000_0000))
      bar.write("ACQ_LO", adminCq.access(token).iova >>> 0)
      bar.write("ACQ_HI", Math.floor(adminCq.access(token).iova / 0x1_0000_0000))
      // Enabled as a resource: whatever ends the binding (a failed probe included), the
      // controller is disabled before the memory above is freed (released after this).
      yield* Devres.acquireRelease(
        NvmeDrv,
        Effect.gen(function*() {
          bar.write("CC", R.CC_ENABLE)
          const ready = yield* waitCsts(bar, (csts) => (csts & (R.CSTS_RDY | R.CSTS_CFS)) !== 0, readyMillis)
          const csts = bar.read("CSTS")
          if (ready !== "done" || (csts & R.CSTS_CFS) !== 0) return yield* Effect.die(new NotReady({ device: name, waitingFor: "RDY = 1 after CC.EN = 1", csts, millis: readyMillis }))
        }),
        () =>
          Effect.gen(function*() {
            const csts = bar.read("CSTS")
            if (csts === R.ALL_ONES || ((csts & R.CSTS_RDY) === 0 && (bar.read("CC") & 1) === 0)) return
            bar.write("CC", 0)
            yield* waitCsts(bar, (c) => (c & R.CSTS_RDY) === 0, readyMillis)
          }),
        { label: LABELS.enabled }
      )

      // ---- Identify ------------------------------------------------------------------------------
      const page = identifyPage.access(token)
      const identifyData = () => {
        const bytes = new Uint8Array(R.PAGE)
        page.view.copyOut(0, bytes)
        return bytes
      }
      yield* Effect.orDie(adminCommand(engine, Cmd.identify(Cmd.Cns.CONTROLLER, 0, page.iova)))
      const controller = Cmd.parseController(identifyData())
      if (controller.namespaces < NSID) return yield* Effect.dieMessage(`${name}: no namespace ${NSID} (NN ${controller.namespaces})`)
      yield* Effect.orDie(adminCommand(engine, Cmd.identify(Cmd.Cns.NAMESPACE, NSID, page.iova)))
      const namespace = Cmd.parseNamespace(NSID, identifyData())
      if (namespace.blocks === 0) return yield* Effect.dieMessage(`${name}: namespace ${NSID} is not active`)
      if (namespace.metadataSize !== 0) return yield* Effect.dieMessage(`${name}: LBA format ${namespace.lbaFormat} has metadata; not supported`)
      const blockSize = namespace.blockSize
      const mdtsPages = controller.mdts === 0 ? MAX_PAGES : Math.min(MAX_PAGES, 2 ** controller.mdts)
      const maxBlocks = Math.max(1, Math.floor((mdtsPages * R.PAGE) / blockSize))

      // ---- One I/O queue pair: the CQ (with its vector) first, then the SQ ----------------------
      yield* Effect.orDie(adminCommand(engine, Cmd.setNumberOfQueues(1)))
      yield* Effect.orDie(adminCommand(engine, Cmd.createIoCq(1, ioEntries, ioCq.access(token).iova, IO_VECTOR)))
      yield* Effect.orDie(adminCommand(engine, Cmd.createIoSq(1, ioEntries, ioSq.access(token).iova, 1)))
      engine.io = new QueuePair(1, ioEntries, ioSq.access(token).view, ioCq.access(token).view, bar, R.sqTailDoorbell(1, dstrd), R.cqHeadDoorbell(1, dstrd))

      // ---- The calls ------------------------------------------------------------------------------
      const lists = prpLists.access(token)

      /** PRP1 and PRP2 for a buffer at `iova` (page aligned) of `bytes`; a list page for more than two pages. */
      const prps = (cid: number, iova: number, bytes: number): readonly [number, number] => {
        const pages = Math.ceil(bytes / R.PAGE)
        if (pages <= 1) return [iova, 0]
        if (pages === 2) return [iova, iova + R.PAGE]
        const base = cid * PRPS_PER_PAGE
        for (let k = 1; k < pages; k++) {
          const entry = iova + k * R.PAGE
          lists.view.set(base + k - 1, "lo", entry >>> 0)
          lists.view.set(base + k - 1, "hi", Math.floor(entry / 0x1_0000_0000))
        }
        engine.counts.prpLists++
        return [iova, lists.iova + cid * R.PAGE]
      }

      const request = (cid: number, op: Op, opcode: number, lba: number | undefined, buffer?: Uint8Array, mapping?: Dma.Mapping): Request => ({
        cid,
        op,
        opcode,
        lba,
        buffer,
        mapping,
        result: Deferred.unsafeMake(FiberId.none),
        settled: false,
        released: false
      })

      /** Inside the gate: map, describe, ring. */
      const submit = (t: Bound.Bound<"nvme">, cid: number, op: Op, lba: number, blocks: number, data: Uint8Array | undefined, extra: Passthrough | undefined) => {
        if (op === "flush" || op === "passthrough") {
          return Effect.sync(() => {
            const r = request(cid, op, op === "flush" ? Cmd.IoOp.FLUSH : extra!.opcode, undefined)
            if (op === "flush") engine.counts.flushes++
            engine.submitIo(r, op === "flush" ? Cmd.flush(NSID) : { opcode: extra!.opcode, nsid: NSID, cdw10: extra!.cdw10, cdw11: extra!.cdw11, cdw12: extra!.cdw12 })
            return r
          })
        }
        // A write maps a private copy: the caller may reuse its array once the call returns.
        const buffer = op === "write" ? data!.slice() : new Uint8Array(blocks * blockSize)
        return Dma.map(t, buffer, op === "write" ? "to-device" : "from-device", { label: `${op} buffer` }).pipe(
          Effect.mapError((refused) => new IoRefused({ device: name, op, reason: refused.reason })),
          Effect.map((devres) => {
            const mapping = devres.access(t)
            const opcode = op === "write" ? Cmd.IoOp.WRITE : Cmd.IoOp.READ
            const r = request(cid, op, opcode, lba, buffer, mapping)
            const [prp1, prp2] = prps(cid, mapping.iova, buffer.length)
            engine.counts[op === "write" ? "writes" : "reads"]++
            engine.submitIo(r, Cmd.readWrite(opcode, NSID, lba, blocks, prp1, prp2))
            return r
          })
        )
      }

      /**
       * One call: a command id, the submission inside the gate (uninterruptibly, so a
       * submitted command is never lost), then the wait outside it. At the deadline, one last
       * look at the CQ; then `NvmeTimeout`, and the command keeps its id and buffer until the
       * controller completes it or is disabled.
       */
      const run = (op: Op, lba: number, blocks: number, data?: Uint8Array, extra?: Passthrough): Effect.Effect<Value, NvmeError | IoRefused> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const cid = yield* Effect.onError(engine.pool.take(restore), () => Effect.sync(() => engine.counts.refused++))
            const r = yield* gate.enter((t) => submit(t, cid, op, lba, blocks, data, extra)).pipe(
              Effect.onError(() =>
                Effect.sync(() => {
                  engine.counts.refused++
                  engine.pool.put(cid)
                })
              )
            )
            const done = yield* restore(Effect.timeoutOption(Effect.exit(Deferred.await(r.result)), ioTimeout)).pipe(
              Effect.onInterrupt(() => Effect.sync(() => engine.abandon(r)))
            )
            if (Option.isSome(done)) return yield* done.value
            // A lost interrupt shows as a completion in memory nobody consumed (inside the gate:
            // the queues are the binding's; a closed gate means remove resolves it).
            yield* Effect.ignore(gate.enter(() => Effect.sync(() => engine.reapIo())))
            if (!r.settled) {
              engine.settle(r, Exit.fail(new NvmeTimeout({ device: name, op, opcode: r.opcode, timeoutMillis: Duration.toMillis(ioTimeout) })))
            }
            return yield* Deferred.await(r.result)
          })
        )

      const refuse = (op: Op, reason: string) =>
        Effect.zipRight(Effect.sync(() => engine.counts.refused++), Effect.fail(new InvalidRequest({ device: name, op, reason })))
      const badLba = (lba: number) => !Number.isSafeInteger(lba) || lba < 0

      const device: NvmeDevice = {
        device: name,
        controller,
        namespace,
        maxBlocks,
        read: (lba, blocks) =>
          badLba(lba)
            ? refuse("read", `LBA ${lba} is not a non-negative integer`)
            : !Number.isInteger(blocks) || blocks < 1 || blocks > maxBlocks
            ? refuse("read", `${blocks} blocks: 1 to ${maxBlocks} per request`)
            : Effect.map(run("read", lba, blocks), (v) => v as Uint8Array),
        write: (lba, data) => {
          const blocks = data.length / blockSize
          if (badLba(lba)) return refuse("write", `LBA ${lba} is not a non-negative integer`)
          if (!Number.isInteger(blocks) || blocks < 1) return refuse("write", `${data.length} bytes are not whole ${blockSize}-byte blocks`)
          if (blocks > maxBlocks) return refuse("write", `${blocks} blocks: 1 to ${maxBlocks} per request`)
          return Effect.asVoid(run("write", lba, blocks, data))
        },
        flush: () => Effect.asVoid(run("flush", 0, 0)) as Effect.Effect<void, NvmeError>,
        passthrough: (command) =>
          !Number.isInteger(command.opcode) || command.opcode < 0 || command.opcode > 0xff
            ? refuse("passthrough", `opcode ${command.opcode} is not a byte`)
            : Effect.map(run("passthrough", 0, 0, undefined, command), (v) => v as number) as Effect.Effect<number, NvmeError>,
        stats: () => engine.stats()
      }

      // Publish the device; the registration is a resource of the binding.
      const registry = yield* NvmeDevices
      yield* Devres.acquireRelease(
        NvmeDrv,
        Effect.sync(() => registry.register(device)),
        () => Effect.sync(() => registry.unregister(device)),
        { label: LABELS.registration }
      )
      log(
        `probe: ${name}: ${controller.model} (${controller.serial}), namespace ${NSID}: ${namespace.blocks} blocks of ${blockSize} bytes; ` +
          `${depth} command ids, at most ${maxBlocks} blocks per request`
      )
      options.onProbe?.({ token, engine, gate, device })
      return engineRes
    })
  )

  /** Waits until the controller holds no command, it is gone, or the deadline; looks at the CQ too. */
  const drain = (engine: Engine) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      let interval = 0.05
      while (true) {
        engine.reapIo()
        if (engine.onController === 0) return "idle" as const
        if (engine.isGone()) return "gone" as const
        if ((yield* Clock.currentTimeMillis) - start >= drainMillis) return "timeout" as const
        yield* Effect.sleep(Duration.millis(interval))
        interval = Math.min(interval * 2, 5)
      }
    })

  return Driver.make(NvmeDrv, {
    match: [{ vendor: R.ids.vendor, device: R.ids.device }],
    probe,
    // Step 3: the gate is closed (no call is submitting), every resource is live.
    remove: () =>
      Effect.gen(function*() {
        const token = yield* NvmeDrv.Bound
        const engine = (yield* EngineState).access(token)
        const bar = engine.bar
        const name = engine.name
        if (engine.isGone()) {
          // Surprise removal: nothing more will complete; what is in memory already is real.
          const reaped = engine.reapIo()
          const failed = engine.failAll()
          log(`remove: ${name} gone; ${reaped} completion(s) found, ${failed} failed with DeviceGone`)
          return
        }
        const inFlight = engine.onController
        const outcome = yield* drain(engine)
        let steps = outcome === "idle" ? "drained" : outcome === "gone" ? "gone while draining" : "drain timed out"
        if (outcome !== "gone") {
          // A normal shutdown notification, then disable. The I/O queues are not deleted one
          // by one: the reset that CC.EN = 0 starts deletes them (NVMe 1.4, section 7.6.2),
          // and it needs no admin command (whose completion would wait for the device's
          // timers: at a machine's close QEMU's clock no longer runs).
          bar.write("CC", (bar.read("CC") & ~(3 << 14)) | R.CC_SHN_NORMAL)
          const shutdown = yield* waitCsts(bar, (csts) => (csts & R.CSTS_SHST_MASK) === R.CSTS_SHST_COMPLETE, drainMillis)
          bar.write("CC", 0)
          const disabled = yield* waitCsts(bar, (csts) => (csts & R.CSTS_RDY) === 0, drainMillis)
          steps += `; shutdown ${shutdown}; disable ${disabled}`
        }
        const reaped = engine.reapIo()
        const failed = engine.failAll()
        log(`remove: ${name}: ${inFlight} in flight, ${steps}; ${reaped} late completion(s), ${failed} failed with DeviceGone`)
      })
  })
}
