import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import { type Bound, type Bus, type Core, DeviceError, Devres, Driver, Hardware } from "@devscope/core"
import * as Dma from "@devscope/core/Dma"
import { withBus } from "./utils.js"

const Nic = Driver.brand("nic")

const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16", status: "u8" })
const Ring = Dma.array(Desc, 4)

interface Call {
  readonly op: "alloc" | "free" | "map" | "unmap" | "syncForCpu" | "syncForDevice" | "setMask" | "refused"
  readonly iova?: number
  readonly site?: string
  readonly size?: number
  readonly direction?: Hardware.DmaDirection
  readonly bits?: number
}

/**
 * A fake platform: records every DMA call with its site, hands out IOVAs from a counter,
 * and refuses the `refuse`-th allocation or mapping (counted together).
 */
const fakeHardware = (options: { readonly refuse?: number } = {}) => {
  const calls: Array<Call> = []
  const live = new Map<number, "coherent" | "mapping">()
  const memory = new Map<number, Uint8Array>()
  let nextIova = 0x10000
  let requests = 0
  const refused = (device: string, request: "dma-alloc" | "dma-map") => {
    requests++
    if (requests !== options.refuse) return undefined
    calls.push({ op: "refused" })
    return new Hardware.HardwareRefused({ device, request, reason: "injected fault" })
  }
  // Sites are recorded as the port would report them (`String`: devscope passes lazy ones).
  const port = (device: string): Hardware.DmaPort => ({
    device,
    setMask: (bits) => void calls.push({ op: "setMask", bits }),
    allocCoherent: (size, site) =>
      Effect.suspend(() => {
        const error = refused(device, "dma-alloc")
        if (error) return Effect.fail(error)
        const iova = nextIova
        nextIova += 0x1000
        const bytes = new Uint8Array(size)
        live.set(iova, "coherent")
        memory.set(iova, bytes)
        calls.push({ op: "alloc", iova, size, site: String(site) })
        return Effect.succeed({ memory: bytes, iova })
      }),
    freeCoherent: (iova, site) => {
      if (live.get(iova) !== "coherent") throw new Error(`fake: bad free of ${iova}`)
      live.delete(iova)
      calls.push({ op: "free", iova, site: String(site) })
    },
    map: (buffer, direction, site) =>
      Effect.suspend(() => {
        const error = refused(device, "dma-map")
        if (error) return Effect.fail(error)
        const iova = nextIova
        nextIova += 0x1000
        live.set(iova, "mapping")
        calls.push({ op: "map", iova, size: buffer.byteLength, direction, site: String(site) })
        return Effect.succeed(iova)
      }),
    unmap: (iova, site) => {
      if (live.get(iova) !== "mapping") throw new Error(`fake: bad unmap of ${iova}`)
      live.delete(iova)
      calls.push({ op: "unmap", iova, site: String(site) })
    },
    syncForCpu: (iova) => void calls.push({ op: "syncForCpu", iova }),
    syncForDevice: (iova) => void calls.push({ op: "syncForDevice", iova })
  })
  const hardware: Hardware.Service = {
    region: () => Effect.dieMessage("fake: no register windows"),
    irq: () => Effect.dieMessage("fake: no interrupt lines"),
    dma: (device) => port(device.name)
  }
  const ops = (op: Call["op"]) => calls.filter((c) => c.op === op)
  return { hardware, calls, live, memory, ops }
}

const defectOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  return undefined
}

describe("Dma layouts and views", () => {
  it("struct offsets use natural alignment; the size is padded to the largest field", () => {
    expect(Desc.offsets).toEqual({ addr: 0, len: 4, flags: 6, status: 8 })
    expect([Desc.size, Desc.align]).toEqual([12, 4])
    const Mixed = Dma.struct({ a: "u8", b: "u32", c: "u16" })
    expect(Mixed.offsets).toEqual({ a: 0, b: 4, c: 8 })
    expect([Mixed.size, Mixed.align]).toEqual([12, 4])
    const Halves = Dma.struct({ a: "u8", b: "u16", c: "u8" })
    expect(Halves.offsets).toEqual({ a: 0, b: 2, c: 4 })
    expect([Halves.size, Halves.align]).toEqual([6, 2])
    const Bytes = Dma.struct({ a: "u8", b: "u8", c: "u8" })
    expect([Bytes.size, Bytes.align]).toEqual([3, 1])
    expect(Ring).toMatchObject({ _tag: "Array", length: 4, stride: 12, size: 48, align: 4 })
    expect(Ring.element).toBe(Desc)
    expect(() => Dma.struct({ a: "u64" } as any)).toThrow(TypeError)
    expect(() => Dma.array(Desc, -1)).toThrow(RangeError)
    expect(() => Dma.array(Desc, 1.5)).toThrow(RangeError)
  })

  it("a struct view reads and writes little-endian fields at their offsets", () => {
    const bytes = new Uint8Array(24)
    const desc = Dma.view(Desc, bytes, 8)
    desc.set("addr", 0x12345678)
    desc.set("len", 0xabcd)
    desc.set("flags", 0x0102)
    desc.set("status", 0x1ff) // stored modulo 2^8
    expect(Array.from(bytes)).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0,
      0x78, 0x56, 0x34, 0x12, 0xcd, 0xab, 0x02, 0x01, 0xff, 0, 0, 0,
      0, 0, 0, 0
    ])
    expect([desc.get("addr"), desc.get("len"), desc.get("flags"), desc.get("status")]).toEqual([
      0x12345678, 0xabcd, 0x0102, 0xff
    ])
    desc.set("addr", 0xffffffff)
    expect(desc.get("addr")).toBe(0xffffffff) // unsigned
    bytes[12] = 0x34
    expect(desc.get("len")).toBe(0xab34)
    expect(() => Dma.view(Desc, new Uint8Array(19), 8)).toThrow(RangeError)
    expect(() => (desc as Dma.StructView<any>).get("nope")).toThrow(/no field "nope"/)
    expect(() => (desc as Dma.StructView<any>).get("toString")).toThrow(/no field "toString"/)
  })

  it("an array view indexes elements by stride and rejects indices out of range", () => {
    const bytes = new Uint8Array(Ring.size)
    const ring = Dma.view(Ring, bytes)
    expect(ring.length).toBe(4)
    for (let i = 0; i < ring.length; i++) {
      ring.set(i, "addr", 0x1000 * (i + 1))
      ring.set(i, "len", 64 + i)
    }
    ring.set(2, "status", 7)
    expect(Array.from(bytes.subarray(24, 36))).toEqual([0x00, 0x30, 0, 0, 66, 0, 0, 0, 7, 0, 0, 0])
    expect(Array.from(bytes.subarray(36, 42))).toEqual([0x00, 0x40, 0, 0, 67, 0])
    expect([0, 1, 2, 3].map((i) => ring.get(i, "addr"))).toEqual([0x1000, 0x2000, 0x3000, 0x4000])
    expect(ring.get(2, "status")).toBe(7)
    expect(ring.get(1, "status")).toBe(0)
    for (const bad of [4, -1, 1.5, NaN, 2 ** 32]) {
      expect(() => ring.get(bad, "addr")).toThrow(RangeError)
      expect(() => ring.set(bad, "len", 1)).toThrow(RangeError)
    }
    expect(() => Dma.view(Ring, new Uint8Array(47))).toThrow(RangeError)
  })
})

class RxBuffer extends Context.Tag("test/RxBuffer")<RxBuffer, Devres.Devres<Dma.Mapping, "nic">>() {}

describe("Dma coherent allocations", () => {
  it.effect("are memory the platform shares, freed with their iova at unbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        let kept: Dma.Coherent<typeof Ring> | undefined
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const ring = yield* Dma.allocCoherent(Nic, Ring, { label: "rx ring" })
              kept = ring.access(yield* Nic.Bound)
              kept.view.set(1, "addr", 0xcafe)
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const ring = kept!
        expect(ring.size).toBe(48)
        expect(fake.ops("alloc")).toEqual([{ op: "alloc", iova: ring.iova, size: 48, site: expect.stringContaining("dma.test.ts") }])
        // The view writes the platform's memory.
        expect(Array.from(fake.memory.get(ring.iova)!.subarray(12, 16))).toEqual([0xfe, 0xca, 0, 0])
        expect(fake.ops("free")).toEqual([])
        const report = yield* bus.unbind("nic0")
        expect(fake.ops("free")).toEqual([{ op: "free", iova: ring.iova, site: "unbind" }])
        expect(fake.live.size).toBe(0)
        expect(report.released).toEqual(["rx ring"])
        expect(report.leaks).toEqual([])
        expect(ring.isFreed).toBe(true)
      })
    ))

  it.effect("a Coherent (or its view) kept after unbind dies with UseAfterUnbind instead of reading freed memory", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        let kept: { ring: Dma.Coherent<typeof Ring>; desc: Dma.Coherent<typeof Desc> } | undefined
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Nic.Bound
              const ring = (yield* Dma.allocCoherent(Nic, Ring, { label: "rx ring" })).access(bound)
              const desc = (yield* Dma.allocCoherent(Nic, Desc)).access(bound)
              ring.view.set(0, "len", 64)
              desc.view.set("addr", 5)
              kept = { ring, desc }
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const { desc, ring } = kept!
        const ringView = ring.view
        expect(ringView.get(0, "len")).toBe(64)
        expect(desc.view.get("addr")).toBe(5)
        yield* bus.unbind("nic0")
        const defect = thrown(() => ring.view.get(0, "len"))
        expect(defect).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(defect).toMatchObject({
          device: "nic0",
          driver: "nic",
          resource: `Dma.Coherent "rx ring"`,
          unbindCause: "manual",
          revokedAt: expect.stringContaining("dma.test.ts")
        })
        // A view taken from the Coherent before the unbind is revoked as well.
        expect(thrown(() => ringView.get(0, "len"))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(thrown(() => ringView.set(0, "len", 1))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(thrown(() => desc.view.get("addr"))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(thrown(() => desc.view.set("addr", 1))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        // Bulk copies too, through the kept view and through the Coherent.
        expect(thrown(() => ringView.copyIn(0, new Uint8Array(2)))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(thrown(() => ringView.copyOut(0, new Uint8Array(2)))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(thrown(() => ring.view.copyOut(0, new Uint8Array(2)))).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(ring.view.length).toBe(4)
      })
    ))

  it.effect("Devres.release frees early, once, naming the release site", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        let early: Dma.Coherent<typeof Desc> | undefined
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Nic.Bound
              yield* Dma.allocCoherent(Nic, Ring)
              const scratch = yield* Dma.allocCoherent(Nic, Desc, { label: "scratch" })
              early = scratch.access(bound)
              yield* Devres.release(scratch)
              yield* Devres.release(scratch)
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const [ringAlloc, scratchAlloc] = fake.ops("alloc")
        expect(fake.ops("free")).toEqual([
          { op: "free", iova: scratchAlloc!.iova, site: expect.stringContaining("dma.test.ts") }
        ])
        expect(thrown(() => early!.view.get("addr"))).toMatchObject({
          _tag: "UseAfterUnbind",
          unbindCause: "released",
          revokedAt: expect.stringContaining("dma.test.ts")
        })
        yield* bus.unbind("nic0")
        expect(fake.ops("free").map((c) => c.iova)).toEqual([scratchAlloc!.iova, ringAlloc!.iova])
        expect(fake.live.size).toBe(0)
      })
    ))
})

describe("Dma streaming mappings", () => {
  it.effect("move ownership with sync calls; unmapped by the driver, they are not reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        const frame = new Uint8Array(64)
        let kept: Dma.Mapping | undefined
        const owners: Array<string> = []
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const devres = yield* Dma.map(Nic, frame, "bidirectional")
              const mapping = devres.access(yield* Nic.Bound)
              kept = mapping
              owners.push(mapping.owner)
              mapping.syncForCpu()
              owners.push(mapping.owner)
              frame[0] = 0xaa
              mapping.syncForDevice()
              owners.push(mapping.owner)
              yield* Dma.unmap(mapping)
              yield* Dma.unmap(mapping)
              yield* Dma.unmap(devres)
              owners.push(mapping.owner)
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const mapping = kept!
        expect(owners).toEqual(["device", "cpu", "device", "cpu"])
        expect(mapping).toMatchObject({ direction: "bidirectional", size: 64, isMapped: false })
        expect(mapping.buffer).toBe(frame)
        const iova = mapping.iova
        expect(fake.calls).toEqual([
          { op: "map", iova, size: 64, direction: "bidirectional", site: expect.stringContaining("dma.test.ts") },
          { op: "syncForCpu", iova },
          { op: "syncForDevice", iova },
          { op: "unmap", iova, site: expect.stringContaining("dma.test.ts") }
        ])
        // Syncing an unmapped buffer is a use after release, not a silent call with a stale iova.
        expect(thrown(() => mapping.syncForCpu())).toMatchObject({ _tag: "UseAfterUnbind", unbindCause: "released" })
        const report = yield* bus.unbind("nic0")
        expect(report.leaks).toEqual([])
        expect(fake.ops("unmap")).toHaveLength(1)
        expect(fake.live.size).toBe(0)
      })
    ))

  it.effect("a mapping leaked at unbind is unmapped and reported as an ObjectLeak naming where it was mapped", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        let kept: Dma.Mapping | undefined
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              kept = (yield* Dma.map(Nic, new Uint8Array(1500), "from-device")).access(yield* Nic.Bound)
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const mapping = kept!
        expect(mapping.isMapped).toBe(true)
        const report = yield* bus.unbind("nic0")
        // Unmapped by the unbind (step 4)...
        expect(fake.ops("unmap")).toEqual([{ op: "unmap", iova: mapping.iova, site: "unbind" }])
        expect(fake.live.size).toBe(0)
        expect(mapping.isMapped).toBe(false)
        // ...and still reported by the leak check (step 6).
        expect(report.leaks).toHaveLength(1)
        const leak = report.leaks[0]!
        expect(leak).toMatchObject({
          _tag: "ObjectLeak",
          device: "nic0",
          driver: "nic",
          label: `dma mapping 0x${mapping.iova.toString(16)} (from-device)`
        })
        expect(leak._tag === "ObjectLeak" && leak.acquiredAt).toContain("dma.test.ts")
        expect(yield* bus.leaks).toEqual(report.leaks)
        expect(thrown(() => mapping.syncForCpu())).toMatchObject({ _tag: "UseAfterUnbind", unbindCause: "manual" })
        // Unmapping afterwards is a no-op.
        yield* Dma.unmap(mapping)
        expect(fake.ops("unmap")).toHaveLength(1)
      })
    ))
})

describe("Dma streaming mappings with a token (the per-request form)", () => {
  /** A driver whose probe only hands the test its token. */
  const tokenDriver = (onProbe: (token: Bound.Bound<"nic">) => void) =>
    Driver.make(Nic, {
      match: [{ vendor: 1 }],
      probe: () => Layer.effectDiscard(Effect.map(Nic.Bound, onProbe))
    })

  /** Binds nic0 to the token driver on `fake` hardware; its token. */
  const bindNic = (bus: Bus.Service, fake: ReturnType<typeof fakeHardware>) =>
    Effect.gen(function*() {
      let token: Bound.Bound<"nic"> | undefined
      yield* bus.registerDriver(tokenDriver((t) => void (token = t))).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
      yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
      return token!
    })

  it.effect("map(token) needs nothing from the context; mapping.unmap() is a plain call; leaks and defects name the sites", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        const t = yield* bindNic(bus, fake)
        // From the test's fiber: no Hardware and no token in its context (the type says R = never).
        const tx: Effect.Effect<Devres.Devres<Dma.Mapping, "nic">, Hardware.HardwareRefused> = Dma.map(t, new Uint8Array(64), "to-device", { label: "tx" })
        const done = (yield* tx).access(t)
        const kept = (yield* Dma.map(t, new Uint8Array(32), "from-device", { label: "rx" })).access(t)
        done.syncForCpu()
        done.unmap()
        done.unmap() // idempotent
        expect(done).toMatchObject({ isMapped: false, owner: "cpu" })
        expect(kept.isMapped).toBe(true)
        const maps = fake.ops("map")
        expect(maps).toEqual([
          { op: "map", iova: done.iova, size: 64, direction: "to-device", site: expect.stringMatching(/dma\.test\.ts:\d+/) },
          { op: "map", iova: kept.iova, size: 32, direction: "from-device", site: expect.stringMatching(/dma\.test\.ts:\d+/) }
        ])
        expect(maps[0]!.site).not.toEqual(maps[1]!.site) // each names its own line
        expect(fake.ops("unmap")).toEqual([{ op: "unmap", iova: done.iova, site: expect.stringMatching(/dma\.test\.ts:\d+/) }])
        // A sync after the unmap names where it was unmapped.
        expect(thrown(() => done.syncForCpu())).toMatchObject({
          _tag: "UseAfterUnbind",
          unbindCause: "released",
          revokedAt: fake.ops("unmap")[0]!.site
        })
        const report = yield* bus.unbind("nic0")
        // The one left mapped is unmapped by the unbind and reported with its map site.
        expect(fake.ops("unmap")).toHaveLength(2)
        expect(fake.live.size).toBe(0)
        expect(report.released).toEqual(["rx"])
        expect(report.leaks).toEqual([{
          _tag: "ObjectLeak",
          device: "nic0",
          driver: "nic",
          label: `dma mapping 0x${kept.iova.toString(16)} (from-device) "rx"`,
          acquiredAt: maps[1]!.site
        }])
        // A revoked token maps nothing: the defect.
        const late = yield* Effect.exit(Dma.map(t, new Uint8Array(8), "to-device"))
        expect(defectOf(late)).toMatchObject({ _tag: "UseAfterUnbind", device: "nic0" })
        expect(fake.ops("map")).toHaveLength(2)
      })
    ))

  it.effect("sites: a binding's first 64 maps and unmaps are captured, then 1 in 256; the others point at the latest sampled one", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        const t = yield* bindNic(bus, fake)
        const kept: Array<Dma.Mapping> = []
        for (let n = 0; n < 300; n++) {
          // The site is taken when the effect is made: one `Dma.map` call per mapping.
          const mapping = (yield* Dma.map(t, new Uint8Array(16), "to-device", { label: "frame" })).access(t)
          // Keep the 100th (not sampled) and the 256th (sampled: a multiple of 256).
          if (n === 100 || n === 256) kept.push(mapping)
          else mapping.unmap()
        }
        const sites = fake.ops("map").map((c) => c.site!)
        const exact = { test: (site: string) => /dma\.test\.ts:\d+/.test(site) && !site.startsWith("not captured") }
        expect(sites.slice(0, 64).every((site) => exact.test(site))).toBe(true)
        expect(sites.filter((site, n) => n >= 64 && exact.test(site))).toHaveLength(1) // 256
        const sampledOut = sites[100]!
        expect(sampledOut).toMatch(/^not captured \(sampled: a binding's first 64 calls, then 1 in 256; /)
        expect(sampledOut).toContain(`the latest sampled mapping labelled "frame" was at ${sites[0]}`)
        const unmaps = fake.ops("unmap").map((c) => c.site!)
        expect(unmaps.slice(0, 64).every((site) => exact.test(site))).toBe(true)
        expect(unmaps[100]).toContain(`the latest sampled unmap of a mapping labelled "frame" was at ${unmaps[0]}`)
        // Both kept mappings leak; the reports name a site either way.
        const report = yield* bus.unbind("nic0")
        expect(exact.test(sites[256]!)).toBe(true)
        expect(report.leaks.map((l) => l._tag === "ObjectLeak" ? l.acquiredAt : "")).toEqual([sampledOut, sites[256]])
      })
    ))

  it.effect("sites: on a bus with captureSites \"always\", every map and unmap names its own site (no sampling)", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        const t = yield* bindNic(bus, fake)
        for (let n = 0; n < 300; n++) (yield* Dma.map(t, new Uint8Array(16), "to-device", { label: "frame" })).access(t).unmap()
        const exact = (site: string) => /dma\.test\.ts:\d+/.test(site) && !site.startsWith("not captured")
        expect(fake.ops("map").map((c) => c.site!).every(exact)).toBe(true)
        expect(fake.ops("unmap").map((c) => c.site!).every(exact)).toBe(true)
        expect(fake.ops("map")).toHaveLength(300)
      }), { captureSites: "always" }))

  it.effect("sites: a driver putting a counter in its labels does not grow its binding; past 256 labels, unsampled calls point at any label's", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        const t = yield* bindNic(bus, fake)
        for (let n = 0; n < 300; n++) {
          ;(yield* Dma.map(t, new Uint8Array(16), "to-device", { label: `frame ${n}` })).access(t).unmap()
        }
        const sites = fake.ops("map").map((c) => c.site!)
        // 100: its own label, never sampled. 256: sampled (its label is past the first 256).
        expect(sites[100]).toMatch(/; no mapping labelled "frame 100" was sampled\)$/)
        expect(sites[256]).toMatch(/dma\.test\.ts:\d+/)
        expect(sites[299]).toContain(`; the latest sampled mapping was at ${sites[256]})`)
        yield* bus.unbind("nic0")
      })
    ))
})

describe("Dma failures in probe", () => {
  // Probe: coherent descriptor, coherent ring, streaming rx buffer (unmapped by remove).
  const RxLive = Layer.effect(RxBuffer, Dma.map(Nic, new Uint8Array(2048), "from-device", { label: "rx buffer" }))
  const driver = Driver.make(Nic, {
    match: [{ vendor: 1 }],
    probe: () =>
      RxLive.pipe(
        Layer.provideMerge(Layer.effectDiscard(Dma.allocCoherent(Nic, Ring, { label: "ring" }))),
        Layer.provideMerge(Layer.effectDiscard(Dma.allocCoherent(Nic, Desc, { label: "desc" })))
      ),
    remove: () => Effect.flatMap(RxBuffer, Dma.unmap)
  })
  const sites = 3

  it.effect("refusing the 2nd allocation fails the probe and frees the first", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware({ refuse: 2 })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        const error = yield* Effect.flip(bus.bind("nic0"))
        expect(error._tag).toBe("ProbeFailed")
        const failure = error._tag === "ProbeFailed" ? Option.getOrUndefined(Cause.failureOption(error.cause)) : undefined
        expect(failure).toMatchObject({ _tag: "HardwareRefused", device: "nic0", request: "dma-alloc" })
        const first = fake.ops("alloc")[0]!
        expect(fake.calls.map((c) => c.op)).toEqual(["alloc", "refused", "free"])
        expect(fake.ops("free")).toEqual([{ op: "free", iova: first.iova, site: "unbind" }])
        expect(fake.live.size).toBe(0)
      }), { autoBind: false }))

  it.effect("refusing the N-th request, at every allocation site, leaves nothing allocated", () =>
    Effect.gen(function*() {
      for (let n = 1; n <= sites + 1; n++) {
        const fake = fakeHardware({ refuse: n })
        yield* withBus((bus) =>
          Effect.gen(function*() {
            yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
            yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
            const exit = yield* Effect.exit(bus.bind("nic0"))
            if (n <= sites) {
              expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(
                Option.some("ProbeFailed")
              )
              expect(fake.ops("refused")).toHaveLength(1)
              expect(fake.ops("alloc").length + fake.ops("map").length).toBe(n - 1)
            } else {
              expect(Exit.isSuccess(exit)).toBe(true)
              expect(fake.live.size).toBe(3)
              const report = yield* bus.unbind("nic0")
              expect(report.leaks).toEqual([])
              // The rx buffer was unmapped early, by remove.
              expect(report.released).toEqual(["ring", "desc"])
              expect(report.releasedEarly).toBe(1)
            }
            expect(fake.live.size).toBe(0)
          }), { autoBind: false })
      }
    }))
})

describe("Dma.setMask", () => {
  it.effect("needs the Core token: fine in probe, CoreNotHeld outside", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const fake = fakeHardware()
        let core: Core.Core<"nic"> | undefined
        const driver = Driver.make(Nic, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              core = yield* Nic.Core
              yield* Dma.setMask(core, 40)
            }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 1 } })
        expect(fake.ops("setMask")).toEqual([{ op: "setMask", bits: 40 }])
        const exit = yield* Effect.exit(
          Dma.setMask(core!, 32).pipe(Effect.provideService(Hardware.Hardware, fake.hardware))
        )
        expect(defectOf(exit)).toBeInstanceOf(DeviceError.CoreNotHeld)
        expect(defectOf(exit)).toMatchObject({ device: "nic0", driver: "nic" })
        expect(fake.ops("setMask")).toHaveLength(1)
      })
    ))
})

describe("bulk copies", () => {
  it("copyIn / copyOut move whole payloads, checked against the layout's bounds", () => {
    const Pool = Dma.array(Dma.struct({ byte: "u8" }), 64)
    const view = Dma.view(Pool, new Uint8Array(80), 8)
    view.copyIn(10, Uint8Array.of(1, 2, 3))
    expect([view.get(10, "byte"), view.get(11, "byte"), view.get(12, "byte")]).toEqual([1, 2, 3])
    const out = new Uint8Array(4)
    view.copyOut(9, out)
    expect([...out]).toEqual([0, 1, 2, 3])
    expect(() => view.copyIn(62, new Uint8Array(3))).toThrow(RangeError)
    expect(() => view.copyOut(-1, out)).toThrow(RangeError)
    const Header = Dma.struct({ len: "u16", flags: "u16" })
    const header = Dma.view(Header, new Uint8Array(4))
    header.copyIn(0, Uint8Array.of(0x34, 0x12))
    expect(header.get("len")).toBe(0x1234)
  })
})
