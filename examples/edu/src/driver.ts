/**
 * A driver for QEMU's educational PCI device, `edu` (vendor 0x1234, device 0x11e8), after
 * QEMU's `docs/specs/edu.rst` and `hw/misc/edu.c`. It runs on the simulator's `Edu` model and,
 * unchanged, on any other `Hardware` that drives a real edu (it uses `@devscope/core` only,
 * and the register map `Edu.registers`, which is data shared by the model and drivers).
 *
 * - **Probe** sets the DMA mask to the device's 28 bits, maps BAR0, checks the `ID` register
 *   (`0xMMmm00ed`: a major version other than 1 is refused with `UnsupportedVersion`) and the
 *   liveness register (it reads back the inverse of what was written), waits (bounded) for a
 *   device a previous binding left busy, acknowledges stale interrupt bits, allocates a
 *   coherent 4 KiB buffer, opens the gate, requests the interrupt line, enables the
 *   factorial-done interrupt and publishes the device in `EduDevices`.
 * - **The interrupt handler** reads `IRQ_STATUS`, acknowledges exactly the bits it read
 *   (`IRQ_ACK`) and wakes their waiters: factorial done (0x1), DMA done (0x100), raised bits.
 *   It re-reads until `IRQ_STATUS` is 0, because QEMU's INTx line is level-triggered: a bit set
 *   between the read and the acknowledge keeps the line asserted and raises no new edge.
 * - **Calls** (`factorial`, `raise`, `dmaToDevice`, `dmaFromDevice`) take the unit they need
 *   (one factorial at a time, one DMA at a time: QEMU ignores `FACT` while it computes and the
 *   DMA registers while a transfer runs), write the registers inside a Gate section, then wait
 *   *outside* it, with a deadline, for the interrupt handler or a poller (a binding fiber
 *   reading `STATUS.COMPUTING` or `DMA_CMD.START`, with a growing interval) to see the work
 *   done, whichever is first. A unit is freed when the *device* is done, not when the caller
 *   stops waiting: a timed-out transfer still owns the DMA engine and the coherent buffer.
 * - **Remove** runs with the gate closed (no new work). If `ID` reads all-ones the device is
 *   gone (surprise removal): in-flight calls fail with `DeviceGone` at once, nothing is waited
 *   for. Otherwise it drains in-flight work (bounded): a DMA in flight must end before the
 *   coherent buffer is freed at unbind step 4 (the Rust-for-Linux rule: never free memory the
 *   device may still use). What is left at the deadline fails with `DeviceGone`.
 */
import { Clock, Context, Data, Deferred, Duration, Effect, Exit, FiberId, Layer } from "effect"
import { Bound, Devres, DeviceError, Dma, Driver, Gate, Hardware, Irq, type Mmio } from "@devscope/core"
import { Edu } from "@devscope/sim"
import {
  DmaOutOfRange,
  type DmaOptions,
  type EduDevice,
  EduDevices,
  type EduStats,
  EduTimeout,
  InvalidArgument,
  type Op
} from "./EduDevices.js"

/** The brand: types the tokens `Bound<"edu">` and `Core<"edu">`. */
export const EduDrv = Driver.brand("edu")

type Regs = Mmio.Mmio<typeof Edu.registers.spec>

// ---------------------------------------------------------------------------------------------
// The device, as docs/specs/edu.rst describes it. The register *offsets* come from the shared
// map `Edu.registers`; the values below are the spec's, spelled out so the driver says what it
// relies on.
// ---------------------------------------------------------------------------------------------

/** PCI ids (`PCI_VENDOR_ID_QEMU`, 0x11e8). */
export const ids = { vendor: 0x1234, device: 0x11e8 } as const

/** `ID` is `0xMMmm00ed`: major, minor, 0x00, 0xed. This driver knows major version 1. */
export const ID_MAGIC = 0xed
export const SUPPORTED_MAJOR = 1

/** `STATUS`: bit 0 "computing" (read-only on QEMU), bit 7 "raise FACT_IRQ when done". */
const STATUS_COMPUTING = 0x01
const STATUS_IRQ_ON_DONE = 0x80

/** `IRQ_STATUS` bits the device sets itself; every other bit comes from `IRQ_RAISE`. */
export const FACT_IRQ = 0x001
export const DMA_IRQ = 0x100
const DEVICE_IRQS = FACT_IRQ | DMA_IRQ

/** `DMA_CMD`: start (cleared by the device when done), direction (1 = buffer to RAM), irq. */
const DMA_START = 0x1
const DMA_TO_RAM = 0x2
const DMA_IRQ_ON_DONE = 0x4

/** The device's DMA buffer, in its own address space (`DMA_SRC`/`DMA_DST` point there). */
export const DMA_BUFFER = 0x40000
export const DMA_BUFFER_SIZE = 4096

/**
 * QEMU's edu drives 28 address bits (`dma_mask`, default `(1 << 28) - 1`) and silently clamps
 * a RAM address above them: memory it is given must lie below 256 MiB. So a 32-bit write of
 * `DMA_SRC`/`DMA_DST` (64-bit registers on QEMU, which zero-extends it) always carries the
 * whole address; the upper halves are never needed.
 */
export const DMA_MASK_BITS = 28

/** What a removed PCI device reads as. */
const ALL_ONES = 0xffffffff

/** The value the probe writes to `LIVENESS`; the device must read back its inverse. */
export const LIVENESS_PATTERN = 0x5a0ff0a5

// ---------------------------------------------------------------------------------------------
// Probe errors
// ---------------------------------------------------------------------------------------------

/** `ID`'s low byte is not 0xed: not an edu (all-ones: the device is already gone). */
export class NotEdu extends Data.TaggedError("NotEdu")<{ readonly device: string; readonly id: number }> {
  override get message() {
    const why = this.id === ALL_ONES ? "reads all-ones (the device is gone)" : "has no 0xed signature"
    return `${this.device}: ID 0x${this.id.toString(16)} ${why}`
  }
}

/** An edu of a major version this driver does not know. */
export class UnsupportedVersion extends Data.TaggedError("UnsupportedVersion")<{
  readonly device: string
  readonly id: number
  readonly major: number
  readonly minor: number
}> {
  override get message() {
    return `${this.device}: edu version ${this.major}.${this.minor} (ID 0x${this.id.toString(16)}) is not supported (major ${SUPPORTED_MAJOR} only)`
  }
}

/** `LIVENESS` did not read back the inverse of what was written. */
export class LivenessFailed extends Data.TaggedError("LivenessFailed")<{
  readonly device: string
  readonly wrote: number
  readonly read: number
}> {
  override get message() {
    return `${this.device}: liveness check failed: wrote 0x${this.wrote.toString(16)}, read 0x${this.read.toString(16)}`
  }
}

/** A previous binding left the device computing or transferring, and it did not finish in time. */
export class DeviceBusy extends Data.TaggedError("DeviceBusy")<{ readonly device: string; readonly status: number; readonly dmaCmd: number }> {
  override get message() {
    return `${this.device}: still busy at probe (STATUS 0x${this.status.toString(16)}, DMA_CMD 0x${this.dmaCmd.toString(16)})`
  }
}

// ---------------------------------------------------------------------------------------------
// Work in flight
// ---------------------------------------------------------------------------------------------

/** Who saw a call complete first. */
type By = "irq" | "poll" | "remove"

/** One call that reached the device. `settled` makes its resolution exactly-once. */
interface Pending<A> {
  readonly op: Op
  readonly result: Deferred.Deferred<A, DeviceError.DeviceGone>
  /** The unit it holds (freed when the device is done with it), if any. */
  readonly unit: Effect.Semaphore | undefined
  settled: boolean
}

interface PendingDma extends Pending<Uint8Array | undefined> {
  readonly toRam: boolean
  readonly length: number
}

interface RaiseWaiter extends Pending<void> {
  readonly bits: number
  /** Bits of `bits` the handler has seen so far. */
  seen: number
}

/**
 * The binding's work in flight and how it completes: the interrupt handler, the pollers and
 * `remove` all end calls through here, synchronously checking the device and resolving each
 * call once. A Devres of the binding: its release fails whatever is still in flight with
 * `DeviceGone` (whatever path the unbind took, nobody is left waiting).
 */
export class Engine {
  fact: Pending<number> | undefined = undefined
  dma: PendingDma | undefined = undefined
  readonly raises = new Set<RaiseWaiter>()
  readonly counts = { started: 0, completed: 0, byIrq: 0, byPoll: 0, byRemove: 0, failed: 0, timedOut: 0, refused: 0, interrupts: 0 }
  /** Resolutions of started calls; equals `started` once nothing is in flight. */
  resolutions = 0

  constructor(
    readonly name: string,
    readonly bar: Regs,
    readonly buffer: Dma.Coherent<typeof DmaBuffer>,
    readonly gone: DeviceError.DeviceGone
  ) {}

  get inFlight(): number {
    return (this.fact === undefined ? 0 : 1) + (this.dma === undefined ? 0 : 1) + this.raises.size
  }

  stats(): EduStats {
    return { ...this.counts, inFlight: this.inFlight }
  }

  /** The device answers all-ones: `ID` can read nothing else on a live edu. */
  isGone(): boolean {
    return this.bar.read("ID") === ALL_ONES
  }

  /** Resolves `p` once, frees its unit, forgets it. */
  settle<A>(p: Pending<A>, exit: Exit.Exit<A, DeviceError.DeviceGone>, by: By): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (p.settled) return Effect.void
      p.settled = true
      const q = p as Pending<unknown>
      if (this.fact === q) this.fact = undefined
      if (this.dma === q) this.dma = undefined
      this.raises.delete(q as RaiseWaiter)
      this.resolutions++
      if (Exit.isSuccess(exit)) {
        this.counts.completed++
        this.counts[by === "irq" ? "byIrq" : by === "poll" ? "byPoll" : "byRemove"]++
      } else {
        this.counts.failed++
      }
      return Effect.zipRight(Deferred.done(p.result, exit), p.unit === undefined ? Effect.void : p.unit.release(1))
    })
  }

  /** Fails every call in flight with `DeviceGone`; returns how many. */
  failAll(): Effect.Effect<number> {
    const all: Array<Pending<any>> = [...this.raises]
    if (this.fact !== undefined) all.push(this.fact)
    if (this.dma !== undefined) all.push(this.dma)
    return Effect.as(Effect.forEach(all, (p) => this.settle(p, Exit.fail(this.gone), "remove"), { discard: true }), all.length)
  }

  /** The factorial is done when `STATUS.COMPUTING` is clear; `FACT` then holds n! mod 2^32. */
  checkFactorial(by: By): Effect.Effect<void> {
    return Effect.suspend(() => {
      const p = this.fact
      if (p === undefined) return Effect.void
      // All-ones has COMPUTING set: a gone device never looks done.
      if ((this.bar.read("STATUS") & STATUS_COMPUTING) !== 0) return Effect.void
      const value = this.bar.read("FACT")
      // n! mod 2^32 is never 0xffffffff (it is even for n >= 2): all-ones here means gone.
      if (value === ALL_ONES && this.isGone()) return Effect.void
      return this.settle(p, Exit.succeed(value), by)
    })
  }

  /**
   * The transfer is done when `DMA_CMD.START` is clear. A transfer from the device is then in
   * the coherent buffer: it is copied out *before* the DMA unit is freed (the next transfer
   * reuses the buffer).
   */
  checkDma(by: By): Effect.Effect<void> {
    return Effect.suspend(() => {
      const p = this.dma
      if (p === undefined) return Effect.void
      if ((this.bar.read("DMA_CMD") & DMA_START) !== 0) return Effect.void // all-ones: START set
      let data: Uint8Array | undefined = undefined
      if (p.toRam) {
        data = new Uint8Array(p.length)
        this.buffer.view.copyOut(0, data)
      }
      return this.settle(p, Exit.succeed(data), by)
    })
  }

  /**
   * The interrupt service routine (also the pollers' fallback for raised bits): read
   * `IRQ_STATUS`, acknowledge exactly those bits, wake their waiters; again until it reads 0.
   * A device's own bits are trusted only with their unit's status (a factorial is done when
   * `COMPUTING` is clear, a transfer when `START` is), so a late or duplicate bit completes
   * nothing it should not.
   */
  service(by: By): Effect.Effect<boolean> {
    return Effect.gen(this, function*() {
      let found = false
      for (let round = 0; round < 4; round++) {
        const status = this.bar.read("IRQ_STATUS")
        if (status === 0) break
        // All-ones: the device is gone (or every bit really is raised: ID tells).
        if (status === ALL_ONES && this.isGone()) break
        this.bar.write("IRQ_ACK", status)
        found = true
        if (by === "irq") this.counts.interrupts++
        if ((status & FACT_IRQ) !== 0) yield* this.checkFactorial(by)
        if ((status & DMA_IRQ) !== 0) yield* this.checkDma(by)
        const raised = (status & ~DEVICE_IRQS) >>> 0
        if (raised !== 0) {
          for (const waiter of [...this.raises]) {
            waiter.seen = (waiter.seen | (raised & waiter.bits)) >>> 0
            if (waiter.seen === waiter.bits) yield* this.settle(waiter, Exit.void, by)
          }
        }
      }
      return found
    })
  }

  /** Every check, for a poller or `remove`: what the handler would do if it had run. */
  checkAll(by: By): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      yield* this.checkFactorial(by)
      yield* this.checkDma(by)
      if (this.raises.size > 0) yield* this.service(by)
    })
  }
}

/** The coherent buffer: one page, the size of the device's own buffer. */
export const DmaBuffer = Dma.array(Dma.struct({ byte: "u8" }), DMA_BUFFER_SIZE)

// ---------------------------------------------------------------------------------------------
// The binding's services
// ---------------------------------------------------------------------------------------------

/** The work in flight (and, through it, BAR0 and the coherent buffer), for `remove`. */
export class EngineState extends Context.Tag("@devscope/example-edu/Engine")<EngineState, Devres.Devres<Engine, "edu">>() {}

/** Labels of the binding's resources, as unbind reports name them (acquisition order). */
export const LABELS = {
  bar0: "edu BAR0",
  buffer: "edu dma buffer",
  engine: "edu operations",
  irq: "irq 0",
  registration: "edu device registration"
} as const

/** What a probe acquired, for tests and debugging. */
export interface Probed {
  readonly token: Bound.Bound<"edu">
  readonly bar: Devres.Devres<Regs, "edu">
  readonly engine: Engine
  readonly buffer: Devres.Devres<Dma.Coherent<typeof DmaBuffer>, "edu">
  readonly irq: Devres.Devres<Irq.Registration, "edu">
  readonly gate: Gate.Gate<"edu">
  readonly device: EduDevice
}

export interface Options {
  /** Deadline of one `factorial` call, waiting for the unit included. Default 1 s. */
  readonly factorialTimeout?: Duration.DurationInput | undefined
  /** Deadline of one `raise` call. Default 100 ms. */
  readonly raiseTimeout?: Duration.DurationInput | undefined
  /** Deadline of one DMA call, waiting for the engine included (QEMU takes 100 ms). Default 1 s. */
  readonly dmaTimeout?: Duration.DurationInput | undefined
  /**
   * How long `remove` waits for in-flight work (a DMA above all) to finish, and how long probe
   * waits for a device a previous binding left busy. Default 1 s.
   */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** The longest interval between two polls of the device's status (it starts at 100 µs and doubles). Default 10 ms. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Receives one line per notable driver event (probe, remove). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe. */
  readonly onProbe?: ((probed: Probed) => void) | undefined
}

const FIRST_POLL_MICROS = 100

/** Sleeps with a doubling interval (from 100 µs up to `maxMillis`) until `done()` or `timeoutMillis`. */
const pollUntil = (done: () => boolean, timeoutMillis: number, maxMillis: number) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    let interval = FIRST_POLL_MICROS / 1000
    while (!done()) {
      if ((yield* Clock.currentTimeMillis) - start >= timeoutMillis) return false
      yield* Effect.sleep(Duration.millis(interval))
      interval = Math.min(interval * 2, maxMillis)
    }
    return true
  })

const isU32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= ALL_ONES

/**
 * The edu driver, matching 1234:11e8. It needs `EduDevices` where it is registered: bound
 * devices are published there.
 */
export const driver = (options: Options = {}) => {
  const factorialTimeout = Duration.decode(options.factorialTimeout ?? "1 second")
  const raiseTimeout = Duration.decode(options.raiseTimeout ?? "100 millis")
  const dmaTimeout = Duration.decode(options.dmaTimeout ?? "1 second")
  const drainMillis = Duration.toMillis(options.drainTimeout ?? "1 second")
  const pollMillis = Duration.toMillis(options.pollInterval ?? "10 millis")
  const log = options.log ?? (() => {})

  const probe = Layer.effect(
    EngineState,
    Effect.gen(function*() {
      // The device drives 28 address bits: everything it is given must lie below them.
      yield* Dma.setMask(yield* EduDrv.Core, DMA_MASK_BITS)
      const token = yield* EduDrv.Bound
      const name = token.device.name

      // BAR0. Every access is 32-bit (the map has no narrower register below 0x80, where QEMU
      // drops narrower accesses, and none at all above).
      const bar0 = yield* Hardware.iomap(EduDrv, Edu.registers, 0, { label: LABELS.bar0 })
      const bar = bar0.access(token)

      // Identification: 0xMMmm00ed. A gone device reads all-ones, which fails the signature.
      const id = bar.read("ID")
      if ((id & 0xff) !== ID_MAGIC) return yield* new NotEdu({ device: name, id })
      const major = id >>> 24
      const minor = (id >>> 16) & 0xff
      if (major !== SUPPORTED_MAJOR) return yield* new UnsupportedVersion({ device: name, id, major, minor })

      // Liveness: the device stores the inverse of what is written.
      bar.write("LIVENESS", LIVENESS_PATTERN)
      const alive = bar.read("LIVENESS")
      if (alive !== (~LIVENESS_PATTERN >>> 0)) return yield* new LivenessFailed({ device: name, wrote: LIVENESS_PATTERN, read: alive })

      // A previous binding may have given up on a transfer (or a factorial) that still runs:
      // the device ignores new DMA register writes until it ends. Wait for it, bounded.
      const busy = () => (bar.read("STATUS") & STATUS_COMPUTING) !== 0 || (bar.read("DMA_CMD") & DMA_START) !== 0
      if (!(yield* pollUntil(() => !busy(), drainMillis, pollMillis))) {
        return yield* new DeviceBusy({ device: name, status: bar.read("STATUS"), dmaCmd: bar.read("DMA_CMD") })
      }
      // Bits left from before (an interrupt that came after the last binding freed its line).
      const stale = bar.read("IRQ_STATUS")
      if (stale !== 0) bar.write("IRQ_ACK", stale)

      // The coherent buffer every transfer goes through, and the work in flight.
      const buffer = yield* Dma.allocCoherent(EduDrv, DmaBuffer, { label: LABELS.buffer })
      const gate = yield* Gate.make(EduDrv, { name: `${name} edu` })
      const gone = new DeviceError.DeviceGone({ device: name, driver: EduDrv.name, gate: gate.name })
      const engineRes = yield* Devres.acquireRelease(
        EduDrv,
        Effect.sync(() => new Engine(name, bar, buffer.access(token), gone)),
        // Normally `remove` has resolved everything; this covers a `remove` cut at its deadline.
        (engine) => engine.failAll(),
        { label: LABELS.engine }
      )
      const engine = engineRes.access(token)

      // The interrupt line (INTx): acknowledge what IRQ_STATUS says, wake the waiters.
      const irq = yield* Irq.request(
        EduDrv,
        0,
        Effect.map(engine.service("irq"), (found): Irq.Return => (found ? "handled" : "none"))
      )

      // Interrupt when a factorial is done. Only bit 7 of STATUS is writable on QEMU.
      bar.write("STATUS", STATUS_IRQ_ON_DONE)

      // ---- The calls -------------------------------------------------------------------------

      const factUnit = yield* Effect.makeSemaphore(1)
      const dmaUnit = yield* Effect.makeSemaphore(1)

      /**
       * Polls for `p` (a binding fiber, so the unbind stops it): the fallback for an interrupt
       * that does not come, or comes late (QEMU computes the factorial on a host thread).
       */
      const poller = (p: Pending<any>) =>
        Effect.gen(function*() {
          let interval = FIRST_POLL_MICROS / 1000
          while (!p.settled) {
            // Wakes at once when the call settles, else after `interval`.
            yield* Effect.timeoutOption(Effect.exit(Deferred.await(p.result)), Duration.millis(interval))
            if (p.settled) return
            // A gone device (all-ones) completes nothing: fail what is in flight now rather
            // than let callers wait for their deadlines. `remove` finds nothing left to wait for.
            if (engine.isGone()) return yield* engine.failAll()
            yield* engine.checkAll("poll")
            interval = Math.min(interval * 2, pollMillis)
          }
        })

      /**
       * One call: take the unit, start the work inside the gate (uninterruptibly, so a started
       * call is never lost), then wait for it outside the gate, so closing the gate never waits
       * for the device. The deadline covers the whole call; at the deadline the caller gets
       * `EduTimeout`, and the work (still on the device) keeps its unit until it ends.
       */
      const run = <A>(
        op: Op,
        timeout: Duration.Duration,
        unit: Effect.Semaphore | undefined,
        start: (t: Bound.Bound<"edu">) => Pending<A>
      ): Effect.Effect<A, DeviceError.DeviceGone | EduTimeout> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            if (unit !== undefined) yield* restore(unit.take(1))
            const p = yield* gate.enter((t) =>
              Effect.suspend(() => {
                const started = start(t)
                engine.counts.started++
                return Effect.as(Bound.fork(t, poller(started)), started)
              })
            ).pipe(
              // Refused by a closed gate: nothing reached the device; give the unit back.
              Effect.onError(() =>
                Effect.zipRight(Effect.sync(() => engine.counts.refused++), unit === undefined ? Effect.void : unit.release(1))
              )
            )
            return yield* restore(Deferred.await(p.result))
          })
        ).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => {
              engine.counts.timedOut++
              return new EduTimeout({ device: name, op, timeoutMillis: Duration.toMillis(timeout) })
            }
          })
        )

      const pending = <A>(op: Op, unit: Effect.Semaphore | undefined): Pending<A> => ({
        op,
        result: Deferred.unsafeMake<A, DeviceError.DeviceGone>(FiberId.none),
        unit,
        settled: false
      })

      const refuse = <E>(error: E): Effect.Effect<never, E> => Effect.zipRight(Effect.sync(() => engine.counts.refused++), Effect.fail(error))

      /** Copies in (to the device) or out (from it) through the coherent buffer. */
      const dma = (
        op: Op,
        toRam: boolean,
        length: number,
        offset: number,
        bytes: Uint8Array | undefined
      ): Effect.Effect<Uint8Array | undefined, DeviceError.DeviceGone | DmaOutOfRange | EduTimeout> => {
        const fits = Number.isInteger(offset) && Number.isInteger(length)
        if (!fits || length <= 0 || offset < 0 || offset + length > DMA_BUFFER_SIZE) {
          const reason = !fits ? "not an integer" : length <= 0 ? "empty" : "beyond the device buffer"
          return refuse(new DmaOutOfRange({ device: name, op, offset, length, size: DMA_BUFFER_SIZE, reason }))
        }
        // A private copy: the caller may reuse its array once the call returns (or times out).
        const data = bytes?.slice()
        return run(op, dmaTimeout, dmaUnit, (t) => {
          const regs = bar0.access(t)
          const memory = buffer.access(t)
          if (data !== undefined) memory.view.copyIn(0, data)
          const p: PendingDma = { ...pending<Uint8Array | undefined>(op, dmaUnit), toRam, length }
          engine.dma = p
          // The device side must lie in its buffer (checked above); the RAM side is ours.
          const device = DMA_BUFFER + offset
          regs.write("DMA_SRC", toRam ? device : memory.iova)
          regs.write("DMA_DST", toRam ? memory.iova : device)
          regs.write("DMA_CNT", length)
          // The doorbell: the buffer's contents are visible to the device before this write.
          regs.write("DMA_CMD", DMA_START | DMA_IRQ_ON_DONE | (toRam ? DMA_TO_RAM : 0))
          return p
        })
      }

      const device: EduDevice = {
        device: name,
        version: { major, minor },
        factorial: (n) =>
          isU32(n)
            ? run("factorial", factorialTimeout, factUnit, (t) => {
              const regs = bar0.access(t)
              const p = pending<number>("factorial", factUnit)
              engine.fact = p
              // The unit is idle (we hold it): writing all of STATUS only (re)sets IRQ_ON_DONE.
              regs.write("STATUS", STATUS_IRQ_ON_DONE)
              regs.write("FACT", n)
              return p
            })
            : refuse(new InvalidArgument({ device: name, op: "factorial", value: n, reason: "not a u32" })),
        raise: (bits) =>
          !isU32(bits) || bits === 0
            ? refuse(new InvalidArgument({ device: name, op: "raise", value: bits, reason: "not a non-zero u32" }))
            : (bits & DEVICE_IRQS) !== 0
            ? refuse(new InvalidArgument({ device: name, op: "raise", value: bits, reason: "bits 0x1 and 0x100 are the device's own" }))
            : run("raise", raiseTimeout, undefined, (t) => {
              const waiter: RaiseWaiter = { ...pending<void>("raise", undefined), bits, seen: 0 }
              // Waiting before the write: the handler may run as soon as the bits are set.
              engine.raises.add(waiter)
              bar0.access(t).write("IRQ_RAISE", bits)
              return waiter
            }),
        dmaToDevice: (bytes, dmaOptions?: DmaOptions) => Effect.asVoid(dma("dma-to-device", false, bytes.length, dmaOptions?.offset ?? 0, bytes)),
        dmaFromDevice: (length, dmaOptions?: DmaOptions) =>
          Effect.map(dma("dma-from-device", true, length, dmaOptions?.offset ?? 0, undefined), (data) => data!),
        stats: () => engine.stats()
      }

      // Publish the device; the registration is a resource of the binding.
      const registry = yield* EduDevices
      yield* Devres.acquireRelease(
        EduDrv,
        Effect.sync(() => registry.register(device)),
        () => Effect.sync(() => registry.unregister(device)),
        { label: LABELS.registration }
      )

      log(`probe: ${name}: edu ${major}.${minor}, dma buffer at 0x${buffer.access(token).iova.toString(16)}`)
      options.onProbe?.({ token, bar: bar0, engine, buffer, irq, gate, device })
      return engineRes
    })
  )

  /** Checks the device with a growing interval until nothing is in flight, it is gone, or the deadline. */
  const drain = (engine: Engine) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      let interval = FIRST_POLL_MICROS / 1000
      while (true) {
        if (engine.inFlight === 0) return "idle" as const
        if (engine.isGone()) return "gone" as const
        yield* engine.checkAll("remove")
        if (engine.inFlight === 0) return "idle" as const
        if ((yield* Clock.currentTimeMillis) - start >= drainMillis) return "timeout" as const
        yield* Effect.sleep(Duration.millis(interval))
        interval = Math.min(interval * 2, pollMillis)
      }
    })

  return Driver.make(EduDrv, {
    match: [{ vendor: ids.vendor, device: ids.device }],
    probe,
    // Step 3: the gate is closed (no call is starting), every resource is live.
    remove: () =>
      Effect.gen(function*() {
        const token = yield* EduDrv.Bound
        const engine = (yield* EngineState).access(token)
        const name = engine.name
        // Surprise removal: a gone device completes nothing. Do not wait for it.
        if (engine.isGone()) {
          const failed = yield* engine.failAll()
          log(`remove: ${name} gone; ${failed} in flight failed with DeviceGone`)
          return
        }
        // Orderly: let in-flight work finish (the interrupt handler and the pollers still run;
        // this loop checks too). A DMA in flight must end before the coherent buffer is freed.
        const inFlight = engine.inFlight
        const outcome = yield* drain(engine)
        const goneMidway = outcome === "gone"
        const dmaStillRunning = outcome === "timeout" && (engine.bar.read("DMA_CMD") & DMA_START) !== 0
        // No factorial interrupt from now on (a live device only). Read-modify-write: a
        // factorial left running keeps its COMPUTING bit (read-only on QEMU anyway).
        if (!goneMidway) engine.bar.modify("STATUS", "IRQ_ON_DONE", 0)
        const failed = yield* engine.failAll()
        log(
          `remove: ${name}: ${inFlight} in flight, ` +
            `${goneMidway ? "device gone while draining" : outcome === "idle" ? "drained" : "drain timed out"}` +
            `${dmaStillRunning ? " (DMA still running: its buffer is freed anyway)" : ""}; ${failed} failed with DeviceGone`
        )
      })
  })
}
