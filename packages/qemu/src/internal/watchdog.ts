/**
 * The watchdog of the synchronous channels (qtest, and the synchronous QMP channel). Their
 * requests block the main thread in `fs.readSync` on QEMU's reply, so nothing on the main
 * thread can time them out: a worker thread watches instead. One worker watches every channel
 * of one QEMU (up to SLOTS; a further one gets a worker of its own), each channel with its
 * own slot of a shared Int32Array: the main thread marks each blocking request (no
 * allocation, no message), the worker polls the slots and SIGKILLs QEMU when one request
 * stays busy past its channel's deadline. The kill closes QEMU's end of every FIFO, so each
 * blocked read returns EOF and its channel reports the timeout (or, on the other channels,
 * that QEMU is gone).
 *
 * @since 0.1.0
 */
import { Worker } from "node:worker_threads"

/**
 * Cells of one slot (at `slot * SLOT_CELLS` in the shared Int32Array).
 * - SEQ: bumped by the main thread before each request; only the main thread writes it.
 * - BUSY: 1 while a request is between its write and its reply, else 0 (main thread writes).
 * - DEADLINE_MS: how long one request may stay busy (main thread writes, worker reads).
 * - FIRED: 0, or the SEQ of the request during which the worker killed QEMU (worker writes,
 *   once; the worker stops polling after it).
 * After the slots, KILLED: 1 once the worker has killed QEMU (worker writes).
 */
const SEQ = 0
const BUSY = 1
const DEADLINE_MS = 2
const FIRED = 3
const SLOT_CELLS = 4
/** qtest and the synchronous QMP channel, with room to spare. */
const SLOTS = 4
const KILLED = SLOTS * SLOT_CELLS
const CELLS = KILLED + 1

// Plain JavaScript evaluated in the worker: no file to locate, the same from src/ under
// vitest and from dist/. The deadline is measured from the first poll that saw the request,
// so a kill comes between `deadline` and `deadline + poll` after the request started.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads")
const cells = new Int32Array(workerData.buffer)
const pid = workerData.pid
const seen = new Array(${SLOTS}).fill(-1)
const since = new Array(${SLOTS}).fill(0)
const timer = setInterval(() => {
  const now = performance.now()
  for (let slot = 0; slot < ${SLOTS}; slot++) {
    const base = slot * ${SLOT_CELLS}
    if (Atomics.load(cells, base + ${BUSY}) === 0) { seen[slot] = -1; continue }
    const seq = Atomics.load(cells, base + ${SEQ})
    if (seq !== seen[slot]) { seen[slot] = seq; since[slot] = now; continue }
    if (now - since[slot] < Atomics.load(cells, base + ${DEADLINE_MS})) continue
    Atomics.store(cells, base + ${FIRED}, seq === 0 ? -1 : seq)
    Atomics.store(cells, ${KILLED}, 1)
    clearInterval(timer)
    try { process.kill(pid, "SIGKILL") } catch {}
    return
  }
}, workerData.pollMs)
`

/**
 * One channel's view of a running watchdog (the channel's slot).
 * @since 0.1.0
 * @category models
 */
export interface Watchdog {
  /** Marks the start of a blocking request (two atomic stores). */
  begin(): void
  /** Marks its end. */
  end(): void
  /** True if the watchdog killed QEMU over this channel (its current or a recent request overran). */
  fired(): boolean
  readonly deadlineMs: number
  setDeadline(ms: number): void
  /** Releases the channel's slot, and stops the worker with the last one; idempotent. */
  stop(): Promise<void>
}

/** One worker and its slots, shared by the channels of one QEMU. */
interface Shared {
  readonly pid: number
  readonly pollMs: number
  readonly cells: Int32Array
  readonly used: Array<boolean>
  readonly ready: Promise<Worker>
}

/**
 * The workers with a free slot or in use, by QEMU pid. A pid reused by a later QEMU while an
 * old worker still runs is harmless: the worker kills by pid, and that is the QEMU its
 * channels talk to. A worker that has killed is never joined again.
 */
const shared = new Map<number, Array<Shared>>()

const startWorker = (pid: number, pollMs: number): Shared => {
  const buffer = new SharedArrayBuffer(CELLS * Int32Array.BYTES_PER_ELEMENT)
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { buffer, pid, pollMs },
    // The watchdog must never be the reason a test run or a CLI stays alive.
    stdout: false,
    stderr: false
  })
  const ready = new Promise<Worker>((resolve, reject) => {
    worker.once("online", () => {
      // Referenced until now: a process with nothing else to do must still see it start.
      worker.unref()
      resolve(worker)
    })
    worker.once("error", (e) => reject(e))
  })
  return { pid, pollMs, cells: new Int32Array(buffer), used: new Array<boolean>(SLOTS).fill(false), ready }
}

const forget = (s: Shared) => {
  const list = shared.get(s.pid)?.filter((other) => other !== s) ?? []
  if (list.length === 0) shared.delete(s.pid)
  else shared.set(s.pid, list)
}

/**
 * Starts watching a channel to QEMU `pid`, resolving once the worker runs (so that the first
 * request is already watched). Channels to the same QEMU share one worker.
 * @since 0.1.0
 */
export const startWatchdog = async (options: {
  readonly pid: number
  readonly deadlineMs: number
  readonly pollMs?: number
}): Promise<Watchdog> => {
  const pollMs = options.pollMs ?? 100
  const list = shared.get(options.pid) ?? []
  let s = list.find((c) => c.pollMs === pollMs && Atomics.load(c.cells, KILLED) === 0 && c.used.includes(false))
  if (s === undefined) {
    s = startWorker(options.pid, pollMs)
    shared.set(options.pid, [...list, s])
  }
  const owner = s
  const slot = owner.used.indexOf(false)
  owner.used[slot] = true
  const { cells } = owner
  const base = slot * SLOT_CELLS
  Atomics.store(cells, base + BUSY, 0)
  Atomics.store(cells, base + FIRED, 0)
  Atomics.store(cells, base + DEADLINE_MS, options.deadlineMs)
  let worker: Worker
  try {
    worker = await owner.ready
  } catch (e) {
    owner.used[slot] = false
    forget(owner)
    throw e
  }
  let stopped: Promise<void> | undefined
  return {
    begin() {
      Atomics.add(cells, base + SEQ, 1)
      Atomics.store(cells, base + BUSY, 1)
    },
    end() {
      Atomics.store(cells, base + BUSY, 0)
    },
    fired: () => Atomics.load(cells, base + FIRED) !== 0,
    get deadlineMs() {
      return Atomics.load(cells, base + DEADLINE_MS)
    },
    setDeadline(ms) {
      Atomics.store(cells, base + DEADLINE_MS, ms)
    },
    stop() {
      if (stopped !== undefined) return stopped
      Atomics.store(cells, base + BUSY, 0)
      owner.used[slot] = false
      if (owner.used.includes(true)) {
        stopped = Promise.resolve()
      } else {
        forget(owner)
        stopped = worker.terminate().then(() => undefined, () => undefined)
      }
      return stopped
    }
  }
}
