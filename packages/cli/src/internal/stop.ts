/**
 * Stopping a run from outside: SIGINT (Ctrl-C), SIGTERM and `--timeout` of wall time abort
 * the run's signal; the run still ends with its summary and files, then the command exits
 * with the code of what stopped it. A second signal while the files are written exits at once.
 * @internal
 */

/** What can stop a run, as `RunRecord.interrupted.reason` says it. */
export type StopReason = "SIGINT" | "SIGTERM" | "timeout"

/**
 * Exit codes of a stopped run, as shells report a process killed by the signal (128 + its
 * number), and 124 for a timeout, as `timeout(1)` does.
 */
export const exitCodes: { readonly [K in StopReason]: 130 | 143 | 124 } = { SIGINT: 130, SIGTERM: 143, timeout: 124 }

/** The longest `--timeout` (Node's timers take at most 2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMEOUT = 2 ** 31 - 1

const units: ReadonlyArray<readonly [RegExp, number]> = [
  [/^(ms|millis|milliseconds?)$/, 1],
  [/^(s|secs?|seconds?)$/, 1_000],
  [/^(m|mins?|minutes?)$/, 60_000],
  [/^(h|hours?)$/, 3_600_000]
]

/**
 * A wall-clock duration as `--timeout` takes it: a decimal number and a unit (`500ms`,
 * `30s`, `30 seconds`, `2 minutes`, `1.5h`), more than 0 and at most `MAX_TIMEOUT` ms. In
 * milliseconds, or what is wrong with it.
 */
export const parseDuration = (text: string): { readonly millis: number } | { readonly problem: string } => {
  const expected = "expected a number and a unit (ms, s, m or h, or their names: 500ms, 30s, 2 minutes, 1.5 hours)"
  const match = /^([0-9]{1,9}(?:\.[0-9]{1,6})?) ?([a-z]{1,12})$/.exec(text)
  if (match === null) return { problem: expected }
  const unit = units.find(([pattern]) => pattern.test(match[2]!))
  if (unit === undefined) return { problem: `unknown unit "${match[2]}"; ${expected}` }
  const millis = Number(match[1]) * unit[1]
  if (!(millis >= 1)) return { problem: "must be at least 1 ms" }
  if (millis > MAX_TIMEOUT) return { problem: `must be at most ${MAX_TIMEOUT} ms (about 24 days)` }
  return { millis: Math.round(millis) }
}

/** A stop in place for one run: abort `signal` to stop it; `reason` says what stopped it. */
export interface Stopper {
  readonly signal: AbortSignal
  /** What stopped the run, once something did. */
  readonly reason: () => StopReason | undefined
  /** The run is over: the timer is cleared (a signal still counts, while the files are written). */
  readonly ran: () => void
  /** Stops watching: restores the signal handlers there were and clears the timer. */
  readonly dispose: () => void
}

/**
 * Watches SIGINT and SIGTERM (and a timer of `timeoutMillis` wall ms, if given) for one run.
 * Handlers already installed (the runtime's, which would interrupt the whole program and
 * lose the run) are taken off for the run and put back by `dispose`. A second signal after
 * the first calls `exitNow` with its code (the run is winding down or its files being written).
 */
export const watch = (
  timeoutMillis: number | undefined,
  exitNow: (code: number, reason: StopReason) => void = (code) => process.exit(code)
): Stopper => {
  const controller = new AbortController()
  let reason: StopReason | undefined
  const stop = (why: StopReason) => {
    if (reason !== undefined) {
      if (why !== "timeout") exitNow(exitCodes[why], why)
      return
    }
    reason = why
    controller.abort(why)
  }
  const signals = ["SIGINT", "SIGTERM"] as const
  const onSignal = { SIGINT: () => stop("SIGINT"), SIGTERM: () => stop("SIGTERM") }
  const saved = signals.map((name) => [name, process.listeners(name)] as const)
  for (const [name, listeners] of saved) {
    for (const l of listeners) process.removeListener(name, l)
    process.on(name, onSignal[name])
  }
  const timer = timeoutMillis === undefined ? undefined : setTimeout(() => stop("timeout"), timeoutMillis)
  let disposed = false
  return {
    signal: controller.signal,
    reason: () => reason,
    ran: () => {
      if (timer !== undefined) clearTimeout(timer)
    },
    dispose: () => {
      if (disposed) return
      disposed = true
      if (timer !== undefined) clearTimeout(timer)
      for (const [name, listeners] of saved) {
        process.removeListener(name, onSignal[name])
        for (const l of listeners) process.on(name, l as () => void)
      }
    }
  }
}
