/**
 * PCI as firmware sees it, over port I/O: configuration space through the legacy mechanism
 * (0xcf8/0xcfc), depth-first enumeration with bus numbering, BAR sizing and assignment with
 * bridge windows, the command register, capabilities, MSI/MSI-X programming and q35's INTx
 * routing. With no guest OS and no BIOS under qtest, this module is the BIOS.
 *
 * Plain synchronous code: every access is one qtest round trip (13-16 µs), and a driver
 * calls these from its own synchronous register paths. Errors are thrown, as `Data.TaggedError`
 * values, before anything is sent.
 *
 * q35 facts this relies on (QEMU 7.2, measured and read in hw/isa/lpc_ich9.c, hw/pci-host/q35.c):
 * - the PCI hole is [end of low RAM, 0xfec00000) and everything in it is ours except ECAM,
 *   which QEMU places (disabled until PCIEXBAR is enabled) at 0xb0000000-0xbfffffff;
 *   above it sit the IOAPIC (0xfec00000), HPET (0xfed00000), the MSI/LAPIC window
 *   (0xfee00000-0xfeefffff) and the BIOS ROM (0xfffc0000). The PCI address space sits at
 *   priority -1 under system memory, so a BAR overlapping RAM or those devices is silently
 *   shadowed rather than refused: the window below avoids them all.
 * - I/O ports in use: legacy ISA below 0x100, ACPI PM at PMBASE, fw_cfg 0x510, ACPI CPU
 *   hotplug 0xcd8, config 0xcf8-0xcff, vmport 0x5658.
 *
 * @internal
 */
import * as Data from "effect/Data"

/**
 * The port I/O the configuration mechanism needs. The qtest channel (`Qtest`) satisfies it.
 * Values are unsigned and fit the access width.
 * @internal
 */
export interface PortIo {
  inb(port: number): number
  inw(port: number): number
  inl(port: number): number
  outb(port: number, v: number): void
  outw(port: number, v: number): void
  outl(port: number, v: number): void
}

/**
 * The 32-bit MMIO accesses MSI-X table programming needs (`Qtest` satisfies it).
 * @internal
 */
export interface MemoryIo {
  readl(addr: number): number
  writel(addr: number, v: number): void
}

/**
 * An argument was out of range (bus, device, function, offset, alignment, value, window):
 * nothing was sent.
 * @internal
 */
export class PciBadArgument extends Data.TaggedError("PciBadArgument")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `pci ${this.operation}: ${this.reason} (nothing sent)`
  }
}

/**
 * Enumeration ran out of bus numbers, or assignment ran out of window space.
 * @internal
 */
export class PciResourceExhausted extends Data.TaggedError("PciResourceExhausted")<{
  readonly resource: "bus numbers" | "memory" | "io"
  readonly needed: number
  readonly available: number
}> {
  override get message() {
    return `pci: ${this.resource} exhausted: ${this.needed} needed, ${this.available} available`
  }
}

/**
 * A function lacks the capability an operation needs (or is absent: its config reads all-ones).
 * @internal
 */
export class PciCapabilityMissing extends Data.TaggedError("PciCapabilityMissing")<{
  readonly address: string
  readonly capability: string
}> {
  override get message() {
    return `pci ${this.address}: no ${this.capability} capability`
  }
}

/** The errors of this module. @internal */
export type PciError = PciBadArgument | PciResourceExhausted | PciCapabilityMissing

/**
 * A function's address. Invariant (checked by every access): bus 0-255, device 0-31,
 * function 0-7, integers.
 * @internal
 */
export interface Bdf {
  readonly bus: number
  readonly device: number
  readonly function: number
}

const isInt = (n: unknown, max: number): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= max

/** A checked `Bdf`. @internal */
export const bdf = (bus: number, device: number, fn: number): Bdf => {
  const a = { bus, device, function: fn }
  checkBdf("bdf", a)
  return a
}

/** `bb:dd.f` in hex, as lspci prints it. @internal */
export const formatBdf = (a: Bdf): string =>
  `${a.bus.toString(16).padStart(2, "0")}:${a.device.toString(16).padStart(2, "0")}.${a.function}`

const checkBdf = (operation: string, a: Bdf) => {
  if (a === null || typeof a !== "object") throw new PciBadArgument({ operation, reason: "no address" })
  if (!isInt(a.bus, 255)) throw new PciBadArgument({ operation, reason: `bus ${a.bus} is not an integer in 0..255` })
  if (!isInt(a.device, 31)) throw new PciBadArgument({ operation, reason: `device ${a.device} is not an integer in 0..31` })
  if (!isInt(a.function, 7)) {
    throw new PciBadArgument({ operation, reason: `function ${a.function} is not an integer in 0..7` })
  }
}

/** The legacy configuration mechanism's ports. @internal */
export const CONFIG_ADDRESS = 0xcf8
/** @internal */
export const CONFIG_DATA = 0xcfc

/** Type-0/1 header offsets and command bits used here. @internal */
export const Reg = {
  VendorId: 0x00,
  DeviceId: 0x02,
  Command: 0x04,
  Status: 0x06,
  Revision: 0x08,
  ClassCode: 0x09,
  HeaderType: 0x0e,
  Bar0: 0x10,
  SubsystemVendorId: 0x2c,
  SubsystemId: 0x2e,
  CapabilitiesPointer: 0x34,
  InterruptLine: 0x3c,
  InterruptPin: 0x3d,
  // Type 1 (bridge) header.
  PrimaryBus: 0x18,
  SecondaryBus: 0x19,
  SubordinateBus: 0x1a,
  IoBase: 0x1c,
  IoLimit: 0x1d,
  MemoryBase: 0x20,
  MemoryLimit: 0x22,
  PrefetchableBase: 0x24,
  PrefetchableLimit: 0x26,
  PrefetchableBaseUpper: 0x28,
  PrefetchableLimitUpper: 0x2c,
  IoBaseUpper: 0x30,
  IoLimitUpper: 0x32
} as const

/** Command register bits. @internal */
export const Command = {
  Io: 0x1,
  Memory: 0x2,
  BusMaster: 0x4,
  IntxDisable: 0x400
} as const

/** Status register: a capability list is present. */
const STATUS_CAP_LIST = 0x10

/**
 * Configuration space through the legacy mechanism #1: the dword address goes to 0xcf8
 * (enable bit, bus, device, function, offset with its two low bits clear) and the data moves
 * through 0xcfc + (offset & 3), so a byte at offset 0x0e is `inb(0xcfe)`. Accesses are
 * naturally aligned (a word at an odd offset, or a dword not on a multiple of 4, is refused:
 * as in Linux's `pci_conf1`, it would not be one config transaction). Offsets are below 256
 * (extended config space needs ECAM, which q35 leaves disabled without firmware).
 * Two calls, so not atomic: one client per QEMU, and this module is it.
 * @internal
 */
export class ConfigSpace {
  constructor(readonly io: PortIo) {}

  read8(a: Bdf, offset: number): number {
    this.select("read8", a, offset, 1)
    return this.io.inb(CONFIG_DATA + (offset & 3))
  }
  read16(a: Bdf, offset: number): number {
    this.select("read16", a, offset, 2)
    return this.io.inw(CONFIG_DATA + (offset & 2))
  }
  read32(a: Bdf, offset: number): number {
    this.select("read32", a, offset, 4)
    return this.io.inl(CONFIG_DATA) >>> 0
  }
  write8(a: Bdf, offset: number, value: number): void {
    checkValue("write8", value, 0xff)
    this.select("write8", a, offset, 1)
    this.io.outb(CONFIG_DATA + (offset & 3), value)
  }
  write16(a: Bdf, offset: number, value: number): void {
    checkValue("write16", value, 0xffff)
    this.select("write16", a, offset, 2)
    this.io.outw(CONFIG_DATA + (offset & 2), value)
  }
  write32(a: Bdf, offset: number, value: number): void {
    checkValue("write32", value, 0xffffffff)
    this.select("write32", a, offset, 4)
    this.io.outl(CONFIG_DATA, value >>> 0)
  }
  /** Whether a function answers: an all-ones vendor id is the master abort of an empty slot. */
  present(a: Bdf): boolean {
    return this.read16(a, Reg.VendorId) !== 0xffff
  }

  private select(operation: string, a: Bdf, offset: number, width: 1 | 2 | 4) {
    checkBdf(operation, a)
    if (!isInt(offset, 256 - width)) {
      throw new PciBadArgument({ operation, reason: `offset ${offset} is not an integer in 0..${256 - width}` })
    }
    if ((offset & (width - 1)) !== 0) {
      throw new PciBadArgument({ operation, reason: `offset 0x${offset.toString(16)} is not ${width}-byte aligned` })
    }
    const address = 0x80000000 | (a.bus << 16) | (a.device << 11) | (a.function << 8) | (offset & 0xfc)
    this.io.outl(CONFIG_ADDRESS, address >>> 0)
  }
}

const checkValue = (operation: string, value: number, max: number) => {
  if (!isInt(value, max)) {
    throw new PciBadArgument({ operation, reason: `value ${value} is not an integer in 0..0x${max.toString(16)}` })
  }
}

// ---------------------------------------------------------------------------------------------
// Enumeration

/**
 * One function found by `enumerate`. `path` runs from the bus-0 function above it (a root
 * port, for a device behind one) down to the function itself: its first element is on bus 0,
 * its last is `address`; every element but the last is a bridge.
 * @internal
 */
export interface PciFunction {
  readonly address: Bdf
  /** `bb:dd.f`. */
  readonly name: string
  readonly vendorId: number
  readonly deviceId: number
  readonly revision: number
  /** Base class, subclass, programming interface: 0x010802 is an NVMe controller. */
  readonly classCode: number
  /** 0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus (the multi-function bit stripped). */
  readonly headerType: number
  readonly multiFunction: boolean
  /** At 0x2c for endpoints; for a bridge, from its SSVID capability (0 if it has none). */
  readonly subsystemVendorId: number
  readonly subsystemId: number
  /** 0 none, 1-4 INTA-INTD. */
  readonly interruptPin: number
  readonly path: ReadonlyArray<Bdf>
  /** For a bridge: the bus numbers `enumerate` gave it. */
  readonly secondaryBus?: number
  readonly subordinateBus?: number
}

/**
 * Scans bus 0 depth first, numbering every bridge's secondary and subordinate buses as it goes
 * (secondary = the next free number; subordinate = the last number used below it), and
 * returns every function in scan order. Rerunning it renumbers identically. A device whose
 * function 0 is absent is skipped (function 0 is mandatory; QEMU lets a hotplug populate other
 * functions first, and those only count once function 0 arrives).
 * @internal
 */
export const enumerate = (cfg: ConfigSpace): ReadonlyArray<PciFunction> => {
  const found: Array<PciFunction> = []
  let lastBus = 0
  const scan = (bus: number, above: ReadonlyArray<Bdf>) => {
    for (let device = 0; device < 32; device++) {
      const f0 = { bus, device, function: 0 }
      if (!cfg.present(f0)) continue
      const multi = (cfg.read8(f0, Reg.HeaderType) & 0x80) !== 0
      for (let fn = 0; fn < (multi ? 8 : 1); fn++) {
        const address = fn === 0 ? f0 : { bus, device, function: fn }
        if (fn > 0 && !cfg.present(address)) continue
        const path = [...above, address]
        const header = cfg.read8(address, Reg.HeaderType)
        const type = header & 0x7f
        const base = {
          address,
          name: formatBdf(address),
          vendorId: cfg.read16(address, Reg.VendorId),
          deviceId: cfg.read16(address, Reg.DeviceId),
          revision: cfg.read8(address, Reg.Revision),
          classCode: cfg.read32(address, Reg.Revision) >>> 8,
          headerType: type,
          multiFunction: (header & 0x80) !== 0,
          interruptPin: cfg.read8(address, Reg.InterruptPin),
          path
        }
        if (type !== 1) {
          found.push({
            ...base,
            subsystemVendorId: type === 0 ? cfg.read16(address, Reg.SubsystemVendorId) : 0,
            subsystemId: type === 0 ? cfg.read16(address, Reg.SubsystemId) : 0
          })
          continue
        }
        if (lastBus === 255) throw new PciResourceExhausted({ resource: "bus numbers", needed: 257, available: 256 })
        const secondary = ++lastBus
        // Subordinate 0xff while scanning below, so the bridge forwards every bus we may
        // number there; narrowed to what was used once the subtree is done.
        cfg.write8(address, Reg.PrimaryBus, bus)
        cfg.write8(address, Reg.SecondaryBus, secondary)
        cfg.write8(address, Reg.SubordinateBus, 0xff)
        const ssvid = findCapability(cfg, address, CapabilityId.Ssvid)
        const index = found.length
        found.push({
          ...base,
          subsystemVendorId: ssvid === undefined ? 0 : cfg.read16(address, ssvid + 4),
          subsystemId: ssvid === undefined ? 0 : cfg.read16(address, ssvid + 6),
          secondaryBus: secondary,
          subordinateBus: secondary
        })
        scan(secondary, path)
        cfg.write8(address, Reg.SubordinateBus, lastBus)
        found[index] = { ...found[index], subordinateBus: lastBus }
      }
    }
  }
  scan(0, [])
  return found
}

/** The functions with these ids, in scan order. @internal */
export const findFunctions = (
  functions: ReadonlyArray<PciFunction>,
  vendorId: number,
  deviceId: number
): ReadonlyArray<PciFunction> => functions.filter((f) => f.vendorId === vendorId && f.deviceId === deviceId)

// ---------------------------------------------------------------------------------------------
// BARs

/** @internal */
export type BarKind = "memory32" | "memory64" | "io"

/**
 * One implemented BAR. Invariant: `size` is a power of two (≥ 16 for memory, ≥ 4 for I/O)
 * and `address` a multiple of it once assigned; a 64-bit BAR takes `index` and `index + 1`.
 * @internal
 */
export interface Bar {
  readonly index: number
  /** Its config offset: 0x10 + 4 * index. */
  readonly offset: number
  readonly kind: BarKind
  readonly prefetchable: boolean
  readonly size: number
  /** What the BAR holds (as read, or as `assignResources` wrote it). */
  readonly address: number
}

/**
 * Sizes a function's BARs the standard way: with memory and I/O decoding off (else the
 * all-ones probe would briefly map the BAR over whatever sits at the top of the address
 * space), write all-ones, read the mask back, restore the original value, then restore the
 * command register. Six BARs for an endpoint, two for a bridge; expansion ROMs are not sized.
 * @internal
 */
export const sizeBars = (cfg: ConfigSpace, a: Bdf): ReadonlyArray<Bar> => {
  const type = cfg.read8(a, Reg.HeaderType) & 0x7f
  const count = type === 0 ? 6 : type === 1 ? 2 : 0
  const bars: Array<Bar> = []
  if (count === 0) return bars
  const command = cfg.read16(a, Reg.Command)
  if (command === 0xffff) return bars
  cfg.write16(a, Reg.Command, command & ~(Command.Io | Command.Memory))
  try {
    for (let index = 0; index < count; index++) {
      const offset = Reg.Bar0 + 4 * index
      const original = cfg.read32(a, offset)
      cfg.write32(a, offset, 0xffffffff)
      const mask = cfg.read32(a, offset)
      cfg.write32(a, offset, original)
      if (mask === 0) continue
      if ((original & 1) === 1 || (mask & 1) === 1) {
        // I/O: a BAR decoding only 16 bits reads its upper half back as zeros.
        let m = (mask & 0xfffffffc) >>> 0
        if ((m & 0xffff0000) === 0) m = (m | 0xffff0000) >>> 0
        bars.push({ index, offset, kind: "io", prefetchable: false, size: (~m >>> 0) + 1, address: (original & 0xfffffffc) >>> 0 })
        continue
      }
      const prefetchable = (mask & 0x8) !== 0
      const is64 = ((mask >>> 1) & 3) === 2
      if (is64 && index + 1 < count) {
        const highOffset = offset + 4
        const originalHigh = cfg.read32(a, highOffset)
        cfg.write32(a, highOffset, 0xffffffff)
        const maskHigh = cfg.read32(a, highOffset)
        cfg.write32(a, highOffset, originalHigh)
        const sizeMask = (BigInt(maskHigh) << 32n) | BigInt((mask & 0xfffffff0) >>> 0)
        const size = Number((1n << 64n) - sizeMask)
        const address = originalHigh * 2 ** 32 + ((original & 0xfffffff0) >>> 0)
        bars.push({ index, offset, kind: "memory64", prefetchable, size, address })
        index++
        continue
      }
      const size = (~(mask & 0xfffffff0) >>> 0) + 1
      bars.push({ index, offset, kind: "memory32", prefetchable, size, address: (original & 0xfffffff0) >>> 0 })
    }
  } finally {
    cfg.write16(a, Reg.Command, command)
  }
  return bars
}

/**
 * An inclusive address range. Invariant: `base <= limit`, both safe integers.
 * @internal
 */
export interface Window {
  readonly base: number
  readonly limit: number
}

/**
 * The 32-bit MMIO window assignment uses on q35 by default: [0xc0000000, 0xfebfffff], the
 * PCI hole above ECAM's default place (0xb0000000 + 256 MiB) and below the IOAPIC. SeaBIOS
 * uses the same range on q35. With ≤ 2.75 GiB of RAM (low RAM ends at or below 0xb0000000)
 * none of it is RAM. 64-bit BARs are placed here too (their upper dword 0): no 64-bit window.
 * @internal
 */
export const Q35_MEMORY_WINDOW: Window = { base: 0xc0000000, limit: 0xfebfffff }

/**
 * The I/O port window: [0xc000, 0xffff], SeaBIOS's, above every fixed port q35 decodes
 * (vmport at 0x5658 is the highest). Bridge I/O windows have a 4 KiB granularity, so it holds
 * four bridges' worth; pass a larger window (e.g. 0x6000-0xffff) when more need I/O.
 * @internal
 */
export const Q35_IO_WINDOW: Window = { base: 0xc000, limit: 0xffff }

/** Bridge memory windows are 1 MiB granular, I/O windows 4 KiB (PCI-to-PCI bridge spec 3.2.5). */
const MEMORY_GRANULE = 0x100000
const IO_GRANULE = 0x1000

/**
 * What `assignResources` did: every function's BARs (with their new addresses) and every
 * bridge's windows (undefined: closed, nothing of that kind behind it).
 * @internal
 */
export interface Resources {
  readonly bars: ReadonlyMap<string, ReadonlyArray<Bar>>
  readonly bridges: ReadonlyMap<string, { readonly memory: Window | undefined; readonly io: Window | undefined }>
}

/** The BARs `assignResources` gave a function (empty if none). @internal */
export const barsOf = (resources: Resources, fn: PciFunction | Bdf): ReadonlyArray<Bar> =>
  resources.bars.get("name" in fn ? fn.name : formatBdf(fn)) ?? []

/** A thing to place: a BAR, or a bridge's window with its own contents laid out inside. */
interface Item {
  readonly size: number
  readonly align: number
  offset: number
  readonly place: (base: number) => void
}

const alignUp = (n: number, align: number) => Math.ceil(n / align) * align

/** Lays items out from offset 0, largest alignment first (no padding between power-of-two sizes). */
const layout = (items: Array<Item>): { size: number; align: number } => {
  items.sort((x, y) => y.align - x.align)
  let end = 0
  for (const item of items) {
    item.offset = alignUp(end, item.align)
    end = item.offset + item.size
  }
  return { size: end, align: items.length === 0 ? 1 : items[0].align }
}

/**
 * Sizes every BAR of `functions` (as `enumerate` returned them) and assigns them: memory BARs
 * (32-bit, 64-bit, prefetchable alike) from `memory`, I/O BARs from `io`, each aligned to its
 * size; each bridge gets a memory and an I/O window covering exactly what is behind it
 * (rounded to its granularity), its prefetchable window closed (everything shares the
 * non-prefetchable one, which a prefetchable BAR may always use). Bridge windows nest as the
 * buses do. Decoding is off on each function while its BARs move; the command register is
 * then restored (use `enable` to turn decoding on). Throws `PciResourceExhausted` when a
 * window is too small, before writing anything.
 * @internal
 */
export const assignResources = (
  cfg: ConfigSpace,
  functions: ReadonlyArray<PciFunction>,
  options: { readonly memory?: Window; readonly io?: Window } = {}
): Resources => {
  const memoryWindow = options.memory ?? Q35_MEMORY_WINDOW
  const ioWindow = options.io ?? Q35_IO_WINDOW
  checkWindow("assignResources", memoryWindow, 2 ** 32 - 1)
  checkWindow("assignResources", ioWindow, 0xffff)
  const bars = new Map<string, Array<Bar>>()
  const bridges = new Map<string, { memory: Window | undefined; io: Window | undefined }>()
  const byBus = new Map<number, Array<PciFunction>>()
  for (const f of functions) {
    const list = byBus.get(f.address.bus) ?? []
    list.push(f)
    byBus.set(f.address.bus, list)
  }
  const writes: Array<() => void> = []
  // Bottom-up: a bus's memory and I/O items, each bridge's window one item of its parent bus.
  const collect = (bus: number, depth: number): { memory: Array<Item>; io: Array<Item> } => {
    if (depth > 256) throw new PciBadArgument({ operation: "assignResources", reason: "bus numbers form a cycle" })
    const memory: Array<Item> = []
    const io: Array<Item> = []
    for (const f of byBus.get(bus) ?? []) {
      const sized = sizeBars(cfg, f.address)
      const placed: Array<Bar> = []
      bars.set(f.name, placed)
      for (const bar of sized) {
        const item: Item = {
          size: bar.size,
          align: bar.size,
          offset: 0,
          place: (address) => {
            placed.push({ ...bar, address })
            writes.push(() => writeBar(cfg, f.address, bar, address))
          }
        }
        ;(bar.kind === "io" ? io : memory).push(item)
      }
      placed.sort((x, y) => x.index - y.index)
      if (f.secondaryBus === undefined) continue
      const inner = collect(f.secondaryBus, depth + 1)
      const windows = { memory: undefined as Window | undefined, io: undefined as Window | undefined }
      bridges.set(f.name, windows)
      const wrap = (items: Array<Item>, granule: number, set: (w: Window) => void): Item | undefined => {
        if (items.length === 0) return undefined
        const l = layout(items)
        return {
          size: alignUp(l.size, granule),
          align: Math.max(granule, l.align),
          offset: 0,
          place: (base) => {
            set({ base, limit: base + alignUp(l.size, granule) - 1 })
            for (const item of items) item.place(base + item.offset)
          }
        }
      }
      const m = wrap(inner.memory, MEMORY_GRANULE, (w) => (windows.memory = w))
      const i = wrap(inner.io, IO_GRANULE, (w) => (windows.io = w))
      if (m !== undefined) memory.push(m)
      if (i !== undefined) io.push(i)
      writes.push(() => writeBridgeWindows(cfg, f.address, windows))
    }
    return { memory, io }
  }
  const top = collect(0, 0)
  const place = (items: Array<Item>, window: Window, resource: "memory" | "io") => {
    const l = layout(items)
    const base = alignUp(window.base, l.align)
    const available = window.limit + 1 - window.base
    if (base + l.size > window.limit + 1) {
      throw new PciResourceExhausted({ resource, needed: base - window.base + l.size, available })
    }
    for (const item of items) item.place(base + item.offset)
  }
  place(top.memory, memoryWindow, "memory")
  place(top.io, ioWindow, "io")
  // Everything is placed: only now is anything written, so exhaustion leaves config untouched.
  for (const write of writes) write()
  for (const list of bars.values()) list.sort((x, y) => x.index - y.index)
  return { bars, bridges }
}

const checkWindow = (operation: string, w: Window, max: number) => {
  if (w === null || typeof w !== "object" || !isInt(w.base, max) || !isInt(w.limit, max) || w.base > w.limit) {
    throw new PciBadArgument({ operation, reason: `window ${JSON.stringify(w)} is not base <= limit within 0..0x${max.toString(16)}` })
  }
}

/** Writes one BAR with decoding off around it (a half-written 64-bit BAR must never decode). */
const writeBar = (cfg: ConfigSpace, a: Bdf, bar: Bar, address: number) => {
  const command = cfg.read16(a, Reg.Command)
  cfg.write16(a, Reg.Command, command & ~(Command.Io | Command.Memory))
  cfg.write32(a, bar.offset, (address % 2 ** 32) >>> 0)
  if (bar.kind === "memory64") cfg.write32(a, bar.offset + 4, Math.floor(address / 2 ** 32))
  cfg.write16(a, Reg.Command, command)
}

/** Programs a bridge's windows; a closed window has base above limit. */
const writeBridgeWindows = (
  cfg: ConfigSpace,
  a: Bdf,
  w: { readonly memory: Window | undefined; readonly io: Window | undefined }
) => {
  // Memory base/limit hold address bits 31:20 in their bits 15:4.
  if (w.memory === undefined) {
    cfg.write16(a, Reg.MemoryBase, 0xfff0)
    cfg.write16(a, Reg.MemoryLimit, 0)
  } else {
    cfg.write16(a, Reg.MemoryBase, (w.memory.base >>> 16) & 0xfff0)
    cfg.write16(a, Reg.MemoryLimit, (w.memory.limit >>> 16) & 0xfff0)
  }
  // Prefetchable window closed: nothing is placed in it.
  cfg.write16(a, Reg.PrefetchableBase, 0xfff0)
  cfg.write16(a, Reg.PrefetchableLimit, 0)
  cfg.write32(a, Reg.PrefetchableBaseUpper, 0)
  cfg.write32(a, Reg.PrefetchableLimitUpper, 0)
  // I/O base/limit hold address bits 15:12 in their bits 7:4; our ports are all below 64 KiB,
  // so the upper-16 registers (present on 32-bit-I/O bridges) are zero.
  const io32 = (cfg.read8(a, Reg.IoBase) & 0xf) === 1
  if (w.io === undefined) {
    cfg.write8(a, Reg.IoBase, 0xf0)
    cfg.write8(a, Reg.IoLimit, 0)
  } else {
    cfg.write8(a, Reg.IoBase, (w.io.base >>> 8) & 0xf0)
    cfg.write8(a, Reg.IoLimit, (w.io.limit >>> 8) & 0xf0)
  }
  if (io32) {
    cfg.write16(a, Reg.IoBaseUpper, 0)
    cfg.write16(a, Reg.IoLimitUpper, 0)
  }
}

/**
 * What `enable` turns on. Omitted or false: left as it is.
 * @internal
 */
export interface EnableFlags {
  readonly memory?: boolean
  readonly io?: boolean
  readonly busMaster?: boolean
}

/**
 * Sets command-register bits on a function and on every bridge on its path: a bridge forwards
 * memory or I/O downstream only with those bits set, and QEMU drops a device's DMA when a
 * bridge above it is not bus master.
 * @internal
 */
export const enable = (cfg: ConfigSpace, fn: PciFunction, flags: EnableFlags): void => {
  const bits = (flags.memory ? Command.Memory : 0) | (flags.io ? Command.Io : 0) | (flags.busMaster ? Command.BusMaster : 0)
  for (const a of fn.path) {
    const command = cfg.read16(a, Reg.Command)
    if ((command & bits) !== bits) cfg.write16(a, Reg.Command, command | bits)
  }
}

/** Clears command-register bits on the function alone (bridges above serve others too). @internal */
export const disable = (cfg: ConfigSpace, a: Bdf, flags: EnableFlags): void => {
  const bits = (flags.memory ? Command.Memory : 0) | (flags.io ? Command.Io : 0) | (flags.busMaster ? Command.BusMaster : 0)
  const command = cfg.read16(a, Reg.Command)
  if ((command & bits) !== 0) cfg.write16(a, Reg.Command, command & ~bits)
}

/** Sets or clears the command register's INTx Disable bit (set it while using MSI/MSI-X). @internal */
export const setIntxDisabled = (cfg: ConfigSpace, a: Bdf, disabled: boolean): void => {
  const command = cfg.read16(a, Reg.Command)
  cfg.write16(a, Reg.Command, disabled ? command | Command.IntxDisable : command & ~Command.IntxDisable)
}

// ---------------------------------------------------------------------------------------------
// Capabilities

/** Capability ids. @internal */
export const CapabilityId = {
  PowerManagement: 0x01,
  Msi: 0x05,
  Vendor: 0x09,
  Ssvid: 0x0d,
  Express: 0x10,
  MsiX: 0x11
} as const

/** @internal */
export interface Capability {
  readonly id: number
  readonly offset: number
}

/**
 * The capability list from 0x34, in list order. Empty when the status register has no list
 * (or reads all-ones: the function is gone). Pointers have their two low bits masked, must be
 * ≥ 0x40 (inside the device-specific area); a cycle or more than 48 entries ends the walk.
 * @internal
 */
export const capabilities = (cfg: ConfigSpace, a: Bdf): ReadonlyArray<Capability> => {
  const status = cfg.read16(a, Reg.Status)
  if (status === 0xffff || (status & STATUS_CAP_LIST) === 0) return []
  const list: Array<Capability> = []
  const seen = new Set<number>()
  let ptr = cfg.read8(a, Reg.CapabilitiesPointer) & 0xfc
  while (ptr >= 0x40 && !seen.has(ptr) && list.length < 48) {
    seen.add(ptr)
    const header = cfg.read16(a, ptr)
    list.push({ id: header & 0xff, offset: ptr })
    ptr = (header >>> 8) & 0xfc
  }
  return list
}

/** The offset of the first capability with this id, or undefined. @internal */
export const findCapability = (cfg: ConfigSpace, a: Bdf, id: number): number | undefined =>
  capabilities(cfg, a).find((c) => c.id === id)?.offset

const requireCapability = (cfg: ConfigSpace, a: Bdf, id: number, name: string): number => {
  checkBdf(name, a)
  const offset = findCapability(cfg, a, id)
  if (offset === undefined) throw new PciCapabilityMissing({ address: formatBdf(a), capability: name })
  return offset
}

/**
 * A function's MSI capability, decoded. `vectorsCapable` is what Multiple Message Capable
 * allows (1-32); the 64-bit and per-vector-mask variants move the data and mask registers.
 * @internal
 */
export interface MsiInfo {
  readonly offset: number
  readonly is64: boolean
  readonly perVectorMask: boolean
  readonly vectorsCapable: number
  readonly vectorsEnabled: number
  readonly enabled: boolean
  /** Config offsets of the registers in this variant. */
  readonly dataOffset: number
  readonly maskOffset: number | undefined
}

const MSI_ENABLE = 0x1
const MSI_64BIT = 0x80
const MSI_PER_VECTOR_MASK = 0x100

/** Reads the MSI capability (throws `PciCapabilityMissing` without one). @internal */
export const msiInfo = (cfg: ConfigSpace, a: Bdf): MsiInfo => {
  const offset = requireCapability(cfg, a, CapabilityId.Msi, "MSI")
  const control = cfg.read16(a, offset + 2)
  const is64 = (control & MSI_64BIT) !== 0
  const perVectorMask = (control & MSI_PER_VECTOR_MASK) !== 0
  const dataOffset = offset + (is64 ? 0xc : 0x8)
  return {
    offset,
    is64,
    perVectorMask,
    vectorsCapable: 1 << Math.min((control >>> 1) & 7, 5),
    vectorsEnabled: 1 << Math.min((control >>> 4) & 7, 5),
    enabled: (control & MSI_ENABLE) !== 0,
    dataOffset,
    maskOffset: perVectorMask ? dataOffset + 4 : undefined
  }
}

/**
 * What to program into MSI. Under qtest, point `address` at guest RAM (not 0xfee00000, the
 * LAPIC window): QEMU then writes the message data there, which is how an MSI is observed.
 * @internal
 */
export interface MsiConfig {
  /** Dword aligned; below 2^32 unless the function is 64-bit capable. */
  readonly address: number | bigint
  /** 16 bits; with n vectors its low log2(n) bits must be 0 (the device puts the vector there). */
  readonly data: number
  /** A power of two up to `vectorsCapable` (1 by default). */
  readonly vectors?: number
  /** True by default. */
  readonly enable?: boolean
}

/**
 * Programs MSI: disabled while the address and data change, then Multiple Message Enable and
 * the enable bit in one control write. Returns the capability as it then reads.
 * @internal
 */
export const programMsi = (cfg: ConfigSpace, a: Bdf, config: MsiConfig): MsiInfo => {
  const info = msiInfo(cfg, a)
  const address = typeof config.address === "bigint" ? config.address : BigInt(isInt(config.address, Number.MAX_SAFE_INTEGER) ? config.address : -1)
  if (address < 0n || address >= 1n << 64n || (address & 3n) !== 0n) {
    throw new PciBadArgument({ operation: "programMsi", reason: `address ${String(config.address)} is not a dword-aligned 64-bit address` })
  }
  if (!info.is64 && address >= 1n << 32n) {
    throw new PciBadArgument({ operation: "programMsi", reason: `${formatBdf(a)} has 32-bit MSI; address ${String(config.address)} is above 4 GiB` })
  }
  const vectors = config.vectors ?? 1
  if (!isInt(vectors, 32) || (vectors & (vectors - 1)) !== 0 || vectors === 0 || vectors > info.vectorsCapable) {
    throw new PciBadArgument({ operation: "programMsi", reason: `vectors ${vectors} is not a power of two up to ${info.vectorsCapable}` })
  }
  checkValue("programMsi data", config.data, 0xffff)
  if ((config.data & (vectors - 1)) !== 0) {
    throw new PciBadArgument({ operation: "programMsi", reason: `data 0x${config.data.toString(16)} has vector bits set for ${vectors} vectors` })
  }
  const control = cfg.read16(a, info.offset + 2)
  cfg.write16(a, info.offset + 2, control & ~(MSI_ENABLE | 0x70))
  cfg.write32(a, info.offset + 4, Number(address & 0xffffffffn))
  if (info.is64) cfg.write32(a, info.offset + 8, Number(address >> 32n))
  cfg.write16(a, info.dataOffset, config.data)
  const mme = Math.log2(vectors) << 4
  cfg.write16(a, info.offset + 2, (control & ~(MSI_ENABLE | 0x70)) | mme | (config.enable === false ? 0 : MSI_ENABLE))
  return msiInfo(cfg, a)
}

/** Clears MSI enable. @internal */
export const disableMsi = (cfg: ConfigSpace, a: Bdf): void => {
  const info = msiInfo(cfg, a)
  const control = cfg.read16(a, info.offset + 2)
  cfg.write16(a, info.offset + 2, control & ~MSI_ENABLE)
}

/** Masks or unmasks one MSI vector (needs per-vector masking). @internal */
export const setMsiVectorMask = (cfg: ConfigSpace, a: Bdf, vector: number, masked: boolean): void => {
  const info = msiInfo(cfg, a)
  if (info.maskOffset === undefined) throw new PciCapabilityMissing({ address: formatBdf(a), capability: "MSI per-vector masking" })
  if (!isInt(vector, info.vectorsCapable - 1)) {
    throw new PciBadArgument({ operation: "setMsiVectorMask", reason: `vector ${vector} is not in 0..${info.vectorsCapable - 1}` })
  }
  const bits = cfg.read32(a, info.maskOffset)
  const bit = 2 ** vector
  cfg.write32(a, info.maskOffset, masked ? (bits | bit) >>> 0 : (bits & ~bit) >>> 0)
}

/**
 * A function's MSI-X capability, decoded. The table and the PBA live in BARs (`tableBar`,
 * `pbaBar` are BAR indexes, the offsets are within them); entries are 16 bytes.
 * @internal
 */
export interface MsixInfo {
  readonly offset: number
  readonly tableSize: number
  readonly tableBar: number
  readonly tableOffset: number
  readonly pbaBar: number
  readonly pbaOffset: number
  readonly enabled: boolean
  readonly functionMasked: boolean
}

const MSIX_ENABLE = 0x8000
const MSIX_FUNCTION_MASK = 0x4000

/** Reads the MSI-X capability (throws `PciCapabilityMissing` without one). @internal */
export const msixInfo = (cfg: ConfigSpace, a: Bdf): MsixInfo => {
  const offset = requireCapability(cfg, a, CapabilityId.MsiX, "MSI-X")
  const control = cfg.read16(a, offset + 2)
  const table = cfg.read32(a, offset + 4)
  const pba = cfg.read32(a, offset + 8)
  return {
    offset,
    tableSize: (control & 0x7ff) + 1,
    tableBar: table & 7,
    tableOffset: (table & ~7) >>> 0,
    pbaBar: pba & 7,
    pbaOffset: (pba & ~7) >>> 0,
    enabled: (control & MSIX_ENABLE) !== 0,
    functionMasked: (control & MSIX_FUNCTION_MASK) !== 0
  }
}

/** The table's guest-physical address, given the function's assigned BARs. @internal */
export const msixTableAddress = (info: MsixInfo, bars: ReadonlyArray<Bar>): number => {
  const bar = bars.find((b) => b.index === info.tableBar && b.kind !== "io")
  if (bar === undefined) throw new PciBadArgument({ operation: "msixTableAddress", reason: `BAR${info.tableBar} is not an assigned memory BAR` })
  return bar.address + info.tableOffset
}

/** Sets MSI-X Enable and Function Mask (each: true, false, or undefined to leave it). @internal */
export const setMsix = (cfg: ConfigSpace, a: Bdf, flags: { readonly enable?: boolean; readonly functionMask?: boolean }): MsixInfo => {
  const info = msixInfo(cfg, a)
  let control = cfg.read16(a, info.offset + 2)
  if (flags.enable !== undefined) control = flags.enable ? control | MSIX_ENABLE : control & ~MSIX_ENABLE
  if (flags.functionMask !== undefined) control = flags.functionMask ? control | MSIX_FUNCTION_MASK : control & ~MSIX_FUNCTION_MASK
  cfg.write16(a, info.offset + 2, control)
  return msixInfo(cfg, a)
}

/**
 * Programs one MSI-X table entry through MMIO: masked while address and data change, then
 * left masked or not as asked (unmasked by default). `tableAddress` is from `msixTableAddress`;
 * the memory BAR must be decoding (`enable` with `memory`).
 * @internal
 */
export const programMsixEntry = (
  mmio: MemoryIo,
  info: MsixInfo,
  tableAddress: number,
  entry: number,
  config: { readonly address: number | bigint; readonly data: number; readonly masked?: boolean }
): void => {
  if (!isInt(entry, info.tableSize - 1)) {
    throw new PciBadArgument({ operation: "programMsixEntry", reason: `entry ${entry} is not in 0..${info.tableSize - 1}` })
  }
  const address = typeof config.address === "bigint" ? config.address : BigInt(isInt(config.address, Number.MAX_SAFE_INTEGER) ? config.address : -1)
  if (address < 0n || address >= 1n << 64n || (address & 3n) !== 0n) {
    throw new PciBadArgument({ operation: "programMsixEntry", reason: `address ${String(config.address)} is not a dword-aligned 64-bit address` })
  }
  checkValue("programMsixEntry data", config.data, 0xffffffff)
  const e = tableAddress + 16 * entry
  const vectorControl = mmio.readl(e + 12)
  mmio.writel(e + 12, (vectorControl | 1) >>> 0)
  mmio.writel(e, Number(address & 0xffffffffn))
  mmio.writel(e + 4, Number(address >> 32n))
  mmio.writel(e + 8, config.data >>> 0)
  if (config.masked !== true) mmio.writel(e + 12, (vectorControl & ~1) >>> 0)
}

/** Masks or unmasks one MSI-X entry. @internal */
export const setMsixEntryMask = (mmio: MemoryIo, info: MsixInfo, tableAddress: number, entry: number, masked: boolean): void => {
  if (!isInt(entry, info.tableSize - 1)) {
    throw new PciBadArgument({ operation: "setMsixEntryMask", reason: `entry ${entry} is not in 0..${info.tableSize - 1}` })
  }
  const e = tableAddress + 16 * entry + 12
  const vectorControl = mmio.readl(e)
  mmio.writel(e, masked ? (vectorControl | 1) >>> 0 : (vectorControl & ~1) >>> 0)
}

// ---------------------------------------------------------------------------------------------
// INTx routing on q35

/**
 * Where a function's INTx arrives on q35.
 * @internal
 */
export interface IntxRoute {
  /** The function's own pin: 1-4 for INTA-INTD. */
  readonly pin: number
  /** The pin on bus 0 after the swizzle through each bridge (1-4). */
  readonly rootPin: number
  /** The bus-0 device number it arrives through (a root port's slot, or the device's own). */
  readonly rootDevice: number
  /** ICH9 PIRQ line, 0-7 for PIRQA-PIRQH. */
  readonly pirq: number
  /** The IOAPIC input (GSI): 16 + pirq. What `irq_intercept_in ioapic` reports. */
  readonly ioapicPin: number
}

/**
 * Computes a function's IOAPIC input on q35, or undefined for a function without a pin.
 *
 * Behind each bridge the standard swizzle applies: pin' = (device + pin) mod 4 (QEMU's
 * `pci_swizzle_map_irq_fn`; behind a PCIe port the device is always 0, so the pin passes
 * through unchanged). On bus 0, ICH9 maps (device, pin) to a PIRQ: devices 25-29 and 31 use
 * their D25IR..D31IR chipset registers, at reset INTA-INTD -> PIRQA-PIRQD; device 30 (the
 * DMI-PCI bridge's slot) is fixed at PIRQE-PIRQH; every other device uses QEMU's fixed table
 * (device + pin) mod 4 -> PIRQE-PIRQH. PIRQx reaches IOAPIC input 16 + x whatever the LPC's
 * PIRQ route registers (0x60-0x63, 0x68-0x6b) say: those only steer the 8259 PIC path, so
 * with the IOAPIC nothing needs programming (they stay 0x80, disabled, as QEMU resets them).
 * Measured on QEMU 7.2: edu at 00:01.0 -> 21, at 00:06.0 -> 22, at 00:19.0 -> 16, behind a
 * root port at 00:03.0 -> 23, at 00:1e.0 -> 20, at 00:02.3 -> 22.
 * (This assumes firmware left the D25IR..D31IR registers at their reset values; nothing here
 * enables the RCBA window that would change them.)
 * @internal
 */
export const intxRoute = (fn: Pick<PciFunction, "interruptPin" | "path">): IntxRoute | undefined => {
  const pin = fn.interruptPin
  if (!isInt(pin, 4) || pin === 0) return undefined
  if (fn.path.length === 0 || fn.path[0].bus !== 0) {
    throw new PciBadArgument({ operation: "intxRoute", reason: "the function's path does not start on bus 0" })
  }
  let p = pin - 1
  for (let i = fn.path.length - 1; i >= 1; i--) p = (fn.path[i].device + p) % 4
  const rootDevice = fn.path[0].device
  const pirq = rootDevice === 30 ? p + 4 : rootDevice >= 25 ? p : ((rootDevice + p) % 4) + 4
  return { pin, rootPin: p + 1, rootDevice, pirq, ioapicPin: 16 + pirq }
}
