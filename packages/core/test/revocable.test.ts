import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, TestClock } from "effect"
import { Revocable } from "@devscope/core"

describe("Revocable", () => {
  it.effect("tryAccess gives the value until revoke, then None; release runs once", () =>
    Effect.gen(function*() {
      const released: Array<number> = []
      const r = yield* Revocable.make(42, { label: "answer", release: (n) => Effect.sync(() => released.push(n)) })
      expect(r.tryAccess()).toEqual(Option.some(42))
      expect(yield* r.revoke).toBe(true)
      expect(r.tryAccess()).toEqual(Option.none())
      expect(r.isRevoked).toBe(true)
      expect(yield* r.revoke).toBe(false)
      expect(released).toEqual([42])
      const error = yield* Effect.flip(r.use((n) => Effect.succeed(n)))
      expect(error).toEqual(new Revocable.Revoked({ label: "answer" }))
    }))

  it.effect("revoke stops new accesses at once and waits exactly for the sections that started before it", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const r = yield* Revocable.make("tenant", { release: () => Effect.sync(() => log.push("released")) })
      const section = (name: string, ms: number) =>
        r.use((v) =>
          Effect.sleep(`${ms} millis`).pipe(Effect.zipRight(Effect.sync(() => log.push(`${name} done with ${v}`))))
        )
      const slow = yield* Effect.fork(section("slow", 100))
      const fast = yield* Effect.fork(section("fast", 10))
      yield* TestClock.adjust("1 millis")
      expect(r.readers).toBe(2)
      const revoker = yield* Effect.fork(r.revoke)
      yield* TestClock.adjust("1 millis")
      // New entries fail at once, while older sections are still running.
      const late = yield* Effect.flip(section("late", 1))
      expect(late._tag).toBe("Revoked")
      expect(Option.isNone(r.tryAccess())).toBe(true)
      yield* TestClock.adjust("20 millis")
      expect(log).toEqual(["fast done with tenant"])
      expect(revoker.unsafePoll()).toBeNull()
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(revoker)).toBe(true)
      expect(log).toEqual(["fast done with tenant", "slow done with tenant", "released"])
      yield* Fiber.join(slow)
      yield* Fiber.join(fast)
      expect(r.readers).toBe(0)
    }))

  it.effect("concurrent revokes all wait for the release; only one revokes", () =>
    Effect.gen(function*() {
      let releases = 0
      const r = yield* Revocable.make(1, {
        release: () => Effect.zipRight(Effect.sleep("5 millis"), Effect.sync(() => releases++))
      })
      const reader = yield* Effect.fork(r.use(() => Effect.sleep("10 millis")))
      yield* TestClock.adjust("1 millis")
      const revokers = yield* Effect.fork(Effect.all([r.revoke, r.revoke, r.revoke], { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 millis")
      expect(revokers.unsafePoll()).toBeNull()
      yield* TestClock.adjust("20 millis")
      const results = yield* Fiber.join(revokers)
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(releases).toBe(1)
      yield* Fiber.join(reader)
    }))

  it.effect("an interrupted section still leaves the gate, so revoke does not hang", () =>
    Effect.gen(function*() {
      const r = yield* Revocable.make(1)
      const reader = yield* Effect.fork(r.use(() => Effect.never))
      yield* TestClock.adjust("1 millis")
      expect(r.readers).toBe(1)
      yield* Fiber.interrupt(reader)
      expect(r.readers).toBe(0)
      expect(yield* r.revoke).toBe(true)
    }))

  it("unsafeMake works outside Effect", () => {
    const r = Revocable.unsafeMake({ id: 7 })
    expect(Option.getOrThrow(r.tryAccess()).id).toBe(7)
  })
})
