/**
 * pci.ts and pcie.ts against a fake port-I/O machine that models configuration space the way
 * QEMU does: per-byte write masks (BAR size masks included), write-1-to-clear bits, type-1
 * bridges forwarding config cycles by their secondary/subordinate bus numbers, and a root port
 * slot that drops its device on a power-off write.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  assignResources,
  type Bar,
  bdf,
  barsOf,
  capabilities,
  CapabilityId,
  ConfigSpace,
  enable,
  enumerate,
  findFunctions,
  formatBdf,
  intxRoute,
  type MemoryIo,
  msiInfo,
  msixInfo,
  msixTableAddress,
  PciBadArgument,
  PciCapabilityMissing,
  PciResourceExhausted,
  type PortIo,
  programMsi,
  programMsixEntry,
  sizeBars
} from "../src/internal/pci.js"
import {
  acknowledgeSlotEvents,
  enableHotplugInterrupts,
  orderlyRemovalStep,
  powerOffSlot,
  slotCapabilities,
  SlotControl,
  slotState,
  SlotStatus
} from "../src/internal/pcie.js"

// ---------------------------------------------------------------------------------------------
// The fake machine

interface BarSpec {
  readonly kind: "memory32" | "memory64" | "io"
  readonly size: number
  readonly prefetchable?: boolean
  /** An I/O BAR decoding 16 bits only (its upper half reads 0). */
  readonly io16?: boolean
}

class Fn {
  readonly config = new Uint8Array(256)
  readonly wmask = new Uint8Array(256)
  readonly w1c = new Uint8Array(256)
  /** For a bridge: the functions on its secondary bus, by device number. */
  readonly children = new Map<number, Array<Fn | undefined>>()
  onWrite: ((offset: number, width: number, value: number) => void) | undefined
  nextCap = 0x40
  constructor(readonly bridge: boolean) {}
  get8(o: number) {
    return this.config[o]
  }
  get16(o: number) {
    return this.config[o] | (this.config[o + 1] << 8)
  }
  get32(o: number) {
    return (this.get16(o) | (this.get16(o + 2) << 16)) >>> 0
  }
  set(o: number, width: number, v: number, mask?: number) {
    for (let i = 0; i < width; i++) {
      this.config[o + i] = (v >>> (8 * i)) & 0xff
      if (mask !== undefined) this.wmask[o + i] = (mask >>> (8 * i)) & 0xff
    }
  }
  write(o: number, width: number, v: number) {
    for (let i = 0; i < width; i++) {
      const b = (v >>> (8 * i)) & 0xff
      const at = o + i
      this.config[at] = ((this.config[at] & ~this.wmask[at]) | (b & this.wmask[at])) & ~(b & this.w1c[at])
    }
    this.onWrite?.(o, width, v)
  }
  addCap(id: number, bytes: number): number {
    const at = this.nextCap
    const previous = at === 0x40 ? 0x34 : this.lastCap + 1
    this.config[previous] = at
    this.config[at] = id
    this.config[at + 1] = 0
    this.lastCap = at
    this.nextCap = at + Math.max(bytes, 8)
    this.config[0x06] |= 0x10
    return at
  }
  lastCap = 0
}

const endpoint = (o: {
  vendor: number
  device: number
  classCode?: number
  pin?: number
  bars?: ReadonlyArray<BarSpec | undefined>
  multi?: boolean
  subsystem?: [number, number]
}): Fn => {
  const f = new Fn(false)
  f.set(0, 2, o.vendor)
  f.set(2, 2, o.device)
  f.set(8, 4, (((o.classCode ?? 0xff0000) << 8) | 0x10) >>> 0)
  f.set(0x0e, 1, o.multi ? 0x80 : 0)
  f.set(0x04, 2, 0, 0x0407)
  f.set(0x2c, 2, o.subsystem?.[0] ?? 0x1af4)
  f.set(0x2e, 2, o.subsystem?.[1] ?? 0x1100)
  f.set(0x3c, 1, 0, 0xff)
  f.set(0x3d, 1, o.pin ?? 0)
  let index = 0
  for (const bar of o.bars ?? []) {
    if (bar !== undefined) defineBar(f, 0x10 + 4 * index, bar)
    index += bar?.kind === "memory64" ? 2 : 1
  }
  return f
}

const defineBar = (f: Fn, offset: number, bar: BarSpec) => {
  if (bar.kind === "io") {
    f.set(offset, 4, 1, (~(bar.size - 1) & (bar.io16 ? 0xfffc : 0xfffffffc)) >>> 0)
  } else if (bar.kind === "memory32") {
    f.set(offset, 4, bar.prefetchable ? 8 : 0, (~(bar.size - 1) & 0xfffffff0) >>> 0)
  } else {
    const low = bar.size >= 2 ** 32 ? 0 : (~(bar.size - 1) & 0xfffffff0) >>> 0
    const high = bar.size >= 2 ** 32 ? (~(bar.size / 2 ** 32 - 1)) >>> 0 : 0xffffffff
    f.set(offset, 4, 4 | (bar.prefetchable ? 8 : 0), low)
    f.set(offset + 4, 4, 0, high)
  }
}

/** A PCI-to-PCI bridge (or root port) with 32-bit I/O addressing; `express` adds a slot. */
const bridge = (o: {
  vendor?: number
  device?: number
  children?: Record<number, ReadonlyArray<Fn | undefined>>
  bar0?: BarSpec
  express?: boolean
}): Fn => {
  const f = new Fn(true)
  f.set(0, 2, o.vendor ?? 0x1b36)
  f.set(2, 2, o.device ?? 0x000c)
  f.set(8, 4, 0x06040000)
  f.set(0x0e, 1, 0x01)
  f.set(0x04, 2, 0, 0x0407)
  f.set(0x18, 3, 0, 0xffffff)
  f.set(0x1c, 1, 0x01, 0xf0)
  f.set(0x1d, 1, 0x01, 0xf0)
  f.set(0x20, 4, 0, 0xfff0fff0)
  f.set(0x24, 4, 0x00010001, 0xfff0fff0)
  f.set(0x28, 4, 0, 0xffffffff)
  f.set(0x2c, 4, 0, 0xffffffff)
  f.set(0x30, 4, 0, 0xffffffff)
  f.set(0x3d, 1, 1)
  if (o.bar0 !== undefined) defineBar(f, 0x10, o.bar0)
  const ssvid = f.addCap(CapabilityId.Ssvid, 8)
  f.set(ssvid + 4, 2, 0x1b36)
  f.set(ssvid + 6, 2, 0x0000)
  for (const [device, fns] of Object.entries(o.children ?? {})) f.children.set(Number(device), [...fns])
  if (o.express) addSlot(f)
  return f
}

/** An express capability with a hotplug slot modelled on QEMU's pcie_cap_slot_*. */
const addSlot = (f: Fn) => {
  const exp = f.addCap(CapabilityId.Express, 0x3c)
  f.set(exp + 2, 2, 0x0142) // v2, root port, slot implemented
  f.set(exp + 0x0c, 4, 0x300604)
  f.set(exp + 0x12, 2, 0x2204)
  f.set(exp + 0x14, 4, (7 << 19) | 0x7b) // slot 7: ABP PCP AIP PIP HPS HPC
  f.set(exp + 0x18, 2, 0x01c0, 0x0fff & ~0x6 & ~0x800) // DLLSCE, PFDE, MRLSCE, EIC not writable
  f.set(exp + 0x1a, 2, f.children.get(0)?.[0] !== undefined ? 0x40 : 0)
  f.w1c[exp + 0x1a] = 0x1f
  f.w1c[exp + 0x1b] = 0x01
  f.onWrite = (offset, width, value) => {
    if (offset === exp + 0x18 && width === 2) {
      const status = f.get16(exp + 0x1a)
      if ((status & 0x40) && (value & 0x400) && (value & 0x300) === 0x300) {
        f.children.clear()
        f.set(exp + 0x1a, 2, (status & ~0x40) | 0x8)
        f.set(exp + 0x12, 2, 0x0204)
      }
      f.set(exp + 0x1a, 2, f.get16(exp + 0x1a) | 0x10)
    }
  }
  return exp
}

/** Port I/O over a tree of fake functions, logging every access. */
class FakeMachine implements PortIo {
  address = 0
  readonly log: Array<string> = []
  constructor(readonly root: Map<number, Array<Fn | undefined>>) {}
  private target(): Fn | undefined {
    if ((this.address & 0x80000000) === 0) return undefined
    const bus = (this.address >>> 16) & 0xff
    const device = (this.address >>> 11) & 0x1f
    const fn = (this.address >>> 8) & 7
    const devices = this.busDevices(bus, this.root, 0)
    return devices?.get(device)?.[fn]
  }
  private busDevices(bus: number, devices: Map<number, Array<Fn | undefined>>, here: number): Map<number, Array<Fn | undefined>> | undefined {
    if (bus === here) return devices
    for (const fns of devices.values()) {
      for (const f of fns) {
        if (f === undefined || !f.bridge) continue
        const secondary = f.get8(0x19)
        const subordinate = f.get8(0x1a)
        if (secondary !== 0 && secondary <= bus && bus <= subordinate) return this.busDevices(bus, f.children, secondary)
      }
    }
    return undefined
  }
  private read(port: number, width: number): number {
    if (port === 0xcf8 && width === 4) return this.address
    const f = this.target()
    const o = (this.address & 0xfc) + (port - 0xcfc)
    if (f === undefined) return width === 4 ? 0xffffffff : width === 2 ? 0xffff : 0xff
    return width === 1 ? f.get8(o) : width === 2 ? f.get16(o) : f.get32(o)
  }
  private write(port: number, width: number, v: number) {
    if (port === 0xcf8 && width === 4) {
      this.address = v >>> 0
      return
    }
    this.target()?.write((this.address & 0xfc) + (port - 0xcfc), width, v)
  }
  inb(port: number) {
    this.log.push(`inb ${port.toString(16)}`)
    return this.read(port, 1)
  }
  inw(port: number) {
    this.log.push(`inw ${port.toString(16)}`)
    return this.read(port, 2)
  }
  inl(port: number) {
    this.log.push(`inl ${port.toString(16)}`)
    return this.read(port, 4)
  }
  outb(port: number, v: number) {
    this.log.push(`outb ${port.toString(16)} ${v.toString(16)}`)
    this.write(port, 1, v)
  }
  outw(port: number, v: number) {
    this.log.push(`outw ${port.toString(16)} ${v.toString(16)}`)
    this.write(port, 2, v)
  }
  outl(port: number, v: number) {
    this.log.push(`outl ${port.toString(16)} ${v.toString(16)}`)
    this.write(port, 4, v)
  }
}

const machine = (root: Record<number, ReadonlyArray<Fn | undefined>>) => {
  const m = new FakeMachine(new Map(Object.entries(root).map(([d, fns]) => [Number(d), [...fns]])))
  return { m, cfg: new ConfigSpace(m) }
}

/** q35-like: host bridge, edu behind a root port, a bridge behind a root port, nvme, a multi-function device. */
const topology = () => {
  const edu = endpoint({ vendor: 0x1234, device: 0x11e8, pin: 1, bars: [{ kind: "memory32", size: 0x100000 }] })
  const nvme = endpoint({
    vendor: 0x1b36,
    device: 0x0010,
    classCode: 0x010802,
    pin: 1,
    bars: [{ kind: "memory64", size: 0x4000 }]
  })
  const testdev = endpoint({
    vendor: 0x1b36,
    device: 0x0005,
    classCode: 0xff0000,
    bars: [{ kind: "memory32", size: 0x1000 }, { kind: "io", size: 0x100 }]
  })
  const inner = bridge({ children: { 1: [testdev] } })
  const rp1 = bridge({ children: { 0: [edu] }, bar0: { kind: "memory32", size: 0x1000 }, express: true })
  const rp2 = bridge({ children: { 0: [inner] } })
  const rp3 = bridge({ children: { 0: [nvme] } })
  const host = endpoint({ vendor: 0x8086, device: 0x29c0, classCode: 0x060000 })
  const mf0 = endpoint({ vendor: 0x8086, device: 0x2918, multi: true, classCode: 0x060100 })
  const mf2 = endpoint({ vendor: 0x8086, device: 0x2922, classCode: 0x010601, pin: 1, bars: [undefined, undefined, undefined, undefined, { kind: "io", size: 0x20, io16: true }, { kind: "memory32", size: 0x1000 }] })
  const orphan = endpoint({ vendor: 0xdead, device: 0xbeef })
  const { m, cfg } = machine({ 0: [host], 3: [rp1], 4: [rp2], 5: [rp3], 6: [undefined, orphan], 0x1f: [mf0, undefined, mf2] })
  return { m, cfg, edu, nvme, testdev, inner, rp1, rp2, rp3, mf2 }
}

// ---------------------------------------------------------------------------------------------

describe("configuration space access", () => {
  it("uses 0xcf8 for the dword address and the sub-port of 0xcfc for bytes and words", () => {
    const { m, cfg } = topology()
    const a = bdf(0, 3, 0)
    m.log.length = 0
    expect(cfg.read8(a, 0x0e)).toBe(1)
    expect(cfg.read16(a, 0x02)).toBe(0x000c)
    expect(cfg.read8(a, 0x01)).toBe(0x1b)
    expect(cfg.read32(a, 0x08)).toBe(0x06040000)
    expect(m.log).toEqual([
      "outl cf8 8000180c", "inb cfe",
      "outl cf8 80001800", "inw cfe",
      "outl cf8 80001800", "inb cfd",
      "outl cf8 80001808", "inl cfc"
    ])
    cfg.write8(a, 0x19, 0x42)
    cfg.write16(a, 0x22, 0x1230)
    expect(m.log.slice(-4)).toEqual(["outl cf8 80001818", "outb cfd 42", "outl cf8 80001820", "outw cfe 1230"])
    expect(cfg.read8(a, 0x19)).toBe(0x42)
  })

  it("sees no device as an all-ones vendor id", () => {
    const { cfg } = topology()
    expect(cfg.present(bdf(0, 3, 0))).toBe(true)
    expect(cfg.present(bdf(0, 7, 0))).toBe(false)
    expect(cfg.read32(bdf(0, 7, 0), 0)).toBe(0xffffffff)
    expect(cfg.present(bdf(9, 0, 0))).toBe(false)
  })

  it("refuses bad arguments with PciBadArgument before sending anything", () => {
    const { m, cfg } = topology()
    m.log.length = 0
    const bad: Array<() => unknown> = [
      () => cfg.read8({ bus: 256, device: 0, function: 0 }, 0),
      () => cfg.read8({ bus: -1, device: 0, function: 0 }, 0),
      () => cfg.read8({ bus: 0, device: 32, function: 0 }, 0),
      () => cfg.read8({ bus: 0, device: 0, function: 8 }, 0),
      () => cfg.read8({ bus: 0.5, device: 0, function: 0 }, 0),
      () => cfg.read8(bdf(0, 0, 0), 256),
      () => cfg.read8(bdf(0, 0, 0), -1),
      () => cfg.read16(bdf(0, 0, 0), 255),
      () => cfg.read16(bdf(0, 0, 0), 3),
      () => cfg.read32(bdf(0, 0, 0), 2),
      () => cfg.read32(bdf(0, 0, 0), 253),
      () => cfg.write8(bdf(0, 0, 0), 0, 0x100),
      () => cfg.write16(bdf(0, 0, 0), 0, -1),
      () => cfg.write32(bdf(0, 0, 0), 0, 2 ** 32),
      () => cfg.write32(bdf(0, 0, 0), 0, Number.NaN),
      () => bdf(0, 0, 9)
    ]
    for (const f of bad) expect(f).toThrow(PciBadArgument)
    expect(m.log).toEqual([])
    try {
      cfg.read16(bdf(0, 0, 0), 3)
    } catch (e) {
      expect(e).toMatchObject({ _tag: "PciBadArgument", operation: "read16" })
    }
  })
})

describe("enumeration", () => {
  it("numbers bridges depth first and records every function with its ids and path", () => {
    const { cfg, rp1, rp2, inner, rp3 } = topology()
    const fns = enumerate(cfg)
    expect(fns.map((f) => f.name)).toEqual([
      "00:00.0", "00:03.0", "01:00.0", "00:04.0", "02:00.0", "03:01.0", "00:05.0", "04:00.0", "00:1f.0", "00:1f.2"
    ])
    const byName = new Map(fns.map((f) => [f.name, f]))
    expect(byName.get("00:03.0")).toMatchObject({ headerType: 1, secondaryBus: 1, subordinateBus: 1, subsystemVendorId: 0x1b36 })
    expect(byName.get("00:04.0")).toMatchObject({ secondaryBus: 2, subordinateBus: 3 })
    expect(byName.get("02:00.0")).toMatchObject({ secondaryBus: 3, subordinateBus: 3 })
    expect(byName.get("00:05.0")).toMatchObject({ secondaryBus: 4, subordinateBus: 4 })
    expect([rp1, rp2, inner, rp3].map((f) => [f.get8(0x18), f.get8(0x19), f.get8(0x1a)])).toEqual([[0, 1, 1], [0, 2, 3], [2, 3, 3], [0, 4, 4]])
    expect(byName.get("01:00.0")).toMatchObject({
      vendorId: 0x1234,
      deviceId: 0x11e8,
      classCode: 0xff0000,
      revision: 0x10,
      headerType: 0,
      interruptPin: 1,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100
    })
    expect(byName.get("03:01.0")!.path.map(formatBdf)).toEqual(["00:04.0", "02:00.0", "03:01.0"])
    expect(byName.get("00:1f.0")).toMatchObject({ multiFunction: true })
    expect(findFunctions(fns, 0x1b36, 0x0010).map((f) => f.name)).toEqual(["04:00.0"])
    // Function 0 absent: device 6 is skipped.
    expect(fns.some((f) => f.address.device === 6)).toBe(false)
    // Idempotent.
    expect(enumerate(cfg).map((f) => [f.name, f.secondaryBus])).toEqual(fns.map((f) => [f.name, f.secondaryBus]))
  })
})

describe("BARs", () => {
  it("sizes 32-bit, 64-bit (over 4 GiB too), prefetchable and I/O BARs, restoring values and the command register", () => {
    const f = endpoint({
      vendor: 1,
      device: 2,
      bars: [
        { kind: "memory32", size: 0x100000 },
        { kind: "memory64", size: 0x4000 },
        { kind: "memory64", size: 2 ** 33, prefetchable: true },
        { kind: "io", size: 0x100 }
      ]
    })
    f.write(0x04, 2, 0x0007)
    f.write(0x10, 4, 0xc0000000)
    const { m, cfg } = machine({ 2: [f] })
    const writes: Array<string> = []
    const out = m.outw.bind(m)
    m.outw = (port, v) => {
      writes.push(`${port.toString(16)}=${v.toString(16)}`)
      out(port, v)
    }
    const bars = sizeBars(cfg, bdf(0, 2, 0))
    expect(bars).toEqual([
      { index: 0, offset: 0x10, kind: "memory32", prefetchable: false, size: 0x100000, address: 0xc0000000 },
      { index: 1, offset: 0x14, kind: "memory64", prefetchable: false, size: 0x4000, address: 0 },
      { index: 3, offset: 0x1c, kind: "memory64", prefetchable: true, size: 2 ** 33, address: 0 },
      { index: 5, offset: 0x24, kind: "io", prefetchable: false, size: 0x100, address: 0 }
    ])
    // Decoding off while probing, then the command register as it was.
    expect(writes).toEqual(["cfc=4", "cfc=7"])
    expect(f.get32(0x10)).toBe(0xc0000000)
    expect(f.get16(0x04)).toBe(7)
  })

  it("sizes an I/O BAR that decodes 16 bits", () => {
    const f = endpoint({ vendor: 1, device: 2, bars: [{ kind: "io", size: 0x40, io16: true }] })
    const { cfg } = machine({ 0: [f] })
    expect(sizeBars(cfg, bdf(0, 0, 0))).toMatchObject([{ kind: "io", size: 0x40 }])
  })

  it("assigns aligned, disjoint BARs inside the q35 windows and programs nested bridge windows", () => {
    const { cfg, rp1, rp2, inner, rp3, edu, nvme, testdev, mf2 } = topology()
    const fns = enumerate(cfg)
    const res = assignResources(cfg, fns)
    const all: Array<Bar & { owner: string }> = []
    for (const [owner, bars] of res.bars) for (const b of bars) all.push({ ...b, owner })
    expect(all.length).toBe(7)
    for (const b of all) {
      expect(b.address % b.size).toBe(0)
      if (b.kind === "io") expect(b.address >= 0xc000 && b.address + b.size - 1 <= 0xffff).toBe(true)
      else expect(b.address >= 0xc0000000 && b.address + b.size - 1 <= 0xfebfffff).toBe(true)
    }
    const sorted = [...all].sort((x, y) => x.address - y.address)
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].kind === "io" && sorted[i - 1].kind === "io" || sorted[i].kind !== "io" && sorted[i - 1].kind !== "io") {
        expect(sorted[i].address).toBeGreaterThanOrEqual(sorted[i - 1].address + sorted[i - 1].size)
      }
    }
    // The values are in the BARs; the 64-bit one has upper dword 0.
    const eduBar = barsOf(res, fns.find((f) => f.name === "01:00.0")!)[0]
    expect(edu.get32(0x10)).toBe(eduBar.address)
    const nvmeBar = barsOf(res, bdf(4, 0, 0))[0]
    expect(nvmeBar.kind).toBe("memory64")
    expect(nvme.get32(0x10)).toBe((nvmeBar.address | 4) >>> 0)
    expect(nvme.get32(0x14)).toBe(0)
    expect(barsOf(res, bdf(0, 3, 0))).toMatchObject([{ kind: "memory32", size: 0x1000 }])
    expect(testdev.get32(0x14) & ~3).toBe(barsOf(res, bdf(3, 1, 0)).find((b) => b.kind === "io")!.address)
    expect(mf2.get32(0x20) & ~3).toBe(barsOf(res, bdf(0, 0x1f, 2))[0].address)
    // Bridge windows cover exactly what is behind them (1 MiB / 4 KiB granules) and nest.
    const win = (f: typeof rp1) => ({
      mem: [(f.get16(0x20) & 0xfff0) * 0x10000, (f.get16(0x22) & 0xfff0) * 0x10000 + 0xfffff],
      io: [(f.get8(0x1c) & 0xf0) << 8, ((f.get8(0x1d) & 0xf0) << 8) | 0xfff]
    })
    expect(win(rp1).mem).toEqual([eduBar.address, eduBar.address + 0xfffff])
    expect(res.bridges.get("00:03.0")).toEqual({ memory: { base: eduBar.address, limit: eduBar.address + 0xfffff }, io: undefined })
    expect(win(rp1).io[0]).toBeGreaterThan(win(rp1).io[1]) // closed
    const tdMem = barsOf(res, bdf(3, 1, 0)).find((b) => b.kind === "memory32")!
    const tdIo = barsOf(res, bdf(3, 1, 0)).find((b) => b.kind === "io")!
    for (const f of [rp2, inner]) {
      const w = win(f)
      expect(w.mem[0] <= tdMem.address && tdMem.address + tdMem.size - 1 <= w.mem[1]).toBe(true)
      expect(w.io[0] <= tdIo.address && tdIo.address + tdIo.size - 1 <= w.io[1]).toBe(true)
    }
    expect(win(rp3).mem[0] <= nvmeBar.address && nvmeBar.address + nvmeBar.size <= win(rp3).mem[1] + 1).toBe(true)
    // Prefetchable windows closed: base above limit.
    for (const f of [rp1, rp2, inner, rp3]) expect((f.get16(0x24) & 0xfff0) > (f.get16(0x26) & 0xfff0)).toBe(true)
    // Disjoint sibling windows.
    const windows = [rp1, rp2, rp3].map((f) => win(f).mem).sort((x, y) => x[0] - y[0])
    for (let i = 1; i < windows.length; i++) expect(windows[i][0]).toBeGreaterThan(windows[i - 1][1])
  })

  it("fails with PciResourceExhausted, writing nothing, when a window is too small", () => {
    const { cfg, edu } = topology()
    const fns = enumerate(cfg)
    expect(() => assignResources(cfg, fns, { memory: { base: 0xc0000000, limit: 0xc01fffff } })).toThrow(PciResourceExhausted)
    expect(edu.get32(0x10)).toBe(0)
    expect(() => assignResources(cfg, fns, { io: { base: 0xf000, limit: 0xf0ff } })).toThrow(PciResourceExhausted)
    expect(() => assignResources(cfg, fns, { io: { base: 0xf000, limit: 0x10000 } })).toThrow(PciBadArgument)
    expect(() => assignResources(cfg, fns, { memory: { base: 2, limit: 1 } })).toThrow(PciBadArgument)
  })

  it("enable sets command bits on the function and every bridge above it", () => {
    const { cfg, rp2, inner, testdev, rp1 } = topology()
    const fns = enumerate(cfg)
    enable(cfg, fns.find((f) => f.name === "03:01.0")!, { memory: true, busMaster: true })
    expect([rp2, inner, testdev].map((f) => f.get16(0x04))).toEqual([6, 6, 6])
    expect(rp1.get16(0x04)).toBe(0)
    enable(cfg, fns.find((f) => f.name === "03:01.0")!, { io: true })
    expect(testdev.get16(0x04)).toBe(7)
  })
})

describe("capabilities, MSI and MSI-X", () => {
  const withMsi = (control: number) => {
    const f = endpoint({ vendor: 0x1234, device: 0x11e8, bars: [{ kind: "memory32", size: 0x1000 }] })
    const pm = f.addCap(CapabilityId.PowerManagement, 8)
    const msi = f.addCap(CapabilityId.Msi, 0x18)
    f.set(msi + 2, 2, control, 0x71)
    f.set(msi + 4, 4, 0, 0xfffffffc)
    f.set(msi + 8, 4, 0, 0xffffffff)
    f.set(msi + 0xc, 4, 0, 0xffffffff)
    f.set(msi + 0x10, 4, 0, 0xffffffff)
    const msix = f.addCap(CapabilityId.MsiX, 12)
    f.set(msix + 2, 2, 0x0003, 0xc000)
    f.set(msix + 4, 4, 0x00000800)
    f.set(msix + 8, 4, 0x00000c00)
    const { cfg } = machine({ 1: [f] })
    return { f, cfg, pm, msi, msix }
  }

  it("walks the capability list and finds MSI, MSI-X and power management", () => {
    const { cfg, pm, msi, msix } = withMsi(0x80)
    expect(capabilities(cfg, bdf(0, 1, 0))).toEqual([
      { id: 0x01, offset: pm },
      { id: 0x05, offset: msi },
      { id: 0x11, offset: msix }
    ])
    expect(capabilities(cfg, bdf(0, 9, 0))).toEqual([])
  })

  it("ends the walk on a cycle", () => {
    const { f, cfg, msix } = withMsi(0x80)
    f.config[msix + 1] = 0x40
    expect(capabilities(cfg, bdf(0, 1, 0)).length).toBe(3)
  })

  it("programs 64-bit MSI: address low/high, data, enable", () => {
    const { f, cfg, msi } = withMsi(0x80)
    const info = programMsi(cfg, bdf(0, 1, 0), { address: 0x0100_0000, data: 0x4242 })
    expect(info).toMatchObject({ is64: true, enabled: true, vectorsCapable: 1, vectorsEnabled: 1, dataOffset: msi + 0xc })
    expect([f.get32(msi + 4), f.get32(msi + 8), f.get16(msi + 0xc), f.get16(msi + 2)]).toEqual([0x0100_0000, 0, 0x4242, 0x81])
    programMsi(cfg, bdf(0, 1, 0), { address: 0x1_0000_0000n + 0x40n, data: 1 })
    expect([f.get32(msi + 4), f.get32(msi + 8)]).toEqual([0x40, 1])
  })

  it("programs 32-bit MSI with multiple messages and refuses what it cannot express", () => {
    const { f, cfg, msi } = withMsi(0x0006) // 32-bit, 8 vectors capable
    const info = programMsi(cfg, bdf(0, 1, 0), { address: 0x2000, data: 0x40, vectors: 4 })
    expect(info).toMatchObject({ is64: false, vectorsCapable: 8, vectorsEnabled: 4, dataOffset: msi + 8, enabled: true })
    expect([f.get32(msi + 4), f.get16(msi + 8)]).toEqual([0x2000, 0x40])
    const a = bdf(0, 1, 0)
    expect(() => programMsi(cfg, a, { address: 2 ** 32, data: 0 })).toThrow(PciBadArgument)
    expect(() => programMsi(cfg, a, { address: 0x2002, data: 0 })).toThrow(PciBadArgument)
    expect(() => programMsi(cfg, a, { address: 0x2000, data: 0x41, vectors: 2 })).toThrow(PciBadArgument)
    expect(() => programMsi(cfg, a, { address: 0x2000, data: 0, vectors: 16 })).toThrow(PciBadArgument)
    expect(() => programMsi(cfg, a, { address: 0x2000, data: 0, vectors: 3 })).toThrow(PciBadArgument)
    expect(() => programMsi(cfg, a, { address: 0x2000, data: 0x10000 })).toThrow(PciBadArgument)
    expect(() => msiInfo(cfg, bdf(0, 9, 0))).toThrow(PciCapabilityMissing)
  })

  it("programs MSI-X table entries through MMIO, masked while they change", () => {
    const { cfg } = withMsi(0x80)
    const info = msixInfo(cfg, bdf(0, 1, 0))
    expect(info).toMatchObject({ tableSize: 4, tableBar: 0, tableOffset: 0x800, pbaBar: 0, pbaOffset: 0xc00, enabled: false })
    const mem = new Map<number, number>([[0xc0000800 + 12, 1]])
    const log: Array<string> = []
    const mmio: MemoryIo = {
      readl: (addr) => mem.get(addr) ?? 0,
      writel: (addr, v) => {
        log.push(`${(addr - 0xc0000800).toString(16)}=${v.toString(16)}`)
        mem.set(addr, v)
      }
    }
    const table = msixTableAddress(info, [{ index: 0, offset: 0x10, kind: "memory32", prefetchable: false, size: 0x1000, address: 0xc0000000 }])
    expect(table).toBe(0xc0000800)
    programMsixEntry(mmio, info, table, 0, { address: 0x3000, data: 0x4242 })
    expect(log).toEqual(["c=1", "0=3000", "4=0", "8=4242", "c=0"])
    expect(() => programMsixEntry(mmio, info, table, 4, { address: 0x3000, data: 0 })).toThrow(PciBadArgument)
  })
})

describe("INTx routing on q35", () => {
  const at = (pin: number, ...path: Array<[number, number, number]>) => ({ interruptPin: pin, path: path.map(([b, d, f]) => bdf(b, d, f)) })
  it("follows ICH9's tables and the bridge swizzle (the cases measured on QEMU 7.2)", () => {
    expect(intxRoute(at(1, [0, 1, 0]))?.ioapicPin).toBe(21)
    expect(intxRoute(at(1, [0, 6, 0]))?.ioapicPin).toBe(22)
    expect(intxRoute(at(1, [0, 0x19, 0]))?.ioapicPin).toBe(16)
    expect(intxRoute(at(1, [0, 3, 0], [1, 0, 0]))).toEqual({ pin: 1, rootPin: 1, rootDevice: 3, pirq: 7, ioapicPin: 23 })
    expect(intxRoute(at(1, [0, 0x1e, 0], [1, 0, 0]))?.ioapicPin).toBe(20)
    expect(intxRoute(at(1, [0, 2, 3], [2, 0, 0]))?.ioapicPin).toBe(22)
    // Swizzle through a conventional bridge: device 1, INTB -> INTD at the root port.
    expect(intxRoute(at(2, [0, 4, 0], [2, 0, 0], [3, 1, 0]))).toMatchObject({ rootPin: 3, pirq: ((4 + 2) % 4) + 4 })
    expect(intxRoute(at(0, [0, 1, 0]))).toBeUndefined()
    expect(() => intxRoute(at(1, [1, 0, 0]))).toThrow(PciBadArgument)
  })
})

describe("PCIe root port slots", () => {
  it("decodes Slot Capabilities and enables the hotplug interrupts the port implements", () => {
    const { cfg } = topology()
    const port = bdf(0, 3, 0)
    enumerate(cfg)
    expect(slotCapabilities(cfg, port)).toMatchObject({
      attentionButton: true,
      powerController: true,
      hotPlugCapable: true,
      hotPlugSurprise: true,
      mrlSensor: false,
      physicalSlot: 7,
      linkActiveReporting: true
    })
    const control = enableHotplugInterrupts(cfg, port)
    expect(control & 0x103f).toBe(SlotControl.HotPlugInterruptEnable | SlotControl.AttentionButtonPressedEnable | SlotControl.PresenceDetectChangedEnable)
    expect(slotState(cfg, port)).toMatchObject({ present: true, linkActive: true, powered: true, powerIndicator: "on", attentionIndicator: "off" })
    expect(acknowledgeSlotEvents(cfg, port)).toBe(SlotStatus.CommandCompleted)
    expect(slotState(cfg, port).events).toBe(0)
    expect(() => slotCapabilities(cfg, bdf(0, 4, 0))).toThrow(PciCapabilityMissing)
  })

  it("a power-off write removes the device: config reads all-ones", () => {
    const { cfg } = topology()
    enumerate(cfg)
    expect(cfg.read32(bdf(1, 0, 0), 0)).toBe(0x11e81234)
    const state = powerOffSlot(cfg, bdf(0, 3, 0))
    expect(state).toMatchObject({ present: false, linkActive: false, powered: false, powerIndicator: "off", presenceDetectChanged: true })
    expect(cfg.read32(bdf(1, 0, 0), 0)).toBe(0xffffffff)
  })

  it("orderlyRemovalStep waits for the attention button, then acknowledges it and powers the slot off", () => {
    const { cfg, rp1 } = topology()
    enumerate(cfg)
    const port = bdf(0, 3, 0)
    expect(orderlyRemovalStep(cfg, port)._tag).toBe("NoRequest")
    expect(cfg.present(bdf(1, 0, 0))).toBe(true)
    const exp = capabilities(cfg, port).find((c) => c.id === CapabilityId.Express)!.offset
    rp1.set(exp + 0x1a, 2, rp1.get16(exp + 0x1a) | SlotStatus.AttentionButtonPressed)
    const step = orderlyRemovalStep(cfg, port)
    expect(step).toMatchObject({ _tag: "PoweredOff", removed: true, state: { events: 0, powered: false } })
    expect(cfg.present(bdf(1, 0, 0))).toBe(false)
  })
})
