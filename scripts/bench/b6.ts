/**
 * B6, exploration throughput: the exploration of the examples' scenario
 * (examples/scenarios/demo.json: two NICs on a cable, a disk and a sensor with the example
 * drivers) as `devscope explore` runs it, in cases per second of wall time, with `--workers 1`
 * (in this thread) and `--workers 2` (a pool of two worker threads, their start included),
 * measured in the same run, in alternating order. Target: at least 1.6x with 2 workers on a
 * 2-core machine.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import { performance } from "node:perf_hooks"
import * as Campaign from "../../packages/cli/src/internal/campaign.js"
import * as Jobs from "../../packages/cli/src/internal/jobs.js"
import * as Pool from "../../packages/cli/src/internal/pool.js"
import * as Scenario from "../../packages/cli/src/Scenario.js"
import { median } from "./harness.js"
import type { Section } from "./report.js"

const FILE = "examples/scenarios/demo.json"
const POINTS = Number(process.env.B6_POINTS ?? 50)
const ROUNDS = Number(process.env.B6_ROUNDS ?? 2)
const HORIZON = 2

const explore = async (workers: number) => {
  const scenario = Effect.runSync(Scenario.parse(fs.readFileSync(FILE, "utf8"), FILE))
  const seed = scenario.seed ?? 1
  const context: Jobs.Context = { scenario, seed, horizon: HORIZON }
  const started = performance.now()
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const executor = workers === 1
      ? yield* Pool.local(Jobs.handler(context))
      : yield* Pool.workers<Jobs.Job, Jobs.Result>({
        workers,
        entry: new URL("../../packages/cli/src/internal/worker.ts", import.meta.url),
        data: context
      })
    return yield* Campaign.explore({ scenario, seed, shard: undefined, executor, points: POINTS, horizon: HORIZON })
  })))
  const seconds = (performance.now() - started) / 1000
  if (result.verdict !== "passed") throw new Error(`b6: the exploration of ${FILE} failed: ${result.failures[0]?.token}`)
  return { cases: result.cases.length, seconds, rate: result.cases.length / seconds }
}

export const run = async (): Promise<Section> => {
  const one: Array<number> = []
  const two: Array<number> = []
  const ratios: Array<number> = []
  let cases = 0
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating order: drift on a shared machine moves both figures of a round alike.
    const order = round % 2 === 0 ? [1, 2] : [2, 1]
    const rates = new Map<number, number>()
    for (const workers of order) {
      const r = await explore(workers)
      cases = r.cases
      rates.set(workers, r.rate)
      console.log(`  round ${round + 1}, --workers ${workers}: ${r.cases} cases in ${r.seconds.toFixed(1)} s (${r.rate.toFixed(1)} cases/s)`)
    }
    one.push(rates.get(1)!)
    two.push(rates.get(2)!)
    ratios.push(rates.get(2)! / rates.get(1)!)
  }
  const ratio = median(ratios)
  return {
    id: "b6",
    title: "B6: exploration throughput, 1 and 2 workers",
    intro: `
The exploration \`devscope explore ${FILE} --points ${POINTS}\` runs (${cases} cases: each device removed by surprise,
in order and by surprise during its unbind, at up to ${POINTS} points per mode, horizon ${HORIZON} ms), in cases
per second of wall time, with \`--workers 1\` (this thread) and \`--workers 2\` (two worker threads; starting them,
which loads the sources in each, is included). ${ROUNDS} round(s) in alternating order; the speed-up is the median
of the rounds' ratios. This machine: ${os.cpus().length} CPU(s). Target: at least 1.6x with 2 workers on a 2-core machine.`,
    tables: [
      {
        title: "B6: exploration of the examples' scenario",
        unit: "cases/s",
        ratioLabel: "speed-up",
        digits: 1,
        rows: [
          { name: "--workers 1 (baseline)", figure: median(one), baseline: median(one), ratio: 1 },
          { name: "--workers 2", figure: median(two), baseline: median(one), ratio, target: { op: ">=", value: 1.6 } }
        ]
      }
    ]
  }
}
