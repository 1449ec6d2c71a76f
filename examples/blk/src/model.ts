/**
 * The simulated device: an "acme blk" PCI block device with one submission queue and one
 * completion queue in host memory (an NVMe-like protocol, reduced to what a driver needs).
 *
 * - The driver programs `SQ_BASE`/`SQ_SIZE` and `CQ_BASE`/`CQ_SIZE` with coherent DMA memory,
 *   unmasks `INT_MASK` and sets `CTRL.ENABLE`; `STATUS.READY` follows.
 * - To submit, it writes a 16-byte descriptor ({@link Sqe}: tag, op, sector, count, data
 *   buffer address) at the SQ tail and writes the new tail to the `SQ_TAIL` doorbell.
 * - The device fetches every new descriptor (DMA read), waits one latency for the whole batch
 *   (`ctx.completion`, so the simulator's delay/drop completion faults apply), then executes
 *   each request in a seeded random order: a write DMA-reads the data buffer and stores it on
 *   the medium *before* its completion is posted; a read DMA-writes the medium's data into the
 *   buffer. It posts a 4-byte completion ({@link Cqe}: tag, status, phase bit) per request and
 *   raises the interrupt once per batch (`INT_STATUS.CQ`, unless masked).
 * - The driver consumes completions whose phase bit matches the phase it expects (the bit
 *   flips at every wrap of the ring) and reports how far it got through the `CQ_HEAD` doorbell.
 * - Clearing `CTRL.ENABLE` stops the device: it fetches nothing more, and the batch it holds is
 *   dropped, unexecuted, when its latency ends; `STATUS.READY` clears then. Once `READY` is 0,
 *   the device will touch host memory no more, so the driver may free it.
 *
 * The medium is a {@link BackingStore}, made apart from the model so that it outlives a plug:
 * unplug the device, plug a new one on the same store, and the data is still there.
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
import { Dma, RegisterMap } from "@devscope/core"
import { Model } from "@devscope/sim"

/**
 * PCI ids the model is plugged with (class 0x0180: mass storage, other).
 * @since 0.1.0
 */
export const ids = { vendor: 0x1234, device: 0xb10c, class: 0x018000 } as const

/**
 * What `ID` reads: "BLK" and version 1.
 * @since 0.1.0
 */
export const ID_VALUE = 0x424c4b01

/**
 * The register map of BAR0, shared by the model and the driver.
 * @since 0.1.0
 */
export const registers = RegisterMap.make("acme-blk", 0x40, {
  ID: { offset: 0x00, access: "RO", reset: ID_VALUE, description: "\"BLK\" and the version" },
  CAP: {
    offset: 0x04,
    access: "RO",
    fields: { MAX_ENTRIES: { bits: [0, 15] }, SECTOR_SHIFT: { bits: [16, 20] } },
    description: "largest queue the device takes (entries), log2 of the sector size"
  },
  CAPACITY: { offset: 0x08, access: "RO", description: "sectors on the medium" },
  CTRL: { offset: 0x10, access: "RW", fields: { ENABLE: { bit: 0 } }, description: "ENABLE starts the queues" },
  STATUS: {
    offset: 0x14,
    access: "RO",
    reset: 0b10,
    fields: { READY: { bit: 0 }, IDLE: { bit: 1 } },
    description: "READY: enabled and running (clears once a stop is complete); IDLE: no request held"
  },
  INT_STATUS: {
    offset: 0x18,
    access: "W1C",
    fields: { CQ: { bit: 0 }, ERROR: { bit: 1 } },
    description: "CQ: completions posted; ERROR: a queue access faulted"
  },
  INT_MASK: {
    offset: 0x1c,
    access: "RW",
    reset: 0b11,
    fields: { CQ: { bit: 0 }, ERROR: { bit: 1 } },
    description: "1 masks the cause; all masked at reset"
  },
  SQ_BASE: { offset: 0x20, access: "RW", description: "submission queue address (latched at enable)" },
  SQ_SIZE: { offset: 0x24, access: "RW", description: "submission queue entries (latched at enable)" },
  SQ_TAIL: { offset: 0x28, access: "WO", description: "doorbell: index after the last descriptor written" },
  SQ_HEAD: { offset: 0x2c, access: "RO", description: "index of the next descriptor the device fetches" },
  CQ_BASE: { offset: 0x30, access: "RW", description: "completion queue address (latched at enable)" },
  CQ_SIZE: { offset: 0x34, access: "RW", description: "completion queue entries (latched at enable)" },
  CQ_HEAD: { offset: 0x38, access: "WO", description: "doorbell: index after the last completion consumed" }
})

/**
 * A submission queue entry (16 bytes).
 * @since 0.1.0
 */
export const Sqe = Dma.struct({ op: "u8", rsvd: "u8", tag: "u16", sector: "u32", count: "u32", addr: "u32" })

/**
 * A completion queue entry (4 bytes).
 * @since 0.1.0
 */
export const Cqe = Dma.struct({ tag: "u16", status: "u8", phase: "u8" })

/**
 * Request opcodes (`Sqe.op`).
 * @since 0.1.0
 */
export const Op = { READ: 1, WRITE: 2, FLUSH: 3 } as const

/**
 * Completion statuses (`Cqe.status`).
 * @since 0.1.0
 */
export const Status = { OK: 0, INVALID_OP: 1, OUT_OF_RANGE: 2, DMA_ERROR: 3 } as const

/**
 * Register bits.
 * @since 0.1.0
 */
export const CTRL_ENABLE = 1
/** @since 0.1.0 */
export const STATUS_READY = 1
/** @since 0.1.0 */
export const STATUS_IDLE = 2
/** @since 0.1.0 */
export const INT_CQ = 1
/** @since 0.1.0 */
export const INT_ERROR = 2

/**
 * The medium: `sectors` sectors of `sectorSize` bytes. It belongs to no device, so it persists
 * across unplug and plug of the models that use it.
 * @since 0.1.0
 */
export interface BackingStore {
  readonly sectors: number
  readonly sectorSize: number
  /** A copy of `count` sectors from `sector`. */
  read(sector: number, count: number): Uint8Array
  /** Stores whole sectors at `sector`. */
  write(sector: number, data: Uint8Array): void
}

/**
 * A zero-filled medium.
 *
 * @example
 * ```ts
 * import { BlkModel } from "@devscope/example-blk"
 *
 * const disk = BlkModel.store(2048) // 1 MiB of 512-byte sectors
 * disk.read(0, 1).length // 512
 * ```
 * @since 0.1.0
 */
export const store = (sectors: number, sectorSize = 512): BackingStore => {
  if (!Number.isInteger(sectors) || sectors < 1 || sectors > 0xffffffff) {
    throw new RangeError(`BlkModel.store: ${sectors} sectors`)
  }
  if (!Number.isInteger(Math.log2(sectorSize)) || sectorSize < 1 || sectorSize > 1 << 16) {
    throw new RangeError(`BlkModel.store: sector size ${sectorSize} is not a power of two up to 64 KiB`)
  }
  const bytes = new Uint8Array(sectors * sectorSize)
  const check = (sector: number, count: number) => {
    if (!Number.isInteger(sector) || !Number.isInteger(count) || sector < 0 || count < 0 || sector + count > sectors) {
      throw new RangeError(`BlkModel.store: sectors [${sector}, ${sector + count}) outside [0, ${sectors})`)
    }
  }
  return {
    sectors,
    sectorSize,
    read: (sector, count) => {
      check(sector, count)
      return bytes.slice(sector * sectorSize, (sector + count) * sectorSize)
    },
    write: (sector, data) => {
      if (data.length % sectorSize !== 0) throw new RangeError(`BlkModel.store: ${data.length} bytes is not whole sectors`)
      check(sector, data.length / sectorSize)
      bytes.set(data, sector * sectorSize)
    }
  }
}

/**
 * The model's configuration.
 * @since 0.1.0
 */
export interface Config {
  readonly store: BackingStore
  /** Time the device takes for one batch of requests. Default 20 µs. */
  readonly latency?: Duration.DurationInput | undefined
  /** Largest queue the device takes (`CAP.MAX_ENTRIES`). Default 64. */
  readonly queueDepth?: number | undefined
}

interface Fetched {
  readonly tag: number
  readonly op: number
  readonly sector: number
  readonly count: number
  readonly addr: number
}

/**
 * The device model.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { BlkModel } from "@devscope/example-blk"
 *
 * const disk = BlkModel.store(2048)
 * const plug = Effect.flatMap(Simulator.Simulator, (sim) =>
 *   sim.plug({ bus: "pci", name: "blk0", ids: BlkModel.ids, model: BlkModel.model({ store: disk }) }))
 * ```
 * @since 0.1.0
 */
export const model = (config: Config) => {
  const medium = config.store
  const latency = Duration.decode(config.latency ?? "20 micros")
  const maxEntries = config.queueDepth ?? 64
  if (!Number.isInteger(maxEntries) || maxEntries < 2 || maxEntries > 0xffff) {
    throw new RangeError(`BlkModel.model: queueDepth ${maxEntries} outside [2, 65535]`)
  }
  return Model.make({
    kind: "acme-blk",
    regions: [registers],
    irqs: 1,
    start: (ctx) =>
      Effect.sync(() => {
        const [regs] = ctx.regions
        regs.set("CAP", (Math.log2(medium.sectorSize) << 16) | maxEntries)
        regs.set("CAPACITY", medium.sectors)

        // Queue state, latched at enable.
        let enabled = false
        let sqBase = 0, sqSize = 0, sqHead = 0, sqTail = 0
        let cqBase = 0, cqSize = 0, cqTail = 0, cqPhase = 1
        /** Completions posted and not yet consumed (per CQ_HEAD). */
        let cqUsed = 0
        let cqHead = 0
        /** Completions waiting for room in the CQ (a driver that consumes late). */
        const backlog: Array<{ tag: number; status: number }> = []
        let engineRunning = false

        const setStatus = (bit: number, on: boolean) =>
          regs.set("STATUS", on ? regs.get("STATUS") | bit : regs.get("STATUS") & ~bit)

        const interrupt = (bits: number) => {
          regs.set("INT_STATUS", regs.get("INT_STATUS") | bits)
          if ((bits & ~regs.get("INT_MASK")) !== 0) ctx.raise(0)
        }

        /** Writes one completion into the CQ; false when the CQ is full (kept for later). */
        const post = (tag: number, status: number): boolean => {
          if (cqUsed === cqSize) return false
          const entry = new Uint8Array(Cqe.size)
          Dma.view(Cqe, entry).set("tag", tag)
          Dma.view(Cqe, entry).set("status", status)
          Dma.view(Cqe, entry).set("phase", cqPhase)
          if (!ctx.dma.deviceWrite(cqBase + cqTail * Cqe.size, entry, "acme-blk engine (post completion)")) {
            interrupt(INT_ERROR)
            return true // lost: the driver's CQ is gone; nothing to retry
          }
          cqUsed++
          if (++cqTail === cqSize) {
            cqTail = 0
            cqPhase ^= 1
          }
          return true
        }

        const fetch = (): Array<Fetched> => {
          const batch: Array<Fetched> = []
          while (enabled && sqHead !== sqTail) {
            const bytes = ctx.dma.deviceRead(sqBase + sqHead * Sqe.size, Sqe.size, "acme-blk engine (fetch descriptor)")
            sqHead = (sqHead + 1) % sqSize
            regs.set("SQ_HEAD", sqHead)
            if (bytes === undefined) {
              interrupt(INT_ERROR)
              continue
            }
            const d = Dma.view(Sqe, bytes)
            batch.push({ tag: d.get("tag"), op: d.get("op"), sector: d.get("sector"), count: d.get("count"), addr: d.get("addr") })
          }
          return batch
        }

        const execute = (r: Fetched): number => {
          if (r.op === Op.FLUSH) return Status.OK // write-through medium: nothing is cached
          if (r.op !== Op.READ && r.op !== Op.WRITE) return Status.INVALID_OP
          if (r.count === 0 || r.sector + r.count > medium.sectors) return Status.OUT_OF_RANGE
          const length = r.count * medium.sectorSize
          if (r.op === Op.WRITE) {
            const data = ctx.dma.deviceRead(r.addr, length, "acme-blk engine (write: read data buffer)")
            if (data === undefined) return Status.DMA_ERROR
            medium.write(r.sector, data) // on the medium before the completion is posted
            return Status.OK
          }
          const ok = ctx.dma.deviceWrite(r.addr, medium.read(r.sector, r.count), "acme-blk engine (read: fill data buffer)")
          return ok ? Status.OK : Status.DMA_ERROR
        }

        const stopped = () => {
          engineRunning = false
          setStatus(STATUS_IDLE, true)
          if (!enabled) setStatus(STATUS_READY, false)
        }

        // One latency per batch, however many requests it holds: keeps virtual sleeps few.
        const engine: Effect.Effect<void> = Effect.gen(function*() {
          // Let submitters of the same instant ring their doorbells: one batch for all.
          for (let i = 0; i < 8; i++) yield* Effect.yieldNow()
          while (true) {
            const batch = fetch()
            if (batch.length === 0) return stopped()
            const done = yield* ctx.completion(`acme-blk batch of ${batch.length}`, latency)
            if (!enabled) return stopped() // stopped meanwhile: the batch is dropped, unexecuted
            // Requests of a batch complete in any order: the driver matches them by tag.
            for (let i = batch.length - 1; i > 0; i--) {
              const j = Math.floor(ctx.random() * (i + 1))
              const t = batch[i]!
              batch[i] = batch[j]!
              batch[j] = t
            }
            let posted = 0
            for (const r of batch) {
              const status = execute(r)
              if (!done) continue // completion dropped by a fault rule: executed, never reported
              if (post(r.tag, status)) posted++
              else backlog.push({ tag: r.tag, status })
            }
            if (posted > 0) interrupt(INT_CQ)
          }
        })

        regs.onWrite("CTRL", (value, previous) => {
          const on = (value & CTRL_ENABLE) !== 0
          if (on === ((previous & CTRL_ENABLE) !== 0)) return
          if (on) {
            sqBase = regs.get("SQ_BASE")
            sqSize = regs.get("SQ_SIZE")
            cqBase = regs.get("CQ_BASE")
            cqSize = regs.get("CQ_SIZE")
            if (sqSize < 2 || sqSize > maxEntries || cqSize < 2 || cqSize > maxEntries) {
              interrupt(INT_ERROR)
              return
            }
            sqHead = sqTail = cqTail = cqHead = cqUsed = 0
            cqPhase = 1
            backlog.length = 0
            regs.set("SQ_HEAD", 0)
            enabled = true
            setStatus(STATUS_READY, true)
          } else {
            enabled = false
            // A batch in the engine is dropped when its latency ends; READY clears then.
            if (!engineRunning) setStatus(STATUS_READY, false)
          }
        })

        regs.onWrite("SQ_TAIL", (value) => {
          if (!enabled) return
          sqTail = value % sqSize
          if (engineRunning) return
          engineRunning = true
          setStatus(STATUS_IDLE, false)
          ctx.spawn("acme-blk engine", engine)
        })

        regs.onWrite("CQ_HEAD", (value) => {
          if (!enabled) return
          const head = value % cqSize
          cqUsed -= (head - cqHead + cqSize) % cqSize
          cqHead = head
          let posted = 0
          while (backlog.length > 0 && post(backlog[0]!.tag, backlog[0]!.status)) {
            backlog.shift()
            posted++
          }
          if (posted > 0) interrupt(INT_CQ)
        })
      })
  })
}
