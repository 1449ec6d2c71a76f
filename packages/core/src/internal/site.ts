/**
 * Call-site capture for leak reports and revocation messages.
 *
 * Only lifecycle calls (acquire, track, unbind) capture a site; the hot paths never do.
 * @internal
 */

// Frames of devscope itself, dependencies and the runtime. Anonymous *functions* are kept:
// an \`Effect.gen(function*() {...})\` body shows up as \`at <anonymous> (file:line:col)\`.
const internalFrame = /[\\/](packages[\\/]core[\\/]src|node_modules)[\\/]|node:internal|\(<anonymous>\)$|^at <anonymous>$|new Promise/

const format = (holder: { stack?: string }): string => {
  const lines = (holder.stack ?? "").split("\n")
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (!line.startsWith("at ")) continue
    if (internalFrame.test(line)) continue
    return line.slice(3)
  }
  return "unknown"
}

// Formatting a stack (with source maps under tsx or vitest) costs tens of microseconds, and a
// driver that maps a buffer per request captures a site per request. Raw frames are cheap:
// the formatted site is cached by the raw positions of the stack.
const cache = new Map<string, string>()
const CACHE_LIMIT = 4096
const rawFrames = (_: Error, frames: ReadonlyArray<NodeJS.CallSite>) => frames

/**
 * The first stack frame outside devscope and its dependencies, as `file:line:col`
 * (or `function (file:line:col)`), or `"unknown"` when none is visible.
 * @internal
 */
export const callSite = (): string => {
  const limit = Error.stackTraceLimit
  const prepare = Error.prepareStackTrace
  Error.stackTraceLimit = 24
  const raw: { stack?: ReadonlyArray<NodeJS.CallSite> } = {}
  Error.prepareStackTrace = rawFrames
  try {
    Error.captureStackTrace(raw, callSite)
    void raw.stack
  } finally {
    Error.prepareStackTrace = prepare
  }
  const frames = Array.isArray(raw.stack) ? raw.stack : []
  let key = ""
  for (const frame of frames) key += `${frame.getScriptNameOrSourceURL()}:${frame.getLineNumber()}:${frame.getColumnNumber()};`
  let site = cache.get(key)
  if (site === undefined) {
    const holder: { stack?: string } = {}
    Error.captureStackTrace(holder, callSite)
    site = format(holder)
    if (cache.size >= CACHE_LIMIT) cache.clear()
    if (key !== "") cache.set(key, site)
  }
  Error.stackTraceLimit = limit
  return site
}
