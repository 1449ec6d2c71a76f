import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, HashMap, Layer, Logger, Option, TestClock } from "effect"
import { Bound, Devres, Driver, Hardware } from "@devscope/core"
import * as Irq from "@devscope/core/Irq"
import { Log, resource, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

/** A fake interrupt line: `raise` calls the listeners unless masked; a masked raise stays pending. */
class FakeLine implements Hardware.IrqLine {
  readonly listeners = new Set<() => void>()
  masked = false
  pending = false
  constructor(readonly device: string, readonly line: number, readonly log: Log) {}
  listen(listener: () => void) {
    this.listeners.add(listener)
    return () => {
      if (this.listeners.delete(listener)) this.log.entries.push(`unlisten irq ${this.line}`)
    }
  }
  raise() {
    if (this.masked) {
      this.pending = true
      return
    }
    for (const listener of Array.from(this.listeners)) listener()
  }
  mask() {
    this.masked = true
  }
  unmask() {
    this.masked = false
    if (this.pending) {
      this.pending = false
      this.raise()
    }
  }
}

/** A fake Hardware service whose devices have `lines` interrupt lines each. */
const fakeHardware = (log: Log, lines = 1) => {
  const table = new Map<string, FakeLine>()
  const line = (device: string, index: number): FakeLine => {
    const key = `${device}/${index}`
    let found = table.get(key)
    if (found === undefined) {
      found = new FakeLine(device, index, log)
      table.set(key, found)
    }
    return found
  }
  const service: Hardware.Service = {
    region: (device, index) => Effect.fail(new Hardware.NoSuchRegion({ device: device.name, index })),
    irq: (device, index) =>
      index < lines
        ? Effect.succeed(line(device.name, index))
        : Effect.fail(new Hardware.NoSuchIrq({ device: device.name, line: index })),
    dma: () => {
      throw new Error("no DMA in this fake")
    }
  }
  return { service, line }
}

/** Lets the fibers woken by a raise run. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** What a probe captured, for the test to look at. */
interface Captured {
  irq: Devres.Devres<Irq.Registration, "edu">
  token: Bound.Bound<"edu">
}

/** A probe layer that runs `request` and captures the registration and the token. */
const capture = <E, R>(
  captured: Partial<Captured>,
  request: Effect.Effect<Devres.Devres<Irq.Registration, "edu">, E, R>
) =>
  Layer.effectDiscard(Effect.gen(function*() {
    captured.irq = yield* request
    captured.token = yield* Edu.Bound
  }))

const registrationOf = (captured: Partial<Captured>) => captured.irq!.access(captured.token!)

class Regs extends Context.Tag("test/Regs")<Regs, Devres.Devres<Uint32Array, "edu">>() {}
const RegsLive = Layer.effect(
  Regs,
  Devres.acquireRelease(Edu, Effect.sync(() => new Uint32Array([7, 8, 9])), () => Effect.void, { label: "BAR0" })
)

describe("Irq", () => {
  it.effect("a handler that never returns is reported, and the unbind still ends, releases and frees the lock", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          // A handler runs uninterruptibly (a run that starts completes): this one never does.
          probe: () => capture(captured, Irq.request(Edu, 0, Effect.never)).pipe(Layer.provideMerge(resource(Edu, log, "regs")))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.sync(() => hw.line("edu0", 0).raise())
        yield* settle
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        for (let i = 0; i < 100 && unbinding.unsafePoll() === null; i++) yield* TestClock.adjust("10 millis")
        expect(unbinding.unsafePoll()).not.toBeNull()
        const report = yield* Fiber.join(unbinding)
        expect(report.leaks.map((l) => l._tag)).toContain("FiberLeak")
        expect(log.entries).toContain("release regs")
        expect(Bound.isLive(captured.token!)).toBe(false)
        expect(hw.line("edu0", 0).listeners.size).toBe(0)
        // The lock is free: the device binds again.
        yield* bus.bind("edu0")
        expect((yield* bus.device("edu0")).state).toBe("bound")
        yield* Effect.fork(bus.unbind("edu0"))
        for (let i = 0; i < 100; i++) yield* TestClock.adjust("10 millis")
      }), { fiberStopTimeout: "100 millis", releaseTimeout: "100 millis" }))

  it.effect("the handler runs on raise, as a binding fiber with the Bound token in context", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        const seen: Array<string> = []
        const handler = Effect.gen(function*() {
          const token = yield* Edu.Bound
          const regs = yield* Regs
          seen.push(`${regs.access(token)[0]} live=${Bound.isLive(token)}`)
          return "handled" as const
        })
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => capture(captured, Irq.request(Edu, 0, handler)).pipe(Layer.provideMerge(RegsLive))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        expect(line.listeners.size).toBe(1)
        expect(seen).toEqual([])
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(seen).toEqual(["7 live=true"])
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(seen).toEqual(["7 live=true", "7 live=true"])
        const registration = registrationOf(captured)
        expect(registration.line).toBe(0)
        expect(registration.device).toBe("edu0")
        expect(registration.stats).toEqual({ handled: 2, unhandled: 0, threadRuns: 0, storms: 0 })
        // The dispatcher is one of the binding's fibers: the unbind interrupts it.
        const report = yield* bus.unbind("edu0")
        expect(report.fibersInterrupted).toBe(1)
        expect(report.released).toEqual(["irq 0", "BAR0"])
      })
    ))

  it.effect("interrupts raised while the handler runs coalesce into one more run; runs never overlap", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        let running = 0
        let maxRunning = 0
        let runs = 0
        const handler = Effect.gen(function*() {
          running++
          runs++
          maxRunning = Math.max(maxRunning, running)
          yield* Effect.sleep("1 second")
          running--
          return "handled" as const
        })
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => capture(captured, Irq.request(Edu, 0, handler)) })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(runs).toBe(1)
        for (let i = 0; i < 3; i++) {
          yield* Effect.sync(() => line.raise())
          yield* settle
        }
        expect(runs).toBe(1)
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(runs).toBe(2)
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(runs).toBe(2)
        expect(maxRunning).toBe(1)
        expect(registrationOf(captured).stats.handled).toBe(2)
      })
    ))

  it.effect("release at unbind waits for a running handler, before the other resources are released", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        const handler = log.push("handler start").pipe(
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.zipRight(log.push("handler done")),
          Effect.as("handled" as const)
        )
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Irq.request(Edu, 0, handler)).pipe(Layer.provideMerge(resource(Edu, log, "regs")))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.sync(() => hw.line("edu0", 0).raise())
        yield* settle
        const unbinding = yield* Effect.fork(bus.unbind(device))
        yield* settle
        yield* TestClock.adjust("500 millis")
        expect(device.state).toBe("unbinding")
        expect(log.entries).toEqual(["acquire regs", "handler start"])
        yield* TestClock.adjust("500 millis")
        const report = yield* Fiber.join(unbinding)
        expect(log.entries).toEqual(["acquire regs", "handler start", "handler done", "unlisten irq 0", "release regs"])
        expect(report.released).toEqual(["irq 0", "regs"])
        expect(report.leaks).toEqual([])
      })
    ))

  it.effect("no handler runs after unbind: the listener is removed", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        let runs = 0
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => capture(captured, Irq.request(Edu, 0, Effect.sync(() => (runs++, "handled" as const))))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(runs).toBe(1)
        const report = yield* bus.unbind("edu0")
        expect(report.released).toEqual(["irq 0"])
        expect(line.listeners.size).toBe(0)
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(runs).toBe(1)
        expect(Option.isNone(captured.irq!.tryAccess())).toBe(true)
      })
    ))

  it.effect("Devres.release frees the line early and waits for the running handler", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        const handler = log.push("handler start").pipe(
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.zipRight(log.push("handler done")),
          Effect.as("handled" as const)
        )
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => capture(captured, Irq.request(Edu, 0, handler)) })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        yield* Effect.sync(() => line.raise())
        yield* settle
        const releasing = yield* Effect.fork(Effect.zipRight(Devres.release(captured.irq!), log.push("released")))
        yield* settle
        // Raised while releasing: the listener is already gone.
        yield* Effect.sync(() => line.raise())
        expect(log.entries).toEqual(["handler start", "unlisten irq 0"])
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(releasing)
        yield* settle
        expect(log.entries).toEqual(["handler start", "unlisten irq 0", "handler done", "released"])
        const report = yield* bus.unbind("edu0")
        // Released early: counted, not listed, and not released again.
        expect(report.released).toEqual([])
        expect(report.releasedEarly).toBe(1)
        expect(report.fibersInterrupted).toBe(0)
      })
    ))

  it.effect("synchronize waits for the running handler; disable masks the line and enable delivers what is pending", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        let runs = 0
        const handler = Effect.sync(() => runs++).pipe(
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.as("handled" as const)
        )
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => capture(captured, Irq.request(Edu, 0, handler)) })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        const registration = registrationOf(captured)
        // Idle: returns at once.
        yield* registration.synchronize
        yield* Effect.sync(() => line.raise())
        yield* settle
        Irq.disable(registration)
        expect(registration.disabled).toBe(true)
        expect(line.masked).toBe(true)
        const sync = yield* Effect.fork(registration.synchronize)
        yield* settle
        expect(sync.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 second")
        expect(Exit.isSuccess(yield* Fiber.await(sync))).toBe(true)
        expect(runs).toBe(1)
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect(runs).toBe(1)
        Irq.enable(registration)
        expect(registration.disabled).toBe(false)
        yield* settle
        expect(runs).toBe(2)
        // Let the handler finish: the unbind (when the bus closes) would wait for it.
        yield* TestClock.adjust("1 second")
      })
    ))

  it.effect("a threaded handler wakes the thread; wake-ups while it runs coalesce into one more run", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log, 2)
        let hard = 0
        let threadRuns = 0
        let defaultThreadRuns = 0
        const captured: Partial<Captured> = {}
        const other: Partial<Captured> = {}
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            capture(
              captured,
              Irq.requestThreaded(Edu, 0, {
                handler: Effect.sync(() => (hard++, "wake-thread" as const)),
                thread: Effect.gen(function*() {
                  // The thread is a binding fiber too.
                  yield* Edu.Bound
                  threadRuns++
                  yield* Effect.sleep("1 second")
                })
              })
            ).pipe(
              Layer.provideMerge(capture(other, Irq.requestThreaded(Edu, 1, { thread: Effect.sync(() => defaultThreadRuns++) })))
            )
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        yield* Effect.sync(() => line.raise())
        yield* settle
        expect([hard, threadRuns]).toEqual([1, 1])
        for (let i = 0; i < 3; i++) {
          yield* Effect.sync(() => line.raise())
          yield* settle
        }
        // The hard handler ran for each; the thread still runs its first wake-up.
        expect([hard, threadRuns]).toEqual([4, 1])
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(threadRuns).toBe(2)
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(threadRuns).toBe(2)
        expect(registrationOf(captured).stats).toEqual({ handled: 4, unhandled: 0, threadRuns: 2, storms: 0 })
        // Without a hard handler, every interrupt wakes the thread.
        yield* Effect.sync(() => hw.line("edu0", 1).raise())
        yield* settle
        expect(defaultThreadRuns).toBe(1)
        const report = yield* bus.unbind("edu0")
        // Line 1's layer is built first, so it is released last.
        expect(report.released).toEqual(["irq 0", "irq 1"])
        expect(report.fibersInterrupted).toBe(4)
      })
    ))

  it.effect("storm detection masks the line after the threshold of unhandled interrupts, counts and warns", () => {
    const warnings: Array<{ level: string; message: string; device: unknown; line: unknown }> = []
    const testLogger = Logger.make(({ annotations, logLevel, message }) => {
      warnings.push({
        level: logLevel.label,
        message: (Array.isArray(message) ? message : [message]).join(" "),
        device: Option.getOrUndefined(HashMap.get(annotations, "device")),
        line: Option.getOrUndefined(HashMap.get(annotations, "line"))
      })
    })
    return withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        let answer: Irq.Return = "none"
        let runs = 0
        const captured: Partial<Captured> = {}
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            capture(captured, Irq.request(Edu, 0, Effect.sync(() => (runs++, answer)), { stormThreshold: 5 }))
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        const registration = registrationOf(captured)
        const raise = (n: number) =>
          Effect.forEach(Array.from({ length: n }), () => Effect.zipRight(Effect.sync(() => line.raise()), settle))
        yield* raise(4)
        // A handled interrupt breaks the run of unhandled ones.
        answer = "handled"
        yield* raise(1)
        answer = "none"
        yield* raise(4)
        expect(registration.disabled).toBe(false)
        expect(registration.stats).toEqual({ handled: 1, unhandled: 8, threadRuns: 0, storms: 0 })
        expect(warnings).toEqual([])
        yield* raise(1)
        expect(registration.disabled).toBe(true)
        expect(line.masked).toBe(true)
        expect(registration.stats).toEqual({ handled: 1, unhandled: 9, threadRuns: 0, storms: 1 })
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toMatchObject({ level: "WARN", device: "edu0", line: 0 })
        expect(warnings[0]!.message).toContain("nobody cared")
        expect(warnings[0]!.message).toContain("irq 0")
        expect(warnings[0]!.message).toContain("edu0")
        // Masked: raises stay pending, the handler does not run.
        yield* raise(3)
        expect(runs).toBe(10)
        // Re-enabled: the pending interrupt is delivered, and the count starts again.
        answer = "handled"
        Irq.enable(registration)
        yield* settle
        expect(runs).toBe(11)
        expect(registration.disabled).toBe(false)
        expect(registration.stats.storms).toBe(1)
        // The line was masked by the registration: the release gives it back unmasked.
        answer = "none"
        yield* raise(5)
        expect(registration.stats.storms).toBe(2)
        expect(line.masked).toBe(true)
        yield* bus.unbind("edu0")
        expect(line.masked).toBe(false)
      })
    ).pipe(Effect.provide(Logger.add(testLogger)))
  })

  it.effect("a handler that dies is logged and counted as unhandled; the line keeps being served", () => {
    const errors: Array<string> = []
    const testLogger = Logger.make(({ logLevel, message }) => {
      if (logLevel.label === "ERROR") errors.push(String(Array.isArray(message) ? message[0] : message))
    })
    return withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log)
        let runs = 0
        const captured: Partial<Captured> = {}
        const handler = Effect.suspend(() => ++runs === 1 ? Effect.dieMessage("bug in handler") : Effect.succeed("handled" as const))
        const driver = Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => capture(captured, Irq.request(Edu, 0, handler)) })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const line = hw.line("edu0", 0)
        yield* Effect.zipRight(Effect.sync(() => line.raise()), settle)
        yield* Effect.zipRight(Effect.sync(() => line.raise()), settle)
        expect(runs).toBe(2)
        expect(registrationOf(captured).stats).toMatchObject({ handled: 1, unhandled: 1 })
        expect(errors).toHaveLength(1)
        expect(errors[0]).toContain("handler failed")
      })
    ).pipe(Effect.provide(Logger.add(testLogger)))
  })

  it.effect("NoSuchIrq fails the probe (ProbeFailed) and releases what was acquired", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const hw = fakeHardware(log, 1)
        const handler = Effect.succeed("handled" as const)
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Irq.request(Edu, 7, handler)).pipe(
              Layer.provideMerge(Layer.effectDiscard(Irq.request(Edu, 0, handler))),
              Layer.provideMerge(resource(Edu, log, "regs"))
            )
        })
        yield* bus.registerDriver(driver).pipe(Effect.provideService(Hardware.Hardware, hw.service))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const error = yield* Effect.flip(bus.bind(device))
        expect(error._tag).toBe("ProbeFailed")
        const cause = error._tag === "ProbeFailed" ? error.cause : Cause.empty
        expect(Option.getOrUndefined(Cause.failureOption(cause))).toEqual(
          new Hardware.NoSuchIrq({ device: "edu0", line: 7 })
        )
        expect(device.state).toBe("unbound")
        expect(log.entries).toEqual(["acquire regs", "unlisten irq 0", "release regs"])
        expect(hw.line("edu0", 0).listeners.size).toBe(0)
        const unbound = (yield* bus.history).find((e) => e._tag === "Unbound")
        expect(unbound?._tag === "Unbound" && unbound.report.released).toEqual(["irq 0", "regs"])
        expect(unbound?._tag === "Unbound" && unbound.report.leaks).toEqual([])
      })
    , { autoBind: false }))
})
