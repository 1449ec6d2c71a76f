/**
 * Measurement: each task runs in batches long enough that the timer's resolution and the
 * harness's own call cost do not show (a batch is calibrated to at least `batchMs`); a round
 * takes the median per-op time over `timeMs` of batches. Tasks of one comparison run in the
 * same round, in an order rotated each round, and each ratio is taken within its round before
 * the median over rounds: on a shared machine, drift between rounds then moves figures more
 * than ratios.
 */
import { performance } from "node:perf_hooks"
import { Effect, RuntimeFlags, RuntimeFlagsPatch, Supervisor } from "effect"

export interface Task {
  readonly name: string
  /** One call; it performs `ops` operations (reads, sections, cycles...). */
  readonly run: () => unknown
  readonly ops: number
  /** `run` returns a promise to await. */
  readonly async?: boolean
}

export interface Options {
  readonly rounds: number
  /** Sampling time per task and round. */
  readonly timeMs: number
  /** Shortest batch between two timer reads. */
  readonly batchMs?: number
  /** Untimed running before each task's first round. */
  readonly warmupMs?: number
}

export interface Measured {
  readonly name: string
  /** Median over rounds of the per-round median time per op, in nanoseconds. */
  readonly ns: number
  /** Per-round medians, in nanoseconds per op. */
  readonly rounds: ReadonlyArray<number>
}

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const runBatch = async (task: Task, reps: number): Promise<number> => {
  const start = performance.now()
  if (task.async) for (let i = 0; i < reps; i++) await task.run()
  else for (let i = 0; i < reps; i++) task.run()
  return performance.now() - start
}

const calibrate = async (task: Task, batchMs: number): Promise<number> => {
  let reps = 1
  while ((await runBatch(task, reps)) < batchMs && reps < 1 << 24) reps *= 2
  return reps
}

/** One round of one task: the median time per op over `timeMs` of batches, in ns. */
const sample = async (task: Task, reps: number, timeMs: number): Promise<number> => {
  const perOp: Array<number> = []
  const end = performance.now() + timeMs
  do {
    const ms = await runBatch(task, reps)
    perOp.push((ms * 1e6) / (reps * task.ops))
  } while (performance.now() < end || perOp.length < 5)
  return median(perOp)
}

/** Measures every task over `rounds` rounds, interleaved. */
export const measure = async (tasks: ReadonlyArray<Task>, options: Options): Promise<Array<Measured>> => {
  const batchMs = options.batchMs ?? 2
  const reps = new Map<Task, number>()
  for (const task of tasks) {
    const warmupEnd = performance.now() + (options.warmupMs ?? 150)
    while (performance.now() < warmupEnd) await runBatch(task, 1)
    reps.set(task, await calibrate(task, batchMs))
  }
  const results = new Map<Task, Array<number>>(tasks.map((t) => [t, []]))
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[(i + round) % tasks.length]!
      results.get(task)!.push(await sample(task, reps.get(task)!, options.timeMs))
    }
  }
  return tasks.map((task) => {
    const rounds = results.get(task)!
    return { name: task.name, ns: median(rounds), rounds }
  })
}

/** The median over rounds of `task / baseline`, each taken within its round. */
export const ratio = (task: Measured, baseline: Measured): number =>
  median(task.rounds.map((ns, i) => ns / baseline.rounds[i]!))

/** Something the optimiser cannot see through, so measured loops are not dead code. */
export const sink = { value: 0 }

/** Counts the run-loop steps (effect instructions) of the fibers it supervises. */
class StepCounter extends Supervisor.AbstractSupervisor<void> {
  steps = 0
  get value() {
    return Effect.void
  }
  override onEffect() {
    this.steps++
  }
}

/**
 * Run-loop steps per run of `effect` (in every fiber it starts), less those of `Effect.void`
 * run the same way: a figure that does not depend on the machine's load.
 */
export const stepsOf = async (effect: Effect.Effect<unknown, unknown>, runs = 20): Promise<number> => {
  const count = async (e: Effect.Effect<unknown, unknown>) => {
    const counter = new StepCounter()
    const counted = Effect.supervised(Effect.withRuntimeFlagsPatch(e, RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)), counter)
    for (let i = 0; i < runs; i++) await Effect.runPromise(counted)
    return counter.steps / runs
  }
  return (await count(effect)) - (await count(Effect.void))
}
