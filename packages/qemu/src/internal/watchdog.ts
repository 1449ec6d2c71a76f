/**
 * The qtest watchdog. The register path blocks the main thread in `fs.readSync` on QEMU's
 * reply, so nothing on the main thread can time it out: a worker thread watches instead. The
 * two share an Int32Array; the main thread marks each blocking request (no allocation, no
 * message), the worker polls it and SIGKILLs QEMU when one request stays busy past the
 * deadline. The kill closes QEMU's end of the FIFO, so the blocked read returns EOF and the
 * channel reports the timeout.
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"

/**
 * Cells of the shared Int32Array.
 * - SEQ: bumped by the main thread before each request; only the main thread writes it.
 * - BUSY: 1 while a request is between its write and its reply, else 0 (main thread writes).
 * - DEADLINE_MS: how long one request may stay busy (main thread writes, worker reads).
 * - FIRED: 0, or the SEQ of the request during which the worker killed QEMU (worker writes,
 *   once; the worker stops polling after it).
 */
const SEQ = 0
const BUSY = 1
const DEADLINE_MS = 2
const FIRED = 3
const CELLS = 4

// Plain JavaScript evaluated in the worker: no file to locate, the same from src/ under
// vitest and from dist/. The deadline is measured from the first poll that saw the request,
// so a kill comes between `deadline` and `deadline + poll` after the request started.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads")
const cells = new Int32Array(workerData.buffer)
const pid = workerData.pid
let seen = -1
let since = 0
const timer = setInterval(() => {
  if (Atomics.load(cells, ${BUSY}) === 0) { seen = -1; return }
  const seq = Atomics.load(cells, ${SEQ})
  const now = performance.now()
  if (seq !== seen) { seen = seq; since = now; return }
  if (now - since < Atomics.load(cells, ${DEADLINE_MS})) return
  Atomics.store(cells, ${FIRED}, seq === 0 ? -1 : seq)
  clearInterval(timer)
  try { process.kill(pid, "SIGKILL") } catch {}
}, workerData.pollMs)
`

/**
 * A running watchdog for one QEMU process.
 * @since 0.1.0
 * @category models
 */
export interface Watchdog {
  /** Marks the start of a blocking request (two atomic stores). */
  begin(): void
  /** Marks its end. */
  end(): void
  /** True if the watchdog killed QEMU (then the current or a recent request overran). */
  fired(): boolean
  readonly deadlineMs: number
  setDeadline(ms: number): void
  /** Stops the worker; idempotent. */
  stop(): Promise<void>
}

/**
 * Starts a watchdog over `pid`, resolving once the worker runs (so that the first request is
 * already watched).
 * @since 0.1.0
 */
export const startWatchdog = (options: {
  readonly pid: number
  readonly deadlineMs: number
  readonly pollMs?: number
}): Promise<Watchdog> => {
  const buffer = new SharedArrayBuffer(CELLS * Int32Array.BYTES_PER_ELEMENT)
  const cells = new Int32Array(buffer)
  Atomics.store(cells, DEADLINE_MS, options.deadlineMs)
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { buffer, pid: options.pid, pollMs: options.pollMs ?? 100 },
    // The watchdog must never be the reason a test run or a CLI stays alive.
    stdout: false,
    stderr: false
  })
  let stopped: Promise<void> | undefined
  const watchdog: Watchdog = {
    begin() {
      Atomics.add(cells, SEQ, 1)
      Atomics.store(cells, BUSY, 1)
    },
    end() {
      Atomics.store(cells, BUSY, 0)
    },
    fired: () => Atomics.load(cells, FIRED) !== 0,
    get deadlineMs() {
      return Atomics.load(cells, DEADLINE_MS)
    },
    setDeadline(ms) {
      Atomics.store(cells, DEADLINE_MS, ms)
    },
    stop() {
      stopped ??= worker.terminate().then(() => undefined, () => undefined)
      return stopped
    }
  }
  return new Promise((resolve, reject) => {
    worker.once("online", () => {
      // Referenced until now: a process with nothing else to do must still see it start.
      worker.unref()
      resolve(watchdog)
    })
    worker.once("error", (e) => reject(e))
  })
}
