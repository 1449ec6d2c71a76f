import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect } from "effect"
import type { Dma, Hardware } from "@devscope/core"
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

describe("rust_dma sample", () => {
  it.effect("probe writes the test values; unbind checks them, logs the mapping and releases everything", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(RustDma.driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const dev = yield* plugTestdev(sim)
        expect(dev.device.state).toBe("bound")
        expect(log).toEqual(["Probe DMA test driver."])

        const ca = probed!.ca.tryAccess().pipe((o) => (o._tag === "Some" ? o.value : expect.unreachable()))
        const mapping: Dma.Mapping = probed!.sgt.tryAccess().pipe((o) => (o._tag === "Some" ? o.value : expect.unreachable()))
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

        const report = yield* sim.pci.unbind(dev.device)
        expect(report.removeFailure).toBeUndefined()
        expect(report.leaks).toEqual([])
        // The mapping is unmapped early, by remove (counted, not listed).
        expect(report.released).toEqual([RustDma.COHERENT_LABEL])
        expect(report.releasedEarly).toBe(1)
        expect(log).toEqual([
          "Probe DMA test driver.",
          "Unload DMA test driver.",
          `Entry[0]: DMA address: 0x${mapping.iova.toString(16)}`
        ])
        expect(mapping.isMapped).toBe(false)
        expect(ca.isFreed).toBe(true)
        expect(dev.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
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
        const ca = probed!.ca.tryAccess().pipe((o) => (o._tag === "Some" ? o.value : expect.unreachable()))
        // The device overwrites entry 3's `b` (offset 3 * 8 + 4) with 0xbb.
        expect(dev.ctx.dma.deviceWrite(ca.iova + 28, new Uint8Array([0xbb, 0, 0, 0]), "test")).toBe(true)
        expect(ca.view.get(3, "b")).toBe(0xbb)

        const report = yield* sim.pci.unbind(dev.device)
        expect(report.removeFailure).toBeDefined()
        expect(Cause.pretty(report.removeFailure!)).toContain("entry 3")
        expect(report.leaks).toEqual([])
        // The mapping is unmapped early, by remove (counted, not listed).
        expect(report.released).toEqual([RustDma.COHERENT_LABEL])
        expect(report.releasedEarly).toBe(1)
        expect(log).toEqual(["Probe DMA test driver.", "Unload DMA test driver."])
        expect(dev.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
        yield* sim.unplug("testdev0")
      })
    ))
})
