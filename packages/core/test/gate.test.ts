import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Either, Exit, FastCheck as fc, Fiber, FiberId, Layer, TestClock } from "effect"
import { DeviceError, Devres, Driver, Gate } from "@devscope/core"
import { Log, withBus } from "./utils.js"

const Blk = Driver.brand("blk")

/** A driver whose probe opens a gate over a Devres and hands the gate out. */
const gated = (
  log: Log,
  onProbe: (gate: Gate.Gate<"blk">, data: Devres.Devres<{ n: number }, "blk">) => void,
  deadline?: Duration.DurationInput
) =>
  Driver.make(Blk, {
    match: [{ vendor: 3 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const data = yield* Devres.acquireRelease(Blk, Effect.succeed({ n: 0 }), () => log.push("release data"), {
          label: "data"
        })
        const gate = yield* Gate.make(Blk, { name: "blk ioctl", deadline })
        onProbe(gate, data)
      })),
    remove: () => Effect.suspend(() => log.push("remove"))
  })

describe("Gate", () => {
  it.effect("close waits exactly for the sections that started before it; new entries fail at once", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(gated(log, (g) => (gate = g)))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const section = (name: string, ms: number) =>
          gate!.enter(() => Effect.zipRight(Effect.sleep(`${ms} millis`), log.push(`${name} done`)))
        const a = yield* Effect.fork(section("a", 10))
        const b = yield* Effect.fork(section("b", 100))
        yield* TestClock.adjust("1 millis")
        expect(gate!.inFlight).toBe(2)
        const unbinding = yield* Effect.fork(bus.unbind("blk0"))
        yield* TestClock.adjust("1 millis")
        expect(gate!.isOpen).toBe(false)
        // A new entry fails at once, without running its body.
        const late = yield* Effect.either(section("late", 1))
        expect(late).toEqual(Either.left(new DeviceError.DeviceGone({ device: "blk0", driver: "blk", gate: "blk ioctl" })))
        yield* TestClock.adjust("20 millis")
        expect(log.entries).toEqual(["a done"])
        expect(unbinding.unsafePoll()).toBeNull()
        yield* TestClock.adjust("100 millis")
        const report = yield* Fiber.join(unbinding)
        // remove and the releases ran only after the last section had left.
        expect(log.entries).toEqual(["a done", "b done", "remove", "release data"])
        expect(report.gates).toEqual([{ gate: "blk ioctl", awaited: 2, interrupted: [], stuck: 0, durationMillis: 99 }])
        yield* Fiber.join(a)
        yield* Fiber.join(b)
      })
    ))

  it.effect("sections get the Bound token, may span yields and may nest; a nested entry after the close is DeviceGone", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let gate: Gate.Gate<"blk"> | undefined
        let data: Devres.Devres<{ n: number }, "blk"> | undefined
        yield* bus.registerDriver(gated(log, (g, d) => ((gate = g), (data = d))))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const outer = yield* Effect.fork(gate!.enter((token) =>
          Effect.gen(function*() {
            data!.access(token).n++
            const nested = yield* Gate.enterWith(gate!, Effect.map(Blk.Bound, (t) => ++data!.access(t).n))
            yield* Effect.sleep("10 millis")
            // The gate is closing now (it waits for this section): a new nested entry fails at once.
            const late = yield* Effect.either(Gate.enterWith(gate!, Effect.map(Blk.Bound, (t) => ++data!.access(t).n)))
            return [nested, late._tag, data!.access(token).n] as const
          })
        ))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("blk0"))
        yield* TestClock.adjust("20 millis")
        expect(yield* Fiber.join(outer)).toEqual([2, "Left", 2])
        const report = yield* Fiber.join(unbinding)
        expect(report.gates[0]?.awaited).toBe(1)
        expect(log.entries).toEqual(["remove", "release data"])
      })
    ))

  it.effect("entered from an uninterruptible region: the body stays uninterruptible, and the section is left on every exit", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(gated(log, (g) => (gate = g)))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const g = gate!
        const interruptible = Effect.checkInterruptible(Effect.succeed)
        // Uninterruptible caller: the body runs uninterruptibly, as `restore` would leave it.
        expect(yield* Effect.uninterruptible(g.enter(() => interruptible))).toBe(false)
        // Interruptible caller: the body is interruptible.
        expect(yield* g.enter(() => interruptible)).toBe(true)
        // Success, failure, defect and a throwing `f`: each leaves its section.
        expect(yield* Effect.exit(Effect.uninterruptible(g.enter(() => Effect.fail("no"))))).toEqual(Exit.fail("no"))
        expect(Exit.isFailure(yield* Effect.exit(Effect.uninterruptible(g.enter(() => Effect.die("boom")))))).toBe(true)
        const thrown = yield* Effect.exit(Effect.uninterruptible(g.enter((): Effect.Effect<void> => {
          throw new Error("f threw")
        })))
        expect(Exit.isFailure(thrown)).toBe(true)
        expect(g.inFlight).toBe(0)
        // A sleeping uninterruptible section holds the close up until it ends (within the deadline).
        const section = yield* Effect.fork(Effect.uninterruptible(g.enter(() =>
          Effect.zipRight(Effect.sleep("10 millis"), log.push("section done"))
        )))
        yield* TestClock.adjust("1 millis")
        expect(g.inFlight).toBe(1)
        const unbinding = yield* Effect.fork(bus.unbind("blk0"))
        yield* TestClock.adjust("20 millis")
        const report = yield* Fiber.join(unbinding)
        yield* Fiber.join(section)
        expect(log.entries).toEqual(["section done", "remove", "release data"])
        expect(report.gates).toMatchObject([{ gate: "blk ioctl", awaited: 1, interrupted: [], stuck: 0 }])
        // After the close, an uninterruptible entry fails with DeviceGone without running its body.
        const late = yield* Effect.either(Effect.uninterruptible(g.enter(() => log.push("late"))))
        expect(Either.isLeft(late) && late.left._tag).toBe("DeviceGone")
        expect(log.count("late")).toBe(0)
      })
    ))

  it.effect("a section that never ends is interrupted at the deadline and reported; the unbind completes", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(gated(log, (g) => (gate = g), "50 millis"))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const stuck = yield* Effect.fork(gate!.enter(() => Effect.never))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("blk0"))
        yield* TestClock.adjust("100 millis")
        const report = yield* Fiber.join(unbinding)
        expect(report.gates).toHaveLength(1)
        expect(report.gates[0]!.interrupted).toHaveLength(1)
        expect(report.gates[0]!.stuck).toBe(0)
        expect(report.gates[0]!.durationMillis).toBe(50)
        expect(Exit.isInterrupted(yield* Fiber.await(stuck))).toBe(true)
        expect(log.entries).toEqual(["remove", "release data"])
        expect(gate!.inFlight).toBe(0)
      })
    ))

  it.effect("a gate opened by a probe that then fails is closed before anything is released", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(Driver.make(Blk, {
          match: [{ vendor: 3 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              gate = yield* Gate.make(Blk)
              return yield* Effect.fail("probe broke")
            }))
        }))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        expect(gate!.isOpen).toBe(false)
        expect((yield* Effect.either(gate!.enter(() => Effect.void)))._tag).toBe("Left")
        const unbound = (yield* bus.history).find((e) => e._tag === "Unbound")
        expect(unbound?._tag === "Unbound" && unbound.report.gates.map((g) => g.gate)).toEqual(["gate"])
      })
    ))

  it.effect("Gate.close closes early; closing twice returns the same report", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(gated(new Log(), (g) => (gate = g)))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const first = yield* Gate.close(gate!)
        expect(first.awaited).toBe(0)
        expect(yield* Gate.close(gate!)).toBe(first)
        const report = yield* bus.unbind("blk0")
        expect(report.gates).toEqual([first])
      })
    ))

  it.effect("every way out of a section leaves it, and a reused slot leaves only its own section", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let gate: Gate.Gate<"blk"> | undefined
        yield* bus.registerDriver(gated(log, (g) => (gate = g), "50 millis"))
        yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
        const g = gate!
        // Four sections hold four slots; ending them in another order frees slots out of order.
        const holds = yield* Effect.forEach([10, 40, 20, 30], (ms) => Effect.fork(g.enter(() => Effect.sleep(`${ms} millis`))))
        yield* TestClock.adjust("1 millis")
        expect(g.inFlight).toBe(4)
        yield* TestClock.adjust("15 millis")
        expect(g.inFlight).toBe(3)
        // Each kind of exit, in a slot freed by another section.
        expect(Exit.isFailure(yield* Effect.exit(g.enter(() => Effect.fail("no"))))).toBe(true)
        expect(Exit.isFailure(yield* Effect.exit(g.enter(() => Effect.die("boom"))))).toBe(true)
        expect(Exit.isFailure(yield* Effect.exit(g.enter((): Effect.Effect<void> => {
          throw new Error("f throws")
        })))).toBe(true)
        const interrupted = yield* Effect.fork(g.enter(() => Effect.never))
        yield* TestClock.adjust("1 millis")
        expect(g.inFlight).toBe(4)
        yield* Fiber.interrupt(interrupted)
        expect(g.inFlight).toBe(3)
        expect(yield* g.enter(() => Effect.succeed(7))).toBe(7)
        expect(g.inFlight).toBe(3)
        yield* TestClock.adjust("10 millis")
        expect(g.inFlight).toBe(2)
        yield* TestClock.adjust("30 millis")
        expect(g.inFlight).toBe(0)
        yield* Fiber.joinAll(holds)
        // Slots were freed out of order and reused: a section stuck at the close is the only
        // fiber interrupted at the deadline (no finished section is left in a slot).
        const stuck = yield* Effect.fork(g.enter(() => Effect.never))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("blk0"))
        yield* TestClock.adjust("60 millis")
        const report = yield* Fiber.join(unbinding)
        expect(report.gates[0]!.awaited).toBe(1)
        expect(report.gates[0]!.interrupted).toEqual([FiberId.threadName(stuck.id())])
        expect(report.gates[0]!.stuck).toBe(0)
      })
    ))

  it.effect.prop(
    "1,000 concurrent calls racing an unbind: each resolves once (completed or DeviceGone), none after the scope closes, none hangs",
    [fc.integer({ min: 0, max: 40 }), fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1000, maxLength: 1000 })],
    ([unbindAt, starts]) =>
      withBus((bus) =>
        Effect.gen(function*() {
          const log = new Log()
          let gate: Gate.Gate<"blk"> | undefined
          let data: Devres.Devres<{ n: number }, "blk"> | undefined
          yield* bus.registerDriver(gated(log, (g, d) => ((gate = g), (data = d))))
          yield* bus.addDevice({ name: "blk0", ids: { vendor: 3 } })
          let completed = 0
          let afterRelease = 0
          // Interleavings come from yields (the scheduler is deterministic), not virtual time:
          // TestClock walks every fiber for every sleep, which 1,000 fibers make quadratic.
          const yields = (n: number) => Effect.repeatN(Effect.yieldNow(), n)
          const call = (start: number, i: number) =>
            yields(start).pipe(
              Effect.zipRight(gate!.enter((token) =>
                Effect.gen(function*() {
                  data!.access(token).n++
                  yield* yields(i % 7)
                  // Still inside the section: the resources must still be there.
                  if (log.count("release data") > 0) afterRelease++
                  data!.access(token).n++
                  completed++
                  return "done" as const
                })
              )),
              Effect.either
            )
          const calls = yield* Effect.fork(Effect.forEach(starts, call, { concurrency: "unbounded" }))
          const unbinding = yield* Effect.fork(Effect.zipRight(yields(unbindAt), bus.unbind("blk0")))
          const results = yield* Fiber.join(calls)
          yield* Fiber.join(unbinding)
          expect(results).toHaveLength(1000)
          const gone = results.filter((r) => Either.isLeft(r) && r.left._tag === "DeviceGone").length
          const done = results.filter((r) => Either.isRight(r)).length
          expect(done + gone).toBe(1000)
          expect(done).toBe(completed)
          expect(afterRelease).toBe(0)
          expect(log.count("release data")).toBe(1)
        })
      ),
    { fastCheck: { numRuns: 25 } }
  )
})
