import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Runtime, TestClock } from "effect"
import { Bound, DeviceError, Devres, Driver, Leak } from "@devscope/core"
import { waitFor, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

class Regs extends Context.Tag("test/Regs")<Regs, Devres.Devres<Uint32Array, "edu">>() {}

const RegsLive = Layer.effect(
  Regs,
  Devres.acquireRelease(Edu, Effect.sync(() => new Uint32Array([7, 8, 9])), () => Effect.void, { label: "BAR0" })
)

const defectOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

describe("tokens and Devres", () => {
  it.effect("inside the binding, access is a plain synchronous read", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const reads: Array<number> = []
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const regs = yield* Regs
              const bound = yield* Edu.Bound
              reads.push(regs.access(bound)[1]!)
              expect(Option.getOrThrow(regs.tryAccess())[2]).toBe(9)
            })).pipe(Layer.provideMerge(RegsLive)),
          remove: () =>
            Effect.gen(function*() {
              const regs = yield* Regs
              reads.push(regs.access(yield* Edu.Bound)[0]!)
            })
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* bus.unbind("edu0")
        expect(reads).toEqual([8, 7])
      })
    ))

  it.effect("a token of another device of the same driver is a DeviceMismatch defect", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const seen = new Map<string, { regs: Devres.Devres<Uint32Array, "edu">; bound: Bound.Bound<"edu"> }>()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: (device) =>
            Layer.effectDiscard(Effect.gen(function*() {
              seen.set(device.name, { regs: yield* Regs, bound: yield* Edu.Bound })
            })).pipe(Layer.provideMerge(RegsLive))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* bus.addDevice({ name: "edu1", ids: { vendor: 1 } })
        const a = seen.get("edu0")!
        const b = seen.get("edu1")!
        const exit = yield* Effect.exit(Effect.sync(() => a.regs.access(b.bound)))
        expect(defectOf(exit)).toEqual(new DeviceError.DeviceMismatch({
          resource: `Devres "BAR0"`,
          expected: "edu0",
          actual: "edu1"
        }))
        const forged = { device: a.bound.device, driver: "edu" } as unknown as Bound.Bound<"edu">
        const forgedExit = yield* Effect.exit(Effect.sync(() => a.regs.access(forged)))
        expect(defectOf(forgedExit)).toBeInstanceOf(DeviceError.DeviceMismatch)
        // A token of a second copy of @devscope/core carries the same global type id but is
        // not this copy's object: the defect says two copies are loaded.
        const foreign = { [Symbol.for("@devscope/core/Bound")]: {}, toString: () => "Bound(edu, edu0)" } as unknown as Bound.Bound<"edu">
        const foreignExit = yield* Effect.exit(Effect.sync(() => a.regs.access(foreign)))
        const mismatch = defectOf(foreignExit) as DeviceError.DeviceMismatch
        expect(mismatch).toBeInstanceOf(DeviceError.DeviceMismatch)
        expect(mismatch.actual).toContain("another copy of @devscope/core")
        expect(mismatch.actual).toContain("npm ls @devscope/core")
      })
    ))

  it.effect("a token escaped into a daemon fiber and used after unbind dies with UseAfterUnbind; the leak check names it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let daemon: Fiber.RuntimeFiber<number> | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const regs = yield* Regs
              const bound = yield* Edu.Bound
              // The daemon shields itself from interruption, so it outlives the unbind.
              daemon = yield* Effect.forkDaemon(
                Effect.uninterruptible(
                  Effect.sleep("10 seconds").pipe(Effect.map(() => regs.access(bound)[0]!))
                ).pipe(Effect.withSpan("stale-poller"))
              )
            })).pipe(Layer.provideMerge(RegsLive))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* TestClock.adjust("6 seconds") // past the 5 s fiberStopTimeout
        const report = yield* Fiber.join(unbinding)
        expect(report.leaks).toHaveLength(1)
        const leak = report.leaks[0]!
        expect(leak._tag).toBe("FiberLeak")
        expect(leak).toMatchObject({ device: "edu0", driver: "edu", startedDuring: "probe", span: "stale-poller" })
        expect(Leak.format(leak)).toContain("still running after unbind")
        yield* TestClock.adjust("5 seconds")
        const exit = yield* Fiber.await(daemon!)
        const defect = defectOf(exit)
        expect(defect).toBeInstanceOf(DeviceError.UseAfterUnbind)
        expect(defect).toMatchObject({ device: "edu0", driver: "edu", unbindCause: "manual", resource: `Devres "BAR0"` })
        // The defect names where the unbind was requested: this test file.
        expect((defect as DeviceError.UseAfterUnbind).revokedAt).toContain("tokens.test.ts")
        expect(yield* bus.leaks).toEqual(report.leaks)
      })
    ))

  it.effect("a token captured by code outside the binding dies on use after unbind; tryAccess says None", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let stolen: { regs: Devres.Devres<Uint32Array, "edu">; bound: Bound.Bound<"edu"> } | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              stolen = { regs: yield* Regs, bound: yield* Edu.Bound }
            })).pipe(Layer.provideMerge(RegsLive))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(stolen!.regs.access(stolen!.bound)[0]).toBe(7)
        expect(Bound.isLive(stolen!.bound)).toBe(true)
        yield* bus.removeDevice("edu0", { cause: "surprise" })
        expect(Bound.isLive(stolen!.bound)).toBe(false)
        expect(Option.isNone(stolen!.regs.tryAccess())).toBe(true)
        expect(stolen!.regs.isReleased).toBe(true)
        const exit = yield* Effect.exit(Effect.sync(() => stolen!.regs.access(stolen!.bound)))
        expect(defectOf(exit)).toMatchObject({ _tag: "UseAfterUnbind", device: "edu0", unbindCause: "surprise" })
        expect(String((defectOf(exit) as Error).message)).toContain("cause: surprise")
        // Acquiring with a revoked token is a defect as well.
        const late = yield* Effect.exit(
          Devres.make(Edu, 1).pipe(Effect.provideService(Edu.Bound, stolen!.bound))
        )
        expect(defectOf(late)).toBeInstanceOf(DeviceError.UseAfterUnbind)
      })
    ))

  it.effect("Devres.release releases early, once; later use names the release site", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let releases = 0
        let captured: { res: Devres.Devres<string, "edu">; bound: Bound.Bound<"edu"> } | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const res = yield* Devres.acquireRelease(Edu, Effect.succeed("fw"), () => Effect.sync(() => releases++), {
                label: "firmware"
              })
              captured = { res, bound: yield* Edu.Bound }
              yield* Devres.release(res)
              yield* Devres.release(res)
            }))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(releases).toBe(1)
        const exit = yield* Effect.exit(Effect.sync(() => captured!.res.access(captured!.bound)))
        const defect = defectOf(exit) as DeviceError.UseAfterUnbind
        expect(defect.unbindCause).toBe("released")
        expect(defect.revokedAt).toContain("tokens.test.ts")
        const report = yield* bus.unbind("edu0")
        expect(releases).toBe(1)
        // Released early, not by the unbind: counted, not listed.
        expect(report.released).toEqual([])
        expect(report.releasedEarly).toBe(1)
      })
    ))

  it.effect("a fiber started from a runtime captured in the binding after unbind is interrupted and reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let runtime: Runtime.Runtime<never> | undefined
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.map(Effect.runtime<never>(), (rt) => (runtime = rt)))
        })
        yield* bus.registerDriver(driver)
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const events = yield* bus.subscribe
        yield* bus.unbind("edu0")
        let ran = false
        const late = Runtime.runFork(runtime!)(Effect.sync(() => (ran = true)))
        const exit = yield* Fiber.await(late)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(ran).toBe(false)
        const event = yield* waitFor(events, "LeakDetected")
        expect(event.leak).toMatchObject({ _tag: "FiberLeak", device: "edu0", startedDuring: "after-unbind" })
      })
    ))
})
