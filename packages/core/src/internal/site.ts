/**
 * Call-site capture for leak reports and revocation messages.
 *
 * Only lifecycle calls (acquire, track, unbind) capture a site; the hot paths never do.
 * @internal
 */

// Frames of devscope itself, dependencies and the runtime. Anonymous *functions* are kept:
// an \`Effect.gen(function*() {...})\` body shows up as \`at <anonymous> (file:line:col)\`.
const internalFrame = /[\\/](packages[\\/]core[\\/]src|node_modules)[\\/]|node:internal|\(<anonymous>\)$|^at <anonymous>$|new Promise/

/**
 * The first stack frame outside devscope and its dependencies, as `file:line:col`
 * (or `function (file:line:col)`), or `"unknown"` when none is visible.
 * @internal
 */
export const callSite = (): string => {
  const holder: { stack?: string } = {}
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 24
  Error.captureStackTrace(holder, callSite)
  Error.stackTraceLimit = limit
  const lines = (holder.stack ?? "").split("\n")
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (!line.startsWith("at ")) continue
    if (internalFrame.test(line)) continue
    return line.slice(3)
  }
  return "unknown"
}
