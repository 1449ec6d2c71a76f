/**
 * A QEMU-`edu`-like PCI device (after `hw/misc/edu.c`): an identification register, a
 * liveness check, a factorial unit that completes after a delay, interrupt raise/ack
 * registers, and a DMA engine that moves data between memory (through the IOMMU) and a
 * 4 KiB buffer inside the device, completing after a delay with an optional interrupt.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { RegisterMap } from "@devscope/core"
import * as Model from "./Model.js"

/**
 * PCI ids the model answers to.
 * @since 0.1.0
 * @category constants
 */
export const ids = {
  vendor: 0x1234,
  device: 0x11e8,
  class: 0x00ff00,
  // QEMU's edu: revision 0x10; QEMU's default subsystem ids.
  revision: 0x10,
  subsystemVendor: 0x1af4,
  subsystem: 0x1100
} as const

/**
 * Where the device's internal buffer sits in the device's own address space (DMA_SRC or
 * DMA_DST points there for the device side of a transfer).
 * @since 0.1.0
 * @category constants
 */
export const BUFFER_ADDRESS = 0x40000

/**
 * @since 0.1.0
 * @category constants
 */
export const BUFFER_SIZE = 4096

/**
 * IRQ_STATUS bit the DMA engine sets on completion.
 * @since 0.1.0
 * @category constants
 */
export const DMA_IRQ = 0x100

/**
 * IRQ_STATUS bit the factorial unit sets on completion.
 * @since 0.1.0
 * @category constants
 */
export const FACT_IRQ = 0x1

/**
 * The register map of BAR0, shared by the model and any driver.
 * @since 0.1.0
 * @category constants
 */
export const registers = RegisterMap.make("edu", 0x100, {
  ID: { offset: 0x00, access: "RO", reset: 0x010000ed, description: "major.minor version and 0xed" },
  LIVENESS: { offset: 0x04, access: "RW", description: "reads back the bitwise inverse of what was written" },
  FACT: { offset: 0x08, access: "RW", description: "write n; reads n! once STATUS.COMPUTING clears" },
  STATUS: {
    offset: 0x20,
    access: "RW",
    fields: { COMPUTING: { bit: 0 }, IRQ_ON_DONE: { bit: 7 } }
  },
  IRQ_STATUS: { offset: 0x24, access: "RO" },
  IRQ_RAISE: { offset: 0x60, access: "WO" },
  IRQ_ACK: { offset: 0x64, access: "WO" },
  DMA_SRC: { offset: 0x80, access: "RW" },
  DMA_DST: { offset: 0x88, access: "RW" },
  DMA_CNT: { offset: 0x90, access: "RW" },
  DMA_CMD: {
    offset: 0x98,
    access: "RW",
    fields: { START: { bit: 0 }, TO_RAM: { bit: 1 }, IRQ: { bit: 2 } }
  }
})

/**
 * Latencies of the device, in virtual time.
 * @since 0.1.0
 * @category models
 */
export interface Timing {
  readonly factorial?: Duration.DurationInput | undefined
  readonly dma?: Duration.DurationInput | undefined
}

const factorial = (n: number) => {
  let r = 1
  for (let i = 2; i <= n; i++) r = Math.imul(r, i) >>> 0
  return r >>> 0
}

/**
 * The device model. The DMA engine checks ranges like QEMU's (the device-side range must lie
 * in the buffer); memory-side addresses go through the IOMMU, so a stale or unmapped address
 * is an IOMMU fault with provenance.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Edu, Simulator } from "@devscope/sim"
 *
 * const plugEdu = Effect.flatMap(Simulator.Simulator, (sim) =>
 *   sim.plug({ bus: "pci", name: "edu0", ids: Edu.ids, model: Edu.model() }))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const model = (timing: Timing = {}) =>
  Model.make({
    kind: "edu",
    regions: [registers],
    irqs: 1,
    start: (ctx) =>
      Effect.sync(() => {
        const [regs] = ctx.regions
        const buffer = new Uint8Array(BUFFER_SIZE)
        // QEMU's `addr4`: a write stores the inverse, a read returns what is stored (0 at reset).
        let liveness = 0
        const raise = (bits: number) => {
          regs.set("IRQ_STATUS", regs.get("IRQ_STATUS") | bits)
          // As QEMU's edu_raise_irq: an interrupt only while some status bit is set.
          if (regs.get("IRQ_STATUS") !== 0) ctx.raise(0)
        }
        regs.onWrite("LIVENESS", (value) => void (liveness = ~value >>> 0))
        regs.onRead("LIVENESS", () => liveness)
        // QEMU's STATUS write only sets or clears IRQ_ON_DONE: COMPUTING is the device's.
        regs.onWrite("STATUS", (_, previous) => regs.setField("STATUS", "COMPUTING", previous & 1))
        regs.onWrite("FACT", (n, previous) => {
          // QEMU ignores FACT writes while a factorial is being computed.
          if (regs.getField("STATUS", "COMPUTING") === 1) return regs.set("FACT", previous)
          regs.setField("STATUS", "COMPUTING", 1)
          ctx.spawn(
            "edu factorial",
            Effect.flatMap(ctx.completion("factorial", timing.factorial ?? "1 millis"), (done) =>
              Effect.sync(() => {
                if (!done) return
                regs.set("FACT", factorial(n))
                regs.setField("STATUS", "COMPUTING", 0)
                if (regs.getField("STATUS", "IRQ_ON_DONE") === 1) raise(FACT_IRQ)
              }))
          )
        })
        regs.onWrite("IRQ_RAISE", (bits) => raise(bits))
        regs.onWrite("IRQ_ACK", (bits) => regs.set("IRQ_STATUS", regs.get("IRQ_STATUS") & ~bits))
        // As QEMU: while a transfer runs, writes to the DMA registers are ignored; a DMA_CMD
        // write without START is ignored too.
        const running = () => regs.getField("DMA_CMD", "START") === 1
        for (const name of ["DMA_SRC", "DMA_DST", "DMA_CNT"] as const) {
          regs.onWrite(name, (_, previous) => {
            if (running()) regs.set(name, previous)
          })
        }
        regs.onWrite("DMA_CMD", (cmd, previous) => {
          if ((previous & 1) === 1 || (cmd & 1) === 0) return regs.set("DMA_CMD", previous)
          const src = regs.get("DMA_SRC")
          const dst = regs.get("DMA_DST")
          const count = regs.get("DMA_CNT")
          const toRam = (cmd & 2) !== 0
          ctx.spawn(
            "edu dma transfer",
            Effect.flatMap(ctx.completion("dma", timing.dma ?? "1 millis"), (done) =>
              Effect.sync(() => {
                if (!done) return
                const inBuffer = (addr: number) => addr >= BUFFER_ADDRESS && addr + count <= BUFFER_ADDRESS + BUFFER_SIZE
                if (toRam && inBuffer(src)) {
                  const start = src - BUFFER_ADDRESS
                  ctx.dma.deviceWrite(dst, buffer.slice(start, start + count), "edu dma engine (buffer to RAM)")
                } else if (!toRam && inBuffer(dst)) {
                  const data = ctx.dma.deviceRead(src, count, "edu dma engine (RAM to buffer)")
                  if (data !== undefined) buffer.set(data, dst - BUFFER_ADDRESS)
                }
                regs.setField("DMA_CMD", "START", 0)
                if ((cmd & 4) !== 0) raise(DMA_IRQ)
              }))
          )
        })
      })
  })
