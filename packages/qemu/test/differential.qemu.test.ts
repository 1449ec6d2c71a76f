/**
 * Issue 13: the simulator's `Edu` and `PciTestdev` models against QEMU's own edu and
 * pci-testdev. Every sequence runs twice, on the simulator (in a VirtualTime world) and on
 * QEMU (a backend made outside a VirtualTime world, its manual clock driven from it), and
 * logs every register value read, every interrupt seen and every DMA result; the two logs
 * must be equal. The differences docs/qemu.md lists as intended ("Differences between the
 * simulator's models and QEMU's") are asserted explicitly, side by side, with `differs`, so a
 * change on either side is noticed. The simulator's edu runs with QEMU's 100 ms DMA. QEMU's
 * edu runs twice, interrupting by INTx and by MSI (the backend's mailboxes): both must match
 * the simulator, MSI with its own expected value where a listed difference is INTx's level.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import type { Hardware, Mmio } from "@devscope/core"
import { Edu, PciTestdev, Simulator, VirtualTime } from "@devscope/sim"
import { Qemu } from "@devscope/qemu"
import { locate } from "../src/internal/install.js"

const qemu = locate()
const skip = !qemu.available && process.env.CI === undefined
if (skip) console.warn(`skipping the simulator-vs-QEMU differential tests: ${qemu.available ? "" : `${qemu.reason} (${qemu.hint})`}`)
if (!qemu.available && process.env.CI !== undefined) throw new Error(`CI must run the QEMU tests: ${qemu.reason}`)

type Value = number | string | boolean | ReadonlyArray<number | string>
type Side = "sim" | "qemu" | "qemu-msi"

/** One side's device, as a sequence sees it. */
interface Target {
  readonly side: Side
  readonly bar: Mmio.Region
  readonly line: Hardware.IrqLine | undefined
  readonly dma: Hardware.DmaPort
  readonly ids: unknown
  /** QEMU's clock (ns), on QEMU. */
  readonly qemuClock: (() => bigint) | undefined
  /** Surprise removal of the device. */
  readonly remove: Effect.Effect<void, unknown>
  /** Logs a value that must be the same on both sides. */
  readonly log: (what: string, value: Value) => void
  /** A listed (intended) difference: the value each side must give. */
  readonly differs: (what: string, value: Value, expected: { readonly sim: Value; readonly qemu: Value; readonly msi?: Value }) => void
}
type Sequence = (t: Target) => Effect.Effect<void, unknown>
type Kind = "edu" | "pci-testdev"

const NAME = "dev0"

const target = (side: Side, log: Array<readonly [string, Value]>, parts: Omit<Target, "side" | "log" | "differs">): Target => ({
  ...parts,
  side,
  log: (what, value) => void log.push([what, value]),
  differs: (what, value, expected) => {
    const wanted = side === "qemu-msi" ? ("msi" in expected ? expected.msi : expected.qemu) : expected[side]
    expect(value, `${side}: ${what} (a listed difference)`).toEqual(wanted)
    log.push([`listed: ${what}`, "as listed"])
  }
})

const outcomeOf = <A, E>(side: Side, outcome: VirtualTime.Outcome<A, E>) => {
  if (outcome._tag !== "Done" || outcome.exit._tag !== "Success") {
    throw new Error(`${side}: the sequence did not succeed: ${outcome._tag} ${outcome.exit === undefined ? "" : String(outcome.exit)}`)
  }
}

const onSim = (kind: Kind, seq: Sequence) =>
  Effect.gen(function*() {
    const log: Array<readonly [string, Value]> = []
    const outcome = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
      const sim = yield* Simulator.make()
      const d = kind === "edu"
        ? yield* sim.plug({ bus: "pci", name: NAME, ids: Edu.ids, model: Edu.model({ dma: "100 millis" }) })
        : yield* sim.plug({ bus: "pci", name: NAME, ids: PciTestdev.ids, model: PciTestdev.model() })
      const bar = yield* sim.hardware.region(d.device, 0)
      const line = kind === "edu" ? yield* sim.hardware.irq(d.device, 0) : undefined
      yield* seq(target("sim", log, { bar, line, dma: sim.hardware.dma(d.device), ids: d.device.ids, qemuClock: undefined, remove: Effect.asVoid(sim.surpriseRemove(NAME)) }))
      expect(sim.iommuFaults()).toEqual([])
    })))
    outcomeOf("sim", outcome)
    return log
  })

const onQemu = (kind: Kind, seq: Sequence, interrupts: "intx" | "msi" = "intx") =>
  Effect.scoped(Effect.gen(function*() {
    const log: Array<readonly [string, Value]> = []
    const side: Side = interrupts === "msi" ? "qemu-msi" : "qemu"
    const q = yield* Qemu.make({ devices: [{ name: NAME, model: kind, interrupts }], clock: "manual" })
    const device = yield* q.plug(NAME)
    const bar = yield* q.hardware.region(device, 0)
    const line = kind === "edu" ? yield* q.hardware.irq(device, 0) : undefined
    const outcome = yield* VirtualTime.run(Effect.gen(function*() {
      yield* Effect.fork(q.runClock)
      yield* seq(target(side, log, { bar, line, dma: q.hardware.dma(device), ids: device.ids, qemuClock: q.qemuClock, remove: Effect.asVoid(q.surpriseRemove(NAME)) }))
    }))
    outcomeOf(side, outcome)
    expect(q.problems()).toEqual([])
    expect(q.lost()).toBeUndefined()
    expect(q.dmaFaults()).toEqual([])
    return log
  }))

/** Runs the sequence on both sides; everything logged must be equal. */
const differential = (kind: Kind, seq: Sequence) =>
  Effect.gen(function*() {
    const sim = yield* onSim(kind, seq)
    const onQ = yield* onQemu(kind, seq)
    expect(onQ).toEqual(sim)
    expect(sim.length).toBeGreaterThan(0)
    // edu also signals by MSI: the same log.
    if (kind === "edu") expect(yield* onQemu(kind, seq, "msi")).toEqual(sim)
  })

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`

/** Sleeps 1 ms at a time until `done`; the number of sleeps (-1: not within `max`). */
const poll = (done: () => boolean, max: number) =>
  Effect.gen(function*() {
    for (let i = 1; i <= max; i++) {
      yield* Effect.sleep("1 millis")
      if (done()) return i
    }
    return -1
  })

// edu's registers
const ID = 0x00, LIVENESS = 0x04, FACT = 0x08, STATUS = 0x20, IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64
const DMA_SRC = 0x80, DMA_DST = 0x88, DMA_CNT = 0x90, DMA_CMD = 0x98
const factorial = (n: number) => {
  let r = 1
  for (let i = 2; i <= n; i++) r = Math.imul(r, i) >>> 0
  return r
}

/** Counts the line's interrupts (INTx, or MSI vector 0). */
const counter = (t: Target) => {
  let n = 0
  t.line!.listen(() => void n++)
  return () => n
}

describe.skipIf(skip)("the simulator's edu and QEMU's edu, side by side", () => {
  it.live("identification, ids and liveness", () =>
    differential("edu", (t) =>
      Effect.sync(() => {
        const { bar, log } = t
        log("ids", JSON.stringify(t.ids))
        log("ID", hex(bar.read32(ID)))
        log("LIVENESS at reset", hex(bar.read32(LIVENESS)))
        for (const v of [0, 1, 0x12345678, 0x5a0ff0a5, 0x80000000, 0xffffffff]) {
          bar.write32(LIVENESS, v)
          log(`LIVENESS after ${hex(v)}`, hex(bar.read32(LIVENESS)))
          log(`LIVENESS again after ${hex(v)}`, hex(bar.read32(LIVENESS)))
        }
        t.differs("BAR0 size", bar.size, { sim: 0x100, qemu: 0x100000 })
      })), 60_000)

  it.live("factorial 0..13 (13! wraps) with STATUS polling, then with IRQ_ON_DONE interrupts; STATUS writes", () =>
    differential("edu", (t) =>
      Effect.gen(function*() {
        const { bar, log } = t
        const irqs = counter(t)
        for (let n = 0; n <= 13; n++) {
          bar.write32(FACT, n)
          const done = yield* poll(() => (bar.read32(STATUS) & 1) === 0, 50)
          log(`FACT ${n}! polled`, [hex(bar.read32(FACT)), done > 0 ? "done" : "never"])
        }
        expect(factorial(13)).toBe(0x7328cc00)
        log("no interrupt without IRQ_ON_DONE", [irqs(), hex(bar.read32(IRQ_STATUS))])
        bar.write32(STATUS, 0x80)
        log("STATUS with IRQ_ON_DONE", hex(bar.read32(STATUS)))
        for (let n = 0; n <= 13; n++) {
          const before = irqs()
          bar.write32(FACT, n)
          yield* poll(() => irqs() > before, 50)
          log(`FACT ${n}! by interrupt`, [irqs() - before, hex(bar.read32(FACT)), hex(bar.read32(STATUS)), hex(bar.read32(IRQ_STATUS))])
          bar.write32(IRQ_ACK, 1)
          log(`acked ${n}`, hex(bar.read32(IRQ_STATUS)))
        }
        // STATUS: only IRQ_ON_DONE is the driver's; COMPUTING cannot be written.
        for (const v of [0, 1, 0x81, 0xffffffff, 0x80, 0]) {
          bar.write32(STATUS, v)
          log(`STATUS after writing ${hex(v)}`, hex(bar.read32(STATUS)))
          yield* Effect.sleep("2 millis")
          log(`STATUS 2 ms after writing ${hex(v)}`, hex(bar.read32(STATUS)))
        }
        log("interrupts", irqs())
      })), 60_000)

  it.live("IRQ_RAISE / IRQ_ACK / IRQ_STATUS bit patterns; interrupts seen on INTx and by MSI", () =>
    differential("edu", (t) =>
      Effect.gen(function*() {
        const { bar, log } = t
        const irqs = counter(t)
        // Each raise acknowledged before the next: one interrupt each, on both.
        for (const bits of [1, 2, 4, 0x100, 0x80000000, 0xffffffff, 0x12345678]) {
          bar.write32(IRQ_RAISE, bits)
          yield* Effect.sleep("1 millis")
          log(`raise ${hex(bits)}`, [irqs(), hex(bar.read32(IRQ_STATUS))])
          bar.write32(IRQ_ACK, bits)
          yield* Effect.sleep("1 millis")
          log(`ack ${hex(bits)}`, [irqs(), hex(bar.read32(IRQ_STATUS))])
        }
        // Raising no bit with none set: no interrupt.
        bar.write32(IRQ_RAISE, 0)
        yield* Effect.sleep("1 millis")
        log("raise 0 with none set", [irqs(), hex(bar.read32(IRQ_STATUS))])
        // Partial acknowledgements.
        bar.write32(IRQ_RAISE, 0xf0)
        bar.write32(IRQ_ACK, 0x30)
        log("0xf0 less 0x30", hex(bar.read32(IRQ_STATUS)))
        bar.write32(IRQ_ACK, 0xffffffff)
        log("all acked", hex(bar.read32(IRQ_STATUS)))
        yield* Effect.sleep("1 millis")
        const base = irqs()
        // Raises while the line is already asserted: the simulator delivers one interrupt per
        // raise, as QEMU's edu sends an MSI per raise; QEMU's INTx is a level, seen once.
        const steps: ReadonlyArray<readonly ["raise" | "ack", number, number, number]> = [
          ["raise", 1, 1, 1],
          ["raise", 2, 2, 1],
          ["ack", 1, 2, 1],
          ["raise", 4, 3, 1],
          ["raise", 0, 4, 1],
          ["ack", 6, 4, 1],
          ["raise", 8, 5, 2]
        ]
        for (const [op, bits, sim, onQemu] of steps) {
          bar.write32(op === "raise" ? IRQ_RAISE : IRQ_ACK, bits)
          yield* Effect.sleep("1 millis")
          log(`${op} ${hex(bits)}: IRQ_STATUS`, hex(bar.read32(IRQ_STATUS)))
          t.differs(`${op} ${hex(bits)}: interrupts while asserted`, irqs() - base, { sim, qemu: onQemu, msi: sim })
        }
        bar.write32(IRQ_ACK, 0xffffffff)
        log("IRQ_STATUS at the end", hex(bar.read32(IRQ_STATUS)))
      })), 60_000)

  it.live("DMA RAM -> device buffer -> RAM, data checked, with and without the interrupt; QEMU's 100 ms, writes ignored while running", () =>
    differential("edu", (t) =>
      Effect.gen(function*() {
        const { bar, log } = t
        const irqs = counter(t)
        const mem = yield* t.dma.allocCoherent(0x3000, "differential test")
        for (let i = 0; i < 0x1000; i++) mem.memory[i] = (i * 7 + 3) & 0xff
        const pattern = Array.from(mem.memory.slice(0, 0x1000))
        for (const off of [DMA_SRC, DMA_DST, DMA_CNT, DMA_CMD]) log(`reset ${hex(off)}`, hex(bar.read32(off)))
        // RAM to the device's buffer (4 KiB less 16 bytes: a transfer ending at the buffer's
        // end aborts QEMU 7.2, see below), no interrupt.
        bar.write32(DMA_SRC, mem.iova)
        bar.write32(DMA_DST, 0x40000)
        bar.write32(DMA_CNT, 0xff0)
        bar.write32(DMA_CMD, 1)
        // While it runs every DMA register write is ignored (a second START too).
        bar.write32(DMA_SRC, mem.iova + 0x2000)
        bar.write32(DMA_DST, 0x40100)
        bar.write32(DMA_CNT, 8)
        bar.write32(DMA_CMD, 7)
        log("registers while running", [bar.read32(DMA_SRC) - mem.iova, hex(bar.read32(DMA_DST)), bar.read32(DMA_CNT), hex(bar.read32(DMA_CMD))])
        log("done after (ms)", yield* poll(() => (bar.read32(DMA_CMD) & 1) === 0, 150))
        log("after the first transfer", [hex(bar.read32(DMA_CMD)), irqs(), hex(bar.read32(IRQ_STATUS))])
        // A DMA_CMD write without START is ignored.
        bar.write32(DMA_CMD, 6)
        log("DMA_CMD after writing 6", hex(bar.read32(DMA_CMD)))
        // Back to RAM, 0x1000 further on, with the interrupt.
        bar.write32(DMA_SRC, 0x40000)
        bar.write32(DMA_DST, mem.iova + 0x1000)
        bar.write32(DMA_CNT, 0xff0)
        bar.write32(DMA_CMD, 1 | 2 | 4)
        const before = irqs()
        log("interrupt after (ms)", yield* poll(() => irqs() > before, 150))
        log("after the second transfer", [hex(bar.read32(DMA_CMD)), irqs() - before, hex(bar.read32(IRQ_STATUS))])
        log("data back in RAM", Array.from(mem.memory.slice(0x1000, 0x1ff0)).every((b, i) => b === pattern[i]))
        log("first bytes back", Array.from(mem.memory.slice(0x1000, 0x1010)))
        bar.write32(IRQ_ACK, 0x100)
        log("IRQ_STATUS acked", hex(bar.read32(IRQ_STATUS)))
        log("past the transfer", Array.from(mem.memory.slice(0x1ff0, 0x2000)))
        // Part of the buffer to RAM at an offset: 16 bytes from 0x40fd0.
        bar.write32(DMA_SRC, 0x40fd0)
        bar.write32(DMA_DST, mem.iova + 0x2000)
        bar.write32(DMA_CNT, 16)
        bar.write32(DMA_CMD, 1 | 2)
        log("partial done after (ms)", yield* poll(() => (bar.read32(DMA_CMD) & 1) === 0, 150))
        log("partial data", Array.from(mem.memory.slice(0x2000, 0x2011)))
        // QEMU's timer is due 100 ms after the start truncated to whole milliseconds of QEMU's
        // clock; the simulator's 100 ms are exact. Started 0.3 ms past a millisecond of the world.
        const now = t.qemuClock !== undefined ? Effect.sync(t.qemuClock) : Clock.currentTimeNanos
        yield* Effect.sleep("300 micros")
        const started = yield* now
        bar.write32(DMA_CMD, 1 | 2)
        let ended = -1n
        for (let i = 0; i < 1100 && ended < 0n; i++) {
          yield* Effect.sleep("100 micros")
          if ((bar.read32(DMA_CMD) & 1) === 0) ended = yield* now
        }
        const latencyMicros = Number(ended - started) / 1000
        const truncatedMicros = 100_000 - Number(started % 1_000_000n) / 1000
        // (QEMU's clock is stepped every 100 µs: completion is seen up to one step late.)
        const near = (micros: number) => latencyMicros >= micros - 1 && latencyMicros <= micros + 101
        log("the transfer off the millisecond completed", ended > 0n)
        t.differs("its latency", near(100_000) ? "100 ms" : near(truncatedMicros) ? "100 ms less the start's fraction of a ms" : `${latencyMicros} µs`, {
          sim: "100 ms",
          qemu: Number(started % 1_000_000n) < 150_000 ? "100 ms" : "100 ms less the start's fraction of a ms"
        })
        log("interrupts at the end", irqs())
      })), 60_000)

  it.live("register widths and unimplemented offsets", () =>
    differential("edu", (t) =>
      Effect.sync(() => {
        const { bar, log } = t
        bar.write32(LIVENESS, 0x0f0f0f0f)
        bar.write32(DMA_SRC, 0x12345678)
        for (const off of [ID, LIVENESS, FACT, STATUS, IRQ_STATUS, DMA_SRC, DMA_CMD]) {
          t.differs(`8-bit read at ${hex(off)}`, bar.read8(off), { sim: 0xff, qemu: 0 })
          t.differs(`16-bit read at ${hex(off)}`, bar.read16(off), { sim: 0xffff, qemu: 0 })
          t.differs(`8-bit read inside ${hex(off)}`, bar.read8(off + 1), { sim: 0xff, qemu: 0 })
        }
        // Narrow writes are dropped on both.
        bar.write8(LIVENESS, 0x5a)
        bar.write16(LIVENESS, 0x5a5a)
        bar.write8(DMA_SRC, 0x11)
        bar.write16(DMA_SRC + 2, 0x2222)
        bar.write8(IRQ_RAISE, 1)
        bar.write16(IRQ_RAISE, 1)
        bar.write16(FACT, 5)
        log("after narrow writes", [hex(bar.read32(LIVENESS)), hex(bar.read32(DMA_SRC)), hex(bar.read32(IRQ_STATUS)), hex(bar.read32(FACT)), hex(bar.read32(STATUS))])
        for (const off of [0x0c, 0x10, 0x1c, 0x28, 0x5c, 0x68, 0x7c, 0x84, 0x8c, 0x94, 0x9c, 0xa0, 0xfc]) {
          t.differs(`32-bit read of unimplemented ${hex(off)}`, bar.read32(off), { sim: 0, qemu: 0xffffffff })
          bar.write32(off, 0xdeadbeef)
        }
        log("after writes to unimplemented offsets", [hex(bar.read32(ID)), hex(bar.read32(LIVENESS)), hex(bar.read32(STATUS)), hex(bar.read32(IRQ_STATUS)), hex(bar.read32(DMA_CMD))])
      })), 60_000)

  it.live("after a surprise removal: all-ones reads, writes dropped, no interrupt", () =>
    differential("edu", (t) =>
      Effect.gen(function*() {
        const { bar, log } = t
        const irqs = counter(t)
        bar.write32(LIVENESS, 1)
        log("LIVENESS before", hex(bar.read32(LIVENESS)))
        const beforeRemoval = irqs()
        yield* t.remove
        // (The root ports' hotplug interrupts, which share edu's IOAPIC input, stay off.)
        log("interrupts during the surprise removal", irqs() - beforeRemoval)
        const afterRemoval = irqs()
        for (const off of [ID, LIVENESS, FACT, STATUS, IRQ_STATUS, DMA_CMD, 0x0c, 0xfc]) {
          log(`after removal at ${hex(off)}`, [hex(bar.read32(off)), hex(bar.read16(off)), hex(bar.read8(off))])
        }
        bar.write32(IRQ_RAISE, 1)
        bar.write32(FACT, 5)
        yield* Effect.sleep("5 millis")
        log("after writes", [hex(bar.read32(IRQ_STATUS)), hex(bar.read32(FACT)), irqs() - afterRemoval])
      })), 60_000)

  for (const [what, dst] of [["out of the buffer", 0x40800], ["ending exactly at the buffer's end", 0x40000]] as const) {
    it.live(`a DMA ${what}: the simulator completes it; QEMU 7.2 aborts (hw_error)`, () =>
      Effect.gen(function*() {
        const run = (bar: Mmio.Region, iova: number) =>
          Effect.gen(function*() {
            bar.write32(DMA_SRC, iova)
            bar.write32(DMA_DST, dst)
            bar.write32(DMA_CNT, 0x1000)
            bar.write32(DMA_CMD, 1)
            yield* Effect.sleep("101 millis")
            return bar.read32(DMA_CMD)
          })
        const sim = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
          const s = yield* Simulator.make()
          const d = yield* s.plug({ bus: "pci", name: NAME, ids: Edu.ids, model: Edu.model({ dma: "100 millis" }) })
          const mem = yield* s.hardware.dma(d.device).allocCoherent(0x1000, "differential test")
          return [yield* run(yield* s.hardware.region(d.device, 0), mem.iova), s.iommuFaults().length]
        })))
        expect(sim._tag === "Done" && sim.exit._tag === "Success" ? sim.exit.value : sim).toEqual([0, 0])
        yield* Effect.scoped(Effect.gen(function*() {
          const q = yield* Qemu.make({ devices: [{ name: NAME, model: "edu" }], clock: "manual" })
          const device = yield* q.plug(NAME)
          const bar = yield* q.hardware.region(device, 0)
          const mem = yield* q.hardware.dma(device).allocCoherent(0x1000, "differential test")
          yield* VirtualTime.run(Effect.gen(function*() {
            yield* Effect.fork(q.runClock)
            yield* run(bar, mem.iova)
          }))
          // The failed request finds QEMU gone first; how it ended follows when its exit is seen.
          for (let i = 0; i < 100 && (q.lost() === undefined || q.lost()!.signal === null); i++) yield* Effect.sleep("20 millis")
          expect(q.lost()?.signal).toBe("SIGABRT")
          expect(q.lost()?.stderr).toContain("EDU: DMA range")
          expect(bar.read32(ID)).toBe(0xffffffff)
        }))
      }), 60_000)
  }
})

// pci-testdev's header
const TEST = 0x00, WIDTH = 0x01, OFFSET = 0x04, DATA = 0x08, COUNT = 0x0c

describe.skipIf(skip)("the simulator's pci-testdev and QEMU's pci-testdev, side by side", () => {
  it.live("ids, reset state, test selection, OFFSET/DATA/COUNT as rust_driver_pci uses them", () =>
    differential("pci-testdev", (t) =>
      Effect.sync(() => {
        const { bar, log } = t
        log("ids", JSON.stringify(t.ids))
        t.differs("BAR0 size", bar.size, { sim: 0x100, qemu: 0x1000 })
        log("no test selected", [bar.read8(WIDTH), bar.read32(OFFSET), bar.read8(DATA), bar.read32(COUNT)])
        const layout = [
          { sim: { offset: 0x20, data: 0 }, qemu: { offset: 0x800, data: 0xfa } },
          { sim: { offset: 0x24, data: 0 }, qemu: { offset: 0x801, data: 0xce } },
          { sim: { offset: 0x28, data: 0x5a }, qemu: { offset: 0x802, data: 0xfa } }
        ]
        for (const index of [0, 1, 2, 0]) {
          // rust_driver_pci's testdev(): select, read OFFSET and DATA, write DATA at OFFSET, read COUNT.
          bar.write8(TEST, index)
          const offset = bar.read32(OFFSET)
          const data = bar.read8(DATA)
          t.differs(`test ${index}: TEST reads back`, bar.read8(TEST), { sim: 0, qemu: index })
          log(`test ${index}: WIDTH`, bar.read8(WIDTH))
          t.differs(`test ${index}: OFFSET`, offset, { sim: layout[index]!.sim.offset, qemu: layout[index]!.qemu.offset })
          t.differs(`test ${index}: DATA`, data, { sim: layout[index]!.sim.data, qemu: layout[index]!.qemu.data })
          log(`test ${index}: COUNT at selection`, bar.read32(COUNT))
          const counts: Array<number> = []
          bar.write8(offset, data)
          counts.push(bar.read32(COUNT))
          bar.write8(offset, data)
          counts.push(bar.read32(COUNT))
          bar.write8(offset, data ^ 0x01)
          counts.push(bar.read32(COUNT))
          bar.write8(offset + 1, data)
          counts.push(bar.read32(COUNT))
          if (index === 0) log("test 0 (no-eventfd): COUNT after two matching writes, a mismatch, a miss", counts)
          // Tests 1 and 2 have an ioeventfd on QEMU: it takes their writes, which never count.
          else t.differs(`test ${index} (eventfd): COUNT after two matching writes, a mismatch, a miss`, counts, { sim: [1, 2, 2, 2], qemu: [0, 0, 0, 0] })
          // Wider accesses: QEMU's header is byte-wide (wider accesses are split or composed).
          t.differs(`test ${index}: 32-bit read at TEST`, bar.read32(TEST), { sim: 0xffffffff, qemu: 0x100 | index })
          t.differs(`test ${index}: 16-bit read of OFFSET`, bar.read16(OFFSET), { sim: 0xffff, qemu: layout[index]!.qemu.offset })
          t.differs(`test ${index}: 32-bit read of DATA`, bar.read32(DATA), { sim: 0xffffffff, qemu: layout[index]!.qemu.data })
          t.differs(`test ${index}: the name at 0x10`, String.fromCharCode(...Array.from({ length: 24 }, (_, i) => bar.read8(0x10 + i)).filter((c) => c !== 0)), {
            sim: "",
            qemu: `mmio-${PciTestdev.tests[index]!.name}`
          })
          // Reselecting zeroes the count.
          bar.write8(TEST, index)
          log(`test ${index}: COUNT after reselecting`, bar.read32(COUNT))
        }
        // Wider writes of the matching data at test 0's offset: counted by QEMU, bad-width on the simulator.
        bar.write8(TEST, 0)
        const offset = bar.read32(OFFSET), data = bar.read8(DATA)
        bar.write16(offset, data)
        bar.write32(offset, data)
        t.differs("test 0: COUNT after 16- and 32-bit writes", bar.read32(COUNT), { sim: 0, qemu: 2 })
        // A 32-bit write of TEST selects on QEMU (its low byte), is dropped by the simulator.
        bar.write32(TEST, 1)
        t.differs("32-bit write of TEST 1", bar.read32(OFFSET), { sim: layout[0]!.sim.offset, qemu: layout[1]!.qemu.offset })
        // An index out of range: no test selected, every header read 0, writes not counted.
        for (const index of [3, 0xff]) {
          bar.write8(TEST, index)
          log(`index ${index}`, [bar.read8(TEST), bar.read8(WIDTH), bar.read32(OFFSET), bar.read8(DATA), bar.read32(COUNT)])
        }
        // rust_driver_pci once more: count 1.
        bar.write8(TEST, 0)
        bar.write8(bar.read32(OFFSET), bar.read8(DATA))
        log("rust_driver_pci's data-match count", bar.read32(COUNT))
      })), 60_000)

  it.live("after a surprise removal: all-ones reads, writes dropped", () =>
    differential("pci-testdev", (t) =>
      Effect.gen(function*() {
        const { bar, log } = t
        bar.write8(TEST, 0)
        log("before", [bar.read8(WIDTH), bar.read32(COUNT)])
        yield* t.remove
        for (const off of [TEST, WIDTH, OFFSET, DATA, COUNT, 0x10, 0x20, 0xfc]) {
          log(`after removal at ${hex(off)}`, [hex(bar.read32(off & ~3)), hex(bar.read16(off & ~1)), hex(bar.read8(off))])
        }
        bar.write8(TEST, 1)
        log("after a write", [hex(bar.read8(TEST)), hex(bar.read32(OFFSET))])
      })), 60_000)
})
