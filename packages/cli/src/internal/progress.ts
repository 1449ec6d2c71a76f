/**
 * The live progress of a run: on a terminal one line redrawn in place, with the percentage
 * of virtual time done and an ETA from the wall-clock rate so far; elsewhere (a pipe, a CI
 * log) a plain line every few seconds. Terminal control is a carriage return, with an ANSI
 * erase only where escapes are allowed (a terminal without `NO_COLOR`).
 * @internal
 */
import type { Progress } from "../Runner.js"
import { progressLine } from "./summary.js"

/** Wall milliseconds between two plain progress lines when the output is not a terminal. */
export const PLAIN_EVERY = 5_000

/** `1h 02m`, `3m 05s`, `12s`, `< 1s`. */
export const wallText = (millis: number): string => {
  if (!Number.isFinite(millis)) return "?"
  const s = Math.round(millis / 1000)
  if (s < 1) return "< 1s"
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`
}

/** Done, as a fraction of the scenario's virtual time (0 to 1). */
export const fraction = (p: Progress): number => p.duration > 0 ? Math.min(1, Math.max(0, p.virtualMillis / p.duration)) : 1

/**
 * `42.0% ETA 1m 03s`: the share of virtual time done and the wall time the rest should take
 * at the rate so far (`wallMillis` since the run started); no ETA before anything is done.
 */
export const etaText = (p: Progress, wallMillis: number): string => {
  const f = fraction(p)
  const percent = `${(f * 100).toFixed(1)}%`
  if (f <= 0 || f >= 1) return percent
  return `${percent} ETA ${wallText((wallMillis * (1 - f)) / f)}`
}

/** The progress line with its percentage and ETA. */
export const line = (p: Progress, wallMillis: number): string => `${etaText(p, wallMillis)}  ${progressLine(p)}`

/** Where progress goes, and how. */
export interface Display {
  /** Shows the progress (redrawn on a terminal; every `PLAIN_EVERY` ms otherwise). */
  readonly progress: (p: Progress) => void
  /** Prints a line of its own, above the progress line on a terminal. */
  readonly print: (text: string) => void
  /** Takes the progress line off the terminal (before the summary, on interruption). */
  readonly clear: () => void
}

/**
 * The display on `out`: `live` (a terminal, not --quiet) redraws one line in place; `plain`
 * (not a terminal, not --quiet) prints a progress line every `every` ms; with neither, no
 * progress. `ansi` allows the erase escape (else the line is overwritten with spaces).
 */
export const display = (
  out: { write(text: string): unknown },
  mode: { readonly live: boolean; readonly plain: boolean; readonly ansi: boolean },
  now: () => number = () => performance.now(),
  every: number = PLAIN_EVERY
): Display => {
  const start = now()
  let shown = 0 // characters of the live line on screen
  let lastPlain = start
  const clear = () => {
    if (!mode.live || shown === 0) return
    out.write(mode.ansi ? "\r\x1b[K" : `\r${" ".repeat(shown)}\r`)
    shown = 0
  }
  return {
    progress: (p) => {
      const t = now()
      if (mode.live) {
        const text = line(p, t - start)
        if (mode.ansi) out.write(`\r${text}\x1b[K`)
        else out.write(`\r${text}${" ".repeat(Math.max(0, shown - text.length))}`)
        shown = text.length
      } else if (mode.plain && t - lastPlain >= every) {
        lastPlain = t
        out.write(`progress: ${line(p, t - start)}\n`)
      }
    },
    print: (text) => {
      clear()
      out.write(`${text}\n`)
    },
    clear
  }
}
