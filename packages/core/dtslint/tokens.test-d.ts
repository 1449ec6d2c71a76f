import { Context, Effect, Layer } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import { Bound, Bus, Core, Devres, Driver } from "@devscope/core"

const Nic = Driver.brand("nic")
const Blk = Driver.brand("blk")

declare const nicRegs: Devres.Devres<Uint32Array, "nic">
declare const nicToken: Bound.Bound<"nic">
declare const blkToken: Bound.Bound<"blk">
declare const nicCore: Core.Core<"nic">
declare const blkCore: Core.Core<"blk">

describe("Bound tokens", () => {
  it("are branded by the driver name", () => {
    expectTypeOf(Nic.Bound).toEqualTypeOf<Bound.Tag<"nic">>()
    expectTypeOf<Bound.Bound<"nic">>().not.toEqualTypeOf<Bound.Bound<"blk">>()
    expectTypeOf(blkToken).not.toMatchTypeOf<Bound.Bound<"nic">>()
    expectTypeOf(blkCore).not.toMatchTypeOf<Core.Core<"nic">>()
    expectTypeOf(nicCore.driver).toEqualTypeOf<"nic">()
  })

  it("Devres access needs this driver's token and returns the value synchronously", () => {
    expectTypeOf(nicRegs.access(nicToken)).toEqualTypeOf<Uint32Array>()
    // @ts-expect-error: no token, no access
    nicRegs.access()
    // @ts-expect-error: another driver's token does not type-check
    nicRegs.access(blkToken)
    // @ts-expect-error: a plain object is not a token
    nicRegs.access({ device: nicToken.device, driver: "nic" })
  })

  it("code that needs the token cannot run outside a binding", () => {
    const inside = Effect.map(Nic.Bound, (token) => nicRegs.access(token)[0])
    expectTypeOf<Effect.Effect.Context<typeof inside>>().toEqualTypeOf<Bound.Bound<"nic">>()
    // @ts-expect-error: Bound<"nic"> is not provided
    Effect.runSync(inside)
    const acquire = Devres.make(Nic, 1)
    expectTypeOf<Effect.Effect.Success<typeof acquire>>().toEqualTypeOf<Devres.Devres<number, "nic">>()
    expectTypeOf<Effect.Effect.Context<typeof acquire>>().toEqualTypeOf<Bound.Bound<"nic">>()
    // @ts-expect-error: acquiring a Devres requires the Bound token in context
    Effect.runSync(acquire)
  })

  it("the tryAccess path needs no token and returns an Option", () => {
    expectTypeOf(nicRegs.tryAccess()).toEqualTypeOf<import("effect").Option.Option<Uint32Array>>()
  })

  it("a driver's requirements are what its probe needs besides its own tokens", () => {
    class Config extends Context.Tag("Config")<Config, { readonly ring: number }>() {}
    const driver = Driver.make(Nic, {
      match: [{ vendor: 1 }],
      probe: () =>
        Layer.effectDiscard(Effect.gen(function*() {
          yield* Nic.Bound
          yield* Nic.Core
          yield* Config
        }))
    })
    expectTypeOf<Driver.Requirements<typeof driver>>().toEqualTypeOf<Config>()
    const program = Effect.flatMap(Bus.Bus, (bus) => bus.registerDriver(driver))
    expectTypeOf(program).toEqualTypeOf<
      Effect.Effect<
        void,
        | import("@devscope/core").DeviceError.DriverAlreadyRegistered
        | import("@devscope/core").DeviceError.BusShutDown,
        Bus.Bus | Config
      >
    >()
  })

  it("a probe may not use another driver's token", () => {
    const driver = Driver.make(Nic, {
      match: [{ vendor: 1 }],
      probe: () => Layer.effectDiscard(Blk.Bound)
    })
    // The foreign token is left as a requirement, so registering it needs a Bound<"blk"> nobody provides.
    expectTypeOf<Driver.Requirements<typeof driver>>().toEqualTypeOf<Bound.Bound<"blk">>()
  })

  it("remove sees the probe layer's services, the tokens, and nothing else for free", () => {
    class Regs extends Context.Tag("Regs")<Regs, Devres.Devres<Uint32Array, "nic">>() {}
    const driver = Driver.make(Nic, {
      match: [],
      probe: () => Layer.effect(Regs, Devres.make(Nic, new Uint32Array(4))),
      remove: () => Effect.flatMap(Regs, (regs) => Effect.map(Nic.Bound, (t) => regs.access(t)))
    })
    expectTypeOf<Driver.Requirements<typeof driver>>().toEqualTypeOf<never>()
  })

  it("driver names must be literals", () => {
    const name: string = "dynamic"
    // @ts-expect-error: a widened string would make every driver's token the same type
    Driver.brand(name)
  })
})
