import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { Bound, Devres, Driver } from "@devscope/core"
import { Log, resource, tags, waitFor, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

/** A fiber that logs when it is interrupted, after yielding so the stop is observable. */
const worker = (log: Log, name: string) =>
  Effect.never.pipe(Effect.onInterrupt(() => Effect.zipRight(Effect.yieldNow(), log.push(`stop ${name}`))))

describe("unbind contract", () => {
  it.effect("interrupts and awaits every binding fiber before releasing any resource, then releases LIFO", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        // A fiber started in the first layer, before resource "b" exists: plain scope LIFO
        // would release "b" before interrupting it. The contract says fibers go first.
        const early = Layer.scopedDiscard(Effect.forkScoped(worker(log, "scoped")))
        const fibers = Layer.effectDiscard(Effect.gen(function*() {
          const bound = yield* Edu.Bound
          yield* Bound.fork(bound, worker(log, "bound-fork"))
          yield* Effect.forkDaemon(worker(log, "daemon"))
          yield* Effect.fork(worker(log, "child-of-layer-fiber"))
        }))
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            fibers.pipe(
              Layer.provideMerge(resource(Edu, log, "c")),
              Layer.provideMerge(resource(Edu, log, "b")),
              Layer.provideMerge(early),
              Layer.provideMerge(resource(Edu, log, "a"))
            )
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.yieldNow()
        log.entries.length = 0
        const report = yield* bus.unbind("edu0")
        const firstRelease = log.entries.findIndex((e) => e.startsWith("release"))
        const stops = log.entries.slice(0, firstRelease)
        expect(stops.sort()).toEqual(["stop bound-fork", "stop child-of-layer-fiber", "stop daemon", "stop scoped"])
        expect(log.entries.slice(firstRelease)).toEqual(["release c", "release b", "release a"])
        expect(report.released).toEqual(["c", "b", "a"])
        expect(report.fibersInterrupted).toBe(4)
        expect(report.leaks).toEqual([])
      })
    ))

  it.effect("a failing release does not stop the others, and all failures are reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            resource(Edu, log, "d", { failRelease: true }).pipe(
              Layer.provideMerge(resource(Edu, log, "c")),
              Layer.provideMerge(resource(Edu, log, "b", { failRelease: true })),
              Layer.provideMerge(resource(Edu, log, "a"))
            )
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const report = yield* bus.unbind("edu0")
        expect(log.entries.filter((e) => e.startsWith("release"))).toEqual([
          "release d", "release c", "release b", "release a"
        ])
        expect(report.released).toEqual(["c", "a"])
        expect(report.releaseFailures.map((f) => f.resource)).toEqual(["d", "b"])
        expect(report.releaseFailures.map((f) => Cause.squash(f.cause))).toEqual([
          "release d failed", "release b failed"
        ])
        const unbound = (yield* bus.history).find((e) => e._tag === "Unbound")
        expect(unbound?._tag === "Unbound" && unbound.report.releaseFailures.length).toBe(2)
      })
    ))

  it.effect("a failing layer finalizer is reported too", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.scopedDiscard(Effect.addFinalizer(() => Effect.die("finalizer broke")))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const report = yield* bus.unbind("edu0")
        expect(report.releaseFailures.map((f) => f.resource)).toEqual(["layer finalizer"])
      })
    ))

  it.effect("remove runs first, with full access and the Core token; its failure does not stop the unbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => resource(Edu, log, "regs"),
          remove: () =>
            Effect.gen(function*() {
              const core = yield* Edu.Core
              const bound = yield* Edu.Bound
              yield* log.push(`remove live=${Bound.isLive(bound)} core=${core.device.name}`)
              return yield* Effect.fail("remove failed")
            })
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const report = yield* bus.unbind("edu0")
        expect(log.entries).toEqual(["acquire regs", "remove live=true core=edu0", "release regs"])
        expect(report.removeFailure && Cause.squash(report.removeFailure)).toBe("remove failed")
        expect(report.released).toEqual(["regs"])
      })
    ))

  it.effect("interrupting the fiber that calls unbind does not leave a half-released binding", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const slow = (name: string) =>
          Layer.effectDiscard(Devres.acquireRelease(
            Edu,
            log.push(`acquire ${name}`),
            () => Effect.zipRight(Effect.sleep("1 second"), log.push(`release ${name}`)),
            { label: name }
          ))
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => slow("c").pipe(Layer.provideMerge(slow("b")), Layer.provideMerge(slow("a")))
        })
        yield* bus.registerDriver(driver)
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinder = yield* Effect.fork(bus.unbind(device))
        yield* TestClock.adjust("1500 millis")
        expect(log.entries).toEqual(["acquire a", "acquire b", "acquire c", "release c"])
        const interrupter = yield* Effect.fork(Fiber.interrupt(unbinder))
        yield* TestClock.adjust("5 seconds")
        const exit = yield* Fiber.join(interrupter)
        expect(log.entries.slice(3)).toEqual(["release c", "release b", "release a"])
        expect(device.state).toBe("unbound")
        // The unbind finished before the interruption took effect.
        expect(Exit.isSuccess(exit) || Exit.isInterrupted(exit)).toBe(true)
        expect(tags(yield* bus.history).slice(-2)).toEqual(["Unbinding", "Unbound"])
        // The device can be bound and unbound again: nothing was left half-released.
        yield* bus.bind(device)
        expect(device.state).toBe("bound")
        const again = yield* Effect.fork(bus.unbind(device))
        yield* TestClock.adjust("3 seconds")
        expect((yield* Fiber.join(again)).released).toEqual(["c", "b", "a"])
      })
    ))

  it.effect("unbind after hot-unplug and surprise removal records the cause; the device is gone", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => resource(Edu, log, "r") })
        yield* bus.registerDriver(driver)
        const a = yield* bus.addDevice({ name: "a", ids: { vendor: 1 } })
        const b = yield* bus.addDevice({ name: "b", ids: { vendor: 1 } })
        const ra = yield* bus.removeDevice(a)
        const rb = yield* bus.removeDevice(b, { cause: "surprise" })
        expect([ra?.cause, rb?.cause]).toEqual(["hot-unplug", "surprise"])
        expect([a.state, b.state]).toEqual(["removed", "removed"])
        expect(log.count("release r")).toBe(2)
        expect(yield* bus.devices).toEqual([])
        // Re-plug under the same name is a new device.
        const again = yield* bus.addDevice({ name: "a", ids: { vendor: 1 } })
        expect(again).not.toBe(a)
        expect(again.state).toBe("bound")
      })
    ))

  it.effect("a binding fiber may unbind its own device: the unbind completes, then that fiber is interrupted", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Edu.Bound
              yield* Bound.fork(
                bound,
                Effect.sleep("1 second").pipe(
                  Effect.zipRight(bus.unbind(bound.device)),
                  Effect.zipRight(log.push("after own unbind")),
                  Effect.onInterrupt(() => log.push("self interrupted"))
                )
              )
            })).pipe(Layer.provideMerge(resource(Edu, log, "r")))
        })
        yield* bus.registerDriver(driver)
        const events = yield* bus.subscribe
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* TestClock.adjust("2 seconds")
        yield* waitFor(events, "Unbound")
        yield* Effect.yieldNow()
        expect(device.state).toBe("unbound")
        // The unbind runs in the fiber that asked for it (uninterruptibly, every wait bounded):
        // that fiber is skipped at step 4a and interrupted once the unbind has ended.
        expect(log.entries).toEqual(["acquire r", "release r", "self interrupted"])
        expect(yield* bus.leaks).toEqual([])
      })
    ))

  it.effect("closing the bus unbinds every device with cause unload", () =>
    Effect.gen(function*() {
      const log = new Log()
      const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => resource(Edu, log, "r") })
      const events = yield* withBus((bus) =>
        Effect.gen(function*() {
          yield* bus.registerDriver(driver)
          yield* bus.addDevice({ name: "a", ids: { vendor: 1 } })
          yield* bus.addDevice({ name: "b", ids: { vendor: 1 } })
          return bus.history
        })
      )
      expect(log.count("release r")).toBe(2)
      const unbound = (yield* events).filter((e) => e._tag === "Unbound")
      expect(unbound.map((e) => e._tag === "Unbound" && e.cause)).toEqual(["unload", "unload"])
    }))
})
