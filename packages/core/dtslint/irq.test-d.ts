import { Effect, Layer } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import { type Bound, type Devres, Driver, type Hardware } from "@devscope/core"
import * as Irq from "@devscope/core/Irq"

const Nic = Driver.brand("nic")
const Blk = Driver.brand("blk")

const handled = Effect.succeed("handled" as const)

describe("Irq.request", () => {
  it("needs the Hardware service and this driver's token, and returns a Devres of the registration", () => {
    const request = Irq.request(Nic, 0, handled)
    expectTypeOf<Effect.Effect.Success<typeof request>>().toEqualTypeOf<Devres.Devres<Irq.Registration, "nic">>()
    expectTypeOf<Effect.Effect.Error<typeof request>>().toEqualTypeOf<Hardware.NoSuchIrq | Hardware.HardwareRefused>()
    expectTypeOf<Effect.Effect.Context<typeof request>>().toEqualTypeOf<Hardware.Hardware | Bound.Bound<"nic">>()
    // @ts-expect-error: requesting an interrupt needs Hardware and a binding
    Effect.runSync(request)
  })

  it("a handler that needs another driver's token makes the registration require it", () => {
    const handler = Effect.map(Blk.Bound, () => "handled" as const)
    const request = Irq.request(Nic, 0, handler)
    expectTypeOf<Effect.Effect.Context<typeof request>>().toEqualTypeOf<
      Hardware.Hardware | Bound.Bound<"nic"> | Bound.Bound<"blk">
    >()
    // So a driver whose probe requests it needs a Bound<"blk"> from its environment, which nobody provides.
    const driver = Driver.make(Nic, { match: [], probe: () => Layer.effectDiscard(request) })
    expectTypeOf<Driver.Requirements<typeof driver>>().toEqualTypeOf<Hardware.Hardware | Bound.Bound<"blk">>()
  })

  it("a handler using its own driver's token needs nothing more", () => {
    const handler = Effect.map(Nic.Bound, () => "none" as const)
    const driver = Driver.make(Nic, { match: [], probe: () => Layer.effectDiscard(Irq.request(Nic, 0, handler)) })
    expectTypeOf<Driver.Requirements<typeof driver>>().toEqualTypeOf<Hardware.Hardware>()
  })

  it("handlers answer handled or none, and cannot fail", () => {
    // @ts-expect-error: only a threaded handler may wake a thread
    Irq.request(Nic, 0, Effect.succeed("wake-thread" as const))
    // @ts-expect-error: a handler has no error channel
    Irq.request(Nic, 0, Effect.fail("oops"))
    // @ts-expect-error: a handler must say whether it handled the interrupt
    Irq.request(Nic, 0, Effect.void)
  })
})

describe("Irq.requestThreaded", () => {
  it("requires what both halves need", () => {
    const request = Irq.requestThreaded(Nic, 1, {
      handler: Effect.map(Nic.Bound, () => "wake-thread" as const),
      thread: Effect.asVoid(Blk.Bound)
    })
    expectTypeOf<Effect.Effect.Context<typeof request>>().toEqualTypeOf<
      Hardware.Hardware | Bound.Bound<"nic"> | Bound.Bound<"blk">
    >()
    const threadOnly = Irq.requestThreaded(Nic, 1, { thread: Effect.void })
    expectTypeOf<Effect.Effect.Context<typeof threadOnly>>().toEqualTypeOf<Hardware.Hardware | Bound.Bound<"nic">>()
  })
})

describe("Registration", () => {
  it("is reached with the token; its stats are plain numbers", () => {
    const check = Effect.gen(function*() {
      const irq = yield* Irq.request(Nic, 0, handled)
      const registration = irq.access(yield* Nic.Bound)
      expectTypeOf(registration.stats.handled).toEqualTypeOf<number>()
      expectTypeOf(registration.disabled).toEqualTypeOf<boolean>()
      expectTypeOf(registration.synchronize).toEqualTypeOf<Effect.Effect<void>>()
      expectTypeOf(Irq.disable(registration)).toEqualTypeOf<void>()
      // @ts-expect-error: another driver's token does not reach it
      irq.access(yield* Blk.Bound)
    })
    expectTypeOf(check).toMatchTypeOf<Effect.Effect<void, unknown, unknown>>()
  })
})
