/**
 * Colour and terminal control: allowed only on a terminal, and never under `NO_COLOR`
 * (https://no-color.org: set and not empty). Elsewhere output carries no ANSI escape at all;
 * @effect/cli renders its help and errors with colour whatever the output is, so the command
 * runs under a Console that strips escapes where they are not allowed.
 * @internal
 */
import * as Console from "effect/Console"
import type * as Effect from "effect/Effect"

/** CSI sequences (colours, cursor, erase), OSC sequences (titles, links) and two-byte escapes. */
// eslint-disable-next-line no-control-regex -- matching escape sequences is the point
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g

/** `text` without ANSI escape sequences. */
export const strip = (text: string): string => text.includes("\x1b") ? text.replace(ESCAPES, "") : text

/** `NO_COLOR` is set to something (an empty value does not count). */
export const noColor = (env: NodeJS.ProcessEnv = process.env): boolean => env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== ""

/** Whether `stream` may receive ANSI escapes: a terminal, and no `NO_COLOR`. */
export const ansiAllowed = (stream: { readonly isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): boolean =>
  stream.isTTY === true && !noColor(env)

const plain = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? strip(a) : a))

/**
 * `base` with escapes stripped from what it prints: on standard output (`log`, `info`,
 * `debug`) unless `out` allows them, on standard error (`error`, `warn`) unless `err` does.
 */
export const plainConsole = (base: Console.Console, out: boolean, err: boolean): Console.Console => {
  if (out && err) return base
  const o = <A extends ReadonlyArray<unknown>>(f: (...args: A) => unknown, allowed: boolean) =>
    allowed ? f : (...args: A) => f(...(plain(args) as unknown as A))
  const unsafe = base.unsafe
  return {
    ...base,
    log: o(base.log, out) as Console.Console["log"],
    info: o(base.info, out) as Console.Console["info"],
    debug: o(base.debug, out) as Console.Console["debug"],
    error: o(base.error, err) as Console.Console["error"],
    warn: o(base.warn, err) as Console.Console["warn"],
    unsafe: {
      ...unsafe,
      log: o(unsafe.log.bind(unsafe), out),
      info: o(unsafe.info.bind(unsafe), out),
      debug: o(unsafe.debug.bind(unsafe), out),
      error: o(unsafe.error.bind(unsafe), err),
      warn: o(unsafe.warn.bind(unsafe), err)
    }
  }
}

/** Runs `effect` under a Console that prints no ANSI escape where none is allowed (see {@link ansiAllowed}). */
export const withPlainConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((base) =>
    Console.withConsole(effect, plainConsole(base, ansiAllowed(process.stdout), ansiAllowed(process.stderr)))
  )
