import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import { Simulator, VirtualTime } from "@devscope/sim"
import type { Action, Coverage, FaultKind, Options, Report, RunResult, Spec } from "../Fuzz.js"
import * as Oracle from "../Oracle.js"

export const faultKinds: ReadonlyArray<FaultKind> = [
  "fail-dma-alloc",
  "fail-dma-map",
  "fail-irq",
  "delay-completions",
  "drop-completions",
  "irq-storm",
  "all-ones-reads"
]

const micros = (d: Duration.DurationInput) => `${Math.round(Duration.toMillis(Duration.decode(d)) * 1_000)}µs`

/** A fault rule as text. */
export const showRule = (rule: Simulator.FaultRule): string => {
  switch (rule.kind) {
    case "fail-nth":
      return rule.n === 1
        ? `fail the next ${rule.request} request`
        : `fail the ${rule.n}${rule.n === 2 ? "nd" : rule.n === 3 ? "rd" : "th"} ${rule.request} request from now`
    case "delay-completions":
      return `delay completions by ${micros(rule.by)}${rule.probability !== undefined && rule.probability < 1 ? ` (p=${rule.probability})` : ""}`
    case "drop-completions":
      return `drop completions${rule.probability !== undefined && rule.probability < 1 ? ` (p=${rule.probability})` : ""}`
    case "irq-storm":
      return `irq storm on line ${rule.line}: ${rule.count} raises every ${micros(rule.interval ?? "1 micros")}, from +${micros(rule.at ?? 0)}`
    case "all-ones-reads":
      return `all-ones reads from +${micros(rule.at ?? 0)}`
  }
}

export const show = (action: Action): string => {
  switch (action._tag) {
    case "fault":
      return `fault ${action.device}: ${showRule(action.rule)}`
    case "io":
      return `io ${action.device} x${action.count}`
    case "wait":
      return `wait ${action.micros}µs`
    case "unload":
    case "load":
      return `${action._tag} ${action.driver}`
    default:
      return `${action._tag} ${action.device}`
  }
}

export const actions = (spec: Spec): FastCheck.Arbitrary<ReadonlyArray<Action>> => {
  const device = FastCheck.constantFrom(...spec.devices.map((d) => d.name))
  const driver = FastCheck.constantFrom(...spec.drivers.map((d) => d.name))
  const onDevice = (tag: "plug" | "unplug" | "surprise" | "unbind" | "bind") =>
    device.map((d): Action => ({ _tag: tag, device: d }))
  const action: FastCheck.Arbitrary<Action> = FastCheck.oneof(
    { weight: 4, arbitrary: FastCheck.tuple(device, FastCheck.integer({ min: 1, max: 8 })).map(([d, count]): Action => ({ _tag: "io", device: d, count })) },
    { weight: 3, arbitrary: FastCheck.integer({ min: 1, max: 2_000 }).map((micros): Action => ({ _tag: "wait", micros })) },
    { weight: 2, arbitrary: onDevice("plug") },
    { weight: 1, arbitrary: onDevice("unplug") },
    { weight: 1, arbitrary: onDevice("surprise") },
    { weight: 1, arbitrary: onDevice("unbind") },
    { weight: 1, arbitrary: onDevice("bind") },
    { weight: 1, arbitrary: driver.map((d): Action => ({ _tag: "unload", driver: d })) },
    { weight: 1, arbitrary: driver.map((d): Action => ({ _tag: "load", driver: d })) },
    ...faults(spec)
  )
  return FastCheck.array(action, { minLength: 1, maxLength: 30 })
}

/** Fault steps: one of the simulator's fault rules, on one device, from that step on. */
const faults = (spec: Spec) => {
  const allowed = spec.faults === false ? [] : spec.faults ?? faultKinds
  const probability = FastCheck.constantFrom(1, 0.5, 0.1)
  const fail = (request: "dma-alloc" | "dma-map" | "irq") =>
    FastCheck.integer({ min: 1, max: 3 }).map((n) => (device: string): Simulator.FaultRule => ({ kind: "fail-nth", request, n, device }))
  const rules: Record<FaultKind, FastCheck.Arbitrary<(device: string) => Simulator.FaultRule>> = {
    "fail-dma-alloc": fail("dma-alloc"),
    "fail-dma-map": fail("dma-map"),
    "fail-irq": fail("irq"),
    "delay-completions": FastCheck.tuple(FastCheck.integer({ min: 1, max: 2_000 }), probability)
      .map(([by, p]) => (device) => ({ kind: "delay-completions", by: `${by} micros`, probability: p, device })),
    "drop-completions": probability.map((p) => (device) => ({ kind: "drop-completions", probability: p, device })),
    "irq-storm": FastCheck.tuple(
      FastCheck.integer({ min: 1, max: 50 }),
      FastCheck.integer({ min: 1, max: 50 }),
      FastCheck.integer({ min: 0, max: 1_000 })
    ).map(([count, interval, at]) => (device) => ({
      kind: "irq-storm",
      device,
      line: 0,
      count,
      interval: `${interval} micros`,
      at: `${at} micros`
    })),
    "all-ones-reads": FastCheck.integer({ min: 0, max: 1_000 }).map((at) => (device) => ({ kind: "all-ones-reads", device, at: `${at} micros` }))
  }
  const perDevice = spec.devices.flatMap((d) => {
    const kinds = (d.faults ?? allowed).filter((kind) => allowed.includes(kind))
    return kinds.length === 0 ? [] : [
      FastCheck.oneof(...kinds.map((kind) => rules[kind])).map((rule): Action => ({ _tag: "fault", device: d.name, rule: rule(d.name) }))
    ]
  })
  return perDevice.length === 0 ? [] : [{ weight: 2, arbitrary: FastCheck.oneof(...perDevice) }]
}

/** Virtual time the operations in flight get once every driver is unloaded. */
const DRAIN = 1_000

/** Runs one action sequence in its own virtual world; the oracle judges it. */
export const runSequence = (spec: Spec, sequence: ReadonlyArray<Action>, seed: number): Effect.Effect<RunResult> =>
  Effect.gen(function*() {
    const oracle = Oracle.make()
    let sim: Simulator.Service | undefined
    const program = Effect.scoped(Effect.gen(function*() {
      const s = yield* Simulator.make({ ...spec.simulator, seed, onLifecycle: oracle.onLifecycle })
      sim = s
      if (spec.setup) yield* Effect.orDie(spec.setup(s))
      const loaded = new Set<string>()
      for (const driver of spec.drivers) {
        yield* Effect.orDie(driver.register(s))
        loaded.add(driver.name)
      }
      const ops: Array<Fiber.RuntimeFiber<void>> = []
      // Refusals (plugging a present device, unbinding an unbound one) are part of the game.
      const attempt = (effect: Effect.Effect<unknown, unknown>) => Effect.ignore(effect)
      for (const action of sequence) {
        switch (action._tag) {
          case "plug":
            yield* attempt(spec.devices.find((d) => d.name === action.device)!.plug(s))
            break
          case "unplug":
            yield* attempt(s.unplug(action.device))
            break
          case "surprise":
            yield* attempt(s.surpriseRemove(action.device))
            break
          case "unbind":
            yield* attempt(s[spec.devices.find((d) => d.name === action.device)!.bus].unbind(action.device))
            break
          case "bind":
            yield* attempt(s[spec.devices.find((d) => d.name === action.device)!.bus].bind(action.device))
            break
          case "io": {
            const device = spec.devices.find((d) => d.name === action.device)!
            for (let i = 0; i < action.count; i++) ops.push(yield* Effect.fork(device.io({ sim: s, oracle })))
            yield* Effect.yieldNow()
            break
          }
          case "unload": {
            const driver = spec.drivers.find((d) => d.name === action.driver)!
            yield* attempt(s[driver.bus].unregisterDriver(driver.name))
            loaded.delete(driver.name)
            break
          }
          case "load": {
            const driver = spec.drivers.find((d) => d.name === action.driver)!
            if (!loaded.has(driver.name)) {
              yield* attempt(driver.register(s))
              loaded.add(driver.name)
            }
            break
          }
          case "wait":
            yield* Effect.sleep(`${action.micros} micros`)
            break
          case "fault":
            yield* s.inject(action.rule)
            break
        }
      }
      // The end: unload every driver (operations in flight resolve), then wait for them.
      for (const driver of spec.drivers) yield* attempt(s[driver.bus].unregisterDriver(driver.name))
      const all = Fiber.joinAll(ops)
      yield* Effect.timeout(all, DRAIN).pipe(Effect.ignore)
    }))
    const ran = yield* VirtualTime.run(program, { until: 600_000 })
    // No signal is passed, so a run is never Interrupted (the type allows it).
    const outcome = ran._tag === "Interrupted" ? { ...ran, _tag: "TimedOut" as const } : ran
    const verdict = sim === undefined ? { count: 0, violations: [], omitted: [] } : oracle.judge(sim, outcome._tag)
    const failure = outcome._tag === "Stalled"
      ? `stalled; wait sites: ${outcome.waiting.filter((w) => w.spans.length > 0).map((w) => w.spans.join(" < ")).join("; ") || "none"}`
      : outcome._tag === "TimedOut"
      ? "did not finish"
      : Exit.isFailure(outcome.exit)
      ? Cause.pretty(outcome.exit.cause).split("\n")[0]
      : undefined
    const faultsFired = sim === undefined
      ? 0
      : sim.trace.events().filter((e) => e._tag === "Lifecycle" && e.event === "fault-injected").length
    const probeFailures = oracle.lifecycle.filter(({ event }) => event._tag === "ProbeFailed").length
    let started = 0, completed = 0, gone = 0, rejected = 0
    for (const ops of oracle.ops.devices.values()) {
      started += ops.started
      completed += ops.completed
      gone += ops.gone
      rejected += ops.rejected
    }
    return {
      outcome: outcome._tag,
      operations: { started, completed, gone, rejected },
      violations: verdict.violations,
      violationCount: verdict.count,
      omitted: verdict.omitted,
      failure,
      faultsFired,
      probeFailures
    }
  })

const bad = (r: RunResult) => r.failure !== undefined || r.violationCount > 0

export const check = (spec: Spec, options: Options = {}): Effect.Effect<Report> =>
  Effect.promise(async () => {
    const seed = options.seed ?? 42
    const numRuns = options.numRuns ?? 100
    // One simulator seed for every sequence, so that shrinking changes only the sequence.
    const simSeed = (_: ReadonlyArray<Action>) => seed
    const steps: Record<Action["_tag"], number> = {
      plug: 0, unplug: 0, surprise: 0, unbind: 0, bind: 0, io: 0, unload: 0, load: 0, wait: 0, fault: 0
    }
    const totals = { sequences: 0, faultsFired: 0, probeFailures: 0, started: 0, completed: 0, gone: 0, rejected: 0 }
    const prefix = options.prefix ?? []
    const runOne = async (random: ReadonlyArray<Action>) => {
      const sequence = [...prefix, ...random]
      const result = await Effect.runPromise(runSequence(spec, sequence, simSeed(random)))
      totals.sequences++
      for (const action of sequence) steps[action._tag]++
      totals.faultsFired += result.faultsFired
      totals.probeFailures += result.probeFailures
      totals.started += result.operations.started
      totals.completed += result.operations.completed
      totals.gone += result.operations.gone
      totals.rejected += result.operations.rejected
      return result
    }
    const details = await FastCheck.check(
      FastCheck.asyncProperty(actions(spec), async (sequence) => !bad(await runOne(sequence))),
      { seed, numRuns }
    )
    const coverage = (): Coverage => ({
      sequences: totals.sequences,
      steps: { ...steps },
      faultsFired: totals.faultsFired,
      probeFailures: totals.probeFailures,
      operations: { started: totals.started, completed: totals.completed, gone: totals.gone, rejected: totals.rejected }
    })
    if (!details.failed || details.counterexample === null) {
      return {
        runs: details.numRuns,
        seed,
        failed: details.failed,
        counterexample: undefined,
        result: undefined,
        path: undefined,
        prefix,
        coverage: coverage()
      }
    }
    const [sequence] = details.counterexample
    const result = await Effect.runPromise(runSequence(spec, [...prefix, ...sequence], simSeed(sequence)))
    return {
      runs: details.numRuns,
      seed,
      failed: true,
      counterexample: sequence,
      result,
      path: details.counterexamplePath ?? undefined,
      prefix,
      coverage: coverage()
    }
  })

export const describe = (report: Report): string =>
  !report.failed || report.counterexample === undefined
    ? `${report.runs} sequences, no guarantee broken (seed ${report.seed})`
    : [
      `failing sequence (shrunk; seed ${report.seed}, path ${report.path}):`,
      ...(report.prefix.length > 0 ? [`  (after ${report.prefix.map(show).join(", ")})`] : []),
      ...report.counterexample.map((a, i) => `  ${i + 1}. ${show(a)}`),
      `  => ${report.result?.failure ?? "guarantees broken"}`,
      ...(report.result?.violations ?? []).map((v) => `  ${v.guarantee} ${v.device}: ${v.message}`),
      ...(report.result?.omitted ?? []).map((o) => `  ${o.guarantee} ${o.device}: (${o.count} more of the same left out)`)
    ].join("\n")
