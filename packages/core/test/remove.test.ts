/**
 * Step 3, the driver's `remove`: it runs interruptibly in a fiber of its own, joined
 * uninterruptibly by the unbind. Timeouts inside it fire; an interrupt of the fiber that
 * called unbind does not cut it short.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, TestClock } from "effect"
import { Devres, Driver } from "@devscope/core"
import { Log, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

const withResource = (log: Log) =>
  Layer.effectDiscard(Devres.acquireRelease(Edu, Effect.void, () => log.push("release r"), { label: "r" }))

describe("remove", () => {
  it.effect("a timeout inside remove fires (remove is interruptible in its own fiber), and the unbind finishes", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => withResource(log),
          // Waits for an interrupt from a device that will never raise it, with a timeout.
          remove: () =>
            Effect.flatMap(
              Effect.timeoutOption(Effect.never, "5 millis"),
              (waited) => log.push(Option.isNone(waited) ? "remove: timed out" : "remove: done")
            )
        }))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinder = yield* Effect.fork(bus.unbind(device))
        yield* TestClock.adjust("5 millis")
        const report = yield* Fiber.join(unbinder)
        expect(log.entries).toEqual(["remove: timed out", "release r"])
        expect(report.removeFailure).toBeUndefined()
        expect(report.released).toEqual(["r"])
        expect(device.state).toBe("unbound")
      })
    ))

  it.effect("interrupting the fiber that called unbind while remove sleeps does not stop remove", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => withResource(log),
          remove: () =>
            log.push("remove: start").pipe(
              Effect.zipRight(Effect.sleep("1 second")),
              Effect.zipRight(log.push("remove: done")),
              Effect.onInterrupt(() => log.push("remove: interrupted"))
            )
        }))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinder = yield* Effect.fork(bus.unbind(device))
        yield* TestClock.adjust("10 millis")
        expect(log.entries).toEqual(["remove: start"])
        // The interrupt waits for the end of the (uninterruptible) unbind.
        const interrupter = yield* Effect.fork(Fiber.interrupt(unbinder))
        yield* TestClock.adjust("10 millis")
        expect(log.entries).toEqual(["remove: start"])
        yield* TestClock.adjust("1 second")
        const exit = yield* Fiber.join(interrupter)
        expect(Exit.isInterrupted(exit) || Exit.isSuccess(exit)).toBe(true)
        // remove ran to its end, and the resource was released after it.
        expect(log.entries).toEqual(["remove: start", "remove: done", "release r"])
        expect(device.state).toBe("unbound")
        const unbound = (yield* bus.history).filter((e) => e._tag === "Unbound")
        expect(unbound).toHaveLength(1)
        expect(unbound[0]!._tag === "Unbound" && unbound[0]!.report.removeFailure).toBeUndefined()
      })
    ))

  it.effect("fibers forked by remove are binding fibers: the unbind stops them", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => withResource(log),
          // The yield lets the fiber start (and install its interrupt handler) before remove ends.
          remove: () =>
            Effect.zipRight(
              Effect.forkDaemon(Effect.onInterrupt(Effect.never, () => log.push("stopped"))),
              Effect.yieldNow()
            )
        }))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const report = yield* bus.unbind(device)
        expect(report.fibersInterrupted).toBe(1)
        expect(report.leaks).toEqual([])
        expect(log.entries).toEqual(["stopped", "release r"])
      })
    ))
})
