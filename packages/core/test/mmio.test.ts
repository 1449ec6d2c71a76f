import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Either, Exit, Layer, Option } from "effect"
import { type Devres, DeviceError, Driver, Mmio, RegisterMap } from "@devscope/core"
import { withBus } from "./utils.js"

const Edu = Driver.brand("edu")

const EduRegs = RegisterMap.make("edu", 0x100, {
  ID: { offset: 0x00, access: "RO", reset: 0x010000ed },
  LIVENESS: { offset: 0x04, access: "RW" },
  FACT: { offset: 0x08, access: "RW" },
  STATUS: { offset: 0x20, access: "RW", fields: { COMPUTING: { bit: 0 }, IRQ_ON_DONE: { bit: 7 }, MODE: { bits: [4, 6] } } },
  IRQ_ACK: { offset: 0x64, access: "W1C" },
  DOORBELL: { offset: 0x68, access: "WO", width: 16 },
  CNT: { offset: 0x6c, access: "RC", width: 8 }
})

describe("RegisterMap", () => {
  it("resolves registers and fields", () => {
    const status = EduRegs.registers.STATUS
    expect(status).toMatchObject({ offset: 0x20, width: 32, access: "RW", reset: 0, implemented: 0b11110001 })
    expect(status.fields.map((f) => [f.name, f.shift, f.mask])).toEqual([
      ["COMPUTING", 0, 0x1], ["IRQ_ON_DONE", 7, 0x80], ["MODE", 4, 0x70]
    ])
    expect(EduRegs.registers.ID.implemented).toBe(0xffffffff)
    expect(EduRegs.registers.DOORBELL.implemented).toBe(0xffff)
    expect(EduRegs.at(0x64)?.name).toBe("IRQ_ACK")
    expect(EduRegs.at(0x65)).toBeUndefined()
    const mode = status.fields[2]!
    expect(RegisterMap.getField(mode, 0xff)).toBe(7)
    expect(RegisterMap.setField(mode, 0xffffffff, 2)).toBe(0xffffffaf)
  })

  it("rejects bad maps at definition time, naming the problem", () => {
    const bad = (spec: RegisterMap.Spec, size = 0x10) => () => RegisterMap.make("bad", size, spec)
    expect(bad({ A: { offset: 0x10, access: "RW" } })).toThrow(/does not fit a 16-byte window/)
    expect(bad({ A: { offset: 0x02, access: "RW" } })).toThrow(/not aligned to 4 bytes/)
    expect(bad({ A: { offset: 0x00, access: "RW" }, B: { offset: 0x02, access: "RW", width: 16 } })).toThrow(
      /B: overlaps register A/
    )
    expect(bad({ A: { offset: 0, access: "RW", fields: { X: { bits: [0, 3] }, Y: { bit: 3 } } } })).toThrow(
      /field Y overlaps another field/
    )
    expect(bad({ A: { offset: 0, access: "RW", width: 8, fields: { X: { bit: 8 } } } })).toThrow(/outside 8 bits/)
    expect(bad({ A: { offset: 0, access: "RW", width: 8, reset: 0x100 } })).toThrow(/does not fit 8 bits/)
    expect(bad({ A: { offset: 0, access: "RW", fields: { X: {} } } })).toThrow(/exactly one of "bit" or "bits"/)
  })
})

describe("Mmio", () => {
  it("typed accessors read and write the right offsets and widths", () => {
    const region = Mmio.memoryRegion(0x100)
    const mmio = Mmio.unsafeMake(EduRegs, region)
    region.write32(0x00, 0x010000ed)
    expect(mmio.read("ID")).toBe(0x010000ed)
    mmio.write("LIVENESS", 0xdeadbeef)
    expect(region.read32(0x04)).toBe(0xdeadbeef)
    expect(mmio.read("LIVENESS")).toBe(0xdeadbeef)
    mmio.modify("STATUS", "MODE", 5)
    mmio.modify("STATUS", "IRQ_ON_DONE", 1)
    expect(mmio.read("STATUS")).toBe(0xd0)
    expect(mmio.readField("STATUS", "MODE")).toBe(5)
    mmio.modify("STATUS", "MODE", 0)
    expect(mmio.read("STATUS")).toBe(0x80)
    mmio.write("DOORBELL", 0x12345)
    expect(region.read16(0x68)).toBe(0x2345)
    expect(region.read32(0x68)).toBe(0x2345)
    region.write8(0x6c, 0x7f)
    expect(mmio.read("CNT")).toBe(0x7f)
  })

  it("dynamic access checks bounds and alignment: a typed error, never an out-of-range read", () => {
    const mmio = Mmio.unsafeMake(EduRegs, Mmio.memoryRegion(0x100))
    expect(Either.isRight(mmio.tryRead32(0xfc))).toBe(true)
    expect(mmio.tryRead32(0x100)).toEqual(
      Either.left(new Mmio.InvalidAccess({ region: "edu", offset: 0x100, width: 32, reason: "out of range" }))
    )
    expect(mmio.tryRead32(-4)).toEqual(
      Either.left(new Mmio.InvalidAccess({ region: "edu", offset: -4, width: 32, reason: "out of range" }))
    )
    expect(mmio.tryRead32(0x22)).toEqual(
      Either.left(new Mmio.InvalidAccess({ region: "edu", offset: 0x22, width: 32, reason: "misaligned" }))
    )
    expect(Either.isLeft(mmio.tryWrite32(0x1000, 1))).toBe(true)
    expect(() => mmio.read32(0x101)).toThrow(/out of range/)
    mmio.write32(0x08, 5)
    expect(mmio.read("FACT")).toBe(5)
    // 8- and 16-bit dynamic accesses check their own width's alignment.
    expect(Either.isRight(mmio.tryWrite8(0x6d, 0x5a))).toBe(true)
    expect(mmio.read8(0x6d)).toBe(0x5a)
    expect(mmio.tryRead16(0x69)).toEqual(
      Either.left(new Mmio.InvalidAccess({ region: "edu", offset: 0x69, width: 16, reason: "misaligned" }))
    )
    expect(mmio.tryWrite8(0x100, 1)).toEqual(
      Either.left(new Mmio.InvalidAccess({ region: "edu", offset: 0x100, width: 8, reason: "out of range" }))
    )
    mmio.write16(0x68, 0xbeef)
    expect(mmio.read16(0x68)).toBe(0xbeef)
    // Untyped callers (plain JavaScript) get a clear error for an unknown register.
    expect(() => (mmio as Mmio.Mmio<any>).read("NOPE")).toThrow(/has no register "NOPE"/)
  })

  it("register handles: resolved once, same offsets, widths and fields as the named accessors", () => {
    const region = Mmio.memoryRegion(0x100)
    const mmio = Mmio.unsafeMake(EduRegs, region)
    const liveness = mmio.register("LIVENESS")
    expect(mmio.register("LIVENESS")).toBe(liveness)
    expect([liveness.name, liveness.offset, liveness.width]).toEqual(["LIVENESS", 0x04, 32])
    liveness.write(0x1_2345_6789)
    expect(region.read32(0x04)).toBe(0x2345_6789)
    expect(liveness.read()).toBe(0x2345_6789)
    region.write32(0x04, 0xffffffff)
    expect(liveness.read()).toBe(0xffffffff)
    const status = mmio.register("STATUS")
    status.modify("MODE", 5)
    status.modify("IRQ_ON_DONE", 1)
    expect(mmio.read("STATUS")).toBe(0xd0)
    expect(status.readField("MODE")).toBe(5)
    const doorbell = mmio.register("DOORBELL")
    doorbell.write(0x12345)
    expect(region.read32(0x68)).toBe(0x2345)
    const cnt = mmio.register("CNT")
    region.write8(0x6c, 0x7f)
    region.write8(0x6d, 0x11)
    expect(cnt.read()).toBe(0x7f)
    expect(() => (mmio as Mmio.Mmio<any>).register("NOPE")).toThrow(/has no register "NOPE"/)
    expect(() => status.readField("NOPE" as never)).toThrow(/has no field "NOPE"/)
  })

  it("register handles over a region that is not plain memory go through the region", () => {
    const memory = Mmio.memoryRegion(0x100)
    const accesses: Array<string> = []
    const region: Mmio.Region = {
      size: 0x100,
      read8: (o) => (accesses.push(`r8 ${o}`), memory.read8(o)),
      read16: (o) => (accesses.push(`r16 ${o}`), memory.read16(o)),
      read32: (o) => (accesses.push(`r32 ${o}`), memory.read32(o)),
      write8: (o, v) => (accesses.push(`w8 ${o} ${v}`), memory.write8(o, v)),
      write16: (o, v) => (accesses.push(`w16 ${o} ${v}`), memory.write16(o, v)),
      write32: (o, v) => (accesses.push(`w32 ${o} ${v}`), memory.write32(o, v))
    }
    const mmio = Mmio.unsafeMake(EduRegs, region)
    mmio.register("FACT").write(-1)
    mmio.register("DOORBELL").write(0x12345)
    expect(mmio.register("FACT").read()).toBe(0xffffffff)
    expect(mmio.register("CNT").read()).toBe(0)
    expect(accesses).toEqual(["w32 8 4294967295", `w16 104 ${0x2345}`, "r32 8", "r8 108"])
  })

  class Bar0 extends Context.Tag("test/Bar0")<Bar0, Devres.Devres<Mmio.Mmio<typeof EduRegs.spec>, "edu">>() {}

  it.effect("an Mmio is a Devres: released at unbind, and a kept Mmio then dies with UseAfterUnbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const region = Mmio.memoryRegion(0x100)
        const unmapped: Array<Mmio.Region> = []
        let kept: Mmio.Mmio<typeof EduRegs.spec> | undefined
        let handles: ReadonlyArray<{ read?: () => number; write?: (v: number) => void }> = []
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bar0 = (yield* Bar0).access(yield* Edu.Bound)
              bar0.write("LIVENESS", 42)
              kept = bar0
              handles = [bar0.register("LIVENESS"), bar0.register("DOORBELL"), bar0.register("CNT")]
            })).pipe(Layer.provideMerge(Layer.effect(
              Bar0,
              Mmio.iomap(Edu, EduRegs, Effect.succeed(region), {
                label: "BAR0",
                release: (r) => Effect.sync(() => void unmapped.push(r))
              })
            )))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(kept!.read("LIVENESS")).toBe(42)
        const report = yield* bus.removeDevice("edu0", { cause: "hot-unplug" })
        expect(report?.released).toEqual(["BAR0"])
        // Sites are captured lazily (B2), and still name the caller.
        expect(report?.site).toContain("mmio.test.ts")
        expect(unmapped).toEqual([region])
        const exit = yield* Effect.exit(Effect.sync(() => kept!.read("LIVENESS")))
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        expect(defect).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(defect).toMatchObject({ device: "edu0", resource: `Mmio "BAR0"`, unbindCause: "hot-unplug" })
        expect((defect as DeviceError.UseAfterUnbind).revokedAt).toContain("mmio.test.ts")
        expect(() => kept!.write("LIVENESS", 1)).toThrow(DeviceError.UseAfterUnbind)
        // Handles resolved at probe are revoked with their Mmio, whatever their width.
        const [liveness, doorbell, cnt] = handles
        expect(() => liveness!.read!()).toThrow(DeviceError.UseAfterUnbind)
        expect(() => liveness!.write!(7)).toThrow(DeviceError.UseAfterUnbind)
        expect(() => doorbell!.write!(7)).toThrow(DeviceError.UseAfterUnbind)
        expect(() => cnt!.read!()).toThrow(/Mmio "BAR0"/)
        expect(() => kept!.register("STATUS").readField("MODE")).toThrow(DeviceError.UseAfterUnbind)
        expect(region.read32(0x04)).toBe(42)
        expect(region.read16(0x68)).toBe(0)
      })
    ))

  it.effect("a region smaller than the map fails the probe and leaves nothing mapped", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effect(Bar0, Mmio.iomap(Edu, EduRegs, Effect.succeed(Mmio.memoryRegion(0x10))))
        }))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(device.state).toBe("unbound")
        const error = yield* Effect.flip(bus.bind(device))
        expect(error._tag === "ProbeFailed" && Cause.pretty(error.cause)).toContain("the register map needs 256")
      })
    ))
})
