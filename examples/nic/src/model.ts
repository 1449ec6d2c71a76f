/**
 * The simulated device: an "acme nic" PCI network card with one port, TX and RX descriptor
 * rings in host memory, and a virtual cable to a second card.
 *
 * - The driver programs each ring's base (an IOVA), size, and tail (the doorbell); the device
 *   owns the heads. Descriptors `[head, tail)` belong to the device, so at most `size - 1`
 *   are in flight and `head === tail` means the device has nothing to do.
 * - TX: on a `TX_TAIL` doorbell the TX engine waits its latency (`ctx.completion`, so the
 *   simulator's delay/drop faults apply), then reads *every* descriptor up to the tail and its
 *   frame through the IOMMU, writes the descriptor back with `DONE`, moves `TX_HEAD`, sets
 *   `INT_STATUS.TX_DONE` and hands the frames to the cable. One wakeup handles a whole batch.
 * - RX: frames from the cable go into a small on-chip FIFO; the RX engine waits its latency,
 *   then writes each frame into the buffer of the descriptor at `RX_HEAD`, writes the
 *   descriptor back (`len`, `DONE`), moves `RX_HEAD` and sets `INT_STATUS.RX`. A frame finding
 *   no free descriptor, or arriving while RX is disabled, is counted in `RX_DROPPED`.
 * - Interrupts: a cause bit in `INT_STATUS` (W1C) raises line 0 unless masked in `INT_MASK`
 *   (a set bit masks). Unmasking a cause that is pending raises at once, so a driver that
 *   masks while it polls never loses an event.
 * - Link: `STATUS.LINK_UP` while both ends of the cable are plugged, connected and `ENABLE`d
 *   (or, with `loopback`, while the card itself is enabled); every change sets `LINK_CHANGE`.
 * - A DMA fault (stale ring, freed buffer) halts the engine that hit it until the next
 *   doorbell or reset, as a real engine stops on a bus error; the fault itself is recorded
 *   by the simulator's IOMMU with the driver's allocation and free sites.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as Duration from "effect/Duration"
import type * as Scope from "effect/Scope"
import { Dma } from "@devscope/core"
import type { Model as SimModel } from "@devscope/sim"
import { Model } from "@devscope/sim"
import { type Cable, CableImpl, type Port } from "./cable.js"
import {
  CTRL_ENABLE,
  CTRL_RESET,
  CTRL_RX_ENABLE,
  CTRL_TX_ENABLE,
  Desc,
  DESC_DONE,
  DESC_ERR,
  DESC_OWN,
  INT_ALL,
  INT_LINK_CHANGE,
  INT_RX,
  INT_TX_DONE,
  registers,
  STATUS_LINK_UP,
  STATUS_RX_IDLE,
  STATUS_TX_IDLE
} from "./registers.js"

/**
 * The card's register map, its bits and the descriptor layout (see registers.ts).
 * @since 0.1.0
 */
export * from "./registers.js"
export {
  /**
   * The virtual cable between two cards (see cable.ts).
   * @since 0.1.0
   */
  type Cable,
  /**
   * A new cable (see cable.ts).
   * @since 0.1.0
   */
  cable
} from "./cable.js"

/**
 * Frames waiting in the on-chip RX FIFO before it overflows.
 * @since 0.1.0
 */
export const RX_FIFO_FRAMES = 256

/**
 * Default device latency of one TX or RX batch.
 * @since 0.1.0
 */
export const DEFAULT_LATENCY = "20 micros"


/**
 * Options of one card.
 * @since 0.1.0
 */
export interface ModelOptions {
  /** The cable this card is plugged into; without one the link is down (unless `loopback`). */
  readonly cable?: Cable | undefined
  /** Which end of the cable. Default 0. */
  readonly port?: 0 | 1 | undefined
  /** The EEPROM MAC address (48 bits). Default `02:00:00:00:00:0<port + 1>`. */
  readonly mac?: number | undefined
  /** Internal loopback: transmitted frames come back to this card's own RX. */
  readonly loopback?: boolean | undefined
  /** Latency of one TX or RX batch. Default 20 µs. */
  readonly latency?: Duration.DurationInput | undefined
}

/**
 * The default MAC of a port.
 * @since 0.1.0
 */
export const defaultMac = (port: 0 | 1): number => 0x020000000000 + port + 1

type Ctx = SimModel.Context<readonly [typeof registers]>

const u32 = (n: number) => n >>> 0

/** The card's behaviour; one instance per plug. */
class Card implements Port {
  private readonly regs: Ctx["regions"][0]
  private readonly fifo: Array<Uint8Array> = []
  private txBusy = false
  private rxBusy = false
  private readonly port: 0 | 1
  private readonly mac: number
  private readonly latency: Duration.DurationInput

  constructor(private readonly ctx: Ctx, private readonly options: ModelOptions) {
    this.regs = ctx.regions[0]
    this.port = options.port ?? 0
    this.mac = options.mac ?? defaultMac(this.port)
    this.latency = options.latency ?? DEFAULT_LATENCY
    this.loadEeprom()
  }

  private get wire(): CableImpl | undefined {
    return this.options.loopback === true ? undefined : this.options.cable as CableImpl | undefined
  }

  private loadEeprom() {
    this.regs.set("MAC_LO", u32(this.mac % 2 ** 32))
    this.regs.set("MAC_HI", Math.floor(this.mac / 2 ** 32) & 0xffff)
  }

  private ctrl(bits: number) {
    return (this.regs.get("CTRL") & bits) === bits
  }

  get active() {
    return !this.ctx.disconnected && this.ctrl(CTRL_ENABLE)
  }

  private setStatus(bit: number, on: boolean) {
    const status = this.regs.get("STATUS")
    this.regs.set("STATUS", on ? status | bit : status & ~bit)
  }

  /** Sets interrupt causes and raises the line for those not masked. */
  private signal(bits: number) {
    this.regs.set("INT_STATUS", this.regs.get("INT_STATUS") | bits)
    if ((bits & ~this.regs.get("INT_MASK")) !== 0) this.ctx.raise(0)
  }

  private count(register: "TX_FRAMES" | "TX_BYTES" | "RX_FRAMES" | "RX_BYTES" | "RX_DROPPED", n: number) {
    this.regs.set(register, u32(this.regs.get(register) + n))
  }

  updateLink() {
    const wire = this.wire
    const up = this.active &&
      (this.options.loopback === true || (wire !== undefined && wire.peerActive(this.port)))
    if (up === ((this.regs.get("STATUS") & STATUS_LINK_UP) !== 0)) return
    this.setStatus(STATUS_LINK_UP, up)
    this.signal(INT_LINK_CHANGE)
  }

  /** Both ends' link state may have changed (this card's ENABLE did). */
  private relink() {
    const wire = this.wire
    if (wire === undefined) this.updateLink()
    else wire.update()
  }

  attach(): Effect.Effect<void, never, Scope.Scope> {
    const wire = this.wire
    if (wire === undefined) return Effect.void
    return Effect.acquireRelease(
      Effect.sync(() => wire.attach(this.port, this)),
      () => Effect.sync(() => wire.detach(this.port, this))
    )
  }

  install() {
    const regs = this.regs
    regs.onWrite("CTRL", (value) => {
      if ((value & CTRL_RESET) !== 0) return this.reset()
      this.relink()
      this.kickTx()
    })
    regs.onWrite("TX_TAIL", () => this.kickTx())
    regs.onWrite("INT_MASK", (mask) => {
      if ((regs.get("INT_STATUS") & ~mask & INT_ALL) !== 0) this.ctx.raise(0)
    })
  }

  private reset() {
    this.regs.reset()
    this.loadEeprom()
    this.fifo.length = 0
    // An engine sleeping through its latency sees CTRL cleared when it wakes, and stops.
    this.setStatus(STATUS_TX_IDLE, !this.txBusy)
    this.setStatus(STATUS_RX_IDLE, !this.rxBusy)
    this.relink()
  }

  // --- TX ---------------------------------------------------------------------------------------

  private txRunning() {
    return !this.ctx.disconnected && this.ctrl(CTRL_ENABLE | CTRL_TX_ENABLE)
  }

  private kickTx() {
    if (this.txBusy || !this.txRunning() || this.regs.get("TX_HEAD") === this.regs.get("TX_TAIL")) return
    this.txBusy = true
    this.setStatus(STATUS_TX_IDLE, false)
    const ctx = this.ctx
    const engine = Effect.gen(this, function*() {
      while (this.txRunning() && this.regs.get("TX_HEAD") !== this.regs.get("TX_TAIL")) {
        // A dropped completion is a lost wakeup: the next doorbell retries from TX_HEAD.
        if (!(yield* ctx.completion("nic tx batch", this.latency))) return
        if (!this.txRunning()) return
        const frames: Array<Uint8Array> = []
        const halted = this.transmitBatch(frames)
        if (frames.length > 0) {
          const wire = this.wire
          if (this.options.loopback === true) this.deliver(frames)
          else wire?.transmit(this.port, frames)
        }
        if (halted) return
      }
    }).pipe(Effect.ensuring(Effect.sync(() => {
      this.txBusy = false
      this.setStatus(STATUS_TX_IDLE, true)
    })))
    ctx.spawn("nic tx engine", engine)
  }

  /** Sends every descriptor up to the tail. Returns true if the engine must halt. */
  private transmitBatch(frames: Array<Uint8Array>): boolean {
    const regs = this.regs
    const base = regs.get("TX_RING_BASE")
    const size = regs.get("TX_RING_SIZE")
    const tail = regs.get("TX_TAIL")
    let head = regs.get("TX_HEAD")
    let halted = size === 0 || tail >= size
    let completed = 0
    while (!halted && head !== tail) {
      const at = base + head * Desc.size
      const raw = this.ctx.dma.deviceRead(at, Desc.size, "nic tx engine (descriptor)")
      if (raw === undefined) {
        halted = true
        break
      }
      const desc = Dma.view(Desc, raw)
      if ((desc.get("flags") & DESC_OWN) === 0) {
        halted = true // the driver rang for a descriptor it did not hand over
        break
      }
      const len = desc.get("len")
      const frame = this.ctx.dma.deviceRead(desc.get("addr"), len, "nic tx engine (frame buffer)")
      if (frame !== undefined) {
        frames.push(frame)
        this.count("TX_FRAMES", 1)
        this.count("TX_BYTES", len)
      }
      desc.set("flags", frame === undefined ? DESC_DONE | DESC_ERR : DESC_DONE)
      this.ctx.dma.deviceWrite(at, raw, "nic tx engine (descriptor write-back)")
      head = (head + 1) % size
      completed++
    }
    regs.set("TX_HEAD", head)
    if (completed > 0) this.signal(INT_TX_DONE)
    return halted
  }

  // --- RX ---------------------------------------------------------------------------------------

  private rxRunning() {
    return !this.ctx.disconnected && this.ctrl(CTRL_ENABLE | CTRL_RX_ENABLE)
  }

  deliver(frames: ReadonlyArray<Uint8Array>) {
    if (this.ctx.disconnected) return
    if (!this.rxRunning()) return this.count("RX_DROPPED", frames.length)
    for (const frame of frames) {
      if (this.fifo.length >= RX_FIFO_FRAMES) this.count("RX_DROPPED", 1)
      else this.fifo.push(frame)
    }
    this.kickRx()
  }

  private kickRx() {
    if (this.rxBusy || this.fifo.length === 0) return
    this.rxBusy = true
    this.setStatus(STATUS_RX_IDLE, false)
    const ctx = this.ctx
    const engine = Effect.gen(this, function*() {
      while (this.fifo.length > 0) {
        // A dropped completion leaves the frames in the FIFO until the next arrival.
        if (!(yield* ctx.completion("nic rx batch", this.latency))) return
        if (!this.rxRunning()) {
          this.count("RX_DROPPED", this.fifo.length)
          this.fifo.length = 0
          return
        }
        this.receiveBatch()
      }
    }).pipe(Effect.ensuring(Effect.sync(() => {
      this.rxBusy = false
      this.setStatus(STATUS_RX_IDLE, true)
    })))
    ctx.spawn("nic rx engine", engine)
  }

  /** Moves the whole FIFO into the RX ring (or drops what does not fit). */
  private receiveBatch() {
    const regs = this.regs
    const base = regs.get("RX_RING_BASE")
    const size = regs.get("RX_RING_SIZE")
    const tail = regs.get("RX_TAIL")
    let head = regs.get("RX_HEAD")
    let halted = size === 0 || tail >= size
    let received = 0
    const frames = this.fifo.splice(0, this.fifo.length)
    for (const frame of frames) {
      if (halted || head === tail) {
        this.count("RX_DROPPED", 1)
        continue
      }
      const at = base + head * Desc.size
      const raw = this.ctx.dma.deviceRead(at, Desc.size, "nic rx engine (descriptor)")
      if (raw === undefined || (Dma.view(Desc, raw).get("flags") & DESC_OWN) === 0) {
        halted = true
        this.count("RX_DROPPED", 1)
        continue
      }
      const desc = Dma.view(Desc, raw)
      const fits = frame.byteLength <= desc.get("len")
      const written = fits && this.ctx.dma.deviceWrite(desc.get("addr"), frame, "nic rx engine (frame buffer)")
      desc.set("len", written ? frame.byteLength : 0)
      desc.set("flags", written ? DESC_DONE : DESC_DONE | DESC_ERR)
      if (!this.ctx.dma.deviceWrite(at, raw, "nic rx engine (descriptor write-back)")) {
        halted = true
        this.count("RX_DROPPED", 1)
        continue
      }
      if (written) {
        this.count("RX_FRAMES", 1)
        this.count("RX_BYTES", frame.byteLength)
      } else {
        this.count("RX_DROPPED", 1)
      }
      head = (head + 1) % size
      received++
    }
    regs.set("RX_HEAD", head)
    if (received > 0) this.signal(INT_RX)
  }
}

/**
 * The device model of one card.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { NicModel } from "@devscope/example-nic"
 *
 * // A single card that hears its own frames.
 * const plugLoopback = Effect.flatMap(Simulator.Simulator, (sim) =>
 *   sim.plug({ bus: "pci", name: "nic0", ids: NicModel.ids, model: NicModel.model({ loopback: true }) }))
 * ```
 * @since 0.1.0
 */
export const model = (options: ModelOptions = {}) =>
  Model.make({
    kind: "acme-nic",
    regions: [registers],
    irqs: 1,
    start: (ctx) =>
      Effect.suspend(() => {
        const card = new Card(ctx, options)
        card.install()
        // Unplugged or removed: the device scope closes and the peer sees its link go down.
        return card.attach()
      })
  })
