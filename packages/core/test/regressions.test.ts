import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { Bound, Bus, Devres, Driver, Gate } from "@devscope/core"
import { Log, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

describe("regressions found in review", () => {
  it.effect("interrupting the unbind caller while step 4a waits for a slow-stopping fiber does not stop the unbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              yield* Devres.acquireRelease(Edu, Effect.void, () => log.push("release r"), { label: "r" })
              const bound = yield* Edu.Bound
              yield* Bound.fork(bound, Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("1 second"))))
            }))
        })
        yield* bus.registerDriver(driver)
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.yieldNow()
        const unbinder = yield* Effect.fork(bus.unbind(device))
        yield* TestClock.adjust("100 millis")
        // The interrupt waits for the (uninterruptible) unbind, which needs the clock to move.
        const interrupter = yield* Effect.fork(Fiber.interrupt(unbinder))
        yield* TestClock.adjust("10 seconds")
        const exit = yield* Fiber.join(interrupter)
        expect(Exit.isInterrupted(exit) || Exit.isSuccess(exit)).toBe(true)
        expect(device.state).toBe("unbound")
        expect(log.entries).toEqual(["release r"])
        expect((yield* bus.history).map((e) => e._tag).slice(-2)).toEqual(["Unbinding", "Unbound"])
      })
    ))

  it.effect("an interrupted Gate.close still completes, so the later unbind does not hang", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let gate: Gate.Gate<"edu"> | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.map(Gate.make(Edu, { name: "g" }), (g) => void (gate = g)))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const section = yield* Effect.fork(gate!.enter(() => Effect.sleep("200 millis")))
        yield* TestClock.adjust("1 millis")
        const closer = yield* Effect.fork(Gate.close(gate!))
        yield* TestClock.adjust("1 millis")
        const interrupter = yield* Effect.fork(Fiber.interrupt(closer))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(interrupter)
        yield* Fiber.join(section)
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* TestClock.adjust("60 seconds")
        expect(unbinding.unsafePoll()).not.toBeNull()
      })
    ))

  it.effect("Gate.enter with a throwing callback leaves the section, and no unrelated work is interrupted", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let gate: Gate.Gate<"edu"> | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.map(Gate.make(Edu, { name: "g" }), (g) => void (gate = g)))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const bystander = yield* Effect.fork(Effect.gen(function*() {
          yield* Effect.exit(gate!.enter((): Effect.Effect<void> => {
            throw new Error("boom")
          }))
          yield* Effect.sleep("1 hour") // unrelated later work of the same fiber
          return "finished"
        }))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* TestClock.adjust("20 seconds")
        const report = yield* Fiber.join(unbinding)
        expect(gate!.inFlight).toBe(0)
        expect(report.gates[0]).toMatchObject({ awaited: 0, interrupted: [], stuck: 0 })
        expect(bystander.unsafePoll()).toBeNull()
      })
    ))

  it.effect("bus shutdown while a probe is in flight and then fails still unbinds every other device", () =>
    Effect.gen(function*() {
      const log = new Log()
      const Other = Driver.brand("other")
      const result = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const bus = yield* Bus.make({ autoBind: false })
        const slow = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.zipRight(Effect.sleep("1 second"), Effect.fail("probe failed")))
        })
        const ok = Driver.make(Other, {
          match: [{ vendor: 2 }],
          probe: () => Layer.effectDiscard(Devres.acquireRelease(Other, Effect.void, () => log.push("release other"), { label: "o" }))
        })
        yield* bus.registerDriver(slow)
        yield* bus.registerDriver(ok)
        yield* bus.addDevice({ name: "a", ids: { vendor: 1 } })
        yield* bus.addDevice({ name: "b", ids: { vendor: 2 } })
        yield* bus.bind("b")
        yield* Effect.forkDaemon(Effect.exit(bus.bind("a")))
        yield* TestClock.adjust("10 millis")
        // scope closes now; shutdown finalizer runs
        yield* Effect.forkDaemon(TestClock.adjust("2 seconds"))
      })))
      expect(Exit.isSuccess(result)).toBe(true)
      expect(log.entries).toEqual(["release other"])
    }))

  it.effect("an interrupted Devres.release still runs to its end, once", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let res: Devres.Devres<number, "edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.map(
              Devres.acquireRelease(
                Edu,
                Effect.succeed(1),
                () => Effect.zipRight(Effect.sleep("1 second"), log.push("released")),
                { label: "r" }
              ),
              (d) => void (res = d)
            ))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const releaser = yield* Effect.fork(Devres.release(res!))
        yield* TestClock.adjust("10 millis")
        const interrupter = yield* Effect.fork(Fiber.interrupt(releaser))
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(interrupter)
        expect(log.entries).toEqual(["released"])
        const report = yield* bus.unbind("edu0")
        expect(report.released).toEqual([])
        expect(report.releasedEarly).toBe(1)
        expect(log.entries).toEqual(["released"])
      })
    ))

  it.effect("a section that closes its own gate does not wait for itself", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let gate: Gate.Gate<"edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.map(Gate.make(Edu, { name: "g" }), (g) => void (gate = g)))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const report = yield* gate!.enter(() => Gate.close(gate!))
        expect(report).toMatchObject({ awaited: 1, interrupted: [], stuck: 0, durationMillis: 0 })
        expect(gate!.isOpen).toBe(false)
        expect(gate!.inFlight).toBe(0)
      })
    ))
})
