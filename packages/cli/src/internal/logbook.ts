/**
 * Evidence beyond the trace: what the drivers and the core log (driver failures caught by the
 * binding machinery, warnings), attributed to devices, and which spans are open (for hang
 * reports).
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type { DriverFailure, Note } from "./record.js"

export const describeSpan = (span: Tracer.Span): string => {
  const attributes = [...span.attributes].map(([k, v]) => `${k}=${String(v)}`).join(", ")
  return attributes === "" ? span.name : `${span.name} (${attributes})`
}

/** Wraps a tracer to know which spans are open (started, not ended), for hang reports. */
export const trackingTracer = (inner: Tracer.Tracer, open: Set<Tracer.Span>): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = inner.span(name, parent, context, links, startTime, kind, options)
      const tracked: Tracer.Span = Object.create(span)
      ;(tracked as { end: Tracer.Span["end"] }).end = (endTime, exit) => {
        open.delete(tracked)
        span.end(endTime, exit)
      }
      open.add(tracked)
      return tracked
    },
    context: (f, fiber) => inner.context(f, fiber)
  })

const BOUND_TAG = "@devscope/core/Bound/"

/** The device a log entry is about: its annotation, the binding or span it ran in, the error. */
const deviceOf = (
  annotations: HashMap.HashMap<string, unknown>,
  refs: FiberRefs.FiberRefs,
  text: string,
  error: unknown
): string => {
  const annotated = HashMap.get(annotations, "device")
  if (Option.isSome(annotated)) return String(annotated.value)
  const context = FiberRefs.getOrDefault(refs, FiberRef.currentContext)
  for (const [key, value] of context.unsafeMap) {
    if (key.startsWith(BOUND_TAG) && typeof value?.device?.name === "string") return value.device.name
  }
  const span = Context.getOption(context, Tracer.ParentSpan)
  if (Option.isSome(span) && span.value._tag === "Span") {
    const device = span.value.attributes.get("device")
    if (device !== undefined) return String(device)
  }
  if (typeof error === "object" && error !== null && typeof (error as { device?: unknown }).device === "string") {
    return (error as { device: string }).device
  }
  return /device "([^"]+)"/.exec(text)?.[1] ?? / of "([^"]+)"/.exec(text)?.[1] ?? "-"
}

/** Whether the fiber that logged ran binding code (a Bound token in its context). */
const inBinding = (refs: FiberRefs.FiberRefs): boolean => {
  for (const key of FiberRefs.getOrDefault(refs, FiberRef.currentContext).unsafeMap.keys()) {
    if (key.startsWith(BOUND_TAG)) return true
  }
  return false
}

const spanName = (refs: FiberRefs.FiberRefs): string | undefined => {
  const span = Context.getOption(FiberRefs.getOrDefault(refs, FiberRef.currentContext), Tracer.ParentSpan)
  return Option.isSome(span) && span.value._tag === "Span" ? span.value.name : undefined
}

/** An error or defect in one line: `Tag: message`. */
export const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const e = error as { _tag?: unknown; name?: unknown; message?: unknown }
    const tag = typeof e._tag === "string" ? e._tag : typeof e.name === "string" ? e.name : "Error"
    const message = typeof e.message === "string" ? e.message : ""
    return (message === "" ? tag : `${tag}: ${message}`).split("\n")[0]!
  }
  return String(error).split("\n")[0]!
}

const messageText = (message: unknown): string =>
  (Array.isArray(message) ? message.map(String).join(" ") : String(message)).split("\n")[0]!

const UNHANDLED = "Fiber terminated with an unhandled error"

/**
 * Collects failures and warnings logged during a run, counting identical ones: install
 * `logger` in place of the default one, with unhandled fiber failures logged at Error.
 */
export class LogBook {
  readonly failures = new Map<string, { -readonly [K in keyof DriverFailure]: DriverFailure[K] }>()
  readonly notes = new Map<string, { -readonly [K in keyof Note]: Note[K] }>()
  constructor(private readonly onNew: ((line: string) => void) | undefined) {}

  readonly logger = Logger.make<unknown, void>(({ annotations, cause, context, date, logLevel, message }) => {
    if (LogLevel.lessThan(logLevel, LogLevel.Warning)) return
    const text = messageText(message)
    const at = date.getTime()
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) {
      const defects = Chunk.toReadonlyArray(Cause.defects(cause))
      const unhandled = text === UNHANDLED
      // A fiber failing with a typed error is someone's control flow; one dying is a bug.
      if (unhandled && defects.length === 0) return
      const failure = Cause.failureOption(cause)
      const error = defects.length > 0 ? defects[0] : Option.getOrUndefined(failure)
      const device = deviceOf(annotations, context, text, error)
      const where = unhandled
        ? `${spanName(context) ?? (inBinding(context) ? "a binding fiber" : "a fiber")} died`
        : text.replace(` of device "${device}"`, "").replace(/^(.*?): (.*)$/, "$1 $2")
      const described = error === undefined ? text : describeError(error)
      const key = `${device}\u0000${where}\u0000${described}`
      const known = this.failures.get(key)
      if (known !== undefined) known.count++
      else {
        this.failures.set(key, { device, where, error: described, defect: defects.length > 0, at, count: 1 })
        this.onNew?.(`${at.toFixed(3)} ms  ${device}: ${where}: ${described}`)
      }
    } else {
      const device = deviceOf(annotations, context, text, undefined)
      const key = `${device}\u0000${text}`
      const known = this.notes.get(key)
      if (known !== undefined) known.count++
      else {
        this.notes.set(key, { device, message: text, at, count: 1 })
        this.onNew?.(`${at.toFixed(3)} ms  ${device}: warning: ${text}`)
      }
    }
  })
}

