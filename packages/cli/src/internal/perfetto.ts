/**
 * A run record as a Chrome Trace Event Format document, for ui.perfetto.dev and
 * chrome://tracing: one process per bus, one thread per device (plus resource lanes),
 * binding phases and resource lifetimes as complete events, point events as instants, and
 * dense activity (register accesses, interrupts, DMA traffic) as per-millisecond counters.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import { Leak } from "@devscope/core"
import { passed, type RunRecord } from "./record.js"
import * as Spans from "./spans.js"

/** One event of the Chrome Trace Event Format. `ts` and `dur` are microseconds. */
export interface ChromeTraceEvent {
  readonly name: string
  readonly ph: "X" | "i" | "C" | "M" | "b" | "e"
  readonly ts: number
  readonly pid: number
  readonly tid?: number | undefined
  readonly dur?: number | undefined
  readonly cat?: string | undefined
  /** Scope of an instant: global, process or thread. */
  readonly s?: "g" | "p" | "t" | undefined
  /** Identifies an async (`b`/`e`) pair. */
  readonly id?: string | undefined
  readonly args?: Record<string, unknown> | undefined
}

/** The JSON object form of the Chrome Trace Event Format. */
export interface ChromeTrace {
  readonly traceEvents: ReadonlyArray<ChromeTraceEvent>
  readonly displayTimeUnit: "ms"
  readonly metadata: Record<string, unknown>
}

/**
 * Per device, instants beyond this many interrupts (or register faults) are left to the
 * counters: an interrupt storm would otherwise bury the trace.
 */
const INSTANT_CAP = 2000

const PID = { pci: 1, platform: 2, scenario: 3 } as const

const us = (ms: number) => Math.round(ms * 1000)
const hex = (n: number) => `0x${n.toString(16)}`

/** Per-millisecond bucket counts, emitted as counter samples that fall back to 0 after a busy bucket. */
class Buckets {
  private readonly map = new Map<string, { readonly pid: number; readonly rows: Map<number, Record<string, number>> }>()
  constructor(private readonly keys: Record<string, ReadonlyArray<string>>) {}
  add(name: string, pid: number, at: number, key: string, amount = 1) {
    let entry = this.map.get(name)
    if (entry === undefined) this.map.set(name, entry = { pid, rows: new Map() })
    const bucket = Math.floor(at)
    let row = entry.rows.get(bucket)
    if (row === undefined) {
      row = {}
      for (const k of this.keys[name.slice(name.lastIndexOf("\u0000") + 1)] ?? [key]) row[k] = 0
      entry.rows.set(bucket, row)
    }
    row[key] = (row[key] ?? 0) + amount
  }
  events(cat: string): Array<ChromeTraceEvent> {
    const out: Array<ChromeTraceEvent> = []
    for (const [fullName, { pid, rows }] of this.map) {
      const name = fullName.replace("\u0000", " ")
      const buckets = Array.from(rows.keys()).sort((a, b) => a - b)
      for (const b of buckets) {
        const row = rows.get(b)!
        out.push({ name, ph: "C", ts: us(b), pid, cat, args: row })
        if (!rows.has(b + 1)) {
          out.push({ name, ph: "C", ts: us(b + 1), pid, cat, args: Object.fromEntries(Object.keys(row).map((k) => [k, 0])) })
        }
      }
    }
    return out
  }
}

/** Converts a run record to a Chrome trace. */
export const toChromeTrace = (record: RunRecord): ChromeTrace => {
  const tracks = Spans.tracks(record)
  const { spans, released } = Spans.bindings(record)
  const dma = Spans.dmaSpans(record)
  const meta: Array<ChromeTraceEvent> = []
  const events: Array<ChromeTraceEvent> = []

  const processName = (pid: number, name: string, sort: number) => {
    meta.push({ name: "process_name", ph: "M", ts: 0, pid, args: { name } })
    meta.push({ name: "process_sort_index", ph: "M", ts: 0, pid, args: { sort_index: sort } })
  }
  processName(PID.scenario, `scenario ${record.scenario}`, 0)
  processName(PID.pci, "pci bus", 1)
  processName(PID.platform, "platform bus", 2)
  let nextTid = 1
  const threadName = (pid: number, name: string, sort: number) => {
    const tid = nextTid++
    meta.push({ name: "thread_name", ph: "M", ts: 0, pid, tid, args: { name } })
    meta.push({ name: "thread_sort_index", ph: "M", ts: 0, pid, tid, args: { sort_index: sort } })
    return tid
  }
  const actionsTid = threadName(PID.scenario, "actions", 0)

  // One thread per device; fixed-lifetime resources (Devres, coherent DMA) on lanes below it.
  const where = new Map<string, { readonly pid: number; readonly tid: number }>()
  tracks.forEach((t, i) => {
    const pid = PID[t.bus]
    const tid = threadName(pid, t.kind === undefined ? t.device : `${t.device} (${t.kind})`, i * 1000)
    where.set(t.device, { pid, tid })
    const lived = [...released, ...dma].filter((r) => r.device === t.device && r.kind !== "streaming")
    const packed = Spans.packLanes(lived)
    const laneTids = Array.from(
      { length: packed.count },
      (_, lane) => threadName(pid, `${t.device} resources${packed.count > 1 ? ` ${lane + 1}` : ""}`, i * 1000 + 1 + lane)
    )
    lived.forEach((r, j) => {
      events.push({
        name: r.label,
        ph: "X",
        cat: r.kind === "coherent" ? "dma" : "resource",
        ts: us(r.start),
        dur: us(r.end) - us(r.start),
        pid,
        tid: laneTids[packed.lanes[j]!]!,
        args: { device: r.device, kind: r.kind, open: r.open, iova: r.iova, length: r.length }
      })
    })
  })
  const at = (device: string) => where.get(device) ?? { pid: PID.platform, tid: 0 }

  for (const s of spans) {
    const { pid, tid } = at(s.device)
    const r = s.report
    events.push({
      name: s.phase,
      ph: "X",
      cat: "lifecycle",
      ts: us(s.start),
      dur: us(s.end) - us(s.start),
      pid,
      tid,
      args: {
        device: s.device,
        driver: s.driver,
        ...(s.open ? { open: true } : {}),
        ...(s.outcome !== undefined ? { outcome: s.outcome } : {}),
        ...(s.cause !== undefined ? { cause: s.cause } : {}),
        ...(r === undefined ? {} : {
          released: r.released,
          leaks: r.leaks.map(Leak.format),
          gates: r.gates.map((g) => ({
            gate: g.gate,
            awaited: g.awaited,
            interrupted: g.interrupted,
            stuck: g.stuck,
            durationMillis: g.durationMillis
          })),
          consumers: r.consumers.map((c) => c.device),
          children: r.children.map((c) => c.device),
          fibersInterrupted: r.fibersInterrupted,
          releaseFailures: r.releaseFailures.map((f) => f.resource),
          site: r.site,
          durationMillis: r.durationMillis
        })
      }
    })
  }

  // Streaming mappings come and go per transfer: async events, which the viewers stack.
  dma.forEach((r, i) => {
    if (r.kind !== "streaming") return
    const { pid, tid } = at(r.device)
    const common = { name: `${r.device} dma map`, cat: "dma", pid, tid, id: `map${i}` }
    events.push({ ...common, ph: "b", ts: us(r.start), args: { iova: hex(r.iova ?? 0), length: r.length, direction: r.direction, open: r.open } })
    events.push({ ...common, ph: "e", ts: us(r.end) })
  })

  const counters = new Buckets({
    "mmio/ms": ["reads", "writes"],
    "irqs/ms": ["raise", "lower", "spurious"],
    "dma bytes/ms": ["device-read", "device-write"]
  })
  const instantsOf = new Map<string, number>()
  const capped = (key: string) => {
    const n = (instantsOf.get(key) ?? 0) + 1
    instantsOf.set(key, n)
    return n > INSTANT_CAP
  }
  const mapped = new Map<string, { coherent: number; streaming: number }>()
  for (const e of record.trace) {
    const { pid, tid } = at(e.device)
    const counter = (what: string) => `${e.device}\u0000${what}`
    switch (e._tag) {
      case "MmioRead":
      case "MmioWrite":
        counters.add(counter("mmio/ms"), pid, e.at, e._tag === "MmioRead" ? "reads" : "writes")
        break
      case "Irq":
        counters.add(counter("irqs/ms"), pid, e.at, e.kind)
        if (!capped(`irq ${e.device}`)) {
          events.push({ name: `irq ${e.line} ${e.kind}`, ph: "i", s: "t", cat: "irq", ts: us(e.at), pid, tid, args: { line: e.line } })
        }
        break
      case "Fault":
        if (!capped(`fault ${e.device}`)) {
          events.push({
            name: `fault ${e.fault}`,
            ph: "i",
            s: "t",
            cat: "fault",
            ts: us(e.at),
            pid,
            tid,
            args: { region: e.region, register: e.register, offset: hex(e.offset), width: e.width, value: e.value, detail: e.detail }
          })
        }
        break
      case "Lifecycle":
        if (Spans.isBusEcho(e)) break
        events.push({ name: e.event, ph: "i", s: "t", cat: "device", ts: us(e.at), pid, tid, args: { detail: e.detail } })
        break
      case "Dma": {
        if (e.op === "device-read" || e.op === "device-write") {
          counters.add(counter("dma bytes/ms"), pid, e.at, e.op, e.length)
          break
        }
        const m = mapped.get(e.device) ?? { coherent: 0, streaming: 0 }
        mapped.set(e.device, m)
        const sign = e.op === "alloc-coherent" || e.op === "map" ? 1 : -1
        if (e.op === "alloc-coherent" || e.op === "free-coherent") m.coherent += sign * e.length
        else m.streaming += sign * e.length
        events.push({ name: `${e.device} dma mapped bytes`, ph: "C", cat: "dma", ts: us(e.at), pid, args: { ...m } })
        break
      }
      case "IommuFault":
        break
    }
  }
  events.push(...counters.events("counter"))

  const unplaced: Array<string> = []
  for (const m of Spans.iommuFaultMarks(record)) {
    if (m.at === undefined) {
      unplaced.push(`${m.device}: ${Spans.describeIommuFault(m)}`)
      continue
    }
    const { pid, tid } = at(m.device)
    const f = m.fault
    events.push({
      name: `IOMMU fault (${m.reason})`,
      ph: "i",
      s: "t",
      cat: "iommu",
      ts: us(m.at),
      pid,
      tid,
      args: {
        device: m.device,
        iova: hex(m.iova),
        access: m.access,
        reason: m.reason,
        description: Spans.describeIommuFault(m),
        ...(f === undefined ? {} : {
          length: f.length,
          by: f.by,
          window: f.window === undefined ? undefined : {
            iova: hex(f.window.iova),
            size: f.window.size,
            kind: f.window.kind,
            direction: f.window.direction,
            mappedAt: f.window.mappedAt,
            unmappedAt: f.window.unmappedAt,
            owner: f.window.owner
          }
        })
      }
    })
  }

  for (const { bus, event } of record.lifecycle) {
    const pid = PID[bus]
    switch (event._tag) {
      case "DeviceAdded":
      case "DeviceRemoved":
      case "ProbeDeferred": {
        const { tid } = at(event.device.name)
        const args = event._tag === "DeviceRemoved"
          ? { cause: event.cause }
          : event._tag === "ProbeDeferred"
          ? { driver: event.driver, reason: event.reason }
          : {}
        events.push({ name: event._tag, ph: "i", s: "t", cat: "lifecycle", ts: us(event.at), pid, tid, args })
        break
      }
      case "LeakDetected": {
        const { tid } = at(event.leak.device)
        events.push({ name: "leak", ph: "i", s: "t", cat: "leak", ts: us(event.at), pid, tid, args: { leak: Leak.format(event.leak) } })
        break
      }
      case "DriverRegistered":
      case "DriverUnregistered":
        events.push({ name: `${event._tag} ${event.driver}`, ph: "i", s: "p", cat: "lifecycle", ts: us(event.at), pid, args: { driver: event.driver } })
        break
      default:
        break
    }
  }

  for (const t of record.timeline) {
    events.push({
      name: `${t.action} ${t.target}`,
      ph: "i",
      s: "g",
      cat: "scenario",
      ts: us(t.at),
      pid: PID.scenario,
      tid: actionsTid,
      args: { action: t.action, target: t.target, detail: t.detail, inFlight: t.inFlight, tookMillis: t.tookMillis }
    })
  }

  for (const f of record.failures) {
    events.push({
      name: `driver ${f.defect ? "defect" : "error"} ${f.device}: ${f.where}`,
      ph: "i",
      s: "g",
      cat: "failure",
      ts: us(f.at),
      pid: PID.scenario,
      tid: actionsTid,
      args: { device: f.device, where: f.where, error: f.error, count: f.count }
    })
  }
  for (const stall of record.stalls) {
    events.push({
      name: `${stall.outcome === "Hung" ? "hung" : stall.outcome === "Stalled" ? "stalled" : "timed out"}: ${stall.what}`,
      ph: "i",
      s: "g",
      cat: "stall",
      ts: us(stall.at),
      pid: PID.scenario,
      tid: actionsTid,
      args: { outcome: stall.outcome, device: stall.device, waitSites: stall.waitSites }
    })
  }
  // What the trace does not show, stated in it: a stop from outside, and dropped events.
  if (record.interrupted !== undefined) {
    events.push({
      name: `interrupted (${record.interrupted.reason})`,
      ph: "i",
      s: "g",
      cat: "interrupted",
      ts: us(record.interrupted.at),
      pid: PID.scenario,
      tid: actionsTid,
      args: { reason: record.interrupted.reason, virtualMillis: record.interrupted.at }
    })
  }
  if (record.dropped.trace > 0) {
    events.push({
      name: `${record.dropped.trace} older simulator events dropped (trace limit)`,
      ph: "i",
      s: "g",
      cat: "dropped",
      ts: us(record.trace[0]?.at ?? 0),
      pid: PID.scenario,
      tid: actionsTid,
      args: { dropped: record.dropped.trace, kept: record.trace.length }
    })
  }

  events.sort((a, b) => a.ts - b.ts)
  return {
    traceEvents: [...meta, ...events],
    displayTimeUnit: "ms",
    metadata: {
      "devscope-scenario": record.scenario,
      "devscope-seed": record.seed,
      "devscope-result": passed(record) ? "PASS" : "FAIL",
      "devscope-virtual-ms": record.endedAt,
      "devscope-wall-ms": record.wallMillis,
      "devscope-violations": record.violations.map((v) => `${v.guarantee} ${v.device}: ${v.message}`),
      "devscope-driver-failures": record.failures.map((f) => `${f.device}: ${f.where}: ${f.error} (x${f.count})`),
      "devscope-stalls": record.stalls.map((s) => `${s.outcome} at ${s.at} ms: ${s.what}; waiting in: ${s.waitSites.join("; ") || "-"}`),
      ...(unplaced.length > 0 ? { "devscope-iommu-faults-without-time": unplaced } : {}),
      "devscope-dropped-trace-events": record.dropped.trace,
      ...(record.interrupted === undefined ? {} : { "devscope-interrupted": record.interrupted })
    }
  }
}

/** The Chrome trace of a run record as JSON text. */
export const chromeTraceJson = (record: RunRecord): string => JSON.stringify(toChromeTrace(record))

/** Writes the Chrome trace of a run record to `path`. */
export const writeChromeTrace = (
  path: string,
  record: RunRecord
): Effect.Effect<void, PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(path, chromeTraceJson(record)))
