import { describe, expect, it } from "@effect/vitest"
import { Cause, Data, Effect, Either, Exit, FastCheck as fc, Fiber, HashMap, Layer, Logger, Option, TestClock } from "effect"
import { DeviceError, Devres, Driver, Gate } from "@devscope/core"
import * as Registration from "@devscope/core/Registration"
import { Log, withBus } from "./utils.js"

const Chr = Driver.brand("chr")

class Failed extends Data.TaggedError("Failed")<{}> {}

interface State {
  readonly id: number
  reads: number
  /** Calls running on the handle now (checked by destroy). */
  active: number
  destroyed: boolean
}

interface Knobs {
  /** Virtual milliseconds `open` takes. */
  readonly openMillis?: number
  /** Handles whose destroy fails (by id); "hang" never ends. */
  readonly destroy?: (id: number) => "ok" | "fail" | "die" | "hang"
  readonly options?: Registration.Options<"chr">
}

const yields = (n: number) => Effect.repeatN(Effect.yieldNow(), n)

/** The registration under test: handles over a Devres, with a destroy path that uses it. */
const register = (log: Log, regs: Devres.Devres<{ value: number }, "chr">, knobs: Knobs = {}) => {
  let next = 0
  return Registration.register(Chr, {
    name: "chr0",
    open: (token) =>
      Effect.gen(function*() {
        if (knobs.openMillis !== undefined) yield* Effect.sleep(knobs.openMillis)
        // open runs inside the gate, with a live token.
        regs.access(token)
        const id = ++next
        yield* log.push(`open ${id}`)
        const state: State = { id, reads: 0, active: 0, destroyed: false }
        return state
      }),
    destroy: (state, token) =>
      Effect.suspend(() => {
        if (state.active > 0) return Effect.dieMessage(`destroy ${state.id} with ${state.active} call(s) in flight`)
        const how = knobs.destroy?.(state.id) ?? "ok"
        if (how === "hang") return Effect.zipRight(log.push(`destroy ${state.id} hangs`), Effect.never)
        state.destroyed = true
        // The destroy path uses the device's resources: it must run while the binding is live.
        const entry = log.push(`destroy ${state.id} (regs ${regs.access(token).value})`)
        if (how === "fail") return Effect.zipRight(entry, Effect.fail("destroy failed"))
        if (how === "die") return Effect.zipRight(entry, Effect.dieMessage("destroy died"))
        return entry
      }),
    ops: {
      read: (state, offset: number, token) =>
        Effect.sync(() => {
          state.reads++
          return regs.access(token).value + offset
        }),
      slow: (state, millis: number, token) =>
        Effect.sleep(millis).pipe(Effect.zipRight(Effect.sync(() => regs.access(token).value + state.id))),
      /** Spans `n` yields; counts itself in and out, and checks the state and resources are still there. */
      busy: (state, n: number, token) =>
        Effect.gen(function*() {
          state.active++
          const before = regs.access(token).value
          yield* yields(n)
          const ok = !state.destroyed && log.count("release regs") === 0 && regs.access(token).value === before
          state.active--
          return ok
        }).pipe(Effect.onInterrupt(() => Effect.sync(() => void state.active--))),
      whoami: (_state, _: void) => Effect.map(Chr.Bound, (token) => token.device.name),
      fail: () => Effect.fail(new Failed())
    }
  }, knobs.options)
}

type Reg = Effect.Effect.Success<ReturnType<typeof register>>

/** A driver whose probe maps "regs" and registers "chr0" over it. */
const chrDriver = (log: Log, onProbe: (registration: Reg) => void, knobs?: Knobs) =>
  Driver.make(Chr, {
    match: [{ vendor: 7 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const regs = yield* Devres.acquireRelease(Chr, Effect.succeed({ value: 100 }), () => log.push("release regs"), {
          label: "regs"
        })
        onProbe(yield* register(log, regs, knobs))
      })),
    remove: () => Effect.suspend(() => log.push("remove"))
  })

/** Registers the driver, adds "chr0dev" and returns the registration its probe made. */
const setup = (bus: Parameters<Parameters<typeof withBus>[0]>[0], log: Log, knobs?: Knobs) =>
  Effect.gen(function*() {
    let registration: Reg | undefined
    yield* bus.registerDriver(chrDriver(log, (r) => (registration = r), knobs))
    yield* bus.addDevice({ name: "chr0dev", ids: { vendor: 7 } })
    expect(registration).toBeDefined()
    return registration!
  })

const gone = new DeviceError.DeviceGone({ device: "chr0dev", driver: "chr", gate: "chr0" })

const captureErrors = (errors: Array<{ message: string; handle: unknown; cause: string }>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, cause, logLevel, message }) => {
      if (logLevel.label !== "ERROR") return
      errors.push({
        message: (Array.isArray(message) ? message : [message]).join(" "),
        handle: Option.getOrUndefined(HashMap.get(annotations, "handle")),
        cause: Cause.pretty(cause)
      })
    })
  )

describe("Registration", () => {
  it.effect("open, typed calls and close on a live device; calls get the Bound token and reach the Devres", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log)
        expect(registration.name).toBe("chr0")
        expect(registration.gate.name).toBe("chr0")
        const h1 = yield* registration.open()
        const h2 = yield* registration.open()
        expect([h1.id, h2.id]).toEqual([1, 2])
        expect(registration.handles).toBe(2)
        expect(yield* h1.call("read", 5)).toBe(105)
        expect(yield* h2.call("read", 0)).toBe(100)
        // The Bound token is also in the context of an operation.
        expect(yield* h1.call("whoami")).toBe("chr0dev")
        expect(yield* Effect.either(h1.call("fail"))).toEqual(Either.left(new Failed()))
        expect(registration.gate.inFlight).toBe(0)

        yield* h1.close()
        expect(log.entries).toEqual(["open 1", "open 2", "destroy 1 (regs 100)"])
        expect(h1.isClosed).toBe(true)
        expect(h1.isZombie).toBe(false)
        expect(registration.handles).toBe(1)
        // Idempotent: nothing is destroyed twice.
        yield* h1.close()
        expect(log.count("destroy 1 (regs 100)")).toBe(1)
        // A closed handle refuses calls; the others are unaffected.
        expect(yield* Effect.either(h1.call("read", 1))).toEqual(
          Either.left(new Registration.HandleClosed({ device: "chr0dev", registration: "chr0", handle: 1 }))
        )
        expect(yield* h2.call("read", 1)).toBe(101)
        expect(registration.destroyFailures).toBe(0)
        expect(registration.isDisassociated).toBe(false)
      })
    ))

  it.effect("unbind with open handles: calls in flight complete, then every handle is a zombie destroyed once, before remove and the Devres release", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log)
        const h1 = yield* registration.open()
        const h2 = yield* registration.open()
        const h3 = yield* registration.open()
        const inFlight = yield* Effect.fork(h1.call("slow", 50))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("chr0dev"))
        yield* TestClock.adjust("1 millis")
        // The gate is closing: a new call fails at once, without running.
        expect(yield* Effect.either(h2.call("read", 0))).toEqual(Either.left(gone))
        // Nothing is destroyed while a call is in flight.
        expect(log.entries).toEqual(["open 1", "open 2", "open 3"])
        expect(h1.isZombie).toBe(false)
        yield* TestClock.adjust("60 millis")
        expect(yield* Fiber.join(inFlight)).toBe(101)
        const report = yield* Fiber.join(unbinding)
        expect(log.entries).toEqual([
          "open 1",
          "open 2",
          "open 3",
          "destroy 1 (regs 100)",
          "destroy 2 (regs 100)",
          "destroy 3 (regs 100)",
          "remove",
          "release regs"
        ])
        // Disassociated handles are not leaks.
        expect(report.leaks).toEqual([])
        expect(report.gates.map((g) => g.gate)).toEqual(["chr0"])
        expect(report.gates[0]!.awaited).toBe(1)
        expect(registration.isDisassociated).toBe(true)
        expect(registration.handles).toBe(0)
        expect(registration.zombies).toBe(3)
        expect([h1.isZombie, h2.isZombie, h3.isZombie]).toEqual([true, true, true])

        // Zombies: every call fails with DeviceGone; close succeeds and destroys nothing.
        for (const h of [h1, h2, h3]) expect(yield* Effect.either(h.call("read", 0))).toEqual(Either.left(gone))
        expect(yield* Effect.either(h2.call("whoami"))).toEqual(Either.left(gone))
        yield* h1.close()
        yield* h2.close()
        yield* h2.close()
        expect(registration.zombies).toBe(1)
        expect(yield* Effect.either(h1.call("read", 0))).toEqual(Either.left(gone))
        for (const id of [1, 2, 3]) expect(log.count(`destroy ${id} (regs 100)`)).toBe(1)
        expect(log.entries).toHaveLength(8)
        expect(registration.destroyFailures).toBe(0)
      })
    ))

  it.effect("a handle closed by its user before the unbind is destroyed once, not again at unbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log)
        const h1 = yield* registration.open()
        const h2 = yield* registration.open()
        yield* h1.close()
        yield* bus.unbind("chr0dev")
        yield* h1.close()
        expect(log.entries).toEqual([
          "open 1",
          "open 2",
          "destroy 1 (regs 100)",
          "destroy 2 (regs 100)",
          "remove",
          "release regs"
        ])
        expect(h1.isZombie).toBe(false)
        expect(h2.isZombie).toBe(true)
        // Closed stays closed: the user closed it before the device went away.
        expect(yield* Effect.either(h1.call("read", 0))).toEqual(
          Either.left(new Registration.HandleClosed({ device: "chr0dev", registration: "chr0", handle: 1 }))
        )
        expect(registration.zombies).toBe(1)
      })
    ))

  it.effect("close with calls in flight: the state is destroyed when the last call ends, still inside the gate", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log)
        const h = yield* registration.open()
        const a = yield* Effect.fork(h.call("slow", 20))
        const b = yield* Effect.fork(h.call("slow", 40))
        yield* TestClock.adjust("1 millis")
        yield* h.close()
        expect(registration.handles).toBe(0)
        expect(log.entries).toEqual(["open 1"])
        expect((yield* Effect.either(h.call("read", 0)))._tag).toBe("Left")
        yield* TestClock.adjust("20 millis")
        expect(yield* Fiber.join(a)).toBe(101)
        expect(log.entries).toEqual(["open 1"])
        // The unbind starts while the last call is still running: its gate waits for the call,
        // whose way out destroys the state; the disassociation does not destroy it again.
        const unbinding = yield* Effect.fork(bus.unbind("chr0dev"))
        yield* TestClock.adjust("30 millis")
        expect(yield* Fiber.join(b)).toBe(101)
        yield* Fiber.join(unbinding)
        expect(log.entries).toEqual(["open 1", "destroy 1 (regs 100)", "remove", "release regs"])
        expect(h.isClosed).toBe(true)
        expect(registration.zombies).toBe(0)
      })
    ))

  it.effect("open after unbind fails with DeviceGone; an open in flight at unbind completes and its handle is disassociated", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log, { openMillis: 10 })
        const opening = yield* Effect.fork(registration.open())
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("chr0dev"))
        yield* TestClock.adjust("1 millis")
        expect(yield* Effect.either(registration.open())).toEqual(Either.left(gone))
        yield* TestClock.adjust("10 millis")
        const late = yield* Fiber.join(opening)
        yield* Fiber.join(unbinding)
        expect(late.isZombie).toBe(true)
        expect(log.entries).toEqual(["open 1", "destroy 1 (regs 100)", "remove", "release regs"])
        expect(yield* Effect.either(registration.open())).toEqual(Either.left(gone))
        expect(yield* Effect.either(late.call("read", 0))).toEqual(Either.left(gone))
        expect(log.count("open 2")).toBe(0)
      })
    ))

  it.effect("a failing destroy is logged and counted; the others are still destroyed and the unbind completes", () => {
    const errors: Array<{ message: string; handle: unknown; cause: string }> = []
    return withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log, {
          destroy: (id) => (id === 1 ? "fail" : id === 2 ? "die" : id === 3 ? "hang" : "ok"),
          options: { destroyDeadline: "100 millis" }
        })
        const handles = yield* Effect.forEach([1, 2, 3, 4, 5], () => registration.open())
        // A failing destroy at close: close still succeeds.
        yield* handles[0]!.close()
        expect(registration.destroyFailures).toBe(1)
        expect(errors.map((e) => e.handle)).toEqual([1])
        const unbinding = yield* Effect.fork(bus.unbind("chr0dev"))
        yield* TestClock.adjust("100 millis")
        const report = yield* Fiber.join(unbinding)
        expect(log.entries.slice(5)).toEqual([
          "destroy 1 (regs 100)",
          "destroy 2 (regs 100)",
          "destroy 3 hangs",
          "destroy 4 (regs 100)",
          "destroy 5 (regs 100)",
          "remove",
          "release regs"
        ])
        expect(registration.destroyFailures).toBe(3)
        expect(errors.map((e) => e.handle)).toEqual([1, 2, 3])
        expect(errors[0]!.message).toContain(`destroying handle #1 failed`)
        expect(errors[0]!.cause).toContain("destroy failed")
        expect(errors[1]!.cause).toContain("destroy died")
        expect(errors[2]!.cause).toContain("within 100ms")
        expect(report.removeFailure).toBeUndefined()
        expect(report.leaks).toEqual([])
      })
    ).pipe(Effect.provide(captureErrors(errors)))
  })

  it.effect("unregister closes the gate and disassociates early; the unbind does nothing more for it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const registration = yield* setup(bus, log)
        const h = yield* registration.open()
        const unregistering = yield* Effect.fork(Registration.unregister(registration))
        const again = yield* Effect.fork(Registration.unregister(registration))
        yield* Fiber.join(unregistering)
        yield* Fiber.join(again)
        expect(registration.gate.isOpen).toBe(false)
        expect(h.isZombie).toBe(true)
        expect(log.entries).toEqual(["open 1", "destroy 1 (regs 100)"])
        expect(yield* Effect.either(registration.open())).toEqual(Either.left(gone))
        expect(yield* Effect.either(h.call("read", 1))).toEqual(Either.left(gone))
        const report = yield* bus.unbind("chr0dev")
        expect(log.entries).toEqual(["open 1", "destroy 1 (regs 100)", "remove", "release regs"])
        expect(report.gates.map((g) => g.gate)).toEqual(["chr0"])
      })
    ))

  it.effect("registrations sharing a gate are all disassociated after it drains; a gate of another binding is a defect", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const made: Array<Reg> = []
        let foreign: Exit.Exit<unknown> | undefined
        yield* bus.registerDriver(Driver.make(Chr, {
          match: [{ vendor: 7 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const regs = yield* Devres.acquireRelease(Chr, Effect.succeed({ value: 100 }), () => log.push("release regs"), {
                label: "regs"
              })
              const gate = yield* Gate.make(Chr, { name: "card0" })
              const first = made.length === 0
              made.push(yield* register(log, regs, { options: { gate } }))
              made.push(yield* register(log, regs, { options: { gate } }))
              // The second device's probe tries the first device's gate.
              if (!first) foreign = yield* Effect.exit(register(log, regs, { options: { gate: made[0]!.gate } }))
            })),
          remove: () => Effect.suspend(() => log.push("remove"))
        }))
        yield* bus.addDevice({ name: "chr0dev", ids: { vendor: 7 } })
        yield* bus.addDevice({ name: "chr1dev", ids: { vendor: 7 } })
        const [a, b, c] = made
        expect(a!.gate).toBe(b!.gate)
        expect(c!.gate).not.toBe(a!.gate)
        expect(foreign !== undefined && Exit.isFailure(foreign)).toBe(true)
        const defect = Exit.isFailure(foreign!) ? Cause.dieOption(foreign.cause) : Option.none()
        expect(Option.map(defect, (d) => (d as DeviceError.DeviceMismatch)._tag)).toEqual(Option.some("DeviceMismatch"))

        const ha = yield* a!.open()
        const hb = yield* b!.open()
        const inFlight = yield* Effect.fork(ha.call("slow", 10))
        yield* TestClock.adjust("1 millis")
        const unbinding = yield* Effect.fork(bus.unbind("chr0dev"))
        yield* TestClock.adjust("20 millis")
        expect(yield* Fiber.join(inFlight)).toBe(101)
        const report = yield* Fiber.join(unbinding)
        expect([ha.isZombie, hb.isZombie]).toEqual([true, true])
        expect(log.entries.filter((e) => !e.startsWith("open"))).toEqual([
          "destroy 1 (regs 100)",
          "destroy 1 (regs 100)",
          "remove",
          "release regs"
        ])
        expect(report.gates.map((g) => g.gate)).toEqual(["card0"])
        expect(report.gates[0]!.awaited).toBe(1)
        // The other device's registrations are untouched.
        expect(c!.isDisassociated).toBe(false)
      })
    ))

  it.effect("a probe that fails after opening handles: they are destroyed before anything is released", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let registration: Reg | undefined
        yield* bus.registerDriver(Driver.make(Chr, {
          match: [{ vendor: 7 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const regs = yield* Devres.acquireRelease(Chr, Effect.succeed({ value: 100 }), () => log.push("release regs"), {
                label: "regs"
              })
              registration = yield* register(log, regs)
              yield* registration.open()
              return yield* Effect.fail("probe broke")
            }))
        }))
        yield* bus.addDevice({ name: "chr0dev", ids: { vendor: 7 } })
        expect(log.entries).toEqual(["open 1", "destroy 1 (regs 100)", "release regs"])
        expect(registration!.isDisassociated).toBe(true)
        expect(yield* Effect.either(registration!.open())).toEqual(Either.left(gone))
      })
    ))

  it.effect.prop(
    "concurrent calls on several handles racing an unbind and user closes: each resolves once, each state is destroyed once, never under a call",
    [
      fc.integer({ min: 0, max: 60 }),
      fc.array(fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }), { minLength: 1, maxLength: 6 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 8 })), {
        minLength: 50,
        maxLength: 300
      })
    ],
    ([unbindAt, closeAt, calls]) =>
      withBus((bus) =>
        Effect.gen(function*() {
          const log = new Log()
          const registration = yield* setup(bus, log)
          const handles = yield* Effect.forEach(closeAt, () => registration.open())
          let completed = 0
          let unsafe = 0
          // Interleavings come from yields (the scheduler is deterministic), not virtual time.
          const call = ([which, start, length]: [number, number, number]) =>
            yields(start).pipe(
              Effect.zipRight(handles[which % handles.length]!.call("busy", length)),
              Effect.tap((ok) => Effect.sync(() => (completed++, ok || unsafe++))),
              Effect.either
            )
          const closes = closeAt.flatMap((at, i) =>
            at === undefined ? [] : [Effect.zipRight(yields(at), handles[i]!.close())]
          )
          const running = yield* Effect.fork(Effect.forEach(calls, call, { concurrency: "unbounded" }))
          const closing = yield* Effect.fork(Effect.all(closes, { concurrency: "unbounded", discard: true }))
          const unbinding = yield* Effect.fork(Effect.zipRight(yields(unbindAt), bus.unbind("chr0dev")))
          const results = yield* Fiber.join(running)
          yield* Fiber.join(closing)
          const report = yield* Fiber.join(unbinding)

          expect(results).toHaveLength(calls.length)
          const outcome = (r: (typeof results)[number]) => Either.isRight(r) ? "done" : r.left._tag
          const counts = { done: 0, DeviceGone: 0, HandleClosed: 0 }
          for (const r of results) counts[outcome(r) as keyof typeof counts]++
          expect(counts.done + counts.DeviceGone + counts.HandleClosed).toBe(calls.length)
          expect(counts.done).toBe(completed)
          // No call saw its state destroyed or the resources released under it.
          expect(unsafe).toBe(0)
          // Each state destroyed exactly once (destroy dies if a call is in flight), before remove.
          for (const h of handles) expect(log.count(`destroy ${h.id} (regs 100)`)).toBe(1)
          expect(registration.destroyFailures).toBe(0)
          const removeAt = log.entries.indexOf("remove")
          expect(log.entries.slice(removeAt)).toEqual(["remove", "release regs"])
          expect(report.gates[0]!.interrupted).toEqual([])
          expect(report.leaks).toEqual([])
          // Afterwards, everything is refused and every handle can be closed.
          for (const h of handles) {
            expect(h.isZombie || h.isClosed).toBe(true)
            expect(Either.isLeft(yield* Effect.either(h.call("read", 0)))).toBe(true)
            yield* h.close()
          }
          expect(registration.zombies).toBe(0)
          expect(registration.handles).toBe(0)
        })
      ),
    { fastCheck: { numRuns: 30 } }
  )
})
