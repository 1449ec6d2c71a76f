/**
 * Runs jobs on Node's worker threads, a fixed number at a time, or in this thread.
 *
 * - Every wait on a worker has a deadline: a job not answered within `deadline` (start-up
 *   included) is reported with its job, and its worker terminated; terminating waits at most
 *   `TERMINATE_DEADLINE`.
 * - A worker that crashes (an uncaught exception, an exit, out of memory) is reported with the
 *   job it ran, never swallowed; a new worker takes the next job. Workers that die before
 *   they ever start (three in a row) fail every queued job with the reason.
 * - The pool is scoped: closing the scope (the end, Ctrl-C) terminates every worker.
 *
 * Workers run the same module whether the sources are TypeScript (the workspace, through tsx
 * with `--conditions=@devscope/source`) or the built `dist/`: a worker entry ending in `.ts`
 * registers tsx in the worker (its `esm/api`) before importing the entry, and keeps the
 * parent's `execArgv` (the condition included, added if absent).
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parentPort, Worker, workerData } from "node:worker_threads"

/** How a job ended: its value, or why there is none (the worker crashed, the deadline passed). */
export type Outcome<R> =
  | { readonly _tag: "Done"; readonly value: R }
  | { readonly _tag: "Crashed"; readonly error: string }

/** Runs jobs; at most its concurrency at a time. */
export interface Executor<J, R> {
  readonly workers: number
  readonly run: (job: J) => Effect.Effect<Outcome<R>>
}

/** Default deadline of one job on a worker, in milliseconds of wall time (start-up included). */
export const DEFAULT_DEADLINE = 300_000

/** How long terminating a worker may take. */
export const TERMINATE_DEADLINE = 5_000

/** Runs the jobs in this thread, one at a time; a defect of a job is reported as its crash. */
export const local = <J, R>(handle: (job: J) => Effect.Effect<R>): Effect.Effect<Executor<J, R>> =>
  Effect.map(Effect.makeSemaphore(1), (semaphore) => ({
    workers: 1,
    run: (job) =>
      semaphore.withPermits(1)(
        handle(job).pipe(
          Effect.map((value): Outcome<R> => ({ _tag: "Done", value })),
          Effect.catchAllDefect((defect) => Effect.succeed<Outcome<R>>({ _tag: "Crashed", error: describe(defect) }))
        )
      )
  }))

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : typeof error === "string" ? error : JSON.stringify(error)

/** What a worker is told at its start. */
interface Boot {
  readonly entry: string
  readonly tsx: string | undefined
  readonly data: unknown
}

// Worker threads of an `eval` script are CommonJS: it registers tsx if asked, then imports the entry.
const BOOT = `
const { workerData } = require("node:worker_threads");
(workerData.tsx ? import(workerData.tsx).then((tsx) => tsx.register()) : Promise.resolve())
  .then(() => import(workerData.entry))
  .catch((error) => { setImmediate(() => { throw error }) });
`

/** tsx's ESM API, to register in a worker whose entry is TypeScript. */
const tsxApi = (): string => {
  const require = createRequire(import.meta.url)
  const manifest = require.resolve("tsx/package.json")
  return pathToFileURL(path.join(path.dirname(manifest), "dist/esm/api/index.mjs")).href
}

interface Pending<J, R> {
  readonly job: J
  readonly resume: (outcome: Outcome<R>) => void
  cancelled: boolean
}

interface Slot<J, R> {
  readonly worker: Worker
  ready: boolean
  busy: { readonly id: number; readonly pending: Pending<J, R>; readonly timer: NodeJS.Timeout } | undefined
  dead: boolean
}

/**
 * The parent's options a worker keeps: module resolution and loaders (`--conditions`,
 * `--import`, `--require`, `--loader`); process-wide ones (`--expose-gc`...) are refused by
 * worker threads.
 */
export const workerArgv = (argv: ReadonlyArray<string>): Array<string> => {
  const kept: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const name = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    if (!["--conditions", "-C", "--import", "--require", "-r", "--loader", "--experimental-loader"].includes(name)) continue
    kept.push(arg)
    if (!arg.includes("=") && i + 1 < argv.length) kept.push(argv[++i]!)
  }
  return kept
}

/** Options of {@link workers}. */
export interface Options {
  /** Workers (all started at once; one that dies is replaced when a job needs it). */
  readonly workers: number
  /** The worker module (one that calls {@link serve}). */
  readonly entry: URL
  /** Given to the worker module's handler maker (structured-cloned). */
  readonly data: unknown
  /** Deadline of one job, in milliseconds (default {@link DEFAULT_DEADLINE}). */
  readonly deadline?: number | undefined
}

/** A pool of worker threads, terminated when the scope closes. */
export const workers = <J, R>(options: Options): Effect.Effect<Executor<J, R>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const deadline = options.deadline ?? DEFAULT_DEADLINE
    const entry = options.entry.href
    const typescript = entry.endsWith(".ts")
    const inherited = workerArgv(process.execArgv)
    const execArgv = typescript && !inherited.includes("--conditions=@devscope/source")
      ? [...inherited, "--conditions=@devscope/source"]
      : inherited
    const boot: Boot = { entry, tsx: typescript ? tsxApi() : undefined, data: options.data }
    const slots = new Set<Slot<J, R>>()
    const queue: Array<Pending<J, R>> = []
    let nextId = 0
    let startFailures = 0
    let closed = false

    const finish = (slot: Slot<J, R>, outcome: Outcome<R>) => {
      const busy = slot.busy
      if (busy === undefined) return
      slot.busy = undefined
      clearTimeout(busy.timer)
      if (!busy.pending.cancelled) busy.pending.resume(outcome)
    }
    const kill = (slot: Slot<J, R>, outcome: Outcome<R>) => {
      if (slot.dead) return
      slot.dead = true
      slots.delete(slot)
      finish(slot, outcome)
      void slot.worker.terminate()
      if (!slot.ready && ++startFailures >= 3) {
        // Workers cannot start here: every queued job fails with the reason.
        const reason = outcome._tag === "Crashed" ? outcome.error : "the worker did not start"
        for (const pending of queue.splice(0)) pending.resume({ _tag: "Crashed", error: `no worker could start: ${reason}` })
      }
      pump()
    }
    const spawn = (): Slot<J, R> => {
      // A young generation as large as the main thread's: with a worker's default (smaller),
      // the simulation's short-lived allocations made every case about twice as slow.
      const worker = new Worker(BOOT, { eval: true, workerData: boot, execArgv, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 64 } })
      const slot: Slot<J, R> = { worker, ready: false, busy: undefined, dead: false }
      worker.on("message", (message: { readonly ready?: true; readonly id?: number; readonly ok?: boolean; readonly value?: R; readonly error?: string }) => {
        if (message.ready === true) {
          slot.ready = true
          startFailures = 0
          return
        }
        if (slot.busy === undefined || message.id !== slot.busy.id) return
        finish(slot, message.ok === true ? { _tag: "Done", value: message.value as R } : { _tag: "Crashed", error: message.error ?? "failed" })
        pump()
      })
      worker.on("error", (error) => kill(slot, { _tag: "Crashed", error: `the worker crashed: ${describe(error)}` }))
      worker.on("exit", (code) => kill(slot, { _tag: "Crashed", error: `the worker exited (code ${code})` }))
      slots.add(slot)
      return slot
    }
    const pump = () => {
      if (closed) return
      for (;;) {
        while (queue.length > 0 && queue[0]!.cancelled) queue.shift()
        if (queue.length === 0) return
        let slot = [...slots].find((s) => s.busy === undefined && !s.dead)
        if (slot === undefined) {
          if (slots.size >= options.workers) return
          try {
            slot = spawn()
          } catch (error) {
            // Node refused to start a worker at all: every queued job fails with the reason.
            for (const pending of queue.splice(0)) pending.resume({ _tag: "Crashed", error: `no worker could start: ${describe(error)}` })
            return
          }
        }
        const pending = queue.shift()!
        const id = nextId++
        const timer = setTimeout(
          () => kill(slot, { _tag: "Crashed", error: `no answer from the worker within ${deadline / 1000} s (terminated)` }),
          deadline
        )
        slot.busy = { id, pending, timer }
        slot.worker.postMessage({ id, job: pending.job })
      }
    }

    // Every worker starts now: loading the sources (seconds, from TypeScript) overlaps.
    try {
      for (let i = 0; i < options.workers; i++) spawn()
    } catch {
      // Reported to the first job (pump spawns again and fails it with the reason).
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        for (const pending of queue.splice(0)) pending.cancelled = true
        const all = [...slots]
        slots.clear()
        for (const slot of all) {
          slot.dead = true
          if (slot.busy !== undefined) clearTimeout(slot.busy.timer)
        }
        const terminated = Promise.all(all.map((slot) => slot.worker.terminate().catch(() => undefined)))
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<void>((resolve) => void (timer = setTimeout(resolve, TERMINATE_DEADLINE)))
        return Promise.race([terminated, late]).then(() => clearTimeout(timer))
      })
    )

    return {
      workers: options.workers,
      run: (job: J) =>
        Effect.async<Outcome<R>>((resume) => {
          const pending: Pending<J, R> = { job, resume: (outcome) => resume(Effect.succeed(outcome)), cancelled: false }
          queue.push(pending)
          pump()
          return Effect.sync(() => {
            pending.cancelled = true
            // A job interrupted while it runs: its worker is stopped (the next job gets a new one).
            for (const slot of slots) if (slot.busy?.pending === pending) kill(slot, { _tag: "Crashed", error: "interrupted" })
          })
        })
    }
  })

/**
 * The worker side: answers each job with `makeHandler(data)`'s result. A job that fails with
 * a defect is answered as failed (the worker goes on); anything else that kills the worker is
 * seen by the pool.
 */
export const serve = <J, R>(makeHandler: (data: never) => (job: J) => Effect.Effect<R>): void => {
  const port = parentPort
  if (port === null) throw new Error("not a worker thread")
  const handle = makeHandler((workerData as Boot).data as never)
  port.on("message", (message: { readonly id: number; readonly job: J }) => {
    Effect.runPromiseExit(handle(message.job)).then((exit) => {
      if (exit._tag === "Success") port.postMessage({ id: message.id, ok: true, value: exit.value })
      else port.postMessage({ id: message.id, ok: false, error: `the job failed: ${String(exit.cause).split("\n")[0]}` })
    })
  })
  port.postMessage({ ready: true })
}
