import { describe, expectTypeOf, it } from "vitest"
import { Mmio, RegisterMap } from "@devscope/core"

const Regs = RegisterMap.make("dev", 0x40, {
  ID: { offset: 0x00, access: "RO" },
  CTRL: { offset: 0x04, access: "RW", fields: { ENABLE: { bit: 0 }, MODE: { bits: [1, 2] } } },
  STATUS: { offset: 0x08, access: "RO", fields: { LINK_UP: { bit: 0 } } },
  ACK: { offset: 0x0c, access: "W1C" },
  KICK: { offset: 0x10, access: "WO", width: 16 },
  EVENTS: { offset: 0x14, access: "RC" }
})
declare const mmio: Mmio.Mmio<typeof Regs.spec>

describe("typed register access", () => {
  it("accepts what the map allows", () => {
    expectTypeOf(mmio.read("ID")).toEqualTypeOf<number>()
    expectTypeOf(mmio.readField("STATUS", "LINK_UP")).toEqualTypeOf<number>()
    mmio.write("CTRL", 1)
    mmio.write("ACK", 1)
    mmio.write("KICK", 1)
    mmio.modify("CTRL", "MODE", 2)
    mmio.read("EVENTS")
  })

  it("rejects unknown registers, writes to read-only ones and reads of write-only ones", () => {
    // @ts-expect-error: no such register
    mmio.read("NOPE")
    // @ts-expect-error: ID is read-only
    mmio.write("ID", 1)
    // @ts-expect-error: EVENTS is read-to-clear, not writable
    mmio.write("EVENTS", 1)
    // @ts-expect-error: KICK is write-only
    mmio.read("KICK")
    // @ts-expect-error: values are numbers
    mmio.write("CTRL", "1")
  })

  it("rejects wrong fields and read-modify-write of registers that are not RW", () => {
    // @ts-expect-error: LINK_UP is a field of STATUS, not CTRL
    mmio.readField("CTRL", "LINK_UP")
    // @ts-expect-error: ID has no fields
    mmio.readField("ID", "ENABLE")
    // @ts-expect-error: STATUS is read-only, so it cannot be modified
    mmio.modify("STATUS", "LINK_UP", 1)
    // @ts-expect-error: ACK is W1C: read-modify-write would clear bits it did not mean to
    mmio.modify("ACK", "X", 1)
  })

  it("rejects wrong widths and access kinds in the map itself", () => {
    // @ts-expect-error: 64-bit registers are not supported by a 32-bit Region
    RegisterMap.make("w", 0x10, { A: { offset: 0, access: "RW", width: 64 } })
    // @ts-expect-error: 12 is not a width
    RegisterMap.make("w", 0x10, { A: { offset: 0, access: "RW", width: 12 } })
    // @ts-expect-error: not an access kind
    RegisterMap.make("w", 0x10, { A: { offset: 0, access: "RWX" } })
  })
})

describe("register handles", () => {
  it("carry the register's name and only the accessors its access kind allows", () => {
    const ctrl = mmio.register("CTRL")
    expectTypeOf(ctrl.name).toEqualTypeOf<"CTRL">()
    expectTypeOf(ctrl.read()).toEqualTypeOf<number>()
    expectTypeOf(ctrl.readField("MODE")).toEqualTypeOf<number>()
    ctrl.write(1)
    ctrl.modify("ENABLE", 1)
    expectTypeOf(mmio.register("STATUS").readField("LINK_UP")).toEqualTypeOf<number>()
    mmio.register("ACK").write(1)
    mmio.register("KICK").write(1)
    expectTypeOf(mmio.register("EVENTS").read()).toEqualTypeOf<number>()
  })

  it("rejects unknown registers and fields, and accesses the register does not allow", () => {
    // @ts-expect-error: no such register
    mmio.register("NOPE")
    // @ts-expect-error: ID is read-only
    mmio.register("ID").write(1)
    // @ts-expect-error: KICK is write-only
    mmio.register("KICK").read()
    // @ts-expect-error: STATUS is read-only, so it cannot be modified
    mmio.register("STATUS").modify("LINK_UP", 1)
    // @ts-expect-error: ACK is W1C, no read-modify-write
    mmio.register("ACK").modify("X", 1)
    // @ts-expect-error: LINK_UP is a field of STATUS, not CTRL
    mmio.register("CTRL").readField("LINK_UP")
    // @ts-expect-error: EVENTS is read-to-clear, not writable
    mmio.register("EVENTS").write(1)
    // @ts-expect-error: values are numbers
    mmio.register("CTRL").write("1")
  })
})
