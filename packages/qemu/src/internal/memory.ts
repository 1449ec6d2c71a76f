/**
 * Guest RAM shared with this process, and the DMA ports drivers use over it.
 *
 * QEMU's guest RAM is a file (`memory-backend-file,share=on` under /dev/shm): guest physical
 * address A is file offset A. Node cannot map the file into a typed array without a native
 * addon, so the memory a driver holds is its own `Uint8Array`, kept in step with guest RAM at
 * the points where the device may look or may have written:
 *
 * - **Coherent memory** is synchronised both ways at sync points: `flush` writes the bytes the
 *   CPU changed since the last sync (found against a shadow copy, so bytes the device wrote
 *   meanwhile are not overwritten with stale ones); `refresh` flushes, then reads guest RAM
 *   back. The backend flushes a device's memory before each MMIO write to it (a doorbell),
 *   and flushes and refreshes everything around each step of QEMU's clock and before
 *   interrupt handlers run.
 * - **Streaming mappings** are bounce buffers (as swiotlb does): `map` copies a `to-device` or
 *   `bidirectional` buffer into guest RAM, `syncForDevice` copies it again, `syncForCpu` and
 *   `unmap` copy a `from-device` or `bidirectional` buffer back.
 * - **Use after free, where observable**: freed and unmapped guest memory is filled with a
 *   poison pattern and kept out of reuse for a while (quarantine). A device write into it
 *   changes the pattern: the next check reports a fault with the window's map and unmap
 *   sites. (A device read of freed memory cannot be seen from outside QEMU.)
 *
 * There is no IOMMU on the machine: a device address is a guest physical address.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { Hardware } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"

/** Pages are the unit of allocation (DMA buffers never share a page). */
export const PAGE = 4096

/** The poison byte freed memory is filled with. */
export const POISON = 0x6b

/** Freed ranges stay out of reuse until this many bytes more have been freed after them. */
const QUARANTINE_BYTES = 1 << 20

interface Range {
  readonly addr: number
  readonly size: number
}

/** Whose a freed range was: the device and its window (with both sites). */
export interface Owner {
  readonly device: string
  readonly window: Iommu.Window
}

/**
 * Guest RAM as a file, and a first-fit page allocator over `[base, size)`.
 *
 * # Invariants
 * - `free` is sorted by address, its ranges are disjoint, page-aligned and never adjacent
 *   (adjacent ranges are merged); no free range overlaps an allocation or a quarantined one.
 * - `quarantine` holds freed ranges, oldest first, filled with `POISON`; together they hold at
 *   most `QUARANTINE_BYTES` beyond the newest one.
 */
export class GuestMemory {
  private free: Array<Range>
  private readonly allocated = new Map<number, number>()
  private readonly quarantine: Array<Range & { readonly owner: Owner }> = []
  private quarantined = 0

  constructor(
    /** A read-write descriptor of the guest RAM file. */
    readonly fd: number,
    /** Bytes of guest RAM. */
    readonly size: number,
    /** The first address handed out (below it: reserved for the backend's own use). */
    readonly base: number
  ) {
    this.free = [{ addr: base, size: size - base }]
  }

  /** Allocates `size` bytes (rounded up to pages) below `limit`; `undefined` if there is no room. */
  allocate(size: number, limit = 2 ** 32): number | undefined {
    const pages = Math.max(1, Math.ceil(size / PAGE)) * PAGE
    for (let i = 0; i < this.free.length; i++) {
      const range = this.free[i]!
      if (range.size < pages || range.addr + pages > limit) continue
      if (range.size === pages) this.free.splice(i, 1)
      else this.free[i] = { addr: range.addr + pages, size: range.size - pages }
      this.allocated.set(range.addr, pages)
      return range.addr
    }
    return undefined
  }

  /** Frees an allocation: poisoned and quarantined; `false` if `addr` is not allocated. */
  release(addr: number, owner: Owner): boolean {
    const size = this.allocated.get(addr)
    if (size === undefined) return false
    this.allocated.delete(addr)
    fs.writeSync(this.fd, poisonOf(size), 0, size, addr)
    this.quarantine.push({ addr, size, owner })
    this.quarantined += size
    while (this.quarantine.length > 1 && this.quarantined - this.quarantine[0]!.size >= QUARANTINE_BYTES) {
      const oldest = this.quarantine.shift()!
      this.quarantined -= oldest.size
      this.giveBack(oldest)
    }
    return true
  }

  /** Quarantined ranges whose poison a device overwrote (each reported once, then re-poisoned). */
  overwritten(): Array<Range & { readonly owner: Owner; readonly offset: number }> {
    const hits: Array<Range & { readonly owner: Owner; readonly offset: number }> = []
    for (const range of this.quarantine) {
      const bytes = this.read(range.addr, range.size)
      const offset = bytes.findIndex((b) => b !== POISON)
      if (offset < 0) continue
      hits.push({ ...range, offset })
      fs.writeSync(this.fd, poisonOf(range.size), 0, range.size, range.addr)
    }
    return hits
  }

  /** Reads guest RAM. */
  read(addr: number, length: number, into: Uint8Array = new Uint8Array(length)): Uint8Array {
    let done = 0
    while (done < length) {
      const n = fs.readSync(this.fd, into, done, length - done, addr + done)
      if (n === 0) throw new Error(`guest RAM ends at ${addr + done}`)
      done += n
    }
    return into
  }

  /** Writes guest RAM. */
  write(addr: number, data: Uint8Array, offset = 0, length = data.length - offset): void {
    let done = 0
    while (done < length) done += fs.writeSync(this.fd, data, offset + done, length - done, addr + done)
  }

  private giveBack(range: Range): void {
    let i = this.free.findIndex((r) => r.addr > range.addr)
    if (i < 0) i = this.free.length
    this.free.splice(i, 0, range)
    // Merge with the neighbours.
    const next = this.free[i + 1]
    if (next !== undefined && range.addr + range.size === next.addr) {
      this.free.splice(i, 2, { addr: range.addr, size: range.size + next.size })
    }
    const previous = this.free[i - 1]
    const current = this.free[i]!
    if (previous !== undefined && previous.addr + previous.size === current.addr) {
      this.free.splice(i - 1, 2, { addr: previous.addr, size: previous.size + current.size })
    }
  }
}

const poisons = new Map<number, Uint8Array>()
const poisonOf = (size: number): Uint8Array => {
  let p = poisons.get(size)
  if (p === undefined) {
    p = new Uint8Array(size).fill(POISON)
    if (poisons.size < 64) poisons.set(size, p)
  }
  return p
}

/** One coherent allocation or streaming mapping of a device, as the port keeps it. */
interface Mapping {
  readonly iova: number
  readonly kind: "coherent" | "streaming"
  readonly direction: Hardware.DmaDirection
  /** What the CPU sees: the coherent memory, or the driver's streaming buffer. */
  readonly memory: Uint8Array
  /** Coherent memory: guest RAM as of the last sync. */
  readonly shadow: Uint8Array | undefined
  /** Coherent memory: `memory` and `shadow` as Buffers (views, no copy), for native compares. */
  readonly views: { readonly cpu: Buffer; readonly shadow: Buffer } | undefined
  readonly mappedAt: Hardware.DmaSite
  owner: "cpu" | "device"
}

/** A device's DMA port over guest RAM, with its sync points (see the module's comment). */
export interface Port extends Hardware.DmaPort {
  /** Writes the CPU's changes to coherent memory and device-owned to-device buffers. */
  flush(): void
  /** Flushes, then reads coherent memory back from guest RAM. */
  refresh(): void
  /** Live windows. */
  readonly windows: () => ReadonlyArray<Iommu.Window>
  /**
   * Stops the device's DMA as seen from here: nothing the CPU writes reaches guest RAM any more,
   * and coherent memory is no longer refreshed; a streaming buffer synced for the CPU still reads
   * what the device put in guest RAM before it went.
   */
  disconnect(): void
}

/** Options of {@link makePort}. */
export interface PortOptions {
  readonly device: string
  readonly memory: GuestMemory
  /** Called with each fault the port sees (a bad free or unmap, a write into freed memory). */
  readonly onFault: (fault: Iommu.Fault) => void
  /** Where the driver's allocations and mappings are recorded (as the simulator's IOMMU does). */
  readonly trace?: Trace.Service | undefined
}

/** Makes a device's DMA port over guest RAM. */
export const makePort = (options: PortOptions): Port => {
  const { device, memory, trace } = options
  const live = new Map<number, Mapping>()
  /** Freed windows by address, kept to name both sites of a later fault. */
  const stale = new Map<number, Iommu.Window>()
  let mask = 32
  let connected = true
  const limit = () => Math.min(2 ** mask, memory.size)

  const windowOf = (m: Mapping, unmappedAt?: string): Iommu.Window => ({
    iova: m.iova,
    size: m.memory.length,
    kind: m.kind,
    direction: m.direction,
    mappedAt: String(m.mappedAt),
    unmappedAt,
    owner: m.owner
  })
  const fault = (iova: number, reason: Iommu.Fault["reason"], by: string, window?: Iommu.Window) =>
    options.onFault({ device, iova, length: 0, access: "write", reason, by, window })

  const copyIn = (m: Mapping) => {
    if (connected) memory.write(m.iova, m.memory)
  }
  // Guest RAM outlives the device: what it wrote before it went (a read's data, whose completion
  // the driver found in coherent memory) is still there to sync for the CPU.
  const copyOut = (m: Mapping) => memory.read(m.iova, m.memory.length, m.memory)
  const flushCoherent = (m: Mapping) => {
    if (!connected) return
    const { memory: cpu, shadow, views } = m
    const n = cpu.length
    // Nothing changed (the common case at a doorbell): one native compare.
    if (views!.cpu.equals(views!.shadow)) return
    // Contiguous runs of changed bytes are written at once; unchanged 256-byte chunks are
    // skipped with a native compare.
    let i = 0
    while (i < n) {
      if ((i & 255) === 0) {
        const end = Math.min(n, i + 256)
        if (views!.cpu.compare(views!.shadow, i, end, i, end) === 0) {
          i = end
          continue
        }
      }
      if (cpu[i] === shadow![i]) {
        i++
        continue
      }
      let j = i + 1
      while (j < n && cpu[j] !== shadow![j]) j++
      memory.write(m.iova + i, cpu, i, j - i)
      shadow!.set(cpu.subarray(i, j), i)
      i = j
    }
  }
  const release = (iova: number, site: Hardware.DmaSite, kind: Mapping["kind"]) => {
    const m = live.get(iova)
    if (m === undefined || m.kind !== kind) {
      const old = stale.get(iova)
      fault(iova, old !== undefined ? "stale" : "unmapped", `${kind === "coherent" ? "freeCoherent" : "unmap"} at ${String(site)}`, old)
      return undefined
    }
    live.delete(iova)
    trace?.record({ _tag: "Dma", device, op: kind === "coherent" ? "free-coherent" : "unmap", iova, length: m.memory.length, direction: m.direction })
    const window = windowOf(m, String(site))
    stale.set(iova, window)
    if (stale.size > 4096) stale.delete(stale.keys().next().value!)
    memory.release(iova, { device, window })
    return m
  }

  return {
    device,
    setMask: (bits) => {
      mask = Math.max(12, Math.min(64, Math.floor(bits)))
    },
    allocCoherent: (size, site) =>
      Effect.suspend(() => {
        if (!Number.isSafeInteger(size) || size <= 0 || size > memory.size) {
          return Effect.fail(new Hardware.HardwareRefused({ device, request: "dma-alloc", reason: `size ${size}` }))
        }
        const iova = memory.allocate(size, limit())
        if (iova === undefined) {
          return Effect.fail(new Hardware.HardwareRefused({ device, request: "dma-alloc", reason: `no ${size} bytes of guest RAM free below 2^${mask}` }))
        }
        const cpu = new Uint8Array(size)
        const shadow = new Uint8Array(size)
        memory.write(iova, cpu)
        const views = { cpu: Buffer.from(cpu.buffer, cpu.byteOffset, size), shadow: Buffer.from(shadow.buffer, shadow.byteOffset, size) }
        live.set(iova, { iova, kind: "coherent", direction: "bidirectional", memory: cpu, shadow, views, mappedAt: site, owner: "device" })
        stale.delete(iova)
        trace?.record({ _tag: "Dma", device, op: "alloc-coherent", iova, length: size, direction: "bidirectional" })
        return Effect.succeed({ memory: cpu, iova })
      }),
    freeCoherent: (iova, site) => void release(iova, site, "coherent"),
    map: (buffer, direction, site) =>
      Effect.suspend(() => {
        const iova = buffer.length > 0 ? memory.allocate(buffer.length, limit()) : undefined
        if (iova === undefined) {
          return Effect.fail(new Hardware.HardwareRefused({ device, request: "dma-map", reason: `no ${buffer.length} bytes of guest RAM free below 2^${mask}` }))
        }
        const m: Mapping = { iova, kind: "streaming", direction, memory: buffer, shadow: undefined, views: undefined, mappedAt: site, owner: "device" }
        live.set(iova, m)
        stale.delete(iova)
        if (direction !== "from-device") copyIn(m)
        trace?.record({ _tag: "Dma", device, op: "map", iova, length: buffer.length, direction })
        return Effect.succeed(iova)
      }),
    unmap: (iova, site) => {
      const m = live.get(iova)
      if (m !== undefined && m.kind === "streaming" && m.direction !== "to-device" && m.owner === "device") copyOut(m)
      release(iova, site, "streaming")
    },
    syncForDevice: (iova) => {
      const m = live.get(iova)
      if (m === undefined || m.kind !== "streaming") return
      m.owner = "device"
      if (m.direction !== "from-device") copyIn(m)
    },
    syncForCpu: (iova) => {
      const m = live.get(iova)
      if (m === undefined || m.kind !== "streaming") return
      m.owner = "cpu"
      if (m.direction !== "to-device") copyOut(m)
    },
    flush: () => {
      for (const m of live.values()) if (m.kind === "coherent") flushCoherent(m)
    },
    refresh: () => {
      if (!connected) return
      for (const m of live.values()) {
        if (m.kind !== "coherent") continue
        flushCoherent(m)
        memory.read(m.iova, m.memory.length, m.memory)
        m.shadow!.set(m.memory)
      }
    },
    windows: () => [...live.values()].map((m) => windowOf(m)),
    disconnect: () => {
      connected = false
    }
  }
}
