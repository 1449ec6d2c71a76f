import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Iommu, Trace } from "@devscope/sim"

describe("Iommu", () => {
  it.effect("the device reaches only live windows; a freed window's fault names who mapped and who freed it", () =>
    Effect.gen(function*() {
      const trace = Trace.make()
      const domain = Iommu.make({ device: "edu0", trace })
      const { memory, iova } = yield* domain.allocCoherent(64, "driver.ts:10 (alloc)")
      memory.set([1, 2, 3], 0)
      expect(Array.from(domain.deviceRead(iova, 3, "engine")!)).toEqual([1, 2, 3])
      expect(domain.deviceWrite(iova + 8, new Uint8Array([9]), "engine")).toBe(true)
      expect(memory[8]).toBe(9)
      expect(domain.faults).toEqual([])

      domain.freeCoherent(iova, "driver.ts:20 (free)")
      expect(domain.deviceRead(iova, 3, "edu dma engine")).toBeUndefined()
      const [fault] = domain.faults
      expect(fault).toMatchObject({ device: "edu0", iova, access: "read", reason: "stale", by: "edu dma engine" })
      expect(fault!.window).toMatchObject({ mappedAt: "driver.ts:10 (alloc)", unmappedAt: "driver.ts:20 (free)" })
      const text = Iommu.format(fault!)
      expect(text).toContain("driver.ts:10 (alloc)")
      expect(text).toContain("freed at driver.ts:20 (free)")
      expect(trace.filter({ kind: "IommuFault" })).toHaveLength(1)

      expect(domain.deviceRead(0x7000_0000, 4, "engine")).toBeUndefined()
      expect(domain.faults[1]).toMatchObject({ reason: "unmapped", window: undefined })
      const second = yield* domain.allocCoherent(16, "x")
      expect(domain.deviceWrite(second.iova + 12, new Uint8Array(8), "engine")).toBe(false)
      expect(domain.faults[2]).toMatchObject({ reason: "out-of-bounds" })
    }))

  it.effect("streaming mappings: direction and CPU ownership are enforced", () =>
    Effect.gen(function*() {
      const domain = Iommu.make({ device: "nic0" })
      const tx = new Uint8Array([7, 7, 7, 7])
      const rx = new Uint8Array(4)
      const txIova = yield* domain.map(tx, "to-device", "tx site")
      const rxIova = yield* domain.map(rx, "from-device", "rx site")
      expect(Array.from(domain.deviceRead(txIova, 4, "dma")!)).toEqual([7, 7, 7, 7])
      expect(domain.deviceWrite(txIova, new Uint8Array(4), "dma")).toBe(false)
      expect(domain.deviceRead(rxIova, 4, "dma")).toBeUndefined()
      expect(domain.faults.map((f) => f.reason)).toEqual(["direction", "direction"])
      domain.syncForCpu(rxIova)
      expect(domain.deviceWrite(rxIova, new Uint8Array([1, 2, 3, 4]), "dma")).toBe(false)
      expect(domain.faults[2]).toMatchObject({ reason: "cpu-owned" })
      domain.syncForDevice(rxIova)
      expect(domain.deviceWrite(rxIova, new Uint8Array([1, 2, 3, 4]), "dma")).toBe(true)
      expect(Array.from(rx)).toEqual([1, 2, 3, 4])
      domain.unmap(rxIova, "rx unmap site")
      expect(domain.windows.map((w) => w.iova)).toEqual([txIova])
    }))

  it.effect("IOVAs are never reused, the DMA mask limits them, and refusals are typed", () =>
    Effect.gen(function*() {
      let n = 0
      const domain = Iommu.make({ device: "d", refuse: (request) => (++n === 3 ? `no ${request} for you` : undefined) })
      const a = yield* domain.allocCoherent(100, "a")
      domain.freeCoherent(a.iova, "free a")
      const b = yield* domain.allocCoherent(100, "b")
      expect(b.iova).toBeGreaterThan(a.iova)
      const refused = yield* Effect.flip(domain.map(new Uint8Array(4), "to-device", "c"))
      expect(refused).toMatchObject({ _tag: "HardwareRefused", device: "d", request: "dma-map", reason: "no dma-map for you" })
      domain.setMask(12)
      const tooHigh = yield* Effect.flip(domain.allocCoherent(4096, "d"))
      expect(tooHigh.reason).toContain("12-bit mask")
    }))

  it.effect("a disconnected device's DMA is dropped, not a fault", () =>
    Effect.gen(function*() {
      const domain = Iommu.make({ device: "d" })
      const { iova } = yield* domain.allocCoherent(8, "a")
      domain.disconnect()
      expect(domain.deviceRead(iova, 4, "dma")).toBeUndefined()
      expect(domain.deviceWrite(iova, new Uint8Array(4), "dma")).toBe(false)
      expect(domain.faults).toEqual([])
    }))
})
