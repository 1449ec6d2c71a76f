/**
 * Call-site capture for leak reports, revocation messages and IOMMU fault provenance.
 *
 * Two forms:
 * - `LazySite`: the stack is walked now (a few frames, raw: no formatting) and formatted on
 *   first use. Per-request calls (`Dma.map`, `Dma.unmap`, `mapping.unmap()`) and every Devres
 *   acquisition take one; most are never read.
 * - `callSite()`: formatted at once (cached by raw positions), for rare calls.
 * @internal
 */

// Frames of devscope itself, dependencies and the runtime. Anonymous *functions* are kept:
// an \`Effect.gen(function*() {...})\` body shows up as \`at <anonymous> (file:line:col)\`.
const internalFrame = /[\\/](packages[\\/]core[\\/]src|node_modules)[\\/]|node:internal|\(<anonymous>\)$|^at <anonymous>$|new Promise/

/** The first frame of a formatted stack outside devscope and its dependencies. */
const firstExternal = (stack: string | undefined): string => {
  const lines = (stack ?? "").split("\n")
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line.startsWith("at ") && !internalFrame.test(line)) return line.slice(3)
  }
  return "unknown"
}

const NOT_CAPTURED = "unknown (not captured: the bus has captureSites \"never\")"
const LABELLED = "not captured (a labelled resource: the bus captures those with captureSites \"always\")"

/**
 * A call site captured now and formatted on first use (`String(site)`), as `callSite`
 * formats it: the first frame outside devscope and its dependencies.
 *
 * Capturing is a raw stack walk of at most `frames` frames (about a microsecond or two);
 * formatting it (which maps sources under tsx or vitest) costs tens of microseconds and only
 * happens when the site is read: in a leak report, a fault, a defect.
 * @internal
 */
export class LazySite {
  private holder: { stack?: string } | undefined = undefined
  private text: string | undefined = undefined
  /**
   * `skip`: the devscope function called by the code whose site this is (it and the frames
   * above it are omitted). A public API function that user code calls directly needs only a
   * few `frames`; an internal one, reached through other devscope frames, needs more.
   * `undefined`: not captured, and `text` says why (see {@link UNCAPTURED}).
   */
  constructor(skip: ((...args: Array<any>) => any) | undefined, frames = 12, text = NOT_CAPTURED) {
    if (skip === undefined) {
      this.text = text
      return
    }
    const holder: { stack?: string } = {}
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = frames
    Error.captureStackTrace(holder, skip)
    Error.stackTraceLimit = limit
    this.holder = holder
  }
  toString(): string {
    if (this.text === undefined) {
      this.text = firstExternal(this.holder?.stack)
      this.holder = undefined
    }
    return this.text
  }
}

/**
 * The site of a call on a bus with `captureSites: "never"`: no stack walk.
 * @internal
 */
export const UNCAPTURED: LazySite = new LazySite(undefined)

/**
 * The acquisition site of a labelled Devres on a bus with the default `captureSites`.
 * @internal
 */
export const LABELLED_SITE: LazySite = new LazySite(undefined, 0, LABELLED)

/**
 * A site: formatted already, or formatted when read (`String(site)`: a `LazySite`, or a
 * stand-in saying why it was not captured).
 * @internal
 */
export type Site = string | { toString(): string }

// Formatting a stack (with source maps under tsx or vitest) costs tens of microseconds: the
// formatted site is cached by the raw positions of the stack.
const cache = new Map<string, string>()
const CACHE_LIMIT = 4096
const rawFrames = (_: Error, frames: ReadonlyArray<NodeJS.CallSite>) => frames

/**
 * The first stack frame outside devscope and its dependencies, as `file:line:col`
 * (or `function (file:line:col)`), or `"unknown"` when none is visible. Formatted now: for
 * rare calls; per-request paths take a {@link LazySite}.
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
    site = firstExternal(holder.stack)
    if (cache.size >= CACHE_LIMIT) cache.clear()
    if (key !== "") cache.set(key, site)
  }
  Error.stackTraceLimit = limit
  return site
}
