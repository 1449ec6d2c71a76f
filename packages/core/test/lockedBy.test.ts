import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option, TestClock } from "effect"
import * as LockedBy from "@devscope/core/LockedBy"

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

/** A later `with` on the lock completes at once (fails fast instead of hanging if the lock leaked). */
const expectFree = (lock: LockedBy.Lock<any>) =>
  Effect.gen(function*() {
    const later = yield* Effect.fork(lock.with(() => Effect.succeed("proceeds")))
    yield* TestClock.adjust("1 millis")
    expect(later.unsafePoll()).toEqual(Exit.succeed("proceeds"))
  })

describe("LockedBy", () => {
  it.effect("mutual exclusion: concurrent increments with sleeps inside are exact, one holder at a time", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("counter")
      const counter = LockedBy.make(lock, 0)
      let inside = 0
      let maxInside = 0
      const increment = lock.with((held) =>
        Effect.gen(function*() {
          inside++
          maxInside = Math.max(maxInside, inside)
          const before = counter.access(held)
          yield* Effect.sleep("10 millis") // a yield in the middle of read-modify-write
          counter.set(held, before + 1)
          inside--
        })
      )
      const fibers = yield* Effect.fork(Effect.all(Array.from({ length: 25 }, () => increment), { concurrency: 25 }))
      yield* TestClock.adjust("1 millis")
      expect(lock.isHeld).toBe(true)
      expect(inside).toBe(1)
      yield* TestClock.adjust("100 millis")
      expect(fibers.unsafePoll()).toBeNull() // 25 sections of 10ms each take 250ms when serialised
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(fibers)
      expect(maxInside).toBe(1)
      expect(lock.isHeld).toBe(false)
      expect(yield* lock.with((held) => Effect.sync(() => counter.access(held)))).toBe(25)
    }))

  it.effect("access returns the value itself; set and update replace it", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("dir")
      const node = { bytes: 10 }
      const file = LockedBy.make(lock, node, { label: "a.txt" })
      const result = yield* lock.with((held) =>
        Effect.sync(() => {
          expect(held.lock).toBe(lock)
          expect(held.live).toBe(true)
          expect(file.access(held)).toBe(node)
          file.set(held, { bytes: 20 })
          return file.update(held, (f) => ({ bytes: f.bytes + 1 }))
        })
      )
      expect(result).toEqual({ bytes: 21 })
      expect(yield* lock.with((held) => Effect.sync(() => file.access(held)))).toBe(result)
      expect(file.lock).toBe(lock)
      expect(file.label).toBe("a.txt")
    }))

  it.effect("a proof is unusable once its `with` has ended: LockNotHeld", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("tree")
      const node = LockedBy.make(lock, "leaf", { label: "leaf" })
      const leaked = yield* lock.with((held) => Effect.succeed(held))
      expect(leaked.live).toBe(false)
      const exit = yield* Effect.exit(Effect.sync(() => node.access(leaked)))
      const defect = defectOf(exit)
      expect(defect).toBeInstanceOf(LockedBy.LockNotHeld)
      expect(defect).toMatchObject({ _tag: "LockNotHeld", lock: lock.label, value: "\"leaf\"" })
      expect(() => node.set(leaked, "other")).toThrow(LockedBy.LockNotHeld)
      expect(() => node.update(leaked, (s) => s + "!")).toThrow(LockedBy.LockNotHeld)
      // Still stale while another section holds the lock: each `with` makes a fresh proof.
      const again = yield* lock.with((held) =>
        Effect.sync(() => {
          expect(() => node.access(leaked)).toThrow(LockedBy.LockNotHeld)
          return node.access(held)
        })
      )
      expect(again).toBe("leaf")
    }))

  it.effect("a proof of another lock instance with the same name: WrongLock naming both", () =>
    Effect.gen(function*() {
      const a = yield* LockedBy.lock("tree")
      const b = yield* LockedBy.lock("tree")
      expect(a.label).not.toBe(b.label)
      const node = LockedBy.make(a, 1)
      const exit = yield* Effect.exit(b.with((held) => Effect.sync(() => node.access(held))))
      const defect = defectOf(exit)
      expect(defect).toBeInstanceOf(LockedBy.WrongLock)
      expect(defect).toMatchObject({ _tag: "WrongLock", expected: a.label })
      expect((defect as LockedBy.WrongLock).actual).toContain(b.label)
      expect((defect as LockedBy.WrongLock).message).toContain(a.label)
      expect((defect as LockedBy.WrongLock).message).toContain(b.label)
      // Holding both does not help: the proof must be of the value's own lock.
      const ok = yield* a.with(() =>
        b.with((heldB) =>
          Effect.sync(() => {
            expect(() => node.set(heldB, 2)).toThrow(LockedBy.WrongLock)
            return "checked"
          })
        )
      )
      expect(ok).toBe("checked")
      // Something that is not a proof at all.
      expect(() => node.access({ lock: a, live: true } as any)).toThrow(LockedBy.WrongLock)
    }))

  it.effect("re-entrant `with` from the holding fiber dies with RecursiveLocking instead of deadlocking", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("tree")
      const nested = yield* Effect.fork(Effect.exit(lock.with(() => lock.with(() => Effect.succeed("never")))))
      yield* TestClock.adjust("1 millis")
      const done = nested.unsafePoll()
      expect(done).not.toBeNull()
      const defect = defectOf(yield* Fiber.join(nested))
      expect(defect).toBeInstanceOf(LockedBy.RecursiveLocking)
      expect(defect).toMatchObject({ _tag: "RecursiveLocking", lock: lock.label })
      // The outer section released the lock as it died.
      expect(lock.isHeld).toBe(false)
      yield* expectFree(lock)
    }))

  it.effect("another fiber's `with` on a held lock waits (it is not reentrancy)", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("tree")
      const log: Array<string> = []
      const result = yield* lock.with(() =>
        Effect.gen(function*() {
          const child = yield* Effect.fork(lock.with(() => Effect.sync(() => log.push("child"))))
          yield* Effect.sleep("5 millis").pipe(Effect.zipRight(Effect.sync(() => log.push("parent"))), Effect.fork)
          yield* TestClock.adjust("10 millis")
          expect(log).toEqual(["parent"])
          return child
        })
      )
      yield* Fiber.join(result)
      expect(log).toEqual(["parent", "child"])
    }))

  it.effect("a failure, a defect or a throwing body inside `with` releases the lock", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("tree")
      let leaked: LockedBy.Held<"tree"> | undefined
      const error = yield* Effect.flip(lock.with((held) => {
        leaked = held
        return Effect.fail("boom" as const)
      }))
      expect(error).toBe("boom")
      expect(leaked?.live).toBe(false)
      yield* expectFree(lock)
      const died = yield* Effect.exit(lock.with(() => Effect.die("bug")))
      expect(defectOf(died)).toBe("bug")
      yield* expectFree(lock)
      const threw = yield* Effect.exit(lock.with((): Effect.Effect<void> => {
        throw new Error("thrown while building the body")
      }))
      expect(defectOf(threw)).toBeInstanceOf(Error)
      expect(lock.isHeld).toBe(false)
      yield* expectFree(lock)
    }))

  it.effect("interruption inside `with` releases the lock and kills the proof; waiters proceed", () =>
    Effect.gen(function*() {
      const lock = yield* LockedBy.lock("tree")
      const node = LockedBy.make(lock, 0)
      let leaked: LockedBy.Held<"tree"> | undefined
      const holder = yield* Effect.fork(lock.with((held) => {
        leaked = held
        return Effect.never
      }))
      yield* TestClock.adjust("1 millis")
      expect(lock.isHeld).toBe(true)
      const waiter = yield* Effect.fork(lock.with((held) => Effect.sync(() => node.update(held, (n) => n + 1))))
      // An interrupted waiter takes no permit.
      const impatient = yield* Effect.fork(lock.with(() => Effect.succeed("impatient")))
      yield* TestClock.adjust("1 millis")
      expect(waiter.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(impatient)
      yield* Fiber.interrupt(holder)
      expect(leaked?.live).toBe(false)
      expect(() => node.access(leaked!)).toThrow(LockedBy.LockNotHeld)
      yield* TestClock.adjust("1 millis")
      expect(waiter.unsafePoll()).toEqual(Exit.succeed(1))
      expect(lock.isHeld).toBe(false)
      expect(yield* lock.with((held) => Effect.sync(() => node.access(held)))).toBe(1)
    }))

  it("unsafeLock and make work outside Effect; locks print their name and instance", () => {
    const lock = LockedBy.unsafeLock("registry")
    expect(lock.name).toBe("registry")
    expect(lock.label).toBe(`registry#${lock.instance}`)
    const entry = LockedBy.make(lock, [1, 2, 3])
    const sum = Effect.runSync(lock.with((held) => Effect.sync(() => entry.access(held).reduce((a, b) => a + b, 0))))
    expect(sum).toBe(6)
    expect(String(lock)).toBe(`Lock(${lock.label})`)
  })
})
