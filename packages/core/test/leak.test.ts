import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { Driver, Leak } from "@devscope/core"
import { withBus } from "./utils.js"

const Nic = Driver.brand("nic")

const driverTracking = (release: boolean) =>
  Driver.make(Nic, {
    match: [{ vendor: 2 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const bound = yield* Nic.Bound
        const filter = Leak.track(bound, "rx filter")
        const keep = Leak.track(bound, "tx timer")
        keep.release()
        if (release) filter.release()
      }))
  })

describe("leak checks", () => {
  it.effect("an object tracked and not released is reported with where it was acquired", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(driverTracking(false))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 2 } })
        const report = yield* bus.unbind("nic0")
        expect(report.leaks).toHaveLength(1)
        const leak = report.leaks[0]!
        expect(leak).toMatchObject({ _tag: "ObjectLeak", device: "nic0", driver: "nic", label: "rx filter" })
        expect(leak._tag === "ObjectLeak" && leak.acquiredAt).toContain("leak.test.ts")
        const unbound = (yield* bus.history).find((e) => e._tag === "Unbound")
        expect(unbound?._tag === "Unbound" && unbound.report.leaks).toEqual(report.leaks)
        // A test turns the report into a failure.
        const failure = yield* Effect.flip(Leak.assertNone(report.leaks))
        expect(failure._tag).toBe("LeaksDetected")
        expect(failure.message).toContain(`"rx filter" of "nic0"`)
      })
    ))

  it.effect("released objects are not reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(driverTracking(true))
        yield* bus.addDevice({ name: "nic0", ids: { vendor: 2 } })
        const report = yield* bus.unbind("nic0")
        expect(report.leaks).toEqual([])
        yield* Leak.assertNone(report.leaks)
      })
    ))

  it.effect("a strict bus makes the unbind die with LeaksDetected, after completing it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(driverTracking(false))
        const device = yield* bus.addDevice({ name: "nic0", ids: { vendor: 2 } })
        const exit = yield* Effect.exit(bus.unbind(device))
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        expect(defect).toBeInstanceOf(Leak.LeaksDetected)
        expect(device.state).toBe("unbound")
        expect(yield* bus.leaks).toHaveLength(1)
      })
    , { strict: true }))
})
