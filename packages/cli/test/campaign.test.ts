/**
 * devscope explore, fuzz, replay and merge, end to end: planted bugs found and replayed, a
 * clean file passing, shards that partition the run and merge back into it, worker threads
 * giving the verdict of this thread, flags refused, crashing workers reported.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"
import * as Campaign from "../src/internal/campaign.js"
import type * as Jobs from "../src/internal/jobs.js"
import * as Pool from "../src/internal/pool.js"
import * as Results from "../src/internal/results.js"
import * as Shard from "../src/internal/shard.js"

const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")
const scenarios = path.join(root, "examples/scenarios")
const clean = path.join(__dirname, "fixtures/campaign-clean.json")
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-campaign-"))

const devscope = (...args: Array<string>) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(tsx, ["--conditions=@devscope/source", bin, ...args], { cwd: root, timeout: 240_000, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
    })
  })

/** A campaign's JSON without how it ran (workers, wall time). */
const verdictOf = (text: string) => {
  const { run: _, ...rest } = JSON.parse(text) as Campaign.Campaign
  return rest
}

describe("devscope explore / fuzz / replay / merge", () => {
  it.effect("explore finds the planted DMA bug (G5) and prints replay tokens that replay reproduces", () =>
    Effect.gen(function*() {
      const file = path.join(scenarios, "bug-free-dma-early.json")
      const run = yield* devscope("explore", file, "--points", "2", "--json", "--quiet")
      expect(run.code, run.stderr).toBe(1)
      const result = JSON.parse(run.stdout) as Campaign.Campaign
      expect(result.verdict).toBe("failed")
      const g5 = result.failures.find((f) => f.violations.some((v) => v.guarantee === "G5"))!
      expect(g5.token).toMatch(/^bug-free-dma-early\/disk0\/2ms@7:/)
      const text = yield* devscope("explore", file, "--points", "2")
      expect(text.code).toBe(1)
      expect(text.stdout).toContain(g5.token)
      expect(text.stdout).toContain("devscope replay")
      const replayed = yield* devscope("replay", file, g5.token, "--json")
      expect(replayed.code, replayed.stderr).toBe(1)
      const again = JSON.parse(replayed.stdout) as { readonly passed: boolean; readonly result: { readonly violations: unknown; readonly outcome: string } }
      expect(again.passed).toBe(false)
      expect(again.result.outcome).toBe(g5.outcome)
      expect(again.result.violations).toEqual(g5.violations)
    }), 300_000)

  it.effect("fuzz finds the planted hang in remove, shrinks it, and replay reproduces the shrunk sequence", () =>
    Effect.gen(function*() {
      const file = path.join(scenarios, "bug-hang-in-remove.json")
      const run = yield* devscope("fuzz", file, "--cases", "8", "--json", "--quiet")
      expect(run.code, run.stderr).toBe(1)
      const result = JSON.parse(run.stdout) as Campaign.Campaign
      expect(result.failures.length).toBeGreaterThan(0)
      const shrunk = result.shrunk!
      expect(shrunk.index).toBe(result.failures[0]!.index)
      expect(shrunk.token).toMatch(new RegExp(`^bug-hang-in-remove@5:fuzz:${shrunk.index}(:\\d+)*$`))
      expect(shrunk.violations.map((v) => v.message).join("\n")).toContain("remove did not finish")
      const replayed = yield* devscope("replay", file, shrunk.token, "--json")
      expect(replayed.code, replayed.stderr).toBe(1)
      const again = JSON.parse(replayed.stdout) as { readonly sequence: unknown; readonly result: { readonly violations: unknown } }
      expect(again.sequence).toEqual(shrunk.sequence)
      expect(again.result.violations).toEqual(shrunk.violations)
    }), 300_000)

  it.effect("a clean file passes explore and fuzz (exit 0), with the removals injected", () =>
    Effect.gen(function*() {
      const explored = yield* devscope("explore", clean, "--points", "3", "--json")
      expect(explored.code, explored.stderr).toBe(0)
      const result = JSON.parse(explored.stdout) as Campaign.Campaign
      expect(result.verdict).toBe("passed")
      expect(result.failures).toEqual([])
      const targets = (result.coverage as { readonly targets: ReadonlyArray<Campaign.TargetCoverage> }).targets
      expect(targets.map((t) => t.device)).toEqual(["disk0", "temp0"])
      for (const t of targets) for (const m of t.modes) expect(m.injected, `${t.device} ${m.mode}`).toBe(3)
      const fuzzed = yield* devscope("fuzz", clean, "--cases", "10")
      expect(fuzzed.code, fuzzed.stderr).toBe(0)
      expect(fuzzed.stdout).toContain("passed: 10 case(s), no guarantee broken")
    }), 300_000)

  it.effect("shards 1/3, 2/3 and 3/3 are disjoint, cover the run, and merge into the unsharded result; --workers 2 gives the same", () =>
    Effect.gen(function*() {
      const file = path.join(scenarios, "bug-hang-in-remove.json")
      const whole = yield* devscope("explore", file, "--points", "2", "--json", "--quiet")
      expect(whole.code).toBe(1)
      const shards: Array<string> = []
      const indices: Array<number> = []
      for (const i of [1, 2, 3]) {
        const shard = yield* devscope("explore", file, "--points", "2", "--shard", `${i}/3`, "--json", "--quiet")
        expect(shard.code).toBe(1)
        const out = path.join(tmp, `explore-${i}.json`)
        fs.writeFileSync(out, shard.stdout)
        shards.push(out)
        const result = JSON.parse(shard.stdout) as Campaign.Campaign
        expect(result.shard).toEqual({ index: i, count: 3 })
        indices.push(...result.cases.map((c) => c.index))
      }
      const total = (JSON.parse(whole.stdout) as Campaign.Campaign).total
      expect(indices.length).toBe(total)
      expect([...new Set(indices)].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i))
      const merged = yield* devscope("merge", ...shards, "--json")
      expect(merged.code, merged.stderr).toBe(1)
      expect(verdictOf(merged.stdout)).toEqual(verdictOf(whole.stdout))
      const text = yield* devscope("merge", shards[2]!, shards[0]!, shards[1]!)
      expect(text.stdout).toContain("3 shard(s) merged")
      expect(text.stdout).toContain("FAILED")
      const parallel = yield* devscope("explore", file, "--points", "2", "--json", "--quiet", "--workers", "2")
      expect(parallel.code, parallel.stderr).toBe(1)
      expect(verdictOf(parallel.stdout)).toEqual(verdictOf(whole.stdout))
      expect((JSON.parse(parallel.stdout) as Campaign.Campaign).run.workers).toBe(2)
    }), 600_000)

  it.effect("fuzz with --workers 2 gives the verdict of --workers 1", () =>
    Effect.gen(function*() {
      const file = path.join(scenarios, "bug-free-dma-early.json")
      const one = yield* devscope("fuzz", file, "--cases", "12", "--json", "--quiet")
      const two = yield* devscope("fuzz", file, "--cases", "12", "--json", "--quiet", "--workers", "2")
      expect(one.code).toBe(1)
      expect(two.code).toBe(1)
      expect(verdictOf(two.stdout)).toEqual(verdictOf(one.stdout))
    }), 300_000)

  it.effect("bad --shard and --workers values exit 2 naming the flag, before anything runs", () =>
    Effect.gen(function*() {
      for (const [flag, value] of [["--shard", "0/3"], ["--shard", "4/3"], ["--shard", "1-3"], ["--workers", "0"], ["--workers", "two"], ["--workers", "1000"]] as const) {
        const run = yield* devscope("explore", clean, flag, value)
        expect(run.code, `${flag} ${value}`).toBe(2)
        expect(run.stdout + run.stderr, `${flag} ${value}`).toContain(`${flag} "${value}"`)
      }
      const fuzz = yield* devscope("fuzz", clean, "--shard", "3")
      expect(fuzz.code).toBe(2)
      expect(fuzz.stdout + fuzz.stderr).toContain("--shard")
      const token = yield* devscope("replay", clean, "not-a-token")
      expect(token.code).toBe(2)
      expect(token.stderr).toContain("not a replay token")
      const other = yield* devscope("replay", clean, "other/disk0/2ms@1:surprise:1")
      expect(other.code).toBe(2)
      expect(other.stderr).toContain(`the token is for scenario "other"`)
    }), 300_000)

  it("--shard parses i/n strictly", () => {
    expect(Shard.parse("2/3")).toEqual({ index: 2, count: 3 })
    for (const bad of ["0/3", "4/3", "1/0", "01/3", "1/3/4", " 1/3", "-1/3", "1.5/3"]) expect(typeof Shard.parse(bad), bad).toBe("string")
    // Round robin: every case in exactly one shard.
    for (let i = 0; i < 10; i++) expect([1, 2, 3].filter((s) => Shard.owns({ index: s, count: 3 }, i)).length).toBe(1)
  })
})

describe("merge refuses what is not one campaign's shards", () => {
  const scenario = Effect.runSync(Scenario.parse(fs.readFileSync(clean, "utf8"), clean))
  const shardOf = (index: number, count: number, seed = 3) =>
    Effect.gen(function*() {
      const executor = yield* Pool.local((job: Jobs.Job) =>
        Effect.succeed<Jobs.Result>({ _tag: "fuzz", result: { outcome: "Done", operations: { started: 1, completed: 1, gone: 0, rejected: 0 }, violations: [], violationCount: 0, omitted: [], failure: undefined, faultsFired: 0, probeFailures: 0 } })
          .pipe(Effect.tap(() => Effect.sync(() => expect(job._tag).toBe("fuzz"))))
      )
      return yield* Campaign.fuzz({ scenario, seed, shard: { index, count }, executor, cases: 7 })
    })
  const source = (c: Campaign.Campaign, file: string) => ({ file, text: JSON.stringify(c) })

  it.effect("duplicates, missing shards, other seeds, other shard counts, unsharded results, non-results", () =>
    Effect.gen(function*() {
      const [a, b, c] = [yield* shardOf(1, 3), yield* shardOf(2, 3), yield* shardOf(3, 3)]
      const merged = Results.merge([source(a, "a"), source(b, "b"), source(c, "c")])
      expect(typeof merged).toBe("object")
      expect((merged as Campaign.Campaign).cases.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5, 6])
      expect(Results.merge([source(a, "a"), source(b, "b")])).toBe("1 of 3 shards missing: 3/3 (given: 1/3, 2/3)")
      expect(Results.merge([source(a, "a"), source(b, "b"), source(b, "b2")])).toBe("shard 2/3 is given twice (b and b2)")
      expect(Results.merge([source(a, "a"), source(yield* shardOf(2, 3, 4), "b"), source(c, "c")])).toContain("seed 3 and 4")
      expect(Results.merge([source(a, "a"), source(yield* shardOf(2, 2), "b")])).toContain("shard count 3 and 2")
      expect(Results.merge([{ file: "x", text: JSON.stringify({ ...a, shard: null }) }])).toContain("not a shard")
      expect(Results.merge([{ file: "x", text: "{}" }])).toContain("x: not a result of devscope explore/fuzz --json")
      expect(Results.merge([{ file: "x", text: "nope" }])).toContain("x: not JSON")
    }))
})

describe("worker pool", () => {
  it.effect("a worker that exits, throws or never answers is reported with its case; the other cases run", () =>
    Effect.gen(function*() {
      const scenario = Effect.runSync(Scenario.parse(fs.readFileSync(clean, "utf8"), clean))
      const context: Jobs.Context = { scenario, seed: 3, horizon: 2 }
      const result = yield* Effect.scoped(Effect.gen(function*() {
        const executor = yield* Pool.workers<Jobs.Job, Jobs.Result>({
          workers: 2,
          entry: new URL("./fixtures/crashingWorker.ts", import.meta.url),
          data: context,
          deadline: 30_000
        })
        return yield* Campaign.explore({ scenario, seed: 3, shard: undefined, executor, points: 2, horizon: 2 })
      }))
      const crashes = new Map(result.crashes.map((c) => [c.token, c.error]))
      expect(crashes.get("campaign-clean/disk0/2ms@3:surprise-in-remove:281:1")).toBe("the worker exited (code 3)")
      expect(crashes.get("campaign-clean/disk0/2ms@3:unplug:1")).toContain("boom in the worker")
      expect(crashes.get("campaign-clean/disk0/2ms@3:surprise:1")).toBe("no answer from the worker within 30 s (terminated)")
      expect(result.crashes.length).toBe(3)
      expect(result.verdict).toBe("failed")
      expect(result.cases.length).toBe(result.total)
      expect(result.cases.filter((c) => c.passed).length).toBe(result.total - 3)
      const text = Results.body(result, "clean.json")
      expect(text).toContain("case(s) whose worker crashed or did not answer: 3")
      expect(text).toContain("campaign-clean/disk0/2ms@3:unplug:1: the worker crashed: Error: boom in the worker")
    }), 300_000)
})
