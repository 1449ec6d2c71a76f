import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Trace } from "@devscope/sim"
import type { RunRecord } from "../src/internal/record.js"
import { toChromeTrace } from "../src/internal/perfetto.js"
import { toHtml, writeHtml } from "../src/internal/report.js"
import { escape } from "../src/internal/svg.js"
import { HOSTILE, makeRecord, unboundEvents } from "./recordFixture.js"

/** Every element the report may contain: anything else (a <script>, an <img>...) is a defect. */
const ALLOWED = new Set([
  "html", "head", "meta", "title", "style", "body", "main", "header", "footer", "h1", "h2", "div", "span", "b", "p",
  "ul", "li", "code", "table", "thead", "tbody", "tr", "th", "td", "br", "svg", "g", "rect", "text", "line", "path",
  "circle"
])

const tags = (html: string) => Array.from(html.matchAll(/<([a-zA-Z][\w-]*)/g), (m) => m[1]!.toLowerCase())

const count = (html: string, needle: string) => html.split(needle).length - 1

/** The `<g class="device-row" ...>` groups of the timeline, with their content. */
const rows = (html: string) => Array.from(html.matchAll(/<g class="device-row" data-device="([^"]*)"[^>]*>(.*?)<\/g>(?=<g class="device-row"|\n)/gs), (m) => ({
  device: m[1]!,
  body: m[2]!
}))

describe("toHtml", () => {
  it.effect("header: scenario, seed, durations, FAIL with each violation naming guarantee, device and message", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      expect(html).toMatch(/^<!DOCTYPE html>/)
      expect(html).toContain(`<span class="scenario">fixture</span>`)
      expect(html).toContain(`seed <b>7</b>`)
      expect(html).toContain(`virtual <b>${record.endedAt} ms</b>`)
      expect(html).toContain(`wall <b>12.5 ms</b>`)
      expect(html).toContain(`id="result">FAIL<`)
      expect(record.violations).toHaveLength(1)
      const items = Array.from(html.matchAll(/<li class="violation" data-guarantee="([^"]*)">(.*?)<\/li>/g))
      expect(items).toHaveLength(1)
      const v = record.violations[0]!
      expect(items[0]![1]).toBe("G5")
      expect(items[0]![2]).toContain(`<code>${escape(v.device)}</code>`)
      expect(items[0]![2]).toContain(escape(v.message))

      const passing = toHtml({ ...record, violations: [] })
      expect(passing).toContain(`id="result">PASS<`)
      expect(passing).not.toContain(`class="violation"`)
    }))

  it.effect("driver failures and stalls are shown (escaped), and fail the run even with no violation", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const failing: RunRecord = {
        ...record,
        violations: [],
        failures: [{ device: HOSTILE, where: "irq 0 handler failed", error: "UseAfterUnbind: <b>x</b>", defect: true, at: 3, count: 2 }],
        stalls: [{ outcome: "Hung", device: HOSTILE, at: 5, what: "unplug x at 5 ms", waitSites: ["devscope.remove (device=<i>)"] }]
      }
      const html = toHtml(failing)
      expect(html).toContain(`id="result">FAIL<`)
      expect(html).toContain("Driver failures (1)")
      expect(html).toContain(`<code>${escape(HOSTILE)}</code>: irq 0 handler failed: UseAfterUnbind: &lt;b&gt;x&lt;/b&gt;`)
      expect(html).toContain("waiting in: <code>devscope.remove (device=&lt;i&gt;)</code>")
      for (const tag of tags(html)) expect(ALLOWED.has(tag), tag).toBe(true)
      const trace = toChromeTrace(failing)
      expect(trace.metadata["devscope-result"]).toBe("FAIL")
      expect(trace.traceEvents.some((e) => e.cat === "failure")).toBe(true)
      expect(trace.traceEvents.some((e) => e.cat === "stall")).toBe(true)
    }))

  it.effect("escapes every text from the scenario: no element but the report's own", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const hostile: RunRecord = {
        ...record,
        scenario: `</title><script>alert(1)</script>`,
        violations: [...record.violations, { guarantee: "G4", device: HOSTILE, message: `<img src=x onerror=alert(1)>` }],
        timeline: [...record.timeline, { at: 1, action: `<b>x</b>`, target: HOSTILE, detail: `"><svg onload=alert(1)>` }]
      }
      const html = toHtml(hostile)
      expect(html.toLowerCase()).not.toContain("<script")
      expect(html).not.toContain("<img")
      // No event handler attribute on any element (the escaped text may still read "onload=").
      expect(html).not.toMatch(/<[a-z][^>]*\son\w+=/i)
      for (const tag of tags(html)) expect(ALLOWED.has(tag), tag).toBe(true)
      // The hostile name is shown, escaped, in the table, the timeline and the violations.
      const escaped = escape(HOSTILE)
      expect(escaped).toBe("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;")
      expect(html).toContain(`<tr data-device="${escaped}">`)
      expect(html).toContain(`<g class="device-row" data-device="${escaped}"`)
      expect(html).toContain(`<title>devscope: &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; (FAIL)</title>`)
    }))

  it.effect("no external resource: nothing to fetch, no script", () =>
    Effect.gen(function*() {
      const html = toHtml(yield* makeRecord())
      expect(html).not.toMatch(/\b(src|href)\s*=/i)
      expect(html).not.toMatch(/url\(|@import/i)
      // The only URL is the SVG namespace.
      expect(Array.from(html.matchAll(/https?:\/\/[^\s"]+/g), (m) => m[0])).toEqual(["http://www.w3.org/2000/svg"])
      expect(html).not.toMatch(/NaN|Infinity|undefined/)
    }))

  it.effect("summary table: one row per device with its columns", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      for (const d of record.devices) {
        const row = html.match(new RegExp(`<tr data-device="${escape(d.device).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}">(.*?)</tr>`))
        expect(row, d.device).not.toBeNull()
        const cells = Array.from(row![1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g), (m) => m[1]!)
        expect(cells).toHaveLength(11)
        expect(cells.slice(1, 3)).toEqual([d.bus, d.kind])
        expect(cells.slice(3, 7).map(Number)).toEqual([d.completed, d.failedGone, d.lost, d.inFlight])
        expect(cells.slice(8).map(Number)).toEqual([d.released, d.leaks, d.iommuFaults])
        for (const u of d.unbinds) expect(cells[7]).toContain(`${u.cause} @ ${u.startedAt} ms`)
      }
      // A nonzero IOMMU fault count is flagged.
      expect(html).toMatch(/<tr data-device="edu1">.*<td class="n bad">1<\/td><\/tr>/)
    }))

  it.effect("timeline: one row per device, binding spans with the unbind colored by cause", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      const found = rows(html)
      expect(found.map((r) => r.device)).toEqual(record.devices.map((d) => escape(d.device)))
      for (const event of unboundEvents(record)) {
        const row = found.find((r) => r.device === escape(event.device.name))!
        if (event.cause === "probe-failure") {
          expect(row.body).toContain(`class="span probe" fill="#fca5a5"`)
          expect(row.body).not.toContain(`class="span unbind"`)
          continue
        }
        expect(count(row.body, `class="span bound"`)).toBeGreaterThanOrEqual(1)
        const unbinds = Array.from(row.body.matchAll(/class="span unbind" data-cause="([^"]*)"/g), (m) => m[1])
        expect(unbinds).toEqual([event.cause])
      }
      expect(html).toContain(`data-cause="surprise" fill="#dc2626"`)
      expect(html).toContain(`data-cause="hot-unplug" fill="#d97706"`)
      // Resource lifetimes under the rows: the released Devres resources, coherent DMA, streaming mappings.
      const edu0 = found.find((r) => r.device === "edu0")!.body
      expect(count(edu0, `class="resource streaming"`)).toBe(3)
      expect(count(edu0, `class="resource coherent"`)).toBe(1)
      expect(edu0).toMatch(/class="resource resource"[^>]*><title>edu0: resource BAR0, 0 ms–\d+ ms<\/title>/)
      // Every rect is inside the picture.
      for (const m of html.matchAll(/<rect x="([-\d.]+)" y="[-\d.]+" width="([-\d.]+)"/g)) {
        expect(Number(m[1])).toBeGreaterThanOrEqual(0)
        expect(Number(m[1]) + Number(m[2])).toBeLessThanOrEqual(1200.5)
      }
    }))

  it.effect("IOMMU faults are highlighted on their device's row and listed with provenance", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      const edu1 = rows(html).find((r) => r.device === "edu1")!.body
      expect(count(edu1, `<g class="iommu-fault">`)).toBe(1)
      expect(count(html, `<g class="iommu-fault">`)).toBe(1)
      const window = record.iommuFaults[0]!.window!
      expect(edu1).toContain(escape(window.mappedAt))
      expect(count(html, `class="iommu-fault-row"`)).toBe(1)
      expect(html).toContain(`<td class="mono">${escape(window.unmappedAt!)}</td>`)

      const clean = toHtml({ ...record, iommuFaults: [], trace: record.trace.filter((e) => e._tag !== "IommuFault") })
      expect(clean).not.toContain(`class="iommu-fault`)
    }))

  it.effect("scenario actions are vertical lines with labels; dense interrupts are aggregated", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      const actions = Array.from(html.matchAll(/<g class="action" data-action="([^"]*)"><title>([^<]*)<\/title>/g))
      expect(new Set(actions.map((a) => a[1]))).toEqual(new Set(record.timeline.map((t) => escape(t.action))))
      for (const t of record.timeline) {
        expect(actions.some((a) => a[2]!.includes(`${t.at} ms: ${escape(t.action)} ${escape(t.target)}`)), t.target).toBe(true)
      }
      expect(count(html, `stroke-dasharray="3 3"`)).toBe(actions.length)

      let seq = 1_000_000
      const storm = Array.from({ length: 20_000 }, (_, i) =>
        Trace.TraceEvent.Irq({ seq: seq++, at: 12 + i / 4000, device: "edu1", line: 0, kind: "spurious" }))
      const dense = toHtml({ ...record, trace: [...record.trace, ...storm].sort((a, b) => a.at - b.at) })
      const edu1 = rows(dense).find((r) => r.device === "edu1")!.body
      const marks = count(edu1, `class="irq"`)
      expect(marks).toBeGreaterThan(0)
      expect(marks).toBeLessThan(100)
      expect(edu1).toMatch(/<title>\d{3,} interrupts /)
      expect(dense.length - html.length).toBeLessThan(50_000)
    }))

  it.effect("writeHtml writes the page", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-report-"))
      const file = path.join(dir, "report.html")
      yield* writeHtml(file, record).pipe(Effect.provide(NodeFileSystem.layer))
      expect(fs.readFileSync(file, "utf8")).toBe(toHtml(record))
      fs.rmSync(dir, { recursive: true })
    }))
})
