import * as Effect from "effect/Effect"
import { Hardware } from "@devscope/core"
import type * as Iommu from "../Iommu.js"

const PAGE = 4096
const hex = (n: number) => `0x${n.toString(16)}`

interface WindowState {
  readonly iova: number
  readonly size: number
  readonly kind: "coherent" | "streaming"
  readonly direction: Hardware.DmaDirection
  readonly memory: Uint8Array
  /** Kept as given; converted (`String`) only in a snapshot. */
  readonly mappedAt: Hardware.DmaSite
  unmappedAt: Hardware.DmaSite | undefined
  owner: "cpu" | "device"
}

const snapshot = (w: WindowState): Iommu.Window => ({
  iova: w.iova,
  size: w.size,
  kind: w.kind,
  direction: w.direction,
  mappedAt: String(w.mappedAt),
  unmappedAt: w.unmappedAt === undefined ? undefined : String(w.unmappedAt),
  owner: w.owner
})

/** @internal */
export const format = (f: Iommu.Fault): string => {
  const where = f.window === undefined
    ? "no window was ever mapped there"
    : `window ${hex(f.window.iova)}+${f.window.size} (${f.window.kind}, ${f.window.direction}) mapped at ${f.window.mappedAt}` +
      (f.window.unmappedAt === undefined ? "" : `, ${f.window.kind === "coherent" ? "freed" : "unmapped"} at ${f.window.unmappedAt}`)
  return `IOMMU fault on "${f.device}": ${f.access} of ${f.length} byte(s) at ${hex(f.iova)} by ${f.by}: ${f.reason}; ${where}`
}

/** @internal */
export class DomainImpl implements Iommu.Domain {
  readonly device: string
  private readonly live = new Map<number, WindowState>()
  /** Unmapped windows, kept so that a late device access can say who unmapped them. */
  private readonly stale: Array<WindowState> = []
  private readonly faultLog: Array<Iommu.Fault> = []
  private nextIova = PAGE
  private maskBits = 32
  private disconnected = false

  constructor(private readonly options: Iommu.Options) {
    this.device = options.device
  }

  get windows() {
    return Array.from(this.live.values(), snapshot)
  }

  get faults() {
    return this.faultLog.slice()
  }

  disconnect() {
    this.disconnected = true
  }

  setMask(bits: number) {
    this.maskBits = bits
  }

  private allocIova(size: number, request: "dma-alloc" | "dma-map"): Effect.Effect<number, Hardware.HardwareRefused> {
    return Effect.suspend(() => {
      const refused = this.options.refuse?.(request)
      if (refused !== undefined) {
        return Effect.fail(new Hardware.HardwareRefused({ device: this.device, request, reason: refused }))
      }
      const iova = this.nextIova
      const end = iova + Math.ceil(Math.max(size, 1) / PAGE) * PAGE
      if (end > 2 ** this.maskBits) {
        return Effect.fail(
          new Hardware.HardwareRefused({ device: this.device, request, reason: `no IOVA space below the ${this.maskBits}-bit mask` })
        )
      }
      // IOVAs are never reused, so a stale address stays recognisable.
      this.nextIova = end
      return Effect.succeed(iova)
    })
  }

  allocCoherent(size: number, site: Hardware.DmaSite) {
    return Effect.map(this.allocIova(size, "dma-alloc"), (iova) => {
      const memory = new Uint8Array(size)
      this.live.set(iova, {
        iova, size, kind: "coherent", direction: "bidirectional", memory, mappedAt: site, unmappedAt: undefined, owner: "device"
      })
      this.options.trace?.record({ _tag: "Dma", device: this.device, op: "alloc-coherent", iova, length: size, direction: "bidirectional" })
      return { memory, iova }
    })
  }

  freeCoherent(iova: number, site: Hardware.DmaSite) {
    this.retire(iova, site, "free-coherent")
  }

  map(buffer: Uint8Array, direction: Hardware.DmaDirection, site: Hardware.DmaSite) {
    return Effect.map(this.allocIova(buffer.byteLength, "dma-map"), (iova) => {
      this.live.set(iova, {
        iova, size: buffer.byteLength, kind: "streaming", direction, memory: buffer, mappedAt: site, unmappedAt: undefined, owner: "device"
      })
      this.options.trace?.record({ _tag: "Dma", device: this.device, op: "map", iova, length: buffer.byteLength, direction })
      return iova
    })
  }

  unmap(iova: number, site: Hardware.DmaSite) {
    this.retire(iova, site, "unmap")
  }

  private retire(iova: number, site: Hardware.DmaSite, op: "free-coherent" | "unmap") {
    const window = this.live.get(iova)
    if (window === undefined) return
    this.live.delete(iova)
    window.unmappedAt = site
    this.stale.push(window)
    if (this.stale.length > 4096) this.stale.shift()
    this.options.trace?.record({ _tag: "Dma", device: this.device, op, iova, length: window.size, direction: window.direction })
  }

  syncForDevice(iova: number) {
    const window = this.live.get(iova)
    if (window !== undefined) window.owner = "device"
  }

  syncForCpu(iova: number) {
    const window = this.live.get(iova)
    if (window !== undefined) window.owner = "cpu"
  }

  private find(iova: number): WindowState | undefined {
    for (const w of this.live.values()) if (iova >= w.iova && iova < w.iova + w.size) return w
    return undefined
  }

  private findStale(iova: number): WindowState | undefined {
    for (let i = this.stale.length - 1; i >= 0; i--) {
      const w = this.stale[i]!
      if (iova >= w.iova && iova < w.iova + Math.max(w.size, 1)) return w
    }
    return undefined
  }

  private fault(iova: number, length: number, access: "read" | "write", by: string, reason: Iommu.Fault["reason"], window: WindowState | undefined) {
    const fault: Iommu.Fault = {
      device: this.device,
      iova,
      length,
      access,
      reason,
      by,
      window: window === undefined ? undefined : snapshot(window),
      ...(this.options.now === undefined ? {} : { at: this.options.now() })
    }
    this.faultLog.push(fault)
    this.options.trace?.record({ _tag: "IommuFault", device: this.device, iova, access, reason: format(fault) })
    this.options.onFault?.(fault)
  }

  private check(iova: number, length: number, access: "read" | "write", by: string): WindowState | undefined {
    const window = this.find(iova)
    if (window === undefined) {
      const stale = this.findStale(iova)
      this.fault(iova, length, access, by, stale === undefined ? "unmapped" : "stale", stale)
      return undefined
    }
    if (iova + length > window.iova + window.size) {
      this.fault(iova, length, access, by, "out-of-bounds", window)
      return undefined
    }
    const allowed = window.direction === "bidirectional" ||
      (access === "read" ? window.direction === "to-device" : window.direction === "from-device")
    if (!allowed) {
      this.fault(iova, length, access, by, "direction", window)
      return undefined
    }
    if (window.kind === "streaming" && window.owner === "cpu") {
      this.fault(iova, length, access, by, "cpu-owned", window)
      return undefined
    }
    return window
  }

  deviceRead(iova: number, length: number, by: string): Uint8Array | undefined {
    if (this.disconnected) return undefined
    const window = this.check(iova, length, "read", by)
    if (window === undefined) return undefined
    const start = iova - window.iova
    this.options.trace?.record({ _tag: "Dma", device: this.device, op: "device-read", iova, length, direction: window.direction })
    return window.memory.slice(start, start + length)
  }

  deviceWrite(iova: number, data: Uint8Array, by: string): boolean {
    if (this.disconnected) return false
    const window = this.check(iova, data.byteLength, "write", by)
    if (window === undefined) return false
    window.memory.set(data, iova - window.iova)
    this.options.trace?.record({ _tag: "Dma", device: this.device, op: "device-write", iova, length: data.byteLength, direction: window.direction })
    return true
  }
}
