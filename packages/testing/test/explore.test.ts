import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Explore } from "@devscope/testing"
import { scenario } from "./eduFixture.js"

describe("Explore", () => {
  it.effect("passes a correct driver at every point of every mode", () =>
    Effect.gen(function*() {
      const report = yield* Explore.explore(scenario(undefined), { maxPoints: 60 })
      expect(report.failures.map(Explore.describe)).toEqual([])
      expect(report.points.bound).toBeGreaterThan(20)
      expect(report.points.unbinding).toBeGreaterThan(0)
      expect(report.cases).toBeGreaterThan(100)
      for (const mode of report.modes) {
        // Inside the unbind, only the driver's own waits are points (the unbind itself runs
        // its bounded steps without a scheduler turn when they end at once).
        expect(mode.points, mode.mode).toBeGreaterThan(mode.mode === "surprise-in-remove" ? 1 : 20)
        expect(mode.cases, mode.mode).toBe(Math.min(60, mode.points))
        expect(mode.injected, mode.mode).toBe(mode.cases)
      }
    }), 120_000)

  it.effect("finds a remove that waits for an interrupt without a timeout, and names the wait site", () =>
    Effect.gen(function*() {
      const report = yield* Explore.explore(scenario("wait-irq-no-timeout"), { maxPoints: 60 })
      // The unbind no longer hangs on it: the bus cuts the remove at its deadline, the unbind
      // ends and its report names the wait. (What still stalls afterwards is the driver's own
      // transfer, which its buggy remove left waiting: reported too, as G4.)
      const isCut = (f: Explore.CaseResult) => f.violations.some((v) => v.message.includes("remove did not finish"))
      const cut = report.failures.filter(isCut)
      expect(cut.length).toBeGreaterThan(0)
      expect(report.failures.filter((f) => f.outcome === "Stalled" && !isCut(f))).toEqual([])
      // Only surprise removals can make it wait forever: an orderly unplug still gets its interrupt.
      expect(cut.every((f) => f.case.mode !== "unplug")).toBe(true)
      const message = cut[0]!.violations.find((v) => v.message.includes("remove did not finish"))!.message
      expect(message).toContain("devscope.remove (device=edu0, driver=edu-x)")
      // The replay token reproduces exactly that failure.
      const again = yield* Explore.replay(scenario("wait-irq-no-timeout"), cut[0]!.token)
      expect(again.outcome).toBe(cut[0]!.outcome)
      expect(again.violations).toEqual(cut[0]!.violations)
    }), 120_000)

  it.effect("finds a driver that frees DMA memory before stopping the device (G5)", () =>
    Effect.gen(function*() {
      const report = yield* Explore.explore(scenario("free-dma-before-stop"), { maxPoints: 60, modes: ["unplug"] })
      const g5 = report.failures.filter((f) => f.violations.some((v) => v.guarantee === "G5"))
      expect(g5.length).toBeGreaterThan(0)
      const message = g5[0]!.violations.find((v) => v.guarantee === "G5")!.message
      expect(message).toContain("freed or unmapped")
      expect(message).toContain("eduFixture.ts")
      const again = yield* Explore.replay(scenario("free-dma-before-stop"), g5[0]!.token)
      expect(again.violations).toEqual(g5[0]!.violations)
    }), 120_000)

  it("replay tokens are checked", () => {
    expect(() => Explore.replay(scenario(undefined), "nonsense")).toThrow("not a replay token")
    expect(() => Explore.replay(scenario(undefined), "other@1:surprise:3")).toThrow("scenario \"other\"")
  })
})
