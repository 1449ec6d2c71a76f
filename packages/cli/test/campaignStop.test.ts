/**
 * Stopping explore and fuzz: an aborted campaign returns the result of the cases that ran,
 * marked interrupted; merge refuses it; the real command exits 130, 143 or 124 after printing it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"
import * as Campaign from "../src/internal/campaign.js"
import * as Jobs from "../src/internal/jobs.js"
import * as Pool from "../src/internal/pool.js"
import * as Results from "../src/internal/results.js"
import { devscope, root } from "./command.js"

const clean = path.join(__dirname, "fixtures/campaign-clean.json")
const demo = path.join(root, "examples/scenarios/demo.json")
const scenario = Effect.runSync(Scenario.parse(fs.readFileSync(clean, "utf8"), clean))

/** An abort controller aborted (with `reason`) when the `after`-th case ends. */
const abortAfter = (after: number, reason: "SIGINT" | "SIGTERM" | "timeout") => {
  const controller = new AbortController()
  return {
    signal: controller.signal,
    onProgress: (done: number) => {
      if (done === after) controller.abort(reason)
    }
  }
}

describe("an interrupted campaign", () => {
  it.effect("explore: the cases that ran, the rest counted as not run, the verdict of what ran", () =>
    Effect.gen(function*() {
      const context: Jobs.Context = { scenario, seed: 3, horizon: 2 }
      const stop = abortAfter(12, "SIGINT")
      const result = yield* Effect.scoped(Effect.flatMap(Pool.local(Jobs.handler(context)), (executor) =>
        Campaign.explore({ scenario, seed: 3, shard: undefined, executor, points: 20, horizon: 2, ...stop })))
      expect(result.interrupted).toEqual({ reason: "SIGINT", notRun: result.total - result.cases.length, planning: false })
      // Planning (baselines and probes) ran; at most one case more than the abort's.
      expect(result.cases.length).toBeGreaterThanOrEqual(12)
      expect(result.cases.length).toBeLessThan(result.total / 2)
      expect(result.verdict).toBe("passed")
      expect(Results.body(result, clean)).toMatch(/INTERRUPTED \(SIGINT\): \d+ case\(s\) run, 0 failing, 0 crashed; \d+ not run/)
      expect(Results.body(result, clean)).not.toContain("passed:")
    }), 60_000)

  it.effect("explore stopped while planning: says the cases are not all known", () =>
    Effect.gen(function*() {
      const controller = new AbortController()
      controller.abort("timeout")
      const context: Jobs.Context = { scenario, seed: 3, horizon: 2 }
      const result = yield* Effect.scoped(Effect.flatMap(Pool.local(Jobs.handler(context)), (executor) =>
        Campaign.explore({ scenario, seed: 3, shard: undefined, executor, points: 20, horizon: 2, signal: controller.signal })))
      expect(result.cases).toEqual([])
      expect(result.interrupted).toMatchObject({ reason: "timeout", planning: true })
      expect(Results.body(result, clean)).toContain("stopped while planning")
    }))

  it.effect("fuzz: not shrunk, the rest not run; merge refuses the interrupted shard", () =>
    Effect.gen(function*() {
      const context: Jobs.Context = { scenario, seed: 3, horizon: 2 }
      const stop = abortAfter(3, "SIGTERM")
      const result = yield* Effect.scoped(Effect.flatMap(Pool.local(Jobs.handler(context)), (executor) =>
        Campaign.fuzz({ scenario, seed: 3, shard: { index: 1, count: 2 }, executor, cases: 40, ...stop })))
      expect(result.interrupted).toEqual({ reason: "SIGTERM", notRun: 20 - result.cases.length, planning: false })
      expect(result.cases.length).toBeGreaterThanOrEqual(3)
      expect(result.cases.length).toBeLessThan(20)
      expect(result.shrunk).toBeNull()
      const merged = Results.merge([{ file: "one.json", text: JSON.stringify(result) }, { file: "two.json", text: JSON.stringify({ ...result, shard: { index: 2, count: 2 }, interrupted: null }) }])
      expect(merged).toMatch(/^one\.json: shard 1\/2 was interrupted \(SIGTERM, \d+ case\(s\) not run\): run it again$/)
    }), 60_000)
})

describe("stopping explore and fuzz (the real command)", () => {
  it.effect("explore --timeout: exit 124, the JSON of the cases run, marked interrupted", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["explore", demo, "--points", "500", "--timeout", "4s", "--json"])
      expect(ran.code, ran.stderr).toBe(124)
      expect(ran.stderr).toMatch(/devscope explore: interrupted \(timeout: --timeout 4s of wall time\) after \d+ case\(s\) in \d+\.\d s/)
      const result = JSON.parse(ran.stdout) as Campaign.Campaign
      expect(result.interrupted).toMatchObject({ reason: "timeout", planning: false })
      expect(result.cases.length).toBeGreaterThan(0)
      expect(result.interrupted!.notRun).toBe(result.total - result.cases.length)
      // Stopped within a second of its limit (the cases run in this thread: one at most finishes).
      expect(result.run.wallMillis).toBeLessThan(5_000)
    }), 120_000)

  it.effect("fuzz --workers 2, SIGINT: exit 130 within seconds, the workers terminated, the result printed", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["fuzz", demo, "--cases", "5000", "--workers", "2"], { signal: "SIGINT", ready: "random sequences", settle: 5_000 })
      expect(ran.code, ran.stderr).toBe(130)
      expect(ran.afterSignal).toBeLessThan(5_000)
      expect(ran.stdout).toMatch(/devscope fuzz: interrupted \(SIGINT\) after \d+ case\(s\)/)
      expect(ran.stdout).toMatch(/INTERRUPTED \(SIGINT\): \d+ case\(s\) run, 0 failing, 0 crashed; \d+ not run/)
    }), 120_000)
})
