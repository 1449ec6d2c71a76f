/**
 * The commands `explore`, `fuzz`, `replay` and `merge`: exploration and fuzzing of a scenario
 * file from the command line, in parallel (`--workers`) and sharded (`--shard`).
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Explore, Fuzz } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import * as Campaign from "./campaign.js"
import { CampaignInterrupted, GuaranteesBroken, UsageError } from "../Errors.js"
import * as ExploreCases from "./explore.js"
import * as FuzzCases from "./fuzz.js"
import * as Jobs from "./jobs.js"
import { seed, type Timeout, timeout } from "./options.js"
import * as Pool from "./pool.js"
import * as Results from "./results.js"
import * as Shard from "./shard.js"
import * as Stop from "./stop.js"
import { readScenario } from "./sources.js"

/** The most workers `--workers` accepts. */
export const MAX_WORKERS = 256

const invalid = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))
const shown = (text: string) => JSON.stringify(text).slice(0, 40)

/** A whole number flag from 1 to `max`. */
const count = (name: string, max: number, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("N"),
    Options.mapEffect((text) =>
      /^[1-9][0-9]{0,8}$/.test(text) && Number(text) <= max
        ? Effect.succeed(Number(text))
        : invalid(`--${name} ${shown(text)}: expected a whole number from 1 to ${max}`)
    ),
    Options.withDescription(description),
    Options.optional
  )

const workers = count(
  "workers",
  MAX_WORKERS,
  "Run the cases on N worker threads (default 1: in this thread); the verdict is the same for any N"
)

const shard = Options.text("shard").pipe(
  Options.withPseudoName("i/n"),
  Options.mapEffect((text) => {
    const parsed = Shard.parse(text)
    return typeof parsed === "string" ? invalid(parsed) : Effect.succeed(parsed)
  }),
  Options.withDescription(
    "Run only shard i of n: the cases numbered i-1 modulo n. The n shards' --json results merge (devscope merge) into the whole run's"
  ),
  Options.optional
)

const json = Options.boolean("json").pipe(Options.withDescription("Print the result as JSON on stdout (see docs/cli.md); progress goes to stderr"))
const quiet = Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("No progress lines"))

const points = count(
  "points",
  100_000,
  `At most N removal points per mode and device, spread evenly over the run (default ${ExploreCases.DEFAULT_POINTS})`
)

const horizon = Options.text("horizon").pipe(
  Options.withPseudoName("ms"),
  Options.mapEffect((text) =>
    /^[0-9]{1,5}(\.[0-9]{1,3})?$/.test(text) && Number(text) > 0 && Number(text) <= 60_000
      ? Effect.succeed(Number(text))
      : invalid(`--horizon ${shown(text)}: expected milliseconds of virtual time, more than 0 and at most 60000, with at most 3 decimals`)
  ),
  Options.withDescription(
    `Virtual time the workload runs in each case before the drivers are unloaded (default ${ExploreCases.DEFAULT_HORIZON} ms, or the scenario's duration if shorter)`
  ),
  Options.optional
)

const cases = count("cases", 1_000_000, `Run N random sequences (default ${FuzzCases.DEFAULT_CASES})`)

const file = Args.file({ name: "scenario.json", exists: "yes" }).pipe(Args.withDescription("A scenario file (see examples/scenarios/)"))

/** The worker module next to this one: TypeScript in the workspace, JavaScript in `dist/`. */
const workerEntry = () => new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url)

/** Options of {@link executor}. */
export interface ExecutorOptions {
  readonly workers: number
  /** The worker module (a test's); default this package's worker. */
  readonly entry?: URL | undefined
  readonly deadline?: number | undefined
}

/** This thread for one worker, else a pool of worker threads (closed with the scope). */
export const executor = (context: Jobs.Context, options: ExecutorOptions) =>
  options.workers === 1 && options.entry === undefined
    ? Pool.local(Jobs.handler(context))
    : Pool.workers<Jobs.Job, Jobs.Result>({
      workers: options.workers,
      entry: options.entry ?? workerEntry(),
      data: context,
      deadline: options.deadline
    })

/** A progress line on stderr at most every 5 s (none with `--quiet`). */
const progress = (command: string, enabled: boolean): Campaign.OnProgress | undefined => {
  if (!enabled) return undefined
  const started = performance.now()
  let last = started
  return (done, of, failing) => {
    const now = performance.now()
    if (now - last < 5_000 || done === of) return
    last = now
    process.stderr.write(`  ${command}: ${done}/${of} cases, ${failing} failing, ${((now - started) / 1000).toFixed(0)} s\n`)
  }
}

/** What explore and fuzz share: the file read, the seed, the executor, the output, the verdict. */
const campaignCommand = <K extends "explore" | "fuzz">(
  command: K,
  flags: {
    readonly file: string
    readonly seed: Option.Option<number>
    readonly workers: Option.Option<number>
    readonly shard: Option.Option<Shard.Shard>
    readonly json: boolean
    readonly quiet: boolean
    readonly timeout: Option.Option<Timeout>
  },
  start: (scenario: Scenario.Scenario, seed: number, common: {
    readonly shard: Shard.Shard | undefined
    readonly onProgress: Campaign.OnProgress | undefined
    readonly signal: AbortSignal
  }) => {
    readonly context: Jobs.Context
    readonly header: string
    readonly run: (executor: Pool.Executor<Jobs.Job, Jobs.Result>) => Effect.Effect<Campaign.Campaign>
  }
) =>
  Effect.scoped(Effect.gen(function*() {
    const scenario = yield* readScenario(flags.file)
    const seedUsed = Option.getOrElse(flags.seed, () => scenario.seed ?? 1)
    const n = Option.getOrElse(flags.workers, () => 1)
    const limit = Option.getOrUndefined(flags.timeout)
    // SIGINT, SIGTERM and --timeout stop the campaign: no case starts after, running ones are
    // interrupted (their workers terminated), and the result of what ran is printed. A second
    // signal exits at once.
    const stopper = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Stop.watch(limit?.millis, (code, reason) => {
          process.stderr.write(`\ndevscope ${command}: ${reason} again: exiting now (exit code ${code})\n`)
          process.exit(code)
        })
      ),
      (stopper) => Effect.sync(() => stopper.dispose())
    )
    const plan = start(scenario, seedUsed, {
      shard: Option.getOrUndefined(flags.shard),
      onProgress: progress(command, !flags.quiet),
      signal: stopper.signal
    })
    const say = (line: string) => flags.json ? Console.error(line) : Console.log(line)
    if (!flags.quiet) yield* say(plan.header)
    const result = yield* Effect.scoped(Effect.flatMap(executor(plan.context, { workers: n }), plan.run))
    stopper.ran()
    if (result.interrupted !== null) {
      const why = result.interrupted.reason === "timeout" && limit !== undefined
        ? `timeout: --timeout ${limit.text} of wall time`
        : result.interrupted.reason
      yield* say(`devscope ${command}: interrupted (${why}) after ${result.cases.length} case(s) in ${(result.run.wallMillis / 1000).toFixed(1)} s`)
    }
    if (flags.json) yield* Console.log(JSON.stringify(result, null, 2))
    else yield* Console.log(Results.body(result, flags.file))
    if (result.interrupted !== null) {
      const reason = result.interrupted.reason
      return yield* new CampaignInterrupted({
        command,
        scenario: scenario.name,
        reason,
        code: Stop.exitCodes[reason],
        casesRun: result.cases.length,
        notRun: result.interrupted.notRun
      })
    }
    return yield* verdict(result)
  }))

const verdict = (result: Campaign.Campaign) =>
  result.verdict === "passed" ? Effect.void : Effect.fail(
    new GuaranteesBroken({
      scenario: result.scenario.name,
      violations: result.failures.reduce((n, f) => n + f.violationCount, 0),
      failures: result.failures.length + result.crashes.length,
      verdict: Results.verdictWords(result)
    })
  )

/** The default horizon of a file: 2 ms, or its duration if shorter. */
const horizonOf = (scenario: Scenario.Scenario, flag: Option.Option<number>) =>
  Option.getOrElse(flag, () => Math.min(ExploreCases.DEFAULT_HORIZON, scenario.duration))

/** @internal */
export const exploreCommand = Command.make(
  "explore",
  { file, seed, points, horizon, workers, shard, json, quiet, timeout },
  (flags) =>
    campaignCommand("explore", flags, (scenario, seed, common) => {
      const h = horizonOf(scenario, flags.horizon)
      const p = Option.getOrElse(flags.points, () => ExploreCases.DEFAULT_POINTS)
      const budget = { points: p, horizon: h }
      return {
        context: { scenario, seed, horizon: h },
        header: Results.header(
          { command: "explore", seed, budget, shard: common.shard ?? null },
          scenario.name,
          Option.getOrElse(flags.workers, () => 1),
          ExploreCases.targets(scenario)
        ),
        run: (executor) => Campaign.explore({ scenario, seed, executor, points: p, horizon: h, ...common })
      }
    })
).pipe(
  Command.withDescription(
    "Explore removal at every suspension point: each device of the file (present at the start, with a driver) removed by surprise, " +
      "in order, and by surprise during its own unbind, at points spread over the run; each case judged by the invariant oracle. " +
      "Exit code 0: no case failed; 1: a case failed (each printed with its replay token); 2: bad input; " +
      "130, 143, 124: stopped by SIGINT, SIGTERM or --timeout (the result of the cases run still printed)"
  )
)

/** @internal */
export const fuzzCommand = Command.make(
  "fuzz",
  { file, seed, cases, workers, shard, json, quiet, timeout },
  (flags) =>
    campaignCommand("fuzz", flags, (scenario, seed, common) => {
      const n = Option.getOrElse(flags.cases, () => FuzzCases.DEFAULT_CASES)
      return {
        context: { scenario, seed, horizon: horizonOf(scenario, Option.none()) },
        header: Results.header(
          { command: "fuzz", seed, budget: { cases: n }, shard: common.shard ?? null },
          scenario.name,
          Option.getOrElse(flags.workers, () => 1)
        ),
        run: (executor) => Campaign.fuzz({ scenario, seed, executor, cases: n, ...common })
      }
    })
).pipe(
  Command.withDescription(
    "Fuzz the file's machine: random sequences of plug, I/O, unbind, removals, driver unload and reload, waits and faults, " +
      "each judged by the invariant oracle; the lowest failing one is shrunk. Exit code 0: no sequence failed; 1: one did; 2: bad input; " +
      "130, 143, 124: stopped by SIGINT, SIGTERM or --timeout (the result of the sequences run still printed)"
  )
)

const token = Args.text({ name: "token" }).pipe(Args.withDescription("A replay token printed by explore or fuzz"))

/** Replays one case; its result, and whether it failed. */
export const replay = (scenario: Scenario.Scenario, text: string) =>
  Effect.gen(function*() {
    const explored = ExploreCases.parseToken(text)
    const fuzzed = explored === undefined ? FuzzCases.parseToken(text) : undefined
    if (explored === undefined && fuzzed === undefined) {
      return yield* new UsageError({
        reason: `not a replay token: ${shown(text)} (exploration tokens read name/device/2ms@seed:mode:point, fuzzing tokens name@seed:fuzz:path)`
      })
    }
    const name = explored?.scenario ?? fuzzed!.scenario
    if (name !== scenario.name) {
      return yield* new UsageError({ reason: `the token is for scenario "${name}", the file is scenario "${scenario.name}"` })
    }
    if (explored !== undefined) {
      if (!ExploreCases.targets(scenario).includes(explored.device)) {
        return yield* new UsageError({ reason: `the token names device "${explored.device}", which scenario "${scenario.name}" does not explore` })
      }
      const settings = { seed: explored.seed, horizon: explored.horizon }
      const baseline = yield* ExploreCases.runJob(scenario, settings, {
        device: explored.device,
        case: { mode: "baseline", point: 0 },
        timeout: ExploreCases.BASELINE_TIMEOUT
      })
      const result = explored.case.mode === "baseline" ? baseline : yield* ExploreCases.runJob(scenario, settings, {
        device: explored.device,
        case: explored.case,
        timeout: ExploreCases.caseTimeout(baseline.virtualMillis)
      })
      const failed = ExploreCases.failed(result)
      const lines = [
        `replayed ${result.token}: ${result.outcome} after ${result.virtualMillis.toFixed(3)} ms of virtual time, removal ${
          result.injected ? "injected" : "not injected (the run did not reach the point)"
        }; ${result.points.bound} points bound, ${result.points.removal} in the removal's unbind`,
        failed ? Explore.describe(result) : "passed: no guarantee broken"
      ]
      return { failed, json: { token: text, command: "explore", passed: !failed, result }, text: lines.join("\n"), name }
    }
    const fuzzing = FuzzCases.make(scenario, fuzzed!.seed)
    const sequence = yield* Effect.try({
      try: () => FuzzCases.atPath(fuzzing, fuzzed!.path),
      catch: (e) => new UsageError({ reason: `the token's path ${fuzzed!.path} names no sequence: ${(e as Error).message}` })
    })
    const result = yield* fuzzing.run(sequence)
    const failed = FuzzCases.failed(result)
    const lines = [
      `replayed ${text}: ${fuzzing.prefix.length + sequence.length} steps`,
      ...fuzzing.prefix.map((a, i) => `  ${i + 1}. (prefix) ${Fuzz.show(a)}`),
      ...sequence.map((a, i) => `  ${fuzzing.prefix.length + i + 1}. ${Fuzz.show(a)}`),
      `  => ${result.outcome}; ${result.operations.started} operations (${result.operations.completed} completed, ${result.operations.gone} gone, ${result.operations.rejected} rejected)${
        result.failure !== undefined ? `; ${result.failure}` : ""
      }`,
      ...result.violations.map((v) => `  ${v.guarantee} ${v.device}: ${v.message}`),
      failed ? "FAILED" : "passed: no guarantee broken"
    ]
    return { failed, json: { token: text, command: "fuzz", passed: !failed, sequence, result }, text: lines.join("\n"), name }
  })

/** @internal */
export const replayCommand = Command.make(
  "replay",
  { file, token, json },
  (flags) =>
    Effect.gen(function*() {
      const scenario = yield* readScenario(flags.file)
      const replayed = yield* replay(scenario, flags.token)
      yield* Console.log(flags.json ? JSON.stringify(replayed.json, null, 2) : replayed.text)
      if (replayed.failed) {
        return yield* new GuaranteesBroken({ scenario: replayed.name, violations: 0, failures: 1, verdict: `the replayed case ${flags.token} failed` })
      }
    })
).pipe(
  Command.withDescription(
    "Rerun exactly one case of explore or fuzz from its replay token, with the scenario file it was made from, and print what happened. " +
      "Exit code 0: the case passed; 1: it failed; 2: bad input"
  )
)

const results = Args.file({ name: "result.json", exists: "yes" }).pipe(
  Args.withDescription("The JSON results of the shards of one explore or fuzz run (each with its shard i/n), one file per shard"),
  Args.atLeast(1)
)

/** @internal */
export const mergeCommand = Command.make(
  "merge",
  { results, json },
  (flags) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const sources = yield* Effect.forEach(flags.results, (file) =>
        fs.readFileString(file).pipe(
          Effect.map((text) => ({ file, text })),
          Effect.mapError((e) => new UsageError({ reason: `${file}: cannot read it (${e.message})` }))
        ))
      const merged = Results.merge(sources)
      if (typeof merged === "string") return yield* new UsageError({ reason: `merge: ${merged}` })
      if (flags.json) yield* Console.log(JSON.stringify(merged, null, 2))
      else {
        const targets = "targets" in merged.coverage ? merged.coverage.targets.map((t) => t.device) : undefined
        yield* Console.log(`${Results.header(merged, merged.scenario.name, merged.run.workers, targets)}, ${sources.length} shard(s) merged`)
        yield* Console.log(Results.body(merged, "<scenario.json>"))
      }
      return yield* verdict(merged)
    })
).pipe(
  Command.withDescription(
    "Merge the JSON results of the shards of one explore or fuzz run into one verdict (refused: results of different files, seeds, " +
      "budgets or shard counts, a shard given twice or missing). Exit code 0: no case failed; 1: one did; 2: bad input"
  )
)
