import { Context, Data, Effect } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import { type Bound, type DeviceError, Devres, Driver } from "@devscope/core"
import * as Registration from "@devscope/core/Registration"

const Chr = Driver.brand("chr")
const Nic = Driver.brand("nic")

class Busy extends Data.TaggedError("Busy")<{}> {}
class NoSpace extends Data.TaggedError("NoSpace")<{}> {}
class Clock extends Context.Tag("test/Clock")<Clock, { readonly now: number }>() {}

declare const fifo: Devres.Devres<Array<number>, "chr">

const registerChr = Registration.register(Chr, {
  name: "chr0",
  open: (token) => {
    expectTypeOf(token).toEqualTypeOf<Bound.Bound<"chr">>()
    return Effect.succeed({ reads: 0, owner: token.device.name })
  },
  destroy: (state, token) => {
    // The state type flows from `open`.
    expectTypeOf(state).toEqualTypeOf<{ reads: number; owner: string }>()
    return Effect.sync(() => void fifo.access(token))
  },
  ops: {
    read: (state, max: number, token) => {
      expectTypeOf(state).toEqualTypeOf<{ reads: number; owner: string }>()
      state.reads++
      return Effect.succeed(fifo.access(token).slice(0, max))
    },
    write: (_state, bytes: ReadonlyArray<number>, token) =>
      fifo.access(token).length > 100 ? Effect.fail(new NoSpace()) : Effect.sync(() => fifo.access(token).push(...bytes)),
    stamp: (_state, _: void) => Effect.map(Clock, (clock) => clock.now),
    reset: (state) => Effect.sync(() => (state.reads = 0)).pipe(Effect.asVoid)
  }
})

type Reg = Effect.Effect.Success<typeof registerChr>
declare const registration: Reg
declare const handle: Effect.Effect.Success<ReturnType<Reg["open"]>>

describe("Registration", () => {
  it("register needs the Bound token and what the callbacks need, and nothing more", () => {
    expectTypeOf<Effect.Effect.Context<typeof registerChr>>().toEqualTypeOf<Bound.Bound<"chr"> | Clock>()
    expectTypeOf<Effect.Effect.Error<typeof registerChr>>().toEqualTypeOf<never>()
  })

  it("the user-facing methods do not require the Bound token (nor anything else)", () => {
    expectTypeOf<Effect.Effect.Context<ReturnType<Reg["open"]>>>().toEqualTypeOf<never>()
    expectTypeOf<Effect.Effect.Context<ReturnType<typeof handle.call<"read">>>>().toEqualTypeOf<never>()
    const read = handle.call("read", 4)
    expectTypeOf<Effect.Effect.Context<typeof read>>().toEqualTypeOf<never>()
    expectTypeOf<Effect.Effect.Context<ReturnType<typeof handle.close>>>().toEqualTypeOf<never>()
    // The op needs `Clock`, captured at registration: the call does not.
    expectTypeOf<Effect.Effect.Context<ReturnType<typeof handle.call<"stamp">>>>().toEqualTypeOf<never>()
    expectTypeOf<Effect.Effect.Context<ReturnType<typeof Registration.unregister<"chr", any, never>>>>()
      .toEqualTypeOf<never>()
    // Runs without providing anything.
    Effect.runFork(Effect.flatMap(registration.open(), (h) => h.call("read", 1)))
  })

  it("open can fail with DeviceGone and the open callback's error", () => {
    const withBusy = Registration.register(Chr, {
      name: "busy",
      open: () => Effect.fail(new Busy()) as Effect.Effect<number, Busy>,
      destroy: () => Effect.void,
      ops: { get: (n) => Effect.succeed(n) }
    })
    type R = Effect.Effect.Success<typeof withBusy>
    expectTypeOf<Effect.Effect.Error<ReturnType<R["open"]>>>().toEqualTypeOf<Busy | DeviceError.DeviceGone>()
    expectTypeOf<Effect.Effect.Error<ReturnType<Reg["open"]>>>().toEqualTypeOf<DeviceError.DeviceGone>()
  })

  it("calls are typed per operation: argument, result and error", () => {
    expectTypeOf(handle.call("read", 4)).toEqualTypeOf<
      Effect.Effect<Array<number>, DeviceError.DeviceGone | Registration.HandleClosed>
    >()
    expectTypeOf(handle.call("write", [1, 2])).toEqualTypeOf<
      Effect.Effect<number, NoSpace | DeviceError.DeviceGone | Registration.HandleClosed>
    >()
    expectTypeOf(handle.call("stamp")).toEqualTypeOf<
      Effect.Effect<number, DeviceError.DeviceGone | Registration.HandleClosed>
    >()
    expectTypeOf(handle.call("reset")).toEqualTypeOf<
      Effect.Effect<void, DeviceError.DeviceGone | Registration.HandleClosed>
    >()
    expectTypeOf(handle.close()).toEqualTypeOf<Effect.Effect<void>>()
  })

  it("an operation that does not exist does not compile", () => {
    // @ts-expect-error: no such operation
    handle.call("ioctl", 4)
    // @ts-expect-error: no such operation (case matters)
    handle.call("Read", 4)
  })

  it("a wrong or missing argument does not compile", () => {
    // @ts-expect-error: read takes a number
    handle.call("read", "4")
    // @ts-expect-error: read needs its argument
    handle.call("read")
    // @ts-expect-error: write takes an array of numbers
    handle.call("write", 1)
    // @ts-expect-error: stamp takes no argument
    handle.call("stamp", 1)
  })

  it("an operation's state parameter is checked against the state made by open", () => {
    Registration.register(Chr, {
      name: "bad",
      open: () => Effect.succeed({ reads: 0 }),
      destroy: () => Effect.void,
      ops: {
        // @ts-expect-error: the state has no `writes`
        bad: (state: { writes: number }) => Effect.succeed(state.writes)
      }
    })
  })

  it("the registration, its gate and the ops' tokens are branded by the driver", () => {
    expectTypeOf(registration.gate.name).toEqualTypeOf<string>()
    expectTypeOf<Reg>().not.toMatchTypeOf<Registration.Registration<"nic", any, never>>()
    Registration.register(Nic, {
      name: "nic",
      open: () => Effect.succeed(0),
      destroy: () => Effect.void,
      ops: {
        // @ts-expect-error: a chr Devres needs a chr token, this op gets a nic one
        peek: (_state, _: void, token) => Effect.sync(() => fifo.access(token))
      }
    })
    Registration.register(Nic, { name: "x", open: () => Effect.succeed(0), destroy: () => Effect.void, ops: {} }, {
      // @ts-expect-error: another driver's gate does not type-check
      gate: registration.gate
    })
  })

  it("openScoped needs a Scope and nothing else", () => {
    const scoped = Registration.openScoped(registration)
    expectTypeOf<Effect.Effect.Context<typeof scoped>>().toEqualTypeOf<import("effect/Scope").Scope>()
  })
})
