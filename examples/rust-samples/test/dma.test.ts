import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect } from "effect"
import { type Dma, DeviceError, type Hardware } from "@devscope/core"
import { PciTestdev, Simulator } from "@devscope/sim"
import { RustDma } from "../src/index.js"

const withSim = <A, E>(f: (sim: Simulator.Service) => Effect.Effect<A, E, Hardware.Hardware>, options?: Simulator.Options) =>
  Effect.flatMap(Simulator.Simulator, f).pipe(Effect.provide(Simulator.layer(options)))

const plugTestdev = (sim: Simulator.Service, name = "testdev0") =>
  sim.plug({ bus: "pci", name, ids: PciTestdev.ids, model: PciTestdev.model() })

/** The little-endian bytes of the test values, as the device sees the coherent memory. */
const expectedBytes = () => {
  const bytes = new Uint8Array(RustDma.TEST_VALUES.length * 8)
  const dv = new DataView(bytes.buffer)
  RustDma.TEST_VALUES.forEach(([h, b], i) => {
    dv.setUint32(i * 8, h, true)
    dv.setUint32(i * 8 + 4, b, true)
  })
  return bytes
}

type Probed = Parameters<NonNullable<RustDma.Options["onProbe"]>>[0]

const live = <A>(devres: { tryAccess(): { _tag: "Some"; value: A } | { _tag: "None" } }): A => {
  const o = devres.tryAccess()
  return o._tag === "Some" ? o.value : expect.unreachable()
}

/** The DMA API calls the driver made on a device, in order (the device's own reads and writes left out). */
const dmaCalls = (sim: Simulator.Service, device = "testdev0") =>
  sim.trace.filter({ kind: "Dma", device }).filter((e) => e.op !== "device-read" && e.op !== "device-write").map((e) =>
    `${e.op} 0x${e.iova.toString(16)}`
  )

/** A recorder of the driver's log lines, each with the last trace `seq` at the time. */
const recorder = (sim: Simulator.Service) => {
  const lines: Array<string> = []
  const seqs: Array<number> = []
  const log = (line: string) => {
    lines.push(line)
    seqs.push(sim.trace.events().at(-1)?.seq ?? -1)
  }
  return { lines, seqs, log }
}

describe("rust_dma sample", () => {
  it.effect("probe writes the test values; unbind checks them, logs the entry, then frees ca and unmaps sgt (upstream's drop order)", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const log = recorder(sim)
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(RustDma.driver({ log: log.log, onProbe: (p) => (probed = p) }))
        const dev = yield* plugTestdev(sim)
        expect(dev.device.state).toBe("bound")
        expect(log.lines).toEqual(["Probe DMA test driver."])

        const ca = live(probed!.ca)
        const mapping: Dma.Mapping = live(probed!.sgt)
        // Through the CPU's view...
        RustDma.TEST_VALUES.forEach(([h, b], i) => {
          expect(ca.view.get(i, "h")).toBe(h)
          expect(ca.view.get(i, "b")).toBe(b)
        })
        // ...and through the IOMMU, as the device reads it.
        expect(dev.ctx.dma.deviceRead(ca.iova, 40, "test")).toEqual(expectedBytes())
        // One coherent window and one 16 KiB to-device streaming window.
        expect(mapping.size).toBe(RustDma.PAGE_SIZE * RustDma.PAGES_NUMBER)
        expect(mapping.direction).toBe("to-device")
        expect(dev.ctx.dma.windows.map((w) => w.kind).sort()).toEqual(["coherent", "streaming"])
        expect(dmaCalls(sim)).toEqual([`alloc-coherent 0x${ca.iova.toString(16)}`, `map 0x${mapping.iova.toString(16)}`])

        const report = yield* sim.pci.unbind(dev.device)
        expect(report.removeFailure).toBeUndefined()
        expect(report.leaks).toEqual([])
        // Both are let go by remove (the driver data's drop), counted, not listed.
        expect(report.released).toEqual([])
        expect(report.releasedEarly).toBe(2)
        expect(log.lines).toEqual([
          "Probe DMA test driver.",
          "Unload DMA test driver.",
          `Entry[0]: DMA address: 0x${mapping.iova.toString(16)}`
        ])
        // Upstream's order: `drop()` logs, then the fields go in declaration order: `ca`, then `sgt`.
        expect(dmaCalls(sim)).toEqual([
          `alloc-coherent 0x${ca.iova.toString(16)}`,
          `map 0x${mapping.iova.toString(16)}`,
          `free-coherent 0x${ca.iova.toString(16)}`,
          `unmap 0x${mapping.iova.toString(16)}`
        ])
        const free = sim.trace.filter({ kind: "Dma", device: "testdev0" }).find((e) => e.op === "free-coherent")!
        expect(log.seqs.at(-1)).toBeLessThan(free.seq)
        expect(mapping.isMapped).toBe(false)
        expect(ca.isFreed).toBe(true)
        expect(dev.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])

        // G1: the freed allocation returns no value to the CPU...
        expect(() => ca.view.get(0, "h")).toThrow(DeviceError.UseAfterUnbind)
        expect(() => ca.view.get(0, "h")).toThrow(/rust_dma coherent.*released early/)
        // ...G5: and the device cannot touch it, or the unmapped pages: refused and reported.
        expect(dev.ctx.dma.deviceWrite(ca.iova, new Uint8Array([0xee]), "late device write")).toBe(false)
        expect(dev.ctx.dma.deviceRead(mapping.iova, 4, "late device read")).toBeUndefined()
        expect(sim.iommuFaults().map((f) => [f.reason, f.access, f.window?.kind])).toEqual([
          ["stale", "write", "coherent"],
          ["stale", "read", "streaming"]
        ])
        yield* sim.unplug("testdev0")
      })
    ))

  it.effect("a value corrupted by the device makes the unbind check fail (removeFailure), still nothing leaks", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(RustDma.driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const dev = yield* plugTestdev(sim)
        const ca = live(probed!.ca)
        // The device overwrites entry 3's `b` (offset 3 * 8 + 4) with 0xbb.
        expect(dev.ctx.dma.deviceWrite(ca.iova + 28, new Uint8Array([0xbb, 0, 0, 0]), "test")).toBe(true)
        expect(ca.view.get(3, "b")).toBe(0xbb)

        const report = yield* sim.pci.unbind(dev.device)
        expect(report.removeFailure).toBeDefined()
        expect(Cause.pretty(report.removeFailure!)).toContain("entry 3")
        expect(report.leaks).toEqual([])
        // Both are still let go by remove (counted, not listed).
        expect(report.released).toEqual([])
        expect(report.releasedEarly).toBe(2)
        // The assertion fails before the entries are logged, as upstream's `assert_eq!` panics.
        expect(log).toEqual(["Probe DMA test driver.", "Unload DMA test driver."])
        expect(ca.isFreed).toBe(true)
        expect(dev.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
        yield* sim.unplug("testdev0")
      })
    ))

  it.effect("surprise removal: the check still passes (host memory), everything is let go; re-plug and rebind write the values again", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const probes: Array<Probed> = []
        yield* sim.pci.registerDriver(RustDma.driver({ log: (l) => log.push(l), onProbe: (p) => probes.push(p) }))
        const dev = yield* plugTestdev(sim)
        const ca = live(probes[0]!.ca)
        const mapping = live(probes[0]!.sgt)

        const report = yield* sim.surpriseRemove("testdev0")
        expect(report?.cause).toBe("surprise")
        expect(report?.removeFailure).toBeUndefined()
        expect(report?.leaks).toEqual([])
        expect(report?.releasedEarly).toBe(2)
        // Upstream's drop does not touch the device: the same lines as an orderly unbind.
        expect(log).toEqual([
          "Probe DMA test driver.",
          "Unload DMA test driver.",
          `Entry[0]: DMA address: 0x${mapping.iova.toString(16)}`
        ])
        expect(ca.isFreed).toBe(true)
        expect(mapping.isMapped).toBe(false)
        // The gone device does no DMA at all (dropped, not a fault).
        expect(dev.ctx.dma.deviceRead(ca.iova, 8, "gone device")).toBeUndefined()
        expect(sim.iommuFaults()).toEqual([])

        // Re-plug: a new device, a new binding, the values written again.
        const again = yield* plugTestdev(sim)
        expect(again.device.state).toBe("bound")
        const ca2 = live(probes[1]!.ca)
        expect(again.ctx.dma.deviceRead(ca2.iova, 40, "test")).toEqual(expectedBytes())
        // Manual unbind and rebind of the same device, then an orderly unplug.
        const manual = yield* sim.pci.unbind("testdev0")
        expect(manual.removeFailure).toBeUndefined()
        expect(manual.leaks).toEqual([])
        yield* sim.pci.bind("testdev0")
        expect(probes).toHaveLength(3)
        const last = yield* sim.unplug("testdev0")
        expect(last?.removeFailure).toBeUndefined()
        expect(last?.leaks).toEqual([])
        expect(log.filter((l) => l === "Unload DMA test driver.")).toHaveLength(3)
        expect(log.filter((l) => l.startsWith("Entry[0]: DMA address: 0x"))).toHaveLength(3)
        expect(again.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
      })
    ))
})
