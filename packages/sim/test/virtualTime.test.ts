import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber } from "effect"
import { VirtualTime } from "@devscope/sim"

describe("VirtualTime", () => {
  it.effect("jumps to each deadline; sleepers wake in deadline order, ties in sleep order", () =>
    Effect.gen(function*() {
      const woke: Array<string> = []
      const sleeper = (name: string, millis: number) =>
        Effect.zipRight(Effect.sleep(millis), Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => woke.push(`${name}@${t}`))))
      const outcome = yield* VirtualTime.run(
        Effect.all([sleeper("c", 30), sleeper("a", 10), sleeper("b", 10), sleeper("d", 3_600_000)], { concurrency: "unbounded" })
      )
      expect(outcome._tag).toBe("Done")
      expect(outcome.virtualMillis).toBe(3_600_000)
      expect(woke).toEqual(["a@10", "b@10", "c@30", "d@3600000"])
    }))

  it.effect("sub-millisecond sleeps keep their order", () =>
    Effect.gen(function*() {
      const woke: Array<number> = []
      yield* VirtualTime.run(Effect.all(
        [0.05, 0.01, 0.5, 0.02].map((ms) => Effect.zipRight(Effect.sleep(`${ms * 1000} micros`), Effect.sync(() => woke.push(ms)))),
        { concurrency: "unbounded" }
      ))
      expect(woke).toEqual([0.01, 0.02, 0.05, 0.5])
    }))

  it.effect("a cancelled sleep does not wake anything nor hold time back", () =>
    Effect.gen(function*() {
      const outcome = yield* VirtualTime.run(Effect.gen(function*() {
        const long = yield* Effect.fork(Effect.sleep("1 hour"))
        yield* Effect.sleep("5 millis")
        yield* Fiber.interrupt(long)
        return yield* Clock.currentTimeMillis
      }))
      expect(outcome._tag).toBe("Done")
      expect(outcome.exit).toEqual(Exit.succeed(5))
      expect(outcome.virtualMillis).toBe(5)
    }))

  it.effect("a program where every fiber waits forever is reported Stalled, and its finalizers run", () =>
    Effect.gen(function*() {
      let finalized = false
      const outcome = yield* VirtualTime.run(Effect.gen(function*() {
        const never = yield* Deferred.make<void>()
        yield* Effect.sleep("2 millis")
        yield* Deferred.await(never).pipe(Effect.ensuring(Effect.sync(() => void (finalized = true))))
      }))
      expect(outcome._tag).toBe("Stalled")
      expect(outcome.virtualMillis).toBe(2)
      expect(finalized).toBe(true)
      expect(outcome.exit !== undefined && Exit.isInterrupted(outcome.exit)).toBe(true)
    }))

  it.effect("until bounds virtual time: the program is interrupted and the run TimedOut", () =>
    Effect.gen(function*() {
      const outcome = yield* VirtualTime.run(Effect.forever(Effect.sleep("1 second")), { until: 10_500 })
      expect(outcome._tag).toBe("TimedOut")
      expect(outcome.virtualMillis).toBe(10_000)
    }))

  it.effect("runs are deterministic: the same program gives the same interleaving", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        const log: Array<string> = []
        yield* Effect.all(
          ["x", "y", "z"].map((name, i) =>
            Effect.forEach([1, 2, 3], (n) =>
              Effect.zipRight(
                n % 2 === 0 ? Effect.yieldNow() : Effect.sleep(`${(i + 1) * n} millis`),
                Effect.sync(() => log.push(`${name}${n}`))
              ))
          ),
          { concurrency: "unbounded" }
        )
        return log.join(",")
      })
      const a = yield* VirtualTime.run(program)
      const b = yield* VirtualTime.run(program)
      expect(a.exit).toEqual(b.exit)
      expect(a.exit).toEqual(Exit.succeed("x1,x2,y1,y2,z1,z2,x3,y3,z3"))
    }))

  it.effect("a stall names the waiting fibers by their spans", () =>
    Effect.gen(function*() {
      const outcome = yield* VirtualTime.run(Effect.gen(function*() {
        const never = yield* Deferred.make<void>()
        yield* Effect.fork(Effect.withSpan(Deferred.await(never), "wait-for-irq", { attributes: { device: "edu0" } }))
        yield* Effect.sleep("1 millis")
        yield* Deferred.await(never)
      }))
      expect(outcome._tag).toBe("Stalled")
      if (outcome._tag !== "Stalled") return
      expect(outcome.waiting.some((w) => w.spans[0] === "wait-for-irq (device=edu0)")).toBe(true)
    }))

  it.effect("onTask sees every resumption and can start a fiber in the world at a chosen point", () =>
    Effect.gen(function*() {
      let tasks = 0
      const log: Array<string> = []
      const outcome = yield* VirtualTime.run(
        Effect.gen(function*() {
          for (let i = 0; i < 10; i++) {
            yield* Effect.yieldNow()
            log.push(`step ${i}`)
          }
        }),
        {
          onTask: (control) => {
            if (++tasks === 5) control.fork(Effect.sync(() => log.push(`injected at ${control.now}`)))
          }
        }
      )
      expect(outcome._tag).toBe("Done")
      expect(tasks).toBeGreaterThanOrEqual(11)
      // The injected fiber ran between two steps of the program, not before or after it all.
      const at = log.indexOf("injected at 0")
      expect(at).toBeGreaterThan(0)
      expect(at).toBeLessThan(log.length - 1)
    }))
})
