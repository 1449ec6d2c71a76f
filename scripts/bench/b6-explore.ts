/**
 * One round of B6: the exploration `devscope explore FILE --workers N` runs, timed. Bundled by
 * b6.ts into one JavaScript file, so that `--workers 1` (this thread) runs compiled code as the
 * workers do.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { performance } from "node:perf_hooks"
import * as Campaign from "../../packages/cli/src/internal/campaign.js"
import * as Jobs from "../../packages/cli/src/internal/jobs.js"
import * as Pool from "../../packages/cli/src/internal/pool.js"
import * as Scenario from "../../packages/cli/src/Scenario.js"

/** Explores `file` with `workers` workers (1: this thread); the cases run and the wall time. */
export const explore = async (o: { file: string; workers: number; entry: URL; points: number; horizon: number }) => {
  const scenario = Effect.runSync(Scenario.parse(fs.readFileSync(o.file, "utf8"), o.file))
  const seed = scenario.seed ?? 1
  const context: Jobs.Context = { scenario, seed, horizon: o.horizon }
  const started = performance.now()
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const executor = o.workers === 1
      ? yield* Pool.local(Jobs.handler(context))
      : yield* Pool.workers<Jobs.Job, Jobs.Result>({ workers: o.workers, entry: o.entry, data: context })
    return yield* Campaign.explore({ scenario, seed, shard: undefined, executor, points: o.points, horizon: o.horizon })
  })))
  const seconds = (performance.now() - started) / 1000
  if (result.verdict !== "passed") throw new Error(`b6: the exploration of ${o.file} failed: ${result.failures[0]?.token}`)
  return { cases: result.cases.length, seconds }
}
