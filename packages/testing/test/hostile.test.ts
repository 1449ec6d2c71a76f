import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Hostile } from "@devscope/testing"
// The bus's own observer isolation, switched off to plant a regression the fuzzer must find.
import { EventLog } from "../../core/src/internal/events.js"

describe("hostile-driver fuzzing", () => {
  it.effect("a hand-picked worst case: everything misbehaves, the contract holds", () =>
    Effect.gen(function*() {
      const result = yield* Hostile.run({
        plan: {
          probe: "ok",
          remove: "hang-uninterruptibly",
          releases: ["ok", "hang-uninterruptibly", "throw", "hang"],
          fiber: "hang-uninterruptibly",
          destroy: "hang-uninterruptibly",
          observer: "throw-on-unbinding"
        },
        steps: [
          { _tag: "plug", device: "h0" },
          { _tag: "open", device: "h0" },
          { _tag: "surprise", device: "h0", interruptAfter: 3 }
        ]
      })
      expect(result.breaks).toEqual([])
      expect(result.bindings).toBe(1)
    }), 60_000)

  it.effect("500 seeded sequences break no rule of the contract", () =>
    Effect.gen(function*() {
      const report = yield* Hostile.check({ numRuns: 500, seed: 2026 })
      expect(Hostile.describe(report)).toBe("500 hostile sequences, no contract break (seed 2026)")
    }), 600_000)
})

describe("hostile-driver fuzzing finds a planted regression", () => {
  it.effect("with the bus's observer isolation removed, a throwing observer breaks the contract; the token replays it", () =>
    Effect.gen(function*() {
      EventLog.isolateObservers = false
      try {
        const report = yield* Hostile.check({ numRuns: 200, seed: 7 })
        expect(report.failed).toBe(true)
        expect(report.counterexample!.plan.observer).not.toBe("ok")
        expect(report.result!.breaks.length).toBeGreaterThan(0)
        const again = yield* Hostile.replay(report.token!)
        expect(again.breaks).toEqual(report.result!.breaks)
        console.log(Hostile.describe(report))
      } finally {
        EventLog.isolateObservers = true
      }
    }), 600_000)

  it("replay tokens are checked", () => {
    expect(() => Hostile.replay("nonsense")).toThrow("not a hostile-fuzzing replay token")
    expect(() => Hostile.replay("hostile:%%%")).toThrow("does not decode")
  })
})
