/** The bus's per-device lock: FIFO, interruptible waits, release on every exit. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { DeviceLock } from "../src/internal/lock.js"

describe("DeviceLock", () => {
  it.effect("serialises holders in arrival order", () =>
    Effect.gen(function*() {
      const lock = new DeviceLock()
      const log: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const holder = (name: string, wait?: Deferred.Deferred<void>) =>
        lock.withLock(Effect.gen(function*() {
          log.push(`${name} in`)
          if (wait !== undefined) yield* Deferred.await(wait)
          yield* Effect.yieldNow()
          log.push(`${name} out`)
        }))
      const a = yield* Effect.fork(holder("a", gate))
      yield* Effect.yieldNow()
      const others = yield* Effect.forEach(["b", "c", "d"], (n) => Effect.fork(holder(n)))
      yield* Effect.yieldNow()
      expect(log).toEqual(["a in"])
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(a)
      yield* Fiber.joinAll(others)
      expect(log).toEqual(["a in", "a out", "b in", "b out", "c in", "c out", "d in", "d out"])
    }))

  it.effect("a failure, a defect or an interruption of the holder releases the lock", () =>
    Effect.gen(function*() {
      const lock = new DeviceLock()
      expect(Exit.isFailure(yield* Effect.exit(lock.withLock(Effect.fail("no"))))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(lock.withLock(Effect.die("boom"))))).toBe(true)
      const stuck = yield* Effect.fork(lock.withLock(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(stuck)
      expect(yield* lock.withLock(Effect.succeed(42))).toBe(42)
    }))

  it.effect("an interrupted waiter leaves the queue; one interrupted as it is handed the lock passes it on", () =>
    Effect.gen(function*() {
      const lock = new DeviceLock()
      const release = yield* Deferred.make<void>()
      const log: Array<string> = []
      const holder = yield* Effect.fork(lock.withLock(Deferred.await(release)))
      yield* Effect.yieldNow()
      const gone = yield* Effect.fork(lock.withLock(Effect.sync(() => log.push("gone ran"))))
      const racer = yield* Effect.fork(lock.withLock(Effect.sync(() => log.push("racer ran"))))
      const last = yield* Effect.fork(lock.withLock(Effect.sync(() => log.push("last ran"))))
      yield* Effect.yieldNow()
      // A plain waiter interrupted while it waits.
      yield* Fiber.interrupt(gone)
      // The holder leaves and hands the lock to `racer`, which is interrupted in the same turn.
      yield* Deferred.succeed(release, void 0)
      yield* Fiber.interruptFork(racer)
      yield* Fiber.join(holder)
      yield* Fiber.await(racer)
      yield* Fiber.join(last)
      expect(log).toEqual(["last ran"])
      // Nothing is left holding it.
      expect(yield* lock.withLock(Effect.succeed("free"))).toBe("free")
    }))
})
