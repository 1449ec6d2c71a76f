import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Dma, Mmio } from "@devscope/core"
import type { Simulator } from "@devscope/sim"
import { NicModel } from "../src/index.js"
import { frame, plugNic, withSim } from "./helpers.js"

/** A card plugged with no driver, driven register by register as a driver would. */
const bare = <A, E>(
  options: NicModel.ModelOptions,
  body: (card: {
    readonly plugged: Simulator.SimDevice<readonly [typeof NicModel.registers]>
    readonly mmio: Mmio.Mmio<NicModel.Registers>
    readonly raises: () => number
  }) => Effect.Effect<A, E>
) =>
  withSim((sim) =>
    Effect.gen(function*() {
      const plugged = yield* plugNic(sim, "nic0", options)
      const mmio = Mmio.unsafeMake(NicModel.registers, plugged.ctx.regions[0])
      const raises = () => sim.trace.filter({ kind: "Irq", device: "nic0" }).filter((e) => e.kind === "raise").length
      return yield* body({ plugged, mmio, raises })
    })
  )

describe("nic: device model", () => {
  it.effect("registers: identity, MAC from the EEPROM, idle engines, everything masked; RESET restores them", () =>
    bare({ port: 1, mac: 0x123456789abc }, ({ mmio }) =>
      Effect.sync(() => {
      expect(mmio.read("ID")).toBe(NicModel.ID_VALUE)
      expect(mmio.read("MAC_LO")).toBe(0x56789abc)
      expect(mmio.read("MAC_HI")).toBe(0x1234)
      expect(mmio.read("STATUS")).toBe(NicModel.STATUS_TX_IDLE | NicModel.STATUS_RX_IDLE)
      expect(mmio.read("INT_MASK")).toBe(NicModel.INT_ALL)
      mmio.write("MAC_LO", 1)
      mmio.write("TX_RING_SIZE", 8)
      mmio.write("CTRL", NicModel.CTRL_RESET)
      expect(mmio.read("MAC_LO")).toBe(0x56789abc)
      expect(mmio.read("TX_RING_SIZE")).toBe(0)
      expect(mmio.read("CTRL")).toBe(0) // RESET is self-clearing
      })))

  it.effect("interrupts: a masked cause is kept in INT_STATUS and raises once unmasked; W1C acknowledges", () =>
    bare({ loopback: true }, ({ mmio, raises }) =>
      Effect.sync(() => {
      mmio.write("CTRL", NicModel.CTRL_ENABLE) // loopback: link up
      expect(mmio.readField("STATUS", "LINK_UP")).toBe(1)
      expect(mmio.read("INT_STATUS")).toBe(NicModel.INT_LINK_CHANGE)
      expect(raises()).toBe(0) // masked
      mmio.write("INT_MASK", NicModel.INT_ALL & ~NicModel.INT_LINK_CHANGE)
      expect(raises()).toBe(1) // LINK_CHANGE was pending and is no longer masked
      mmio.write("INT_STATUS", NicModel.INT_LINK_CHANGE)
      expect(mmio.read("INT_STATUS")).toBe(0)
      mmio.write("INT_MASK", 0)
      expect(raises()).toBe(1) // nothing pending, nothing raised
      mmio.write("CTRL", 0)
      expect(mmio.readField("STATUS", "LINK_UP")).toBe(0)
      expect(raises()).toBe(2) // link down, unmasked
      })))

  it.effect("rings: TX descriptors are read and completed in one batch; the frames land in the RX ring", () =>
    bare({ loopback: true, latency: "30 micros" }, ({ mmio, plugged, raises }) =>
      Effect.gen(function*() {
      const dma = plugged.ctx.dma
      const size = 4
      const Ring = Dma.array(NicModel.Desc, size)
      const alloc = (bytes: number) => Effect.runSync(dma.allocCoherent(bytes, "model test"))
      const txRing = alloc(Ring.size)
      const rxRing = alloc(Ring.size)
      const buffers = alloc(size * 2 * 256)
      const tx = Dma.view(Ring, txRing.memory)
      const rx = Dma.view(Ring, rxRing.memory)
      const sent = [frame(1, 0, 100), frame(1, 1, 200)]
      sent.forEach((f, i) => {
        buffers.memory.set(f, i * 256)
        tx.set(i, "addr", buffers.iova + i * 256)
        tx.set(i, "len", f.byteLength)
        tx.set(i, "flags", NicModel.DESC_OWN)
      })
      for (let i = 0; i < size; i++) {
        rx.set(i, "addr", buffers.iova + (size + i) * 256)
        rx.set(i, "len", 256)
        rx.set(i, "flags", NicModel.DESC_OWN)
      }
      mmio.write("TX_RING_BASE", txRing.iova)
      mmio.write("TX_RING_SIZE", size)
      mmio.write("RX_RING_BASE", rxRing.iova)
      mmio.write("RX_RING_SIZE", size)
      mmio.write("RX_TAIL", size - 1)
      mmio.write("CTRL", NicModel.CTRL_ENABLE | NicModel.CTRL_TX_ENABLE | NicModel.CTRL_RX_ENABLE)
      mmio.write("INT_STATUS", NicModel.INT_ALL)
      mmio.write("INT_MASK", 0)
      mmio.write("TX_TAIL", 2) // doorbell for both
      expect(mmio.readField("STATUS", "TX_IDLE")).toBe(0)

      yield* TestClock.adjust("30 micros")
      expect(mmio.read("TX_HEAD")).toBe(2)
      expect([tx.get(0, "flags"), tx.get(1, "flags")]).toEqual([NicModel.DESC_DONE, NicModel.DESC_DONE])
      expect(mmio.read("INT_STATUS")).toBe(NicModel.INT_TX_DONE)
      expect(mmio.readField("STATUS", "TX_IDLE")).toBe(1)
      expect(mmio.readField("STATUS", "RX_IDLE")).toBe(0)

      yield* TestClock.adjust("30 micros")
      expect(mmio.read("RX_HEAD")).toBe(2)
      for (const [i, f] of sent.entries()) {
        expect([rx.get(i, "flags"), rx.get(i, "len")]).toEqual([NicModel.DESC_DONE, f.byteLength])
        const at = (size + i) * 256
        expect(buffers.memory.slice(at, at + f.byteLength)).toEqual(f)
      }
      expect([mmio.read("TX_FRAMES"), mmio.read("RX_FRAMES"), mmio.read("RX_BYTES")]).toEqual([2, 2, 300])
      expect(mmio.read("INT_STATUS")).toBe(NicModel.INT_TX_DONE | NicModel.INT_RX)
      // One raise per batch (the link-up cause was acknowledged before unmasking).
      expect(raises()).toBe(2)

      // Two more frames than free descriptors: one fits (RX_TAIL 3), the other is dropped.
      mmio.write("CTRL", NicModel.CTRL_ENABLE | NicModel.CTRL_TX_ENABLE | NicModel.CTRL_RX_ENABLE)
      for (const i of [2, 3]) {
        tx.set(i, "addr", buffers.iova)
        tx.set(i, "len", 100)
        tx.set(i, "flags", NicModel.DESC_OWN)
      }
      mmio.write("TX_TAIL", 0)
      yield* TestClock.adjust("60 micros")
      expect(mmio.read("RX_HEAD")).toBe(3)
      expect(mmio.read("RX_DROPPED")).toBe(1)
      expect(plugged.ctx.dma.faults).toEqual([])
      })))

  it.effect("cable: a card hears its peer only while both are plugged and enabled", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const cable = NicModel.cable()
        const a = yield* plugNic(sim, "nic0", { cable, port: 0 })
        const link = () => Mmio.unsafeMake(NicModel.registers, a.ctx.regions[0]).readField("STATUS", "LINK_UP")
        const enable = (regs: typeof a.ctx.regions[0]) =>
          Mmio.unsafeMake(NicModel.registers, regs).write("CTRL", NicModel.CTRL_ENABLE)
        enable(a.ctx.regions[0])
        expect(link()).toBe(0) // no peer
        const b = yield* plugNic(sim, "nic1", { cable, port: 1 })
        expect(link()).toBe(0) // peer plugged, not enabled
        enable(b.ctx.regions[0])
        expect(link()).toBe(1)
        yield* sim.surpriseRemove("nic1")
        expect(link()).toBe(0)
        expect(cable.isAttached(1)).toBe(false)
      })
    ))
})
