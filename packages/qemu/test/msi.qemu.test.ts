/**
 * MSI-X on QEMU's NVMe controller, driven register by register (no driver): the admin queues
 * in coherent DMA memory, one Identify Controller command, its completion signalled on vector
 * 0 through the backend's mailbox. And what the backend refuses: a vector the device was not
 * given, MSI on a device without it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Hardware } from "@devscope/core"
import { Qemu } from "@devscope/qemu"
import { skipReason } from "./qemuAvailable.js"

// Without QEMU (outside CI) these are skipped, with the reason printed by qemuAvailable.ts.
const skip = skipReason !== undefined

// NVMe controller registers (NVMe 1.4, section 3.1).
const CC = 0x14
const CSTS = 0x1c
const AQA = 0x24
const ASQ = 0x28
const ACQ = 0x30
const SQ0TDBL = 0x1000
const CQ0HDBL = 0x1004

describe.skipIf(skip)("MSI-X on QEMU's nvme", () => {
  it.live("Identify Controller completes on vector 0; the completion and the data are in coherent memory", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({
        devices: [{ name: "nvme0", model: "nvme", properties: { serial: "devscope1" }, interrupts: "msix", vectors: 2 }]
      })
      const device = yield* q.plug("nvme0")
      expect(device.ids).toMatchObject({ vendor: 0x1b36, device: 0x0010 })
      const bar = yield* q.hardware.region(device, 0)
      const vector0 = yield* q.hardware.irq(device, 0)
      const vector1 = yield* q.hardware.irq(device, 1)
      const raised: Array<number> = []
      vector0.listen(() => raised.push(0))
      vector1.listen(() => raised.push(1))
      expect(Exit.isFailure(yield* Effect.exit(q.hardware.irq(device, 2)))).toBe(true)

      const port = q.hardware.dma(device)
      const sq = yield* port.allocCoherent(4096, "test: admin SQ")
      const cq = yield* port.allocCoherent(4096, "test: admin CQ")
      const data = yield* port.allocCoherent(4096, "test: identify data")

      bar.write32(CC, 0)
      expect(bar.read32(CSTS) & 1).toBe(0)
      bar.write32(AQA, (15 << 16) | 15)
      bar.write32(ASQ, sq.iova)
      bar.write32(ASQ + 4, 0)
      bar.write32(ACQ, cq.iova)
      bar.write32(ACQ + 4, 0)
      bar.write32(CC, (4 << 20) | (6 << 16) | 1) // IOCQES 16 B, IOSQES 64 B, EN
      expect(bar.read32(CSTS) & 1).toBe(1)

      // Identify (opcode 0x06), command id 7, CNS 1 (the controller), PRP1 the data page.
      const sqe = new DataView(sq.memory.buffer, sq.memory.byteOffset, 64)
      sqe.setUint32(0, 0x06 | (7 << 16), true)
      sqe.setUint32(24, data.iova, true)
      sqe.setUint32(40, 1, true)
      bar.write32(SQ0TDBL, 1)

      // QEMU posts the completion from a timer: the backend steps its clock every quantum.
      for (let i = 0; i < 200 && raised.length === 0; i++) yield* Effect.sleep("5 millis")
      expect(raised).toEqual([0])
      const cqe = new DataView(cq.memory.buffer, cq.memory.byteOffset, 16)
      expect(cqe.getUint16(12, true)).toBe(7) // the command id
      expect(cqe.getUint16(14, true) & 1).toBe(1) // phase tag 1, status 0
      expect(cqe.getUint16(14, true) >> 1).toBe(0)
      const identify = new DataView(data.memory.buffer, data.memory.byteOffset, 4096)
      expect(identify.getUint16(0, true)).toBe(0x1b36) // PCI vendor id
      expect(new TextDecoder().decode(data.memory.subarray(4, 13))).toBe("devscope1")
      bar.write32(CQ0HDBL, 1)

      // Nothing more arrives; the other vector never fired.
      yield* Effect.sleep("20 millis")
      expect(raised).toEqual([0])
      expect(q.problems()).toEqual([])
      expect(q.dmaFaults()).toEqual([])
    })), 60_000)

  it.live("edu by MSI with QEMU's clock not running: a raise is delivered before the write returns, every raise once", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({ devices: [{ name: "edu0", model: "edu", interrupts: "msi" }], clock: "manual" })
      const device = yield* q.plug("edu0")
      const bar = yield* q.hardware.region(device, 0)
      const line = yield* q.hardware.irq(device, 0)
      let seen = 0
      line.listen(() => void seen++)
      bar.write32(0x60, 0x4) // IRQ_RAISE
      expect(seen).toBe(1)
      bar.write32(0x60, 0x8) // raised again while 0x4 is still set: another message
      expect(seen).toBe(2)
      bar.write32(0x64, 0xc) // IRQ_ACK: no message
      expect(seen).toBe(2)
      line.mask()
      bar.write32(0x60, 0x10)
      expect(seen).toBe(2)
      line.unmask() // the held one
      expect(seen).toBe(3)
      bar.write32(0x64, 0x10)
    })), 60_000)

  it.live("MSI asked of a device without it, more vectors than MSI has: refused with MachineInvalid", () =>
    Effect.gen(function*() {
      const noMsi = yield* Effect.exit(Effect.scoped(Qemu.make({ devices: [{ name: "t0", model: "pci-testdev", interrupts: "msi" }] })))
      expect(Exit.isFailure(noMsi) && noMsi.cause._tag === "Fail" && noMsi.cause.error._tag).toBe("MachineInvalid")
      expect(String(Exit.isFailure(noMsi) && noMsi.cause._tag === "Fail" ? noMsi.cause.error.message : "")).toMatch(/t0 \(pci-testdev\): msi cannot be used/)
      const many = yield* Effect.exit(Effect.scoped(Qemu.make({ devices: [{ name: "e0", model: "edu", interrupts: "msi", vectors: 2 }] })))
      expect(Exit.isFailure(many) && many.cause._tag === "Fail" && many.cause.error.message).toMatch(/2 vectors need msix/)
      const bad = yield* Effect.exit(Effect.scoped(Qemu.make({ devices: [{ name: "e0", model: "edu", interrupts: "msix", vectors: 33 }] })))
      expect(Exit.isFailure(bad) && bad.cause._tag === "Fail" && bad.cause.error.message).toMatch(/vectors 33 is not an integer in 1-32/)
    }), 60_000)

  it.live("an irq line of an INTx device other than 0 is NoSuchIrq", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({ devices: [{ name: "edu0", model: "edu" }] })
      const device = yield* q.plug("edu0")
      const exit = yield* Effect.exit(q.hardware.irq(device, 1))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof Hardware.NoSuchIrq).toBe(true)
    })), 60_000)
})
