/**
 * Campaign results as text, and the merge of shards' JSON results into one.
 * @internal
 */
import type { Campaign, CaseRecord, Crash, Failure, FuzzCoverage, ShrunkRecord, TargetCoverage } from "./campaign.js"
import { FORMAT } from "./campaign.js"

/** Failing cases printed in the text output (all are in the JSON). */
const SHOWN = 20

const cut = (text: string, max = 240) => text.length <= max ? text : `${text.slice(0, max - 1)}…`

const quote = (token: string) => /^[A-Za-z0-9_./@:+-]+$/.test(token) ? token : `'${token.replace(/'/g, `'\\''`)}'`

const isFuzz = (c: Campaign): c is Campaign & { readonly coverage: FuzzCoverage } => c.command === "fuzz"

/** The header of a campaign's text output. */
export const header = (c: Pick<Campaign, "command" | "seed" | "budget" | "shard">, name: string, workers: number, targets?: ReadonlyArray<string>) => {
  const parts = [`seed ${c.seed}`]
  if (c.command === "explore") {
    parts.push(`${targets?.length ?? 0} target device(s)${targets && targets.length > 0 ? `: ${targets.join(", ")}` : ""}`)
    parts.push(`at most ${c.budget.points} points per mode`, `horizon ${c.budget.horizon} ms`)
  } else parts.push(`${c.budget.cases} random sequences`)
  if (c.shard !== null) parts.push(`shard ${c.shard.index}/${c.shard.count}`)
  parts.push(`${workers} worker${workers === 1 ? "" : "s"}`)
  return `devscope ${c.command}: scenario "${name}" (${parts.join("; ")})`
}

const failureLines = (f: Pick<Failure, "failure" | "violations" | "violationCount">): Array<string> => [
  ...(f.failure !== null ? [`      ${cut(f.failure, 160)}`] : []),
  ...f.violations.slice(0, 1).map((v) => `      ${v.guarantee} ${v.device}: ${cut(v.message, 160)}`),
  ...(f.violationCount > 1 ? [`      (${f.violationCount - 1} more violation(s))`] : [])
]

/** The body of a campaign's text output: coverage, failures with their tokens, crashes. */
export const body = (c: Campaign, file: string): string => {
  const lines: Array<string> = []
  const seconds = c.run.wallMillis / 1000
  const rate = seconds > 0 ? ` (${(c.cases.length / seconds).toFixed(1)} cases/s)` : ""
  if (isFuzz(c)) {
    const ops = c.coverage.operations
    const steps = Object.values(c.coverage.steps).reduce((a, b) => a + b, 0)
    lines.push(
      `  ${c.cases.length} of ${c.total} sequences run in ${seconds.toFixed(1)} s${rate}: ${steps} steps, ${ops.started} operations ` +
        `(${ops.completed} completed, ${ops.gone} gone, ${ops.rejected} rejected), ${c.coverage.faultsFired} fault(s) fired, ` +
        `${c.coverage.probeFailures} probe failure(s)`
    )
  } else {
    for (const t of (c.coverage as { readonly targets: ReadonlyArray<TargetCoverage> }).targets) {
      const modes = t.modes.map((m) => `${m.mode} ${m.cases} of ${m.points} point(s) (${m.injected} injected)`).join(", ")
      lines.push(`  ${t.device}: ${t.points.bound} suspension points bound, ${t.points.unbinding} unbinding; ${modes}`)
    }
    lines.push(`  ${c.cases.length} of ${c.total} cases run in ${seconds.toFixed(1)} s${rate}`)
  }
  if (c.failures.length > 0) {
    lines.push(`failing case(s): ${c.failures.length}`)
    for (const f of c.failures.slice(0, SHOWN)) lines.push(`  ${f.token}`, ...failureLines(f))
    if (c.failures.length > SHOWN) lines.push(`  (and ${c.failures.length - SHOWN} more: --json lists them all)`)
  }
  if (c.crashes.length > 0) {
    lines.push(`case(s) whose worker crashed or did not answer: ${c.crashes.length}`)
    for (const crash of c.crashes) lines.push(`  ${crash.token}: ${cut(crash.error, 400)}`)
  }
  if (c.shrunk !== null) lines.push(...shrunkLines(c.shrunk))
  const example = c.shrunk?.token ?? c.failures[0]?.token ?? c.crashes[0]?.token
  if (example !== undefined) lines.push(`replay one case: devscope replay ${quote(file)} ${quote(example)}`)
  const stopped = c.interrupted ?? null
  lines.push(
    stopped !== null
      ? `INTERRUPTED (${stopped.reason}): ${c.cases.length} case(s) run, ${c.failures.length} failing, ${c.crashes.length} crashed; ${
        stopped.planning ? "stopped while planning (the cases of some targets are not known)" : `${stopped.notRun} not run`
      }`
      : c.verdict === "passed"
      ? `passed: ${c.cases.length} case(s), no guarantee broken`
      : `FAILED: ${c.failures.length} failing case(s), ${c.crashes.length} crashed, of ${c.cases.length} run`
  )
  return lines.join("\n")
}

const shrunkLines = (s: ShrunkRecord): Array<string> => [
  `smallest failing sequence (case ${s.index}, shrunk): ${s.token}`,
  ...s.steps.map((step, i) => `  ${i + 1}. ${step}`),
  `  => ${s.outcome}${s.failure !== null ? `: ${cut(s.failure)}` : ""}`,
  ...s.violations.slice(0, 5).map((v) => `  ${v.guarantee} ${v.device}: ${cut(v.message)}`)
]

/** The verdict in a few words, for the error that sets the exit code. */
export const verdictWords = (c: Campaign) =>
  `${c.failures.length} failing case(s)${c.crashes.length > 0 ? ` and ${c.crashes.length} crashed` : ""} of ${c.cases.length} (${c.command})`

// ---------------------------------------------------------------------------------------
// Merge

/** A shard's result as read from a file. */
export interface Source {
  readonly file: string
  readonly text: string
}

/** Merges shards' results: the same campaign, every shard once. A message when they are not. */
export const merge = (sources: ReadonlyArray<Source>): Campaign | string => {
  const results: Array<{ readonly file: string; readonly campaign: Campaign }> = []
  for (const { file, text } of sources) {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return `${file}: not JSON (${(e as Error).message})`
    }
    const problem = shapeProblem(json)
    if (problem !== undefined) return `${file}: not a result of devscope explore/fuzz --json (${problem})`
    results.push({ file, campaign: json as Campaign })
  }
  const first = results[0]
  if (first === undefined) return "nothing to merge"
  const a = first.campaign
  for (const { campaign: b, file } of results) {
    if (b.shard === null) return `${file}: not a shard (it was run without --shard): nothing to merge it with`
    if (b.interrupted !== null && b.interrupted !== undefined) {
      return `${file}: shard ${b.shard.index}/${b.shard.count} was interrupted (${b.interrupted.reason}, ${b.interrupted.notRun} case(s) not run): run it again`
    }
    const differs = (what: string, x: unknown, y: unknown) =>
      JSON.stringify(x) === JSON.stringify(y) ? undefined : `${first.file} and ${file} are not shards of one campaign: ${what} ${JSON.stringify(x)} and ${JSON.stringify(y)}`
    const problem = differs("command", a.command, b.command) ??
      differs("scenario", a.scenario, b.scenario) ??
      differs("seed", a.seed, b.seed) ??
      differs("budget", a.budget, b.budget) ??
      differs("shard count", a.shard!.count, b.shard.count) ??
      differs("total cases", a.total, b.total)
    if (problem !== undefined) return problem
  }
  const count = a.shard!.count
  const byIndex = new Map<number, string>()
  for (const { campaign, file } of results) {
    const seen = byIndex.get(campaign.shard!.index)
    if (seen !== undefined) return `shard ${campaign.shard!.index}/${count} is given twice (${seen} and ${file})`
    byIndex.set(campaign.shard!.index, file)
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i))
  if (missing.length > 0) {
    return `${missing.length} of ${count} shards missing: ${missing.map((i) => `${i}/${count}`).join(", ")} (given: ${
      [...byIndex.keys()].sort((x, y) => x - y).map((i) => `${i}/${count}`).join(", ")
    })`
  }
  const cases: Array<CaseRecord> = []
  const owner = new Map<number, string>()
  for (const { campaign, file } of results) {
    for (const c of campaign.cases) {
      const other = owner.get(c.index)
      if (other !== undefined) return `case ${c.index} is in both ${other} and ${file}`
      owner.set(c.index, file)
      cases.push(c)
    }
  }
  if (cases.length !== a.total) return `the shards ran ${cases.length} cases, the campaign has ${a.total}`
  const byCase = <T extends { readonly index: number }>(list: Array<T>) => list.sort((x, y) => x.index - y.index)
  const failures = byCase(results.flatMap((r) => [...r.campaign.failures]))
  const crashes: Array<Crash> = byCase(results.flatMap((r) => [...r.campaign.crashes]))
  const shrunk = results.map((r) => r.campaign.shrunk).filter((s): s is ShrunkRecord => s !== null)
    .sort((x, y) => x.index - y.index)[0] ?? null
  return {
    format: FORMAT,
    command: a.command,
    scenario: a.scenario,
    seed: a.seed,
    budget: a.budget,
    shard: null,
    total: a.total,
    cases: byCase(cases),
    failures,
    crashes,
    coverage: a.command === "fuzz" ? mergeFuzz(results.map((r) => r.campaign.coverage as FuzzCoverage)) : {
      targets: mergeTargets(results.map((r) => (r.campaign.coverage as { readonly targets: ReadonlyArray<TargetCoverage> }).targets))
    },
    shrunk,
    verdict: failures.length === 0 && crashes.length === 0 ? "passed" : "failed",
    interrupted: null,
    run: {
      workers: Math.max(...results.map((r) => r.campaign.run.workers)),
      wallMillis: results.reduce((n, r) => n + r.campaign.run.wallMillis, 0)
    }
  }
}

const mergeTargets = (all: ReadonlyArray<ReadonlyArray<TargetCoverage>>): Array<TargetCoverage> =>
  all[0]!.map((t, i) => ({
    ...t,
    modes: t.modes.map((m, j) => ({
      ...m,
      cases: all.reduce((n, targets) => n + (targets[i]?.modes[j]?.cases ?? 0), 0),
      injected: all.reduce((n, targets) => n + (targets[i]?.modes[j]?.injected ?? 0), 0)
    }))
  }))

const mergeFuzz = (all: ReadonlyArray<FuzzCoverage>): FuzzCoverage => {
  const sum = (f: (c: FuzzCoverage) => number) => all.reduce((n, c) => n + f(c), 0)
  const steps = Object.fromEntries(Object.keys(all[0]!.steps).map((k) => [k, sum((c) => c.steps[k as keyof FuzzCoverage["steps"]])]))
  return {
    steps: steps as FuzzCoverage["steps"],
    operations: {
      started: sum((c) => c.operations.started),
      completed: sum((c) => c.operations.completed),
      gone: sum((c) => c.operations.gone),
      rejected: sum((c) => c.operations.rejected)
    },
    faultsFired: sum((c) => c.faultsFired),
    probeFailures: sum((c) => c.probeFailures)
  }
}

/** What is wrong with the shape of a campaign's JSON (a light check of the fields merge reads). */
const shapeProblem = (json: unknown): string | undefined => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return "not an object"
  const o = json as Record<string, unknown>
  if (o.format !== FORMAT) return `format ${JSON.stringify(o.format)?.slice(0, 40)}, expected "${FORMAT}"`
  if (o.command !== "explore" && o.command !== "fuzz") return "no command"
  const scenario = o.scenario as Record<string, unknown> | null | undefined
  if (typeof scenario !== "object" || scenario === null || typeof scenario.name !== "string" || typeof scenario.digest !== "string") return "no scenario"
  if (typeof o.seed !== "number" || typeof o.total !== "number") return "no seed or total"
  if (typeof o.budget !== "object" || o.budget === null) return "no budget"
  if (o.shard !== null) {
    const shard = o.shard as Record<string, unknown> | undefined
    if (typeof shard !== "object" || !Number.isInteger(shard.index) || !Number.isInteger(shard.count)) return "a bad shard"
  }
  for (const key of ["cases", "failures", "crashes"] as const) {
    if (!Array.isArray(o[key])) return `no ${key}`
    if (!(o[key] as Array<unknown>).every((c) => typeof c === "object" && c !== null && Number.isInteger((c as { index?: unknown }).index))) {
      return `a bad entry in ${key}`
    }
  }
  if (typeof o.coverage !== "object" || o.coverage === null) return "no coverage"
  if (o.command === "explore" && !Array.isArray((o.coverage as { targets?: unknown }).targets)) return "no coverage targets"
  if (o.command === "fuzz" && typeof (o.coverage as { steps?: unknown }).steps !== "object") return "no coverage steps"
  if (typeof o.run !== "object" || o.run === null) return "no run"
  return undefined
}
