/**
 * The tag pool on its own: FIFO hand-over, shutdown, interrupted waiters, and the moment
 * between a caller's first look at the pool and its registration as a waiter (a fiber can
 * yield there: `restore` below yields to make that moment happen every time).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber } from "effect"
import { DeviceError } from "@devscope/core"
import { TagPool } from "../src/index.js"

const gone = new DeviceError.DeviceGone({ device: "blk0", driver: "blk", gate: "blk0 request queue" })

/** A `restore` that yields first: other fibers run between the first look and the wait. */
const yielding = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.zipRight(Effect.yieldNow(), Effect.interruptible(effect))

const take = (pool: TagPool, restore: typeof yielding = yielding) => Effect.uninterruptibleMask(() => pool.take(restore))

describe("blk: TagPool", () => {
  it.effect("a tag put back while a caller is between its first look and its wait reaches that caller", () =>
    Effect.gen(function*() {
      let refused = 0
      const pool = new TagPool(1, gone, () => refused++)
      const first = yield* take(pool)
      const waiter = yield* Effect.fork(take(pool)) // looks (none free), then yields
      yield* Effect.yieldNow()
      pool.put(first) // no waiter registered yet: the tag goes back to the free list
      expect(yield* Fiber.join(waiter)).toBe(first)
      expect(refused).toBe(0)
    }))

  it.effect("a shutdown while a caller is between its first look and its wait fails it with DeviceGone, counted once", () =>
    Effect.gen(function*() {
      let refused = 0
      const pool = new TagPool(1, gone, () => refused++)
      yield* take(pool)
      const waiter = yield* Effect.fork(take(pool))
      yield* Effect.yieldNow()
      pool.shutdown()
      expect(yield* Effect.either(Fiber.join(waiter))).toEqual(Either.left(gone))
      expect(refused).toBe(1)
      // Later calls are refused at once, and counted.
      expect(yield* Effect.either(take(pool))).toEqual(Either.left(gone))
      expect(refused).toBe(2)
    }))

  it.effect("waiters are served in order; shutdown fails the ones left; an interrupted waiter gives a handed-over tag back", () =>
    Effect.gen(function*() {
      let refused = 0
      const pool = new TagPool(2, gone, () => refused++)
      const [a, b] = [yield* take(pool, Effect.interruptible), yield* take(pool, Effect.interruptible)]
      const w1 = yield* Effect.fork(take(pool, Effect.interruptible))
      const w2 = yield* Effect.fork(take(pool, Effect.interruptible))
      const w3 = yield* Effect.fork(take(pool, Effect.interruptible))
      yield* Effect.yieldNow()
      pool.put(b)
      expect(yield* Fiber.join(w1)).toBe(b)
      // w2 is handed `a` and interrupted before it runs: the tag goes back (to w3).
      pool.put(a)
      yield* Fiber.interrupt(w2)
      expect(yield* Fiber.join(w3)).toBe(a)
      const w4 = yield* Effect.fork(take(pool, Effect.interruptible))
      yield* Effect.yieldNow()
      pool.shutdown()
      expect(Exit.isFailure(yield* Fiber.await(w4))).toBe(true)
      expect(refused).toBe(1)
    }))
})
