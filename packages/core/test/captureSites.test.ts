/** The bus option `captureSites`: sites of Devres acquisitions and bus calls, or none. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { type Bound, type Bus, Devres, Driver } from "@devscope/core"
import { withBus } from "./utils.js"

const Edu = Driver.brand("edu")

const probeOnce = (
  onProbe: (res: Devres.Devres<number, "edu">, token: Bound.Bound<"edu">) => void,
  label?: string
) =>
  Driver.make(Edu, {
    match: [{ vendor: 1 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const res = yield* Devres.acquireRelease(Edu, Effect.succeed(1), () => Effect.void, { label })
        onProbe(res, yield* Edu.Bound)
      }))
  })

const defectOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Die" ? exit.cause.defect as { revokedAt?: string } : undefined

/** Binds edu0 to a driver acquiring one Devres (labelled `label`, if given); the Devres and token. */
const bindEdu = (bus: Bus.Service, label?: string) =>
  Effect.gen(function*() {
    let got: { res: Devres.Devres<number, "edu">; token: Bound.Bound<"edu"> } | undefined
    yield* bus.registerDriver(probeOnce((res, token) => (got = { res, token }), label))
    yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
    return got!
  })

describe("captureSites", () => {
  for (const captureSites of ["always", undefined] as const) {
    it.effect(`${captureSites ?? "default"}: a Devres names where it was acquired, a report where the unbind was asked`, () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const got = yield* bindEdu(bus)
          expect(got.res.acquiredAt).toContain("captureSites.test.ts")
          expect(got.res.label).toContain("captureSites.test.ts")
          const report = yield* bus.unbind("edu0")
          expect(report.site).toContain("captureSites.test.ts")
          const exit = yield* Effect.exit(Effect.sync(() => got.res.access(got.token)))
          expect(defectOf(exit)?.revokedAt).toContain("captureSites.test.ts")
        }), { captureSites }))
  }

  it.effect("default: a labelled Devres is named by its label, not its site; bus calls still name theirs", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const got = yield* bindEdu(bus, "BAR0")
        expect(got.res.label).toBe("BAR0")
        expect(got.res.acquiredAt).toMatch(/not captured \(a labelled resource/)
        const report = yield* bus.unbind("edu0")
        expect(report.released).toEqual(["BAR0"])
        expect(report.site).toContain("captureSites.test.ts")
        const exit = yield* Effect.exit(Effect.sync(() => got.res.access(got.token)))
        expect(defectOf(exit)?.revokedAt).toContain("captureSites.test.ts")
      })))

  it.effect("always: a labelled Devres names where it was acquired too", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const got = yield* bindEdu(bus, "BAR0")
        expect(got.res.label).toBe("BAR0")
        expect(got.res.acquiredAt).toContain("captureSites.test.ts")
      }), { captureSites: "always" }))

  it.effect("never: no stack walk; the sites say they were not captured, everything else is the same", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const got = yield* bindEdu(bus)
        expect(got.res.acquiredAt).toMatch(/not captured/)
        expect(got.res.access(got.token)).toBe(1)
        const report = yield* bus.unbind("edu0")
        expect(report.site).toMatch(/not captured/)
        expect(report.released).toHaveLength(1)
        const exit = yield* Effect.exit(Effect.sync(() => got.res.access(got.token)))
        expect(defectOf(exit)?.revokedAt).toMatch(/not captured/)
      }), { captureSites: "never" }))
})
