/**
 * What both writers draw, derived once from a run record: the device tracks, the binding
 * phases as spans, resource lifetimes as spans, and the point events.
 */
import type { Lifecycle } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"
import type { RunRecord } from "./record.js"

/** The two simulated buses. */
export type BusName = "pci" | "platform"

/** A device: one track in the trace, one row in the report. */
export interface Track {
  readonly device: string
  readonly bus: BusName
  readonly kind: string | undefined
}

/** A phase of a binding: probe (Probing → Bound or failure), bound, unbind (Unbinding → Unbound). */
export interface BindingSpan {
  readonly device: string
  readonly bus: BusName
  readonly phase: "probe" | "bound" | "unbind"
  readonly driver: string
  readonly start: number
  readonly end: number
  /** Still running when the record ends. */
  readonly open: boolean
  /** For a probe: how it ended. */
  readonly outcome?: "bound" | "failed" | "deferred" | undefined
  /** For an unbind, and a probe torn down by its failure. */
  readonly cause?: Lifecycle.UnbindCause | undefined
  readonly report?: Lifecycle.UnbindReport | undefined
}

/** A resource's lifetime: a released Devres resource, a coherent allocation, a streaming mapping. */
export interface ResourceSpan {
  readonly device: string
  readonly kind: "resource" | "coherent" | "streaming"
  readonly label: string
  readonly start: number
  readonly end: number
  readonly open: boolean
  readonly iova?: number | undefined
  readonly length?: number | undefined
  readonly direction?: Trace.DmaDirection | undefined
}

/** An IOMMU fault with its time (from the trace) and provenance (from the simulator). */
export interface IommuFaultMark {
  readonly device: string
  /** `undefined` when the trace did not keep the event. */
  readonly at: number | undefined
  readonly iova: number
  readonly access: "read" | "write"
  readonly reason: string
  readonly fault: Iommu.Fault | undefined
}

/** Virtual time bounds of a record: every event and `endedAt` lie inside. */
export const timeBounds = (record: RunRecord): { readonly start: number; readonly end: number } => {
  let start = record.endedAt
  let end = record.endedAt
  const see = (at: number) => {
    if (!Number.isFinite(at)) return
    if (at < start) start = at
    if (at > end) end = at
  }
  for (const { event } of record.lifecycle) see(event.at)
  for (const e of record.trace) see(e.at)
  for (const f of record.iommuFaults) if (f.at !== undefined) see(f.at)
  for (const t of record.timeline) see(t.at)
  return { start, end }
}

const deviceOf = (event: Lifecycle.LifecycleEvent): string | undefined =>
  event._tag === "DriverRegistered" || event._tag === "DriverUnregistered" || event._tag === "ObserverFailed" ||
    event._tag === "BusShuttingDown"
    ? undefined
    : event._tag === "LeakDetected"
    ? event.leak.device
    : event.device.name

const busTags: ReadonlySet<string> = new Set<Lifecycle.LifecycleEvent["_tag"]>([
  "DeviceAdded",
  "DriverRegistered",
  "DriverUnregistered",
  "Probing",
  "Bound",
  "ProbeDeferred",
  "ProbeFailed",
  "Unbinding",
  "Unbound",
  "DeviceRemoved",
  "LeakDetected"
])

/**
 * The simulator copies bus lifecycle events into its trace; the record has them already (in
 * `lifecycle`), so the writers draw only the device-side ones (plug, disconnect, aborted...).
 */
export const isBusEcho = (e: Trace.TraceEvent): boolean => e._tag === "Lifecycle" && busTags.has(e.event)

/** Devices in a stable order: the summary's, then any other the lifecycle or trace names. */
export const tracks = (record: RunRecord): ReadonlyArray<Track> => {
  const out = new Map<string, Track>()
  for (const d of record.devices) {
    if (!out.has(d.device)) out.set(d.device, { device: d.device, bus: d.bus, kind: d.kind })
  }
  for (const { bus, event } of record.lifecycle) {
    const device = deviceOf(event)
    if (device !== undefined && !out.has(device)) out.set(device, { device, bus, kind: undefined })
  }
  for (const e of record.trace) {
    if (!out.has(e.device) && !isBusEcho(e)) out.set(e.device, { device: e.device, bus: "platform", kind: undefined })
  }
  return Array.from(out.values())
}

interface Open {
  readonly phase: "probe" | "bound" | "unbind"
  readonly driver: string
  readonly start: number
  readonly cause?: Lifecycle.UnbindCause | undefined
  /** When the binding (probe included) began: the released resources span from there. */
  readonly bindingStart: number
}

/**
 * Binding phases per device, and the resources each unbind report released, spanning the
 * binding they belonged to (a report names them, not when each was acquired).
 */
export const bindings = (
  record: RunRecord
): { readonly spans: ReadonlyArray<BindingSpan>; readonly released: ReadonlyArray<ResourceSpan> } => {
  const { end } = timeBounds(record)
  const spans: Array<BindingSpan> = []
  const released: Array<ResourceSpan> = []
  const open = new Map<string, Open & { readonly bus: BusName }>()
  const close = (
    device: string,
    at: number,
    extra: Partial<Pick<BindingSpan, "outcome" | "cause" | "report">> = {}
  ): Open | undefined => {
    const o = open.get(device)
    if (o === undefined) return undefined
    open.delete(device)
    spans.push({
      device,
      bus: o.bus,
      phase: o.phase,
      driver: o.driver,
      start: o.start,
      end: Math.max(o.start, at),
      open: false,
      cause: o.cause,
      ...extra
    })
    return o
  }
  const release = (report: Lifecycle.UnbindReport, device: string, from: number, at: number) => {
    // A driver mapping per transfer releases many same-named resources: one bar each would
    // bury the others, and they all span the same binding anyway.
    const counts = new Map<string, number>()
    for (const label of report.released) counts.set(label, (counts.get(label) ?? 0) + 1)
    for (const [label, n] of counts) {
      released.push({
        device,
        kind: "resource",
        label: n > 1 ? `${label} ×${n}` : label,
        start: Math.min(from, at),
        end: at,
        open: false
      })
    }
  }
  for (const { bus, event } of record.lifecycle) {
    switch (event._tag) {
      case "Probing": {
        close(event.device.name, event.at)
        open.set(event.device.name, {
          bus,
          phase: "probe",
          driver: event.driver,
          start: event.at,
          bindingStart: event.at
        })
        break
      }
      case "Bound": {
        const o = close(event.device.name, event.at, { outcome: "bound" })
        open.set(event.device.name, {
          bus,
          phase: "bound",
          driver: event.driver,
          start: event.at,
          bindingStart: o?.bindingStart ?? event.at
        })
        break
      }
      case "Unbinding": {
        const o = close(event.device.name, event.at)
        open.set(event.device.name, {
          bus,
          phase: "unbind",
          driver: event.driver,
          start: event.at,
          cause: event.cause,
          bindingStart: o?.bindingStart ?? event.at
        })
        break
      }
      case "Unbound": {
        const name = event.device.name
        const current = open.get(name)
        if (current === undefined) {
          // The Unbinding was not kept (history limit): the report says how long it took.
          const start = event.at - Math.max(0, event.report.durationMillis)
          spans.push({
            device: name,
            bus,
            phase: "unbind",
            driver: event.driver,
            start,
            end: event.at,
            open: false,
            cause: event.cause,
            report: event.report
          })
          release(event.report, name, start, event.at)
        } else if (current.phase === "probe") {
          close(name, event.at, { outcome: "failed", cause: event.cause, report: event.report })
          release(event.report, name, current.bindingStart, event.at)
        } else {
          close(name, event.at, { cause: event.cause, report: event.report })
          release(event.report, name, current.bindingStart, event.at)
        }
        break
      }
      case "ProbeFailed":
      case "ProbeDeferred": {
        close(event.device.name, event.at, { outcome: event._tag === "ProbeFailed" ? "failed" : "deferred" })
        break
      }
      case "DeviceRemoved": {
        close(event.device.name, event.at)
        break
      }
      default:
        break
    }
  }
  for (const [device, o] of open) {
    spans.push({ device, bus: o.bus, phase: o.phase, driver: o.driver, start: o.start, end, open: true, cause: o.cause })
  }
  spans.sort((a, b) => a.start - b.start || a.end - b.end)
  return { spans, released }
}

const hex = (n: number) => `0x${n.toString(16)}`

/** Coherent allocations (alloc → free) and streaming mappings (map → unmap), paired by device and iova. */
export const dmaSpans = (record: RunRecord): ReadonlyArray<ResourceSpan> => {
  const { end } = timeBounds(record)
  const out: Array<ResourceSpan> = []
  const open = new Map<string, Extract<Trace.TraceEvent, { readonly _tag: "Dma" }>>()
  for (const e of record.trace) {
    if (e._tag !== "Dma") continue
    const coherent = e.op === "alloc-coherent" || e.op === "free-coherent"
    if (!coherent && e.op !== "map" && e.op !== "unmap") continue
    const key = `${coherent ? "c" : "s"}\u0000${e.device}\u0000${e.iova}`
    const span = (from: typeof e, at: number, isOpen: boolean): ResourceSpan => ({
      device: from.device,
      kind: coherent ? "coherent" : "streaming",
      label: `${coherent ? "coherent" : `map ${from.direction}`} ${hex(from.iova)} (${from.length} B)`,
      start: from.at,
      end: Math.max(from.at, at),
      open: isOpen,
      iova: from.iova,
      length: from.length,
      direction: from.direction
    })
    if (e.op === "alloc-coherent" || e.op === "map") {
      const previous = open.get(key)
      // The same iova handed out again without a free: end the old one here rather than lose it.
      if (previous !== undefined) out.push(span(previous, e.at, true))
      open.set(key, e)
    } else {
      const from = open.get(key)
      if (from !== undefined) {
        open.delete(key)
        out.push(span(from, e.at, false))
      }
    }
  }
  for (const from of open.values()) {
    out.push({
      device: from.device,
      kind: from.op === "alloc-coherent" ? "coherent" : "streaming",
      label: `${from.op === "alloc-coherent" ? "coherent" : `map ${from.direction}`} ${hex(from.iova)} (${from.length} B)`,
      start: from.at,
      end: Math.max(from.at, end),
      open: true,
      iova: from.iova,
      length: from.length,
      direction: from.direction
    })
  }
  out.sort((a, b) => a.start - b.start || a.end - b.end)
  return out
}

/**
 * IOMMU faults: the simulator's faults, with their own times; for a record whose faults have
 * none, the trace's events (which carry the time) matched in order, per device, with the
 * simulator's faults (which carry the provenance), either side possibly missing entries.
 */
export const iommuFaultMarks = (record: RunRecord): ReadonlyArray<IommuFaultMark> => {
  // The simulator's own list is never capped and stamps each fault with its time: when every
  // fault has one, it is the whole story (the capped trace may have dropped their events).
  if (record.iommuFaults.length > 0 && record.iommuFaults.every((f) => f.at !== undefined)) {
    return record.iommuFaults.map((f) => ({ device: f.device, at: f.at, iova: f.iova, access: f.access, reason: f.reason, fault: f }))
  }
  const pending = new Map<string, Array<Iommu.Fault>>()
  for (const f of record.iommuFaults) {
    const list = pending.get(f.device)
    if (list === undefined) pending.set(f.device, [f])
    else list.push(f)
  }
  const out: Array<IommuFaultMark> = []
  for (const e of record.trace) {
    if (e._tag !== "IommuFault") continue
    const list = pending.get(e.device)
    const index = list === undefined ? -1 : list.findIndex((f) => f.iova === e.iova && f.access === e.access)
    const fault = index >= 0 ? list!.splice(index, 1)[0] : undefined
    out.push({ device: e.device, at: e.at, iova: e.iova, access: e.access, reason: fault?.reason ?? e.reason, fault })
  }
  for (const list of pending.values()) {
    for (const f of list) {
      out.push({ device: f.device, at: undefined, iova: f.iova, access: f.access, reason: f.reason, fault: f })
    }
  }
  return out
}

/** A one-line description of an IOMMU fault with its provenance. */
export const describeIommuFault = (m: IommuFaultMark): string => {
  const f = m.fault
  const parts = [`${m.access} ${hex(m.iova)}${f ? ` (${f.length} B)` : ""}: ${m.reason}`]
  if (f !== undefined) {
    parts.push(`by ${f.by}`)
    if (f.window !== undefined) {
      parts.push(`${f.window.kind} window ${hex(f.window.iova)} (${f.window.size} B) mapped at ${f.window.mappedAt}`)
      if (f.window.unmappedAt !== undefined) parts.push(`unmapped/freed at ${f.window.unmappedAt}`)
    }
  }
  return parts.join("; ")
}

/** Colors of the unbind causes, shared by the report and its legend. */
export const causeColor: Record<Lifecycle.UnbindCause, string> = {
  unload: "#64748b",
  manual: "#2563eb",
  "hot-unplug": "#d97706",
  surprise: "#dc2626",
  "probe-failure": "#7c3aed"
}

/**
 * Packs spans into lanes so that spans in one lane never overlap (greedy, by start). Returns
 * each span's lane, in the input's order, and the lane count.
 */
export const packLanes = (
  spans: ReadonlyArray<{ readonly start: number; readonly end: number }>
): { readonly lanes: ReadonlyArray<number>; readonly count: number } => {
  const order = spans.map((_, i) => i).sort((a, b) => spans[a]!.start - spans[b]!.start || a - b)
  const laneEnds: Array<number> = []
  const lanes = new Array<number>(spans.length).fill(0)
  for (const i of order) {
    const s = spans[i]!
    // A span ending exactly where the next starts shares the lane: X events may touch.
    let lane = laneEnds.findIndex((e) => e <= s.start)
    if (lane < 0) {
      lane = laneEnds.length
      laneEnds.push(s.end)
    } else {
      laneEnds[lane] = s.end
    }
    lanes[i] = lane
  }
  return { lanes, count: laneEnds.length }
}
