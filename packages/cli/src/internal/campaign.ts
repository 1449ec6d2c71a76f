/**
 * Exploration and fuzzing campaigns of a scenario file: the cases numbered, the shard's cases
 * run on an executor (this thread or a pool of workers), and the result as plain data — the
 * JSON that `--json` prints and `merge` reads (format `devscope-campaign/1`, see docs/cli.md).
 * @internal
 */
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import { type Explore, Fuzz, type Oracle } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import * as ExploreCases from "./explore.js"
import * as FuzzCases from "./fuzz.js"
import type { Job, Result } from "./jobs.js"
import type { Executor, Outcome } from "./pool.js"
import { owns, type Shard } from "./shard.js"
import type { StopReason } from "./stop.js"

/** The format tag of a campaign's JSON. */
export const FORMAT = "devscope-campaign/1"

/** One case run: its number, its replay token, whether it passed. */
export interface CaseRecord {
  readonly index: number
  readonly token: string
  readonly passed: boolean
}

/** A failing case: what went wrong. */
export interface Failure {
  readonly index: number
  readonly token: string
  /** The device removed (explore) or `null` (fuzz). */
  readonly device: string | null
  readonly outcome: "Done" | "Stalled" | "TimedOut"
  /** Why the run itself failed, in one line; `null` when it ran to its end. */
  readonly failure: string | null
  readonly violations: ReadonlyArray<Oracle.Violation>
  readonly violationCount: number
}

/** A case whose worker crashed or did not answer in time. */
export interface Crash {
  readonly index: number
  readonly token: string
  readonly error: string
}

/** Per target device of an exploration: its points and, per mode, the cases run. */
export interface TargetCoverage {
  readonly device: string
  readonly points: { readonly bound: number; readonly unbinding: number }
  readonly modes: ReadonlyArray<Explore.ModeCoverage>
}

/** Totals of a fuzzing campaign's cases (prefixes included). */
export interface FuzzCoverage {
  readonly steps: Readonly<Record<Fuzz.Action["_tag"], number>>
  readonly operations: Fuzz.Operations
  readonly faultsFired: number
  readonly probeFailures: number
}

/** The smallest failing sequence of a fuzzing campaign (its lowest failing case, shrunk). */
export interface ShrunkRecord {
  readonly index: number
  readonly token: string
  readonly steps: ReadonlyArray<string>
  readonly sequence: ReadonlyArray<Fuzz.Action>
  readonly outcome: "Done" | "Stalled" | "TimedOut"
  readonly failure: string | null
  readonly violations: ReadonlyArray<Oracle.Violation>
}

/** The result of one campaign, or of one shard of it. */
export interface Campaign {
  readonly format: typeof FORMAT
  readonly command: "explore" | "fuzz"
  readonly scenario: { readonly name: string; readonly digest: string }
  readonly seed: number
  /** explore: `{ points, horizon }`; fuzz: `{ cases }`. */
  readonly budget: Readonly<Record<string, number>>
  readonly shard: Shard | null
  /** Cases of the whole campaign (every shard's). */
  readonly total: number
  /** The cases this result ran, by number. */
  readonly cases: ReadonlyArray<CaseRecord>
  readonly failures: ReadonlyArray<Failure>
  readonly crashes: ReadonlyArray<Crash>
  readonly coverage: { readonly targets: ReadonlyArray<TargetCoverage> } | FuzzCoverage
  /** fuzz: the lowest failing case shrunk; `null` if none failed (or for explore). */
  readonly shrunk: ShrunkRecord | null
  readonly verdict: "passed" | "failed"
  /**
   * Set when SIGINT, SIGTERM or `--timeout` stopped the campaign: the cases it did not run
   * (of this shard's; an exploration stopped while planning knows only the cases planned by
   * then). The verdict is of the cases run; `merge` refuses an interrupted result.
   */
  readonly interrupted: {
    readonly reason: StopReason
    readonly notRun: number
    /** Stopped before every target's cases were known (explore's baselines and probes). */
    readonly planning: boolean
  } | null
  /** How this result was produced (not part of the verdict; `merge` sums the wall time). */
  readonly run: { readonly workers: number; readonly wallMillis: number }
}

/** The scenario's digest: of its decoded content (the same file however it is formatted). */
export const digest = (scenario: Scenario.Scenario): string =>
  `sha256:${createHash("sha256").update(JSON.stringify(scenario)).digest("hex").slice(0, 16)}`

/** Called as cases end: done so far (of this shard's), and failing so far. */
export type OnProgress = (done: number, of: number, failing: number) => void

interface Common {
  readonly scenario: Scenario.Scenario
  readonly seed: number
  readonly shard: Shard | undefined
  readonly executor: Executor<Job, Result>
  readonly onProgress?: OnProgress | undefined
  /** Aborted (with a `StopReason`) to stop: no case starts after it, running ones are interrupted. */
  readonly signal?: AbortSignal | undefined
}

/** Settles when `signal` is aborted (one listener per signal, however many cases wait on it). */
const abortions = new WeakMap<AbortSignal, Promise<undefined>>()
const aborted = (signal: AbortSignal): Promise<undefined> => {
  let promise = abortions.get(signal)
  if (promise === undefined) {
    promise = new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined), { once: true }))
    abortions.set(signal, promise)
  }
  return promise
}

/** `effect`, or `undefined` if `signal` is aborted before it ends (it is then interrupted). */
const stoppable = <A>(signal: AbortSignal | undefined, effect: Effect.Effect<A>): Effect.Effect<A | undefined> =>
  signal === undefined ? effect : Effect.suspend(() =>
    signal.aborted ? Effect.succeed(undefined) : Effect.raceFirst(effect, Effect.promise(() => aborted(signal))))

/** Cases handed to the executor at a time (see explore). */
const inFlight = (executor: Executor<Job, Result>) => executor.workers === 1 ? 1 : executor.workers * 2

const interruption = (signal: AbortSignal | undefined, notRun: number, planning = false): Campaign["interrupted"] =>
  signal?.aborted === true ? { reason: signal.reason as StopReason, notRun, planning } : null

const verdictOf = (failures: ReadonlyArray<unknown>, crashes: ReadonlyArray<unknown>) =>
  failures.length === 0 && crashes.length === 0 ? "passed" as const : "failed" as const

const unwrap = <T extends Result["_tag"]>(outcome: Outcome<Result>, tag: T): Outcome<Extract<Result, { _tag: T }>> =>
  outcome._tag === "Crashed" || outcome.value._tag === tag
    ? outcome as Outcome<Extract<Result, { _tag: T }>>
    : { _tag: "Crashed", error: `a ${outcome.value._tag} result for a ${tag} job` }

// ---------------------------------------------------------------------------------------
// Exploration

/** Options of {@link explore}. */
export interface ExploreOptions extends Common {
  readonly points: number
  readonly horizon: number
}

interface Planned {
  readonly index: number
  readonly device: string
  readonly job: ExploreCases.Job
  /** `surprise-in-remove`'s middle unplug is not one of the mode's cases. */
  readonly mode: Explore.Mode | "baseline" | "probe"
  /** Known already (the baseline and the middle unplug run while planning). */
  readonly known?: Outcome<Extract<Result, { _tag: "explore" }>> | undefined
}

const exploreToken = (o: ExploreOptions, device: string, c: Explore.Case) =>
  `${ExploreCases.scenarioName(o.scenario, device, o.horizon)}@${o.seed}:${c.mode}:${c.point}${c.inner !== undefined ? `:${c.inner}` : ""}`

/**
 * Explores every target device of the file. Planning runs each target's baseline and middle
 * unplug (on every shard: they decide the points); then the shard's cases run.
 */
export const explore = (o: ExploreOptions): Effect.Effect<Campaign> =>
  Effect.gen(function*() {
    const started = performance.now()
    const devices = ExploreCases.targets(o.scenario)
    const run = (device: string, c: Explore.Case, timeout: number) =>
      stoppable(o.signal, Effect.map(o.executor.run({ _tag: "explore", job: { device, case: c, timeout } }), (r) => unwrap(r, "explore")))
    const baselines = yield* Effect.forEach(
      devices,
      (device) => run(device, { mode: "baseline", point: 0 }, ExploreCases.BASELINE_TIMEOUT),
      { concurrency: "unbounded" }
    )
    const timeouts = baselines.map((b) => b?._tag === "Done" ? ExploreCases.caseTimeout(b.value.result.virtualMillis) : 0)
    type Known = Outcome<Extract<Result, { _tag: "explore" }>>
    const probes = yield* Effect.forEach(devices, (device, i): Effect.Effect<Known | undefined> => {
      const baseline = baselines[i]
      return baseline?._tag === "Done"
        ? run(device, { mode: "unplug", point: ExploreCases.middle(baseline.value.result) }, timeouts[i]!)
        : Effect.succeed(undefined)
    }, { concurrency: "unbounded" })

    // The cases, numbered target by target, in Explore.explore's order.
    const planned: Array<Planned> = []
    const add = (p: Omit<Planned, "index">) => planned.push({ ...p, index: planned.length })
    devices.forEach((device, i) => {
      const baseline = baselines[i]
      // Stopped before the baseline ended: the target's cases are not known.
      if (baseline === undefined) return
      add({ device, mode: "baseline", job: { device, case: { mode: "baseline", point: 0 }, timeout: ExploreCases.BASELINE_TIMEOUT }, known: baseline })
      if (baseline._tag === "Crashed") return
      const timeout = timeouts[i]!
      const points = ExploreCases.spread(baseline.value.result.points.bound, o.points)
      for (const mode of ["surprise", "unplug"] as const) {
        for (const point of points) add({ device, mode, job: { device, case: { mode, point }, timeout } })
      }
      const probe = probes[i]!
      const point = ExploreCases.middle(baseline.value.result)
      add({ device, mode: "probe", job: { device, case: { mode: "unplug", point }, timeout }, known: probe })
      if (probe === undefined || probe._tag === "Crashed") return
      for (const inner of ExploreCases.spread(probe.value.result.points.removal, o.points)) {
        add({ device, mode: "surprise-in-remove", job: { device, case: { mode: "surprise-in-remove", point, inner }, timeout } })
      }
    })
    const mine = planned.filter((p) => owns(o.shard, p.index))
    // Twice as many at a time as the executor runs (a worker that finishes finds its next case
    // waiting in the pool, with no round trip through this thread), not all at once: after a
    // stop each case left returns at once (thousands of fibers queued on the executor would
    // each have to be interrupted).
    let done = 0
    let failing = 0
    const outcomes = yield* Effect.forEach(mine, (p) =>
      Effect.map(p.known !== undefined ? Effect.succeed(p.known) : run(p.device, p.job.case, p.job.timeout), (outcome) => {
        if (outcome === undefined) return undefined
        done++
        if (outcome._tag === "Crashed" || ExploreCases.failed(outcome.value.result)) failing++
        o.onProgress?.(done, mine.length, failing)
        return outcome
      }), { concurrency: inFlight(o.executor) })

    const cases: Array<CaseRecord> = []
    const failures: Array<Failure> = []
    const crashes: Array<Crash> = []
    const counts = new Map<string, { cases: number; injected: number }>()
    mine.forEach((p, i) => {
      const outcome = outcomes[i]
      if (outcome === undefined) return
      const token = exploreToken(o, p.device, p.job.case)
      if (outcome._tag === "Crashed") {
        cases.push({ index: p.index, token, passed: false })
        crashes.push({ index: p.index, token, error: outcome.error })
        return
      }
      const r = outcome.value.result
      const bad = ExploreCases.failed(r)
      cases.push({ index: p.index, token: r.token, passed: !bad })
      if (bad) {
        failures.push({
          index: p.index,
          token: r.token,
          device: p.device,
          outcome: r.outcome,
          failure: r.failure ?? null,
          violations: r.violations,
          violationCount: r.violationCount
        })
      }
      if (p.mode !== "baseline" && p.mode !== "probe") {
        const key = `${p.device}\u0000${p.mode}`
        const c = counts.get(key) ?? { cases: 0, injected: 0 }
        c.cases++
        if (r.injected) c.injected++
        counts.set(key, c)
      }
    })
    const targets: Array<TargetCoverage> = []
    devices.forEach((device, i) => {
      const baseline = baselines[i]
      if (baseline === undefined || baseline._tag === "Crashed") return
      const probe = probes[i]
      const modes = (["surprise", "unplug", "surprise-in-remove"] as const).map((mode): Explore.ModeCoverage => {
        const c = counts.get(`${device}\u0000${mode}`) ?? { cases: 0, injected: 0 }
        const points = mode === "surprise-in-remove"
          ? probe?._tag === "Done" ? probe.value.result.points.removal : 0
          : baseline.value.result.points.bound
        return { mode, points, cases: c.cases, injected: c.injected }
      })
      const { bound, unbinding } = baseline.value.result.points
      targets.push({ device, points: { bound, unbinding }, modes })
    })
    return {
      format: FORMAT,
      command: "explore",
      scenario: { name: o.scenario.name, digest: digest(o.scenario) },
      seed: o.seed,
      budget: { points: o.points, horizon: o.horizon },
      shard: o.shard ?? null,
      total: planned.length,
      cases,
      failures,
      crashes,
      coverage: { targets },
      shrunk: null,
      verdict: verdictOf(failures, crashes),
      interrupted: interruption(
        o.signal,
        mine.length - cases.length,
        baselines.some((b) => b === undefined) || probes.some((p, i) => p === undefined && baselines[i]?._tag === "Done")
      ),
      run: { workers: o.executor.workers, wallMillis: Math.round(performance.now() - started) }
    } satisfies Campaign
  })

// ---------------------------------------------------------------------------------------
// Fuzzing

/** Options of {@link fuzz}. */
export interface FuzzOptions extends Common {
  readonly cases: number
}

const emptySteps = (): Record<Fuzz.Action["_tag"], number> => ({
  plug: 0, unplug: 0, surprise: 0, unbind: 0, bind: 0, io: 0, unload: 0, load: 0, wait: 0, fault: 0
})

/** Runs the shard's random sequences; the lowest failing one is shrunk. */
export const fuzz = (o: FuzzOptions): Effect.Effect<Campaign> =>
  Effect.gen(function*() {
    const started = performance.now()
    const fuzzing = FuzzCases.make(o.scenario, o.seed)
    const sequences = FuzzCases.sequences(fuzzing, o.cases)
    const mine = sequences.map((sequence, index) => ({ sequence, index })).filter((c) => owns(o.shard, c.index))
    let done = 0
    let failing = 0
    const outcomes = yield* Effect.forEach(mine, (c) =>
      Effect.map(stoppable(o.signal, o.executor.run({ _tag: "fuzz", sequence: c.sequence })), (r) => {
        if (r === undefined) return undefined
        const outcome = unwrap(r, "fuzz")
        done++
        if (outcome._tag === "Crashed" || FuzzCases.failed(outcome.value.result)) failing++
        o.onProgress?.(done, mine.length, failing)
        return outcome
      }), { concurrency: inFlight(o.executor) })
    const cases: Array<CaseRecord> = []
    const failures: Array<Failure> = []
    const crashes: Array<Crash> = []
    const steps = emptySteps()
    const operations = { started: 0, completed: 0, gone: 0, rejected: 0 }
    let faultsFired = 0
    let probeFailures = 0
    mine.forEach((c, i) => {
      const outcome = outcomes[i]
      if (outcome === undefined) return
      const token = FuzzCases.token(o.scenario.name, o.seed, String(c.index))
      if (outcome._tag === "Crashed") {
        cases.push({ index: c.index, token, passed: false })
        crashes.push({ index: c.index, token, error: outcome.error })
        return
      }
      const r = outcome.value.result
      for (const action of [...fuzzing.prefix, ...c.sequence]) steps[action._tag]++
      operations.started += r.operations.started
      operations.completed += r.operations.completed
      operations.gone += r.operations.gone
      operations.rejected += r.operations.rejected
      faultsFired += r.faultsFired
      probeFailures += r.probeFailures
      const bad = FuzzCases.failed(r)
      cases.push({ index: c.index, token, passed: !bad })
      if (bad) {
        failures.push({
          index: c.index,
          token,
          device: null,
          outcome: r.outcome,
          failure: r.failure ?? null,
          violations: r.violations,
          violationCount: r.violationCount
        })
      }
    })
    let shrunk: ShrunkRecord | null = null
    const first = failures[0]
    const shrinking = first === undefined ? undefined : yield* stoppable(o.signal, o.executor.run({ _tag: "shrink", index: first.index }))
    // Not shrunk when stopped: the failures are still listed with their tokens.
    if (first !== undefined && shrinking !== undefined) {
      const outcome = unwrap(shrinking, "shrink")
      if (outcome._tag === "Crashed") {
        crashes.push({ index: first.index, token: first.token, error: `while shrinking: ${outcome.error}` })
      } else {
        const s = outcome.value.shrunk
        shrunk = {
          index: s.index,
          token: FuzzCases.token(o.scenario.name, o.seed, s.path),
          steps: [...fuzzing.prefix, ...s.sequence].map((a, i) => i < fuzzing.prefix.length ? `(prefix) ${Fuzz.show(a)}` : Fuzz.show(a)),
          sequence: s.sequence,
          outcome: s.result.outcome,
          failure: s.result.failure ?? null,
          violations: s.result.violations
        }
      }
    }
    return {
      format: FORMAT,
      command: "fuzz",
      scenario: { name: o.scenario.name, digest: digest(o.scenario) },
      seed: o.seed,
      budget: { cases: o.cases },
      shard: o.shard ?? null,
      total: sequences.length,
      cases,
      failures,
      crashes,
      coverage: { steps, operations, faultsFired, probeFailures },
      shrunk,
      verdict: verdictOf(failures, crashes),
      interrupted: interruption(o.signal, mine.length - cases.length),
      run: { workers: o.executor.workers, wallMillis: Math.round(performance.now() - started) }
    } satisfies Campaign
  })
