import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Layer, TestClock } from "effect"
import { Core, DeviceError, Driver } from "@devscope/core"
import { Log, resource, tags, withBus } from "./utils.js"

const Edu = Driver.brand("edu")
const Clk = Driver.brand("clk")

/** A probe of `count` resources whose acquisition number `failAt` fails (none if out of range). */
const chain = (log: Log, count: number, failAt: number) => {
  let layer: Layer.Layer<never, string, any> = Layer.empty
  for (let i = 0; i < count; i++) {
    layer = resource(Edu, log, `r${i}`, { failAcquire: i === failAt }).pipe(Layer.provideMerge(layer))
  }
  return layer
}

describe("probe", () => {
  it.effect.prop(
    "failure at any point releases exactly what was acquired, LIFO, and leaves the device unbound",
    [fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 8 })],
    ([count, failAt]) =>
      withBus((bus) =>
        Effect.gen(function*() {
          const log = new Log()
          const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => chain(log, count, failAt) })
          yield* bus.registerDriver(driver)
          const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
          const fails = failAt < count
          const acquired = Math.min(count, failAt)
          const expected = Array.from({ length: acquired }, (_, i) => `acquire r${i}`)
          if (fails) {
            expected.push(`fail r${failAt}`)
            for (let i = acquired - 1; i >= 0; i--) expected.push(`release r${i}`)
            expect(device.state).toBe("unbound")
            expect(device.driver).toBeUndefined()
            const failed = (yield* bus.history).find((e) => e._tag === "ProbeFailed")
            expect(failed?._tag === "ProbeFailed" && Cause.squash(failed.cause)).toBe(`acquire r${failAt} failed`)
          } else {
            expect(device.state).toBe("bound")
          }
          expect(log.entries).toEqual(expected)
          // Manual bind reports the failure as a typed error, and again releases everything.
          if (fails) {
            log.entries.length = 0
            const error = yield* Effect.flip(bus.bind(device))
            expect(error._tag).toBe("ProbeFailed")
            expect(log.count(`fail r${failAt}`)).toBe(1)
            for (let i = 0; i < acquired; i++) expect(log.count(`release r${i}`)).toBe(1)
          }
        })
      )
  )

  it.effect("a probe that dies (throws) is a ProbeFailed too, with what it acquired released", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.sync(() => {
              throw new Error("bug in probe")
            })).pipe(Layer.provideMerge(resource(Edu, log, "a")))
        })
        yield* bus.registerDriver(driver)
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(device.state).toBe("unbound")
        const error = yield* Effect.flip(bus.bind(device))
        expect(error._tag).toBe("ProbeFailed")
        expect(error._tag === "ProbeFailed" && Cause.isDie(error.cause)).toBe(true)
        expect(log.entries).toEqual(["acquire a", "release a", "acquire a", "release a"])
      })
    ))

  it.effect("interrupting the binder during probe releases what was acquired and leaves the device unbound", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.zipRight(log.push("probe waiting"), Effect.never)).pipe(
              Layer.provideMerge(resource(Edu, log, "b")),
              Layer.provideMerge(resource(Edu, log, "a"))
            )
        })
        yield* bus.registerDriver(driver)
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const binder = yield* Effect.fork(bus.bind(device))
        yield* TestClock.adjust("1 second")
        expect(device.state).toBe("probing")
        const exit = yield* Fiber.interrupt(binder)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(log.entries).toEqual(["acquire a", "acquire b", "probe waiting", "release b", "release a"])
        expect(device.state).toBe("unbound")
        const unbound = (yield* bus.history).filter((e) => e._tag === "Unbound")
        expect(unbound.map((e) => e._tag === "Unbound" && e.cause)).toEqual(["probe-failure"])
      })
    , { autoBind: false }))

  it.effect("ProbeDefer queues the device; it is retried after another driver binds", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let clockReady = false
        const consumer = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: Effect.suspend(() =>
            clockReady
              ? Effect.succeed(Layer.empty)
              : Effect.fail(new DeviceError.ProbeDefer({ reason: "clock not bound" }))
          )
        })
        const supplier = Driver.make(Clk, {
          match: [{ compatible: "acme,clk" }],
          probe: () => Layer.effectDiscard(Effect.sync(() => (clockReady = true)))
        })
        yield* bus.registerDriver(consumer)
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(device.state).toBe("deferred")
        const error = yield* Effect.flip(bus.bind(device))
        expect(error).toEqual(new DeviceError.ProbeDeferred({ device: "edu0", driver: "edu", reason: "clock not bound" }))
        expect(device.state).toBe("deferred")
        yield* bus.registerDriver(supplier)
        yield* bus.addDevice({ name: "clk0", ids: { compatible: ["acme,clk"] } })
        expect(device.state).toBe("bound")
        const history = yield* bus.history
        expect(tags(history).filter((t) => t === "ProbeDeferred")).toHaveLength(2)
        const boundAt = (name: string) =>
          history.findIndex((e) => e._tag === "Bound" && e.device.name === name)
        expect(boundAt("clk0")).toBeGreaterThan(-1)
        expect(boundAt("edu0")).toBeGreaterThan(boundAt("clk0"))
      })
    ))

  it.effect("deferred devices chain: A waits for B, B waits for C; binding C binds both", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const ready = new Set<string>()
        const needs = (name: string, supplier: string | undefined) => {
          const brand = Driver.brand(name as "x")
          return Driver.make(brand, {
            match: [{ role: name }],
            probe: Effect.suspend(() =>
              supplier === undefined || ready.has(supplier)
                ? Effect.succeed(Layer.effectDiscard(Effect.sync(() => ready.add(name))))
                : Effect.fail(new DeviceError.ProbeDefer({ reason: `needs ${supplier}` }))
            )
          })
        }
        yield* bus.registerDriver(needs("a", "b"))
        yield* bus.registerDriver(needs("b", "c"))
        const a = yield* bus.addDevice({ name: "a0", ids: { role: "a" } })
        const b = yield* bus.addDevice({ name: "b0", ids: { role: "b" } })
        expect([a.state, b.state]).toEqual(["deferred", "deferred"])
        yield* bus.registerDriver(needs("c", undefined))
        yield* bus.addDevice({ name: "c0", ids: { role: "c" } })
        expect([a.state, b.state]).toEqual(["bound", "bound"])
      })
    ))

  it.effect("probe and remove hold the Core token; it is not held afterwards", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let captured: Core.Core<"edu"> | undefined
        const held: Array<boolean> = []
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.map(Edu.Core, (core) => {
              Core.assertHeld(core)
              held.push(Core.isHeld(core))
              captured = core
            })),
          remove: () => Effect.map(Edu.Core, (core) => held.push(Core.isHeld(core)))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(Core.isHeld(captured!)).toBe(false)
        const misuse = yield* Effect.exit(Effect.sync(() => Core.assertHeld(captured!)))
        expect(misuse).toEqual(Exit.die(new DeviceError.CoreNotHeld({ device: "edu0", driver: "edu" })))
        yield* bus.unbind("edu0")
        expect(held).toEqual([true, true])
      })
    ))

  it.effect("the driver's environment is captured at registration and provided to probe", () =>
    Effect.gen(function*() {
      class Config extends Effect.Tag("test/Config")<Config, { readonly ringSize: number }>() {}
      const seen: Array<number> = []
      const driver = Driver.make(Edu, {
        match: [{ vendor: 1 }],
        probe: () => Layer.effectDiscard(Effect.map(Config, (c) => seen.push(c.ringSize)))
      })
      yield* withBus((bus) =>
        Effect.gen(function*() {
          yield* bus.registerDriver(driver).pipe(Effect.provideService(Config, { ringSize: 256 }))
          yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        })
      )
      expect(seen).toEqual([256])
    }))
})

