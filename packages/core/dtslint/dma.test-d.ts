import type { Effect } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import type { Bound, Core, Devres, Hardware } from "@devscope/core"
import { Driver } from "@devscope/core"
import * as Dma from "@devscope/core/Dma"

const A = Driver.brand("a")

const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16", status: "u8" })
const Ring = Dma.array(Desc, 16)

declare const bytes: Uint8Array
declare const coherent: Devres.Devres<Dma.Coherent<typeof Ring>, "a">
declare const mapping: Devres.Devres<Dma.Mapping, "a">
declare const aToken: Bound.Bound<"a">
declare const bToken: Bound.Bound<"b">
declare const aCore: Core.Core<"a">

describe("Dma layouts", () => {
  it("infer field names and types", () => {
    expectTypeOf(Desc.fields).toEqualTypeOf<{
      readonly addr: "u32"
      readonly len: "u16"
      readonly flags: "u16"
      readonly status: "u8"
    }>()
    expectTypeOf(Desc.offsets.len).toEqualTypeOf<number>()
    expectTypeOf(Dma.view(Desc, bytes)).toEqualTypeOf<Dma.StructView<typeof Desc.fields>>()
    expectTypeOf(Dma.view(Ring, bytes)).toEqualTypeOf<Dma.ArrayView<typeof Desc.fields>>()
  })

  it("rejects unknown field types", () => {
    // @ts-expect-error: u64 is not a field type
    Dma.struct({ a: "u64" })
    // @ts-expect-error: fields are type names
    Dma.struct({ a: 4 })
    // @ts-expect-error: arrays are of structs
    Dma.array(Ring, 2)
  })
})

describe("Dma views", () => {
  it("check field names at compile time", () => {
    const desc = Dma.view(Desc, bytes)
    expectTypeOf(desc.get("addr")).toEqualTypeOf<number>()
    desc.set("len", 64)
    // @ts-expect-error: no such field
    desc.get("length")
    // @ts-expect-error: no such field
    desc.set("addr2", 1)
    // @ts-expect-error: values are numbers
    desc.set("len", "64")
    // @ts-expect-error: a struct view takes no index
    desc.get(0, "addr")

    const ring = Dma.view(Ring, bytes)
    expectTypeOf(ring.length).toEqualTypeOf<number>()
    expectTypeOf(ring.get(3, "status")).toEqualTypeOf<number>()
    ring.set(3, "flags", 1)
    // @ts-expect-error: no such field
    ring.get(0, "nope")
    // @ts-expect-error: an array view needs an index
    ring.get("addr")
  })
})

describe("Dma Devres", () => {
  it("a Coherent of driver a needs Bound<'a'> to be reached", () => {
    const c = coherent.access(aToken)
    expectTypeOf(c.iova).toEqualTypeOf<number>()
    expectTypeOf(c.view).toEqualTypeOf<Dma.ArrayView<typeof Desc.fields>>()
    c.view.set(0, "addr", c.iova)
    // @ts-expect-error: another driver's token
    coherent.access(bToken)
    // @ts-expect-error: no token, no access
    coherent.access()
    // @ts-expect-error: another driver's token
    mapping.access(bToken)
    expectTypeOf(mapping.access(aToken).owner).toEqualTypeOf<"device" | "cpu">()
  })

  it("allocation and mapping require the Bound token and the Hardware service", () => {
    const alloc = Dma.allocCoherent(A, Desc)
    expectTypeOf(alloc).toEqualTypeOf<
      Effect.Effect<Devres.Devres<Dma.Coherent<typeof Desc>, "a">, Hardware.HardwareRefused, Hardware.Hardware | Bound.Bound<"a">>
    >()
    const mapped = Dma.map(A, bytes, "to-device")
    expectTypeOf(mapped).toEqualTypeOf<
      Effect.Effect<Devres.Devres<Dma.Mapping, "a">, Hardware.HardwareRefused, Hardware.Hardware | Bound.Bound<"a">>
    >()
    // @ts-expect-error: not a direction
    Dma.map(A, bytes, "sideways")
    expectTypeOf(Dma.unmap(mapping)).toEqualTypeOf<Effect.Effect<void>>()
  })

  it("setMask needs a Core token, not a Bound one", () => {
    expectTypeOf(Dma.setMask(aCore, 48)).toEqualTypeOf<Effect.Effect<void, never, Hardware.Hardware>>()
    // @ts-expect-error: Bound is not Core
    Dma.setMask(aToken, 48)
  })
})
