/**
 * The report's timeline as inline SVG: a virtual-time axis, the scenario actions as vertical
 * lines, and per device a row of binding phases, a lane of point events (interrupts and
 * register faults aggregated per few pixels, IOMMU faults each on their own) and lanes of
 * resource lifetimes. Every element carries a `<title>` tooltip; every text is escaped.
 */
import { Leak } from "@devscope/core"
import type { RunRecord } from "./record.js"
import * as Spans from "./spans.js"

/** Escapes text for HTML and SVG content and attribute values. */
export const escape = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;")

/** Milliseconds, with at most three decimals. */
export const ms = (n: number): string => `${Number.isInteger(n) ? n : Number(n.toFixed(3))} ms`

const WIDTH = 1200
const LEFT = 200
const RIGHT = 24
const PLOT = WIDTH - LEFT - RIGHT
const LABEL_LEVELS = 4
const LEVEL_HEIGHT = 14
const AXIS = 22
const ROW = 18
const MARKS = 14
/** A resource lane: tall enough for its 11 px label. */
const LANE = 15
/** The font size of resource-lane labels, in px, and the width of one of their characters. */
const LANE_FONT = 11
const LANE_CHAR = 6.2
const PAD = 8
/** Point events closer than this many pixels are drawn as one mark. */
const BUCKET_PX = 3
/** Beyond this many streaming mappings on a device, they are drawn as busy intervals. */
const STREAMING_DETAIL = 80
const MAX_STREAMING_LANES = 4

const actionColor = (action: string) =>
  action === "plug" || action === "bind"
    ? "#15803d"
    : action === "surprise"
    ? "#dc2626"
    : action === "unplug"
    ? "#d97706"
    : action === "unbind"
    ? "#2563eb"
    : "#475569"

const truncate = (s: string, n: number) => s.length <= n ? s : `${s.slice(0, n - 1)}…`

const niceStep = (span: number, target: number) => {
  const raw = span / target
  const mag = Math.pow(10, Math.floor(Math.log10(raw)))
  const norm = raw / mag
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag
}

const title = (text: string) => `<title>${escape(text)}</title>`

const rect = (x: number, y: number, w: number, h: number, attrs: string, tip: string) =>
  `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0, w).toFixed(1)}" height="${h}" ${attrs}>${title(tip)}</rect>`

/** Merges overlapping intervals, counting what each merged one covers. */
const busy = (spans: ReadonlyArray<Spans.ResourceSpan>) => {
  const out: Array<{ start: number; end: number; count: number; bytes: number }> = []
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1]
    if (last !== undefined && s.start <= last.end) {
      last.end = Math.max(last.end, s.end)
      last.count++
      last.bytes += s.length ?? 0
    } else {
      out.push({ start: s.start, end: s.end, count: 1, bytes: s.length ?? 0 })
    }
  }
  return out
}

interface Point {
  readonly x: number
  readonly at: number
  readonly text: string
}

/** Groups points whose x falls in the same few-pixel bucket. */
const bucketed = (points: ReadonlyArray<Point>) => {
  const groups = new Map<number, Array<Point>>()
  for (const p of points) {
    const key = Math.floor(p.x / BUCKET_PX)
    const g = groups.get(key)
    if (g === undefined) groups.set(key, [p])
    else g.push(p)
  }
  return Array.from(groups.values())
}

const summarizeGroup = (group: ReadonlyArray<Point>, noun: string) => {
  const counts = new Map<string, number>()
  for (const p of group) counts.set(p.text, (counts.get(p.text) ?? 0) + 1)
  const first = group[0]!.at
  const last = group[group.length - 1]!.at
  const when = first === last ? `at ${ms(first)}` : `${ms(first)}–${ms(last)}`
  const lines = Array.from(counts, ([t, n]) => (n > 1 ? `${t} ×${n}` : t)).slice(0, 8)
  return `${group.length} ${noun}${group.length > 1 ? "s" : ""} ${when}\n${lines.join("\n")}${counts.size > 8 ? "\n…" : ""}`
}

/** Renders the timeline of a run record as an `<svg>` element. */
export const timeline = (record: RunRecord): string => {
  const tracks = Spans.tracks(record)
  const { spans, released } = Spans.bindings(record)
  const dma = Spans.dmaSpans(record)
  const iommu = Spans.iommuFaultMarks(record)
  const bounds = Spans.timeBounds(record)
  const t0 = bounds.start
  const t1 = bounds.end > bounds.start ? bounds.end : bounds.start + 1
  const x = (t: number) => LEFT + ((t - t0) / (t1 - t0)) * PLOT
  const top = LABEL_LEVELS * LEVEL_HEIGHT + AXIS + 6

  const body: Array<string> = []
  let y = top
  tracks.forEach((track, index) => {
    const mine = <A extends { readonly device: string }>(list: ReadonlyArray<A>) => list.filter((e) => e.device === track.device)
    const fixed = [...mine(released), ...mine(dma).filter((r) => r.kind === "coherent")]
    const streaming = mine(dma).filter((r) => r.kind === "streaming")
    const packed = Spans.packLanes(fixed)
    const detailed = streaming.length <= STREAMING_DETAIL
    const streamPacked = detailed ? Spans.packLanes(streaming) : { lanes: [], count: streaming.length > 0 ? 1 : 0 }
    const streamLanes = Math.min(MAX_STREAMING_LANES, streamPacked.count)
    const height = PAD + ROW + MARKS + (packed.count + streamLanes) * LANE + PAD
    const out: Array<string> = []
    out.push(
      `<g class="device-row" data-device="${escape(track.device)}" data-index="${index}">`,
      rect(0, y, WIDTH, height, `class="row-bg" fill="#94a3b8" fill-opacity="${index % 2 === 0 ? 0.1 : 0}"`, track.device),
      `<text x="10" y="${y + PAD + 13}" class="dev">${escape(truncate(track.device, 26))}${title(track.device)}</text>`,
      `<text x="10" y="${y + PAD + 27}" class="sub">${escape(track.bus)}${
        track.kind === undefined ? "" : ` · ${escape(truncate(track.kind, 18))}`
      }</text>`
    )
    const rowY = y + PAD
    for (const s of mine(spans)) {
      const x0 = x(s.start)
      const w = Math.max(x(s.end) - x0, s.phase === "bound" ? 1 : 4)
      const tip = `${s.device}: ${s.phase}${s.phase === "unbind" || s.outcome === "failed" ? ` (${s.cause ?? "?"})` : ""} ` +
        `by ${s.driver}, ${ms(s.start)}–${s.open ? "end of run" : ms(s.end)}` +
        (s.outcome !== undefined && s.outcome !== "bound" ? `, ${s.outcome}` : "") +
        (s.report === undefined
          ? ""
          : `\nreleased: ${s.report.released.join(", ") || "nothing"}` +
            (s.report.leaks.length > 0 ? `\nleaks:\n${s.report.leaks.map(Leak.format).join("\n")}` : "") +
            s.report.gates.map((g) => `\ngate ${g.gate}: awaited ${g.awaited}, interrupted ${g.interrupted.length}`).join(""))
      const dash = s.open ? ` stroke-dasharray="4 2"` : ""
      if (s.phase === "probe") {
        const fill = s.outcome === "failed" ? "#fca5a5" : s.outcome === "deferred" ? "#fde68a" : "#93c5fd"
        out.push(rect(x0, rowY + 2, w, ROW - 4, `class="span probe" fill="${fill}" stroke="#1e3a8a" stroke-width="0.5"${dash}`, tip))
      } else if (s.phase === "bound") {
        out.push(rect(x0, rowY, w, ROW, `class="span bound" fill="#bbf7d0" stroke="#16a34a" stroke-width="0.8"${dash}`, tip))
        if (w > 60) {
          out.push(`<text x="${(x0 + 4).toFixed(1)}" y="${rowY + 12.5}" class="in">${escape(truncate(s.driver, Math.floor(w / 6.5)))}</text>`)
        }
      } else {
        const color = Spans.causeColor[s.cause ?? "manual"]
        out.push(rect(x0, rowY - 1, w, ROW + 2, `class="span unbind" data-cause="${escape(s.cause ?? "")}" fill="${color}"${dash}`, tip))
      }
    }

    // Point events under the binding row.
    const markY = rowY + ROW + 2
    const points = (tag: "Irq" | "Fault" | "Lifecycle") =>
      mine(record.trace).flatMap((e): Array<Point> =>
        e._tag !== tag || Spans.isBusEcho(e)
          ? []
          : [{
            x: x(e.at),
            at: e.at,
            text: e._tag === "Irq"
              ? `irq ${e.line} ${e.kind}`
              : e._tag === "Fault"
              ? `${e.fault} ${e.register ?? `+0x${e.offset.toString(16)}`}`
              : e._tag === "Lifecycle"
              ? `${e.event}${e.detail ? ` (${e.detail})` : ""}`
              : ""
          }]
      )
    const irqs = bucketed(points("Irq"))
    const densest = Math.max(1, ...irqs.map((g) => g.length))
    for (const g of irqs) {
      const opacity = 0.35 + 0.65 * (g.length / densest)
      out.push(rect(g[0]!.x - 0.75, markY, 1.5, MARKS - 4, `class="irq" fill="#2563eb" fill-opacity="${opacity.toFixed(2)}"`, summarizeGroup(g, "interrupt")))
    }
    for (const g of bucketed(points("Lifecycle"))) {
      const cx = g[0]!.x
      out.push(`<path class="device-event" d="M${cx.toFixed(1)} ${markY + 1}l3 4l-3 4l-3 -4z" fill="#64748b">${title(summarizeGroup(g, "device event"))}</path>`)
    }
    for (const g of bucketed(points("Fault"))) {
      const cx = g[0]!.x
      out.push(`<path class="fault" d="M${cx.toFixed(1)} ${markY}l4 8h-8z" fill="#f97316" stroke="#9a3412" stroke-width="0.5">${title(summarizeGroup(g, "register fault"))}</path>`)
    }
    for (const { event } of record.lifecycle) {
      if (event._tag !== "LeakDetected" || event.leak.device !== track.device) continue
      const cx = x(event.at)
      out.push(`<path class="leak" d="M${(cx - 4).toFixed(1)} ${markY}l8 8m0 -8l-8 8" stroke="#7c3aed" stroke-width="2">${title(`leak at ${ms(event.at)}: ${Leak.format(event.leak)}`)}</path>`)
    }
    for (const m of mine(iommu)) {
      if (m.at === undefined) continue
      const cx = x(m.at)
      const tip = `IOMMU fault on ${m.device} at ${ms(m.at)}: ${Spans.describeIommuFault(m)}`
      out.push(
        `<g class="iommu-fault">${title(tip)}`,
        rect(cx - 3, y + 1, 6, height - 2, `fill="#ef4444" fill-opacity="0.15"`, tip),
        `<circle cx="${cx.toFixed(1)}" cy="${markY + 5}" r="6" fill="#dc2626" stroke="#fff" stroke-width="1.5"/>`,
        `<text x="${cx.toFixed(1)}" y="${markY + 8.5}" class="bang">!</text></g>`
      )
    }

    // Resource lanes.
    let laneY = markY + MARKS
    fixed.forEach((r, i) => {
      const ly = laneY + packed.lanes[i]! * LANE
      const x0 = x(r.start)
      const w = Math.max(x(r.end) - x0, 2)
      const fill = r.kind === "coherent" ? "#c4b5fd" : "#cbd5e1"
      const tip = `${r.device}: ${r.kind === "coherent" ? "coherent DMA" : "resource"} ${r.label}, ${ms(r.start)}–${r.open ? "end of run" : ms(r.end)}`
      out.push(rect(x0, ly, w, LANE - 2, `class="resource ${r.kind}" fill="${fill}"`, tip))
      if (w > 8 * LANE_CHAR) {
        out.push(
          `<text x="${(x0 + 3).toFixed(1)}" y="${(ly + LANE - 5).toFixed(1)}" class="lane">${
            escape(truncate(r.label, Math.floor((w - 6) / LANE_CHAR)))
          }</text>`
        )
      }
    })
    laneY += packed.count * LANE
    if (detailed) {
      streaming.forEach((r, i) => {
        const ly = laneY + Math.min(streamPacked.lanes[i]!, streamLanes - 1) * LANE
        const x0 = x(r.start)
        const tip = `${r.device}: streaming ${r.label}, ${ms(r.start)}–${r.open ? "end of run" : ms(r.end)}`
        out.push(rect(x0, ly, Math.max(x(r.end) - x0, 2), LANE - 2, `class="resource streaming" fill="#fdba74" fill-opacity="0.85"`, tip))
      })
    } else {
      for (const b of busy(streaming)) {
        const x0 = x(b.start)
        const tip = `${track.device}: ${b.count} streaming mappings (${b.bytes} B), ${ms(b.start)}–${ms(b.end)}`
        out.push(rect(x0, laneY, Math.max(x(b.end) - x0, 2), LANE - 2, `class="resource streaming" fill="#fdba74"`, tip))
      }
    }
    out.push("</g>")
    body.push(out.join(""))
    y += height
  })
  const bottom = y

  // Axis and grid.
  const grid: Array<string> = []
  const step = niceStep(t1 - t0, 10)
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
    const tx = x(t).toFixed(1)
    const label = Number(t.toPrecision(12))
    grid.push(
      `<line x1="${tx}" x2="${tx}" y1="${top - 4}" y2="${bottom}" class="grid"/>`,
      `<text x="${tx}" y="${top - 8}" class="tick">${escape(String(label))}</text>`
    )
  }
  grid.push(`<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${top - 4}" y2="${top - 4}" class="axis"/>`)
  grid.push(`<text x="${LEFT - 12}" y="${top - 8}" class="tick unit">ms</text>`)

  // Scenario actions: a line across every row, its label on the first free level above.
  const actions: Array<string> = []
  const levels = Array.from({ length: LABEL_LEVELS }, () => [] as Array<readonly [number, number]>)
  // Actions of one kind a pixel or two apart share a line and a label.
  const merged: Array<{ at: number; action: string; entries: Array<RunRecord["timeline"][number]> }> = []
  for (const a of [...record.timeline].sort((p, q) => p.at - q.at)) {
    const last = merged[merged.length - 1]
    if (last !== undefined && last.action === a.action && x(a.at) - x(last.at) < 2) last.entries.push(a)
    else merged.push({ at: a.at, action: a.action, entries: [a] })
  }
  for (const a of merged) {
    const ax = x(a.at)
    const first = a.entries[0]!
    const more = a.entries.length > 1 ? ` +${a.entries.length - 1}` : ""
    const text = `${truncate(`${a.action} ${first.target}`, 22)}${more}`
    const textWidth = text.length * 6
    // Near the right edge the label goes left of its line.
    const flip = ax + 2 + textWidth > WIDTH
    const span = flip ? [ax - 2 - textWidth, ax] as const : [ax, ax + 2 + textWidth] as const
    const free = (level: ReadonlyArray<readonly [number, number]>) => level.every(([a, b]) => b + 4 < span[0] || a > span[1] + 4)
    let level = levels.findIndex(free)
    if (level < 0) level = levels.reduce((best, l, i) => (l.length < levels[best]!.length ? i : best), 0)
    levels[level]!.push(span)
    const ly = 4 + (level + 1) * LEVEL_HEIGHT - 3
    const color = actionColor(a.action)
    const tip = a.entries.map((e) => `${ms(e.at)}: ${e.action} ${e.target}${e.detail ? ` (${e.detail})` : ""}`).join("\n")
    actions.push(
      `<g class="action" data-action="${escape(a.action)}">${title(tip)}`,
      `<line x1="${ax.toFixed(1)}" x2="${ax.toFixed(1)}" y1="${ly + 2}" y2="${bottom}" stroke="${color}" stroke-width="1" stroke-dasharray="3 3"/>`,
      `<text x="${(flip ? ax - 2 : ax + 2).toFixed(1)}" y="${ly}" class="act"${flip ? ` text-anchor="end"` : ""} fill="${color}">${escape(text)}</text></g>`
    )
  }

  const legendY = bottom + 14
  const legendItems: Array<[string, string]> = [
    ["#93c5fd", "probe"],
    ["#fca5a5", "probe failed"],
    ["#bbf7d0", "bound"],
    ...Object.entries(Spans.causeColor).map(([cause, color]): [string, string] => [color, `unbind: ${cause}`]),
    ["#cbd5e1", "resource"],
    ["#c4b5fd", "coherent DMA"],
    ["#fdba74", "streaming DMA"],
    ["#2563eb", "interrupts"],
    ["#f97316", "register fault"],
    ["#dc2626", "IOMMU fault"]
  ]
  const legend: Array<string> = []
  let lx = 10
  let ly = legendY
  for (const [color, label] of legendItems) {
    const w = 16 + label.length * 6 + 14
    if (lx + w > WIDTH) {
      lx = 10
      ly += 16
    }
    legend.push(`<rect x="${lx}" y="${ly}" width="12" height="10" fill="${color}"/><text x="${lx + 16}" y="${ly + 9}" class="legend">${escape(label)}</text>`)
    lx += w
  }
  const height = ly + 22

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="timeline">`,
    `<style>.dev{font:600 12px system-ui,sans-serif;fill:#0f172a}.sub{font:10px system-ui,sans-serif;fill:#64748b}`,
    `.tick{font:10px system-ui,sans-serif;fill:#475569;text-anchor:middle}.unit{text-anchor:end}.grid{stroke:#e2e8f0;stroke-width:1}`,
    `.axis{stroke:#94a3b8}.act{font:600 10px system-ui,sans-serif}.in{font:10px system-ui,sans-serif;fill:#14532d;pointer-events:none}`,
    `.lane{font:${LANE_FONT}px system-ui,sans-serif;fill:#1e293b;pointer-events:none}.legend{font:10px system-ui,sans-serif;fill:#334155}`,
    `.bang{font:bold 9px system-ui,sans-serif;fill:#fff;text-anchor:middle;pointer-events:none}</style>`,
    grid.join(""),
    body.join(""),
    actions.join(""),
    legend.join(""),
    "</svg>"
  ].join("\n")
}
