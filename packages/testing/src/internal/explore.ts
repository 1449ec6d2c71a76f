import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Lifecycle } from "@devscope/core"
import { Simulator, VirtualTime } from "@devscope/sim"
import type { Case, CaseResult, ModeCoverage, Options, Platform, PlatformScenario, Report, Scenario } from "../Explore.js"
import * as Oracle from "../Oracle.js"

export const token = (scenario: string, seed: number, c: Case): string =>
  `${scenario}@${seed}:${c.mode}:${c.point}${c.inner !== undefined ? `:${c.inner}` : ""}`

export const parseToken = (text: string): { readonly scenario: string; readonly seed: number; readonly case: Case } | undefined => {
  const match = /^(.+)@(\d+):(baseline|surprise|unplug|surprise-in-remove):(\d+)(?::(\d+))?$/.exec(text)
  if (match === null) return undefined
  return {
    scenario: match[1]!,
    seed: Number(match[2]),
    case: { mode: match[3] as Case["mode"], point: Number(match[4]), inner: match[5] === undefined ? undefined : Number(match[5]) }
  }
}

/** The simulator as a platform: made inside each case's world. */
export const simulatorPlatform = (options: Scenario<unknown>["simulator"]): Platform<Simulator.Service> => ({
  make: ({ seed, onLifecycle }) => Simulator.make({ ...options, seed, onLifecycle }),
  surpriseRemove: (sim, device) => sim.surpriseRemove(device),
  unplug: (sim, device) => sim.unplug(device),
  evidence: (sim) => sim
})

const onSimulator = <E>(scenario: Scenario<E>): PlatformScenario<Simulator.Service, E> => ({
  name: scenario.name,
  device: scenario.device,
  seed: scenario.seed,
  platform: simulatorPlatform(scenario.simulator),
  run: ({ platform, oracle }) => scenario.run({ sim: platform, oracle })
})

/** Runs one case in its own virtual world and judges it. */
export const runCase = <E>(scenario: Scenario<E>, seed: number, c: Case, timeout: number): Effect.Effect<CaseResult> =>
  runCaseOn(onSimulator(scenario), seed, c, timeout)

/** Runs one case on a platform (made outside the world if it says so) and judges it. */
export const runCaseOn = <P, E, PE>(scenario: PlatformScenario<P, E, PE>, seed: number, c: Case, timeout: number): Effect.Effect<CaseResult> =>
  Effect.scoped(Effect.gen(function*() {
    const oracle = Oracle.make()
    let phase: "absent" | "bound" | "unbinding" = "absent"
    let bound = 0
    let unbinding = 0
    let removalPoints = 0
    let injected = false
    let innerInjected = false
    let sim: P | undefined
    const { platform } = scenario
    const onLifecycle = (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => {
      oracle.onLifecycle(bus, event)
      if (!("device" in event) || event.device.name !== scenario.device) return
      if (event._tag === "Bound") phase = "bound"
      else if (event._tag === "Unbinding") phase = "unbinding"
      else if (event._tag === "Unbound" || event._tag === "ProbeFailed") phase = "absent"
    }
    const remove = (mode: "surprise" | "unplug") => {
      const s = sim!
      return Effect.ignore(mode === "surprise" ? platform.surpriseRemove(s, scenario.device) : platform.unplug(s, scenario.device))
    }
    const onTask = (control: VirtualTime.Control) => {
      if (phase === "bound") {
        bound++
        if (!injected && c.mode !== "baseline" && bound === c.point) {
          injected = true
          control.fork(remove(c.mode === "surprise" ? "surprise" : "unplug"))
        }
      } else if (phase === "unbinding") {
        unbinding++
        if (!injected) return
        removalPoints++
        if (c.mode === "surprise-in-remove" && !innerInjected && removalPoints === c.inner) {
          innerInjected = true
          control.fork(remove("surprise"))
        }
      }
    }
    // A platform made outside the world (real I/O at its start: QEMU) lives for the case.
    const outside = platform.outside === true ? yield* Effect.either(platform.make({ seed, onLifecycle })) : undefined
    if (outside?._tag === "Left") return failedToStart(scenario.name, seed, c, outside.left)
    if (outside !== undefined) sim = outside.right
    const program = Effect.scoped(Effect.gen(function*() {
      if (sim === undefined) sim = yield* platform.make({ seed, onLifecycle })
      if (platform.inWorld !== undefined) yield* Effect.forkScoped(platform.inWorld(sim))
      yield* scenario.run({ platform: sim, oracle })
    }))
    const ran = yield* VirtualTime.run(program as Effect.Effect<void, unknown>, { onTask, until: timeout })
    // No signal is passed, so a run is never Interrupted (the type allows it).
    const outcome = ran._tag === "Interrupted" ? { ...ran, _tag: "TimedOut" as const } : ran
    const verdict = sim === undefined ? { count: 0, violations: [], omitted: [] } : oracle.judge(platform.evidence(sim), outcome._tag)
    let failure: string | undefined
    if (outcome._tag === "Stalled") {
      // Fiber ids differ from run to run (they are process-wide); spans do not.
      const sites = outcome.waiting.filter((w) => w.spans.length > 0).map((w) => w.spans.join(" < "))
      failure = `stalled at ${outcome.virtualMillis.toFixed(3)} ms: nothing could run, ${outcome.waiting.length} fiber(s) waiting` +
        (sites.length > 0 ? `; wait sites: ${sites.join("; ")}` : "")
    } else if (outcome._tag === "TimedOut") {
      failure = `still running after ${timeout} ms of virtual time`
    } else if (Exit.isFailure(outcome.exit)) {
      failure = `the scenario failed: ${Cause.pretty(outcome.exit.cause).split("\n").slice(0, 3).join(" | ")}`
    }
    return {
      case: c,
      token: token(scenario.name, seed, c),
      outcome: outcome._tag,
      injected: c.mode === "surprise-in-remove" ? injected && innerInjected : injected,
      violations: verdict.violations,
      violationCount: verdict.count,
      omitted: verdict.omitted,
      failure,
      points: { bound, unbinding, removal: removalPoints },
      virtualMillis: outcome.virtualMillis
    }
  }))

/** A case whose platform could not be made: a failure, with the reason. */
const failedToStart = (name: string, seed: number, c: Case, error: unknown): CaseResult => ({
  case: c,
  token: token(name, seed, c),
  outcome: "Done",
  injected: false,
  violations: [],
  violationCount: 0,
  omitted: [],
  failure: `the platform did not start: ${(error as { readonly message?: unknown })?.message ?? String(error)}`,
  points: { bound: 0, unbinding: 0, removal: 0 },
  virtualMillis: 0
})

const spread = (count: number, max: number): Array<number> => {
  if (count <= max) return Array.from({ length: count }, (_, i) => i + 1)
  const points = new Set<number>()
  for (let i = 0; i < max; i++) points.add(1 + Math.floor((i * (count - 1)) / (max - 1)))
  return [...points]
}

const failed = (r: CaseResult) => r.failure !== undefined || r.violationCount > 0

export const explore = <E>(scenario: Scenario<E>, options: Options = {}): Effect.Effect<Report> => exploreOn(onSimulator(scenario), options)

export const exploreOn = <P, E, PE>(scenario: PlatformScenario<P, E, PE>, options: Options = {}): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const runCase = runCaseOn
    const seed = scenario.seed ?? 1
    const modes = options.modes ?? ["surprise", "unplug", "surprise-in-remove"]
    const max = options.maxPoints ?? 200
    const baseline = yield* runCase(scenario, seed, { mode: "baseline", point: 0 }, options.timeout ?? 600_000)
    const timeout = options.timeout ?? baseline.virtualMillis * 20 + 1_000
    const failures: Array<CaseResult> = failed(baseline) ? [baseline] : []
    const coverage: Array<ModeCoverage> = []
    let cases = 1
    const points = spread(baseline.points.bound, max)
    for (const mode of modes) {
      let run = 0
      let injected = 0
      const judge = (result: CaseResult) => {
        run++
        if (result.injected) injected++
        if (failed(result)) failures.push(result)
      }
      if (mode === "surprise-in-remove") {
        // An orderly unplug in the middle of the run, and a surprise removal at each point
        // of its unbind (gate drain, remove, teardown).
        const middle = Math.max(1, Math.floor(baseline.points.bound / 2))
        const probe = yield* runCase(scenario, seed, { mode: "unplug", point: middle }, timeout)
        cases++
        if (failed(probe)) failures.push(probe)
        for (const inner of spread(probe.points.removal, max)) {
          judge(yield* runCase(scenario, seed, { mode, point: middle, inner }, timeout))
        }
        coverage.push({ mode, points: probe.points.removal, cases: run, injected })
      } else {
        for (const point of points) judge(yield* runCase(scenario, seed, { mode, point }, timeout))
        coverage.push({ mode, points: baseline.points.bound, cases: run, injected })
      }
      cases += run
    }
    const { bound, unbinding } = baseline.points
    return { scenario: scenario.name, seed, points: { bound, unbinding }, cases, modes: coverage, failures }
  })

export const describe = (result: CaseResult): string =>
  [
    `replay token ${result.token}: ${result.failure ?? "guarantees broken"}`,
    ...result.violations.map((v) => `  ${v.guarantee} ${v.device}: ${v.message}`),
    ...result.omitted.map((o) => `  ${o.guarantee} ${o.device}: (${o.count} more of the same left out)`)
  ].join("\n")
