/**
 * The "blk" driver for the acme blk PCI block device (see `model.ts` for the protocol):
 *
 * - BAR0, the submission and completion rings (coherent DMA), the request table and the
 *   interrupt are Devres of the binding; the bound path uses `access(token)`, never an Option;
 * - each request claims a tag (waiting for a free one when all are busy), maps its data buffer
 *   (a streaming mapping, to-device for a write, from-device for a read), writes a descriptor
 *   and rings the doorbell, all inside a Gate section; the caller then waits for the completion
 *   *outside* the section, so closing the gate never waits for the device;
 * - the interrupt handler reaps the completion ring and resolves requests by tag;
 * - `remove` lets in-flight requests drain (bounded by `drainTimeout`) while the device still
 *   works, stops the device and waits (bounded) until it no longer touches memory, then fails
 *   what is left with `DeviceGone`; on surprise removal (all-ones) it fails them at once.
 *   Coherent memory is freed after that, at unbind step 4.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, FiberId, Layer } from "effect"
import { type Bound, Devres, DeviceError, Dma, Driver, Gate, Hardware, Irq, type Mmio } from "@devscope/core"
import { type BlockDevice, BlockDevices, IoRefused, OutOfRange } from "./BlockDevices.js"
import * as BlkModel from "./model.js"
import { counters, type CqRing, cqRing, type Request, Requests, type SqRing, sqRing, TagPool } from "./queue.js"

/**
 * The brand: types the tokens `Bound<"blk">` and `Core<"blk">`.
 * @since 0.1.0
 */
export const Blk = Driver.brand("blk")

type Regs = Mmio.Mmio<typeof BlkModel.registers.spec>

const ALL_ONES = 0xffffffff

/**
 * BAR0: the register window, a Devres of the binding.
 * @since 0.1.0
 */
export class Bar0 extends Context.Tag("@devscope/example-blk/Bar0")<Bar0, Devres.Devres<Regs, "blk">>() {}

const Bar0Live = Layer.effect(Bar0, Hardware.iomap(Blk, BlkModel.registers, 0, { label: "BAR0" }))

/**
 * What the probe sets up for the request path; `remove` needs it too.
 * @since 0.1.0
 */
export interface Queue {
  readonly requests: Devres.Devres<Requests, "blk">
  readonly sq: Devres.Devres<SqRing, "blk">
  readonly cq: Devres.Devres<CqRing, "blk">
  readonly pool: TagPool
  readonly gate: Gate.Gate<"blk">
}

/**
 * The probe's request-path state, a service of the binding.
 * @since 0.1.0
 */
export class QueueState extends Context.Tag("@devscope/example-blk/Queue")<QueueState, Queue>() {}

/**
 * What a probe acquired, for tests and debugging.
 * @since 0.1.0
 */
export interface Probed extends Queue {
  readonly token: Bound.Bound<"blk">
  readonly bar: Devres.Devres<Regs, "blk">
  readonly irq: Devres.Devres<Irq.Registration, "blk">
  readonly device: BlockDevice
}

/** @since 0.1.0 */
export interface Options {
  /** Requests in flight at once (tags). Default 16, at most what the device takes. */
  readonly queueDepth?: number | undefined
  /** How long `remove` lets in-flight requests complete before stopping the device. Default 10 ms. */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** How long `remove` waits for the stopped device to let go of memory. Default 2 ms. */
  readonly stopTimeout?: Duration.DurationInput | undefined
  /** Receives one line per notable driver event (remove, queue errors). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe. */
  readonly onProbe?: ((probed: Probed) => void) | undefined
  /**
   * A planted bug, for demonstrations: `"free-dma-before-stop"` frees the rings and unmaps the
   * data buffers in `remove` *before* stopping the device, while it still holds requests. The
   * device then DMAs into freed memory, and the simulator reports IOMMU faults naming where the
   * memory was allocated and where it was freed.
   */
  readonly bug?: "free-dma-before-stop" | undefined
}

/** The data buffers' mapping labels, by op (leak reports and `UnbindReport.released` show them). */
const MAP_OPTIONS = { [BlkModel.Op.READ]: { label: "read buffer" }, [BlkModel.Op.WRITE]: { label: "write buffer" } } as const

/**
 * The blk driver, matching the acme blk PCI ids. It needs `BlockDevices` where it is
 * registered: bound disks are published there.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { BlkModel, BlockDevices, driver, makeBlockDevices } from "@devscope/example-blk"
 *
 * const disks = makeBlockDevices()
 * const program = Effect.gen(function*() {
 *   const sim = yield* Simulator.Simulator
 *   yield* sim.pci.registerDriver(driver())
 *   yield* sim.plug({ bus: "pci", name: "blk0", ids: BlkModel.ids, model: BlkModel.model({ store: BlkModel.store(2048) }) })
 *   const disk = Option.getOrThrow(disks.lookup("blk0"))
 *   yield* disk.write(0, new Uint8Array(512).fill(7))
 *   return yield* disk.read(0, 1)
 * }).pipe(Effect.provide(Simulator.layer()), Effect.provideService(BlockDevices, disks))
 * ```
 * @since 0.1.0
 */
export const driver = (options: Options = {}) => {
  const drainTimeout = options.drainTimeout ?? "10 millis"
  const stopTimeout = Duration.toMillis(options.stopTimeout ?? "2 millis")
  const log = options.log ?? (() => {})

  const probe = Layer.effect(
    QueueState,
    Effect.gen(function*() {
      yield* Dma.setMask(yield* Blk.Core, 32)
      const token = yield* Blk.Bound
      const name = token.device.name
      const bar0 = yield* Bar0
      const bar = bar0.access(token)
      const id = bar.read("ID")
      if (id !== BlkModel.ID_VALUE) return yield* Effect.dieMessage(`not an acme blk device (ID 0x${id.toString(16)})`)
      const cap = bar.read("CAP")
      const maxEntries = cap & 0xffff
      const sectorSize = 2 ** ((cap >>> 16) & 0x1f)
      const sectors = bar.read("CAPACITY")
      // One ring entry stays unused, so a full ring and an empty one look different.
      const depth = Math.max(1, Math.min(options.queueDepth ?? 16, maxEntries - 1))
      const ringSize = depth + 1

      const gate = yield* Gate.make(Blk, { name: `${name} request queue` })
      const gone = new DeviceError.DeviceGone({ device: name, driver: Blk.name, gate: gate.name })
      const stats = counters()
      const pool = new TagPool(depth, gone, () => stats.rejected++)
      const requests = yield* Devres.acquireRelease(
        Blk,
        Effect.sync(() => new Requests(name, ringSize, pool, stats, gone)),
        // Callers waiting for a tag must hear back, whatever path the unbind took.
        () => Effect.sync(() => pool.shutdown()),
        { label: "request table" }
      )
      const sq = yield* Dma.allocCoherent(Blk, sqRing(ringSize), { label: "submission queue" })
      const cq = yield* Dma.allocCoherent(Blk, cqRing(ringSize), { label: "completion queue" })

      // Completion interrupt: ack first (W1C), so a completion posted while we reap raises
      // again. Reaping and resolving are plain synchronous code on the bound resources.
      const irq = yield* Irq.request(
        Blk,
        0,
        Effect.sync((): Irq.Return => {
          const status = bar.read("INT_STATUS")
          if (status === ALL_ONES || status === 0) return "none"
          bar.write("INT_STATUS", status)
          if ((status & BlkModel.INT_ERROR) !== 0) log(`irq: ${name} reported a queue error`)
          requests.access(token).complete(cq.access(token), bar)
          return "handled"
        })
      )

      /** Registers the request, writes its descriptor and rings the doorbell. */
      const issue = (
        t: Bound.Bound<"blk">,
        tag: number,
        op: number,
        sector: number,
        count: number,
        buffer: Uint8Array | undefined,
        mapping: Dma.Mapping | undefined
      ): Request => {
        const request: Request = {
          tag,
          op,
          sector,
          count,
          buffer,
          mapping,
          result: Deferred.unsafeMake(FiberId.none),
          claimed: false
        }
        if (op === BlkModel.Op.READ) stats.reads++
        else if (op === BlkModel.Op.WRITE) stats.writes++
        else stats.flushes++
        requests.access(t).submit(sq.access(t), bar0.access(t), request)
        return request
      }

      /**
       * Inside the gate: map, describe, ring. Runs uninterruptibly (see `run`). The data
       * buffer is mapped with the section's token (a streaming mapping per request).
       */
      const submit = (t: Bound.Bound<"blk">, tag: number, op: number, sector: number, count: number, data?: Uint8Array) => {
        if (op === BlkModel.Op.FLUSH) return Effect.sync(() => issue(t, tag, op, sector, count, undefined, undefined))
        // A write maps a private copy: the caller may reuse its array once we return.
        const buffer = op === BlkModel.Op.WRITE ? data!.slice() : new Uint8Array(count * sectorSize)
        const direction = op === BlkModel.Op.WRITE ? "to-device" : "from-device"
        // A refused mapping fails the call (the tag goes back); a real block layer would requeue.
        const mapped = Effect.mapError(
          Dma.map(t, buffer, direction, MAP_OPTIONS[op as 1 | 2]),
          (refused) => new IoRefused({ device: name, op: op === BlkModel.Op.WRITE ? "write" : "read", sector, reason: refused.reason })
        )
        return Effect.map(mapped, (devres) => issue(t, tag, op, sector, count, buffer, devres.access(t)))
      }

      /**
       * One user call. Uninterruptible except where it waits (for a tag, for the completion),
       * so a tag or a mapping is never lost to an interrupt. The completion is awaited outside
       * the gate: unbind step 2 never waits for the device.
       */
      const run = (op: number, sector: number, count: number, data?: Uint8Array) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            pool.take(restore), // a refusal (DeviceGone) is counted by the pool
            (tag) =>
              gate.enter((t) => submit(t, tag, op, sector, count, data)).pipe(
                // Refused by a closed gate (or interrupted before submitting): give the tag back.
                Effect.onError(() =>
                  Effect.sync(() => {
                    stats.rejected++
                    pool.put(tag)
                  })
                ),
                Effect.flatMap((request) => restore(Deferred.await(request.result)))
              )
          )
        )

      const range = (sector: number, count: number, reason?: OutOfRange["reason"]) =>
        new OutOfRange({ device: name, sector, count, sectors, reason: reason ?? (count <= 0 ? "empty" : "beyond capacity") })
      const fits = (sector: number, count: number) =>
        Number.isInteger(sector) && Number.isInteger(count) && sector >= 0 && count > 0 && sector + count <= sectors

      const device: BlockDevice = {
        device: name,
        sectors,
        sectorSize,
        read: (sector, count) =>
          fits(sector, count)
            ? Effect.map(run(BlkModel.Op.READ, sector, count), (buffer) => buffer!)
            : Effect.fail(range(sector, count)),
        write: (sector, data) => {
          const count = data.length / sectorSize
          if (!Number.isInteger(count)) return Effect.fail(range(sector, count, "not whole sectors"))
          return fits(sector, count) ? Effect.asVoid(run(BlkModel.Op.WRITE, sector, count, data)) : Effect.fail(range(sector, count))
        },
        // A flush maps nothing, so it is never IoRefused.
        flush: () => Effect.asVoid(run(BlkModel.Op.FLUSH, 0, 0)) as Effect.Effect<void, DeviceError.DeviceGone>,
        stats: () => ({ ...stats })
      }

      // Start the device: rings, interrupts, enable. Nothing can submit before the registration.
      bar.write("SQ_BASE", sq.access(token).iova)
      bar.write("SQ_SIZE", ringSize)
      bar.write("CQ_BASE", cq.access(token).iova)
      bar.write("CQ_SIZE", ringSize)
      bar.write("INT_STATUS", BlkModel.INT_CQ | BlkModel.INT_ERROR)
      bar.write("INT_MASK", 0)
      bar.write("CTRL", BlkModel.CTRL_ENABLE)
      if ((bar.read("STATUS") & BlkModel.STATUS_READY) === 0) {
        return yield* Effect.dieMessage(`${name}: the device did not become ready`)
      }

      // Publish the disk; the registration is a resource of the binding.
      const registry = yield* BlockDevices
      yield* Devres.acquireRelease(
        Blk,
        Effect.sync(() => registry.register(device)),
        () => Effect.sync(() => registry.unregister(device)),
        { label: "block device registration" }
      )

      const queue: Queue = { requests, sq, cq, pool, gate }
      options.onProbe?.({ ...queue, token, bar: bar0, irq, device })
      return queue
    })
  ).pipe(Layer.provideMerge(Bar0Live))

  /** Clears ENABLE and polls READY with a growing interval, up to `stopTimeout`. */
  const stop = (bar: Regs) =>
    Effect.gen(function*() {
      bar.write("CTRL", 0)
      let interval = 0.01 // ms
      let waited = 0
      while (true) {
        const status = bar.read("STATUS")
        if (status === ALL_ONES) return "gone" as const
        if ((status & BlkModel.STATUS_READY) === 0) return "stopped" as const
        if (waited >= stopTimeout) return "timeout" as const
        yield* Effect.sleep(Duration.millis(interval))
        waited += interval
        interval = Math.min(interval * 2, 1)
      }
    })

  return Driver.make(Blk, {
    match: [{ vendor: BlkModel.ids.vendor, device: BlkModel.ids.device }],
    probe,
    // Step 3: the gate is closed (no submission is in progress), every resource is live.
    remove: () =>
      Effect.gen(function*() {
        const token = yield* Blk.Bound
        const bar = (yield* Bar0).access(token)
        const { cq, requests, sq } = yield* QueueState
        const table = requests.access(token)
        if (bar.read("STATUS") === ALL_ONES) {
          // Surprise removal: nothing will complete. Completions posted before it went are real.
          const completed = table.complete(cq.access(token), bar)
          const failed = table.failAll()
          table.failAllNow(failed)
          log(`remove: device gone; ${completed} completed, ${failed.length} failed with DeviceGone`)
          return
        }
        const freedEarly = options.bug === "free-dma-before-stop"
        if (freedEarly) {
          // THE BUG: memory goes back while the device still holds requests that point into it.
          for (const request of table.slots) if (request?.mapping !== undefined) yield* Dma.unmap(request.mapping)
          yield* Devres.release(sq)
          yield* Devres.release(cq)
        }
        const drained = yield* table.waitIdle(drainTimeout)
        const stopped = yield* stop(bar)
        bar.write("INT_MASK", BlkModel.INT_CQ | BlkModel.INT_ERROR)
        const completed = stopped === "gone" || freedEarly ? 0 : table.complete(cq.access(token), bar)
        const failed = table.failAll()
        table.failAllNow(failed)
        log(
          `remove: ${drained ? "drained" : "drain timed out"}; device ${stopped}; ` +
            `${completed} completed late, ${failed.length} failed with DeviceGone`
        )
      })
  })
}
