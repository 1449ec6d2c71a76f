import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber } from "effect"
import { Iommu, VirtualTime } from "@devscope/sim"

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

  describe("signal", () => {
    /** Aborts `controller` after `millis` of wall time, from the host's event loop. */
    const abortAfter = (controller: AbortController, millis: number) => setTimeout(() => controller.abort(), millis)

    it.effect("an abort mid-run interrupts the program: the run is Interrupted, its finalizers run (in virtual time too)", () =>
      Effect.gen(function*() {
        const controller = new AbortController()
        const log: Array<string> = []
        abortAfter(controller, 30)
        const outcome = yield* VirtualTime.run(
          Effect.forever(Effect.sleep("1 millis")).pipe(
            // A finalizer that itself waits in virtual time: the wind-down lets it.
            Effect.ensuring(Effect.zipRight(Effect.sleep("5 millis"), Effect.sync(() => void log.push("finalized")))),
            Effect.onInterrupt(() => Effect.sync(() => void log.push("interrupted")))
          ),
          { signal: controller.signal }
        )
        expect(outcome._tag).toBe("Interrupted")
        expect(log).toEqual(["finalized", "interrupted"])
        expect(outcome.exit !== undefined && Exit.isInterrupted(outcome.exit)).toBe(true)
        expect(outcome.virtualMillis).toBeGreaterThan(5)
      }))

    it.effect("a signal aborted before the run stops it at virtual time 0", () =>
      Effect.gen(function*() {
        const controller = new AbortController()
        controller.abort()
        let slept = false
        const outcome = yield* VirtualTime.run(Effect.zipRight(Effect.sleep("1 hour"), Effect.sync(() => void (slept = true))), {
          signal: controller.signal
        })
        expect(outcome._tag).toBe("Interrupted")
        expect(outcome.virtualMillis).toBe(0)
        expect(slept).toBe(false)
      }))

    it.effect("an abort after the program finished changes nothing", () =>
      Effect.gen(function*() {
        const controller = new AbortController()
        const outcome = yield* VirtualTime.run(Effect.as(Effect.sleep("3 millis"), "done"), { signal: controller.signal })
        controller.abort()
        expect(outcome._tag).toBe("Done")
        expect(outcome.exit).toEqual(Exit.succeed("done"))
      }))

    it.effect("a world busy at one virtual instant still lets a host timer and the abort through", () =>
      Effect.gen(function*() {
        const controller = new AbortController()
        let spins = 0
        let timerFired = false
        setTimeout(() => {
          timerFired = true
          controller.abort()
        }, 20)
        const started = performance.now()
        // Requeues itself forever without moving time: one drain used to never return.
        const outcome = yield* VirtualTime.run(Effect.forever(Effect.zipRight(Effect.yieldNow(), Effect.sync(() => void spins++))), {
          signal: controller.signal
        })
        expect(timerFired).toBe(true)
        expect(outcome._tag).toBe("Interrupted")
        expect(outcome.virtualMillis).toBe(0)
        expect(spins).toBeGreaterThan(100)
        expect(performance.now() - started).toBeLessThan(2_000)
      }))

    it.effect("a wind-down that never ends is given up on after its wall-time bound (exit undefined)", () =>
      Effect.gen(function*() {
        const controller = new AbortController()
        abortAfter(controller, 10)
        const started = performance.now()
        const outcome = yield* VirtualTime.run(Effect.uninterruptible(Effect.forever(Effect.yieldNow())), { signal: controller.signal })
        const took = performance.now() - started
        expect(outcome._tag).toBe("Interrupted")
        expect(outcome.exit).toBeUndefined()
        expect(took).toBeGreaterThanOrEqual(500)
        expect(took).toBeLessThan(3_000)
      }))

    it.effect("a busy instant sliced across event-loop turns runs its tasks in the same order as one drain would", () =>
      Effect.gen(function*() {
        // Enough work at one instant to take several slices of 20 ms.
        const program = Effect.gen(function*() {
          const log: Array<number> = []
          yield* Effect.all(
            Array.from({ length: 4 }, (_, i) =>
              Effect.forEach(Array.from({ length: 20_000 }, (_, k) => k), (k) =>
                Effect.zipRight(Effect.yieldNow(), Effect.sync(() => void (k % 1000 === 0 && log.push(i * 100_000 + k)))))),
            { concurrency: "unbounded", discard: true }
          )
          return log.join(",")
        })
        const a = yield* VirtualTime.run(program)
        const b = yield* VirtualTime.run(program)
        expect(a._tag).toBe("Done")
        expect(a.exit).toEqual(b.exit)
        expect(a.exit).toEqual(Exit.succeed([...Array.from({ length: 20 }, (_, k) => [0, 1, 2, 3].map((i) => i * 100_000 + k * 1000))].flat().join(",")))
      }))
  })

  it.effect("the simulator stamps each IOMMU fault with its virtual time", () =>
    Effect.gen(function*() {
      const domain = Iommu.make({ device: "d0", now: () => 42.5 })
      expect(domain.deviceRead(0x1000, 4, "test")).toBeUndefined()
      expect(domain.faults.map((f) => f.at)).toEqual([42.5])
      expect(Iommu.make({ device: "d1" }).faults).toEqual([])
    }))
})
