import { describe, expectTypeOf, it } from "vitest"
import { Mmio, RegisterMap } from "@devscope/core"
import { RegisterFile, Trace } from "@devscope/sim"

const Regs = RegisterMap.make("dev", 0x20, {
  ID: { offset: 0x00, access: "RO", reset: 1 },
  CTRL: { offset: 0x04, access: "RW", fields: { ENABLE: { bit: 0 }, MODE: { bits: [1, 3] } } },
  STATUS: { offset: 0x08, access: "W1C", fields: { DONE: { bit: 0 } } }
})

declare const file: RegisterFile.RegisterFile<typeof Regs.spec>

describe("RegisterFile types", () => {
  it("make infers the spec and the file is an Mmio region", () => {
    const made = RegisterFile.make(Regs, { device: "dev0" })
    expectTypeOf(made).toEqualTypeOf<RegisterFile.RegisterFile<typeof Regs.spec>>()
    expectTypeOf(made).toMatchTypeOf<Mmio.Region>()
    expectTypeOf(Mmio.unsafeMake(Regs, made)).toEqualTypeOf<Mmio.Mmio<typeof Regs.spec>>()
  })

  it("register names are checked", () => {
    expectTypeOf(file.get("ID")).toEqualTypeOf<number>()
    file.set("CTRL", 1)
    file.onWrite("STATUS", (value, previous) => {
      expectTypeOf(value).toEqualTypeOf<number>()
      expectTypeOf(previous).toEqualTypeOf<number>()
    })
    file.onRead("ID", () => 2)
    // @ts-expect-error: no such register
    file.get("NOPE")
    // @ts-expect-error: no such register
    file.set("CTRL2", 1)
    // @ts-expect-error: no such register
    file.onWrite("NOPE", () => {})
    // @ts-expect-error: no such register
    file.onRead("NOPE", () => 0)
    // @ts-expect-error: a read handler returns the value
    file.onRead("ID", () => "1")
  })

  it("field names are checked against their register", () => {
    expectTypeOf(file.getField("CTRL", "MODE")).toEqualTypeOf<number>()
    file.setField("STATUS", "DONE", 1)
    // @ts-expect-error: no such field
    file.getField("CTRL", "DONE")
    // @ts-expect-error: no such field
    file.setField("CTRL", "NOPE", 1)
    // @ts-expect-error: ID has no fields
    file.getField("ID", "ENABLE")
    // @ts-expect-error: no such register
    file.getField("NOPE", "ENABLE")
  })

  it("fault kinds and trace filters are typed", () => {
    file.faultCount("bad-width")
    // @ts-expect-error: not a fault kind
    file.faultCount("oops")
    const trace = Trace.make()
    expectTypeOf(trace.filter({ kind: "Fault" })).toEqualTypeOf<
      ReadonlyArray<Extract<Trace.TraceEvent, { readonly _tag: "Fault" }>>
    >()
    expectTypeOf(trace.filter({ device: "dev0" })).toEqualTypeOf<ReadonlyArray<Trace.TraceEvent>>()
    // @ts-expect-error: not an event kind
    trace.filter({ kind: "Nope" })
    // @ts-expect-error: seq and at are assigned by the trace
    trace.record({ _tag: "Irq", device: "a", line: 1, kind: "raise", seq: 1 })
  })
})
