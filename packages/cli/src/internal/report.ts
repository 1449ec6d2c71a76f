/**
 * A run record as one self-contained HTML page: inline CSS, inline SVG, no script, no
 * external resource. Device names and every other text come from user scenario files, so
 * everything is escaped.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import { Leak } from "@devscope/core"
import { type DeviceSummary, passed, type RunRecord } from "./record.js"
import * as Perfetto from "./perfetto.js"
import * as Spans from "./spans.js"
import { inFlightText } from "./summary.js"
import { escape, ms, timeline } from "./svg.js"

const CSS = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#0f172a;background:#f1f5f9}
main{max-width:1280px;margin:0 auto;padding:24px}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap;margin-bottom:8px}
h1{font-size:22px;margin:0}
h2{font-size:16px;margin:28px 0 8px}
.badge{font-weight:700;padding:4px 12px;border-radius:999px;color:#fff;letter-spacing:.04em}
.pass{background:#16a34a}.fail{background:#dc2626}
.meta{color:#475569;display:flex;gap:20px;flex-wrap:wrap;margin-bottom:12px}
.meta b{color:#0f172a;font-weight:600}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;overflow-x:auto}
.violations{list-style:none;margin:0;padding:0}
.violations li{padding:6px 0;border-bottom:1px solid #fee2e2}
.violations li:last-child{border-bottom:0}
.g{display:inline-block;min-width:32px;text-align:center;font-weight:700;color:#fff;background:#b91c1c;border-radius:4px;padding:0 6px;margin-right:6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.mono{word-break:break-all;max-width:360px}
.sub{color:#94a3b8}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#475569;background:#f8fafc}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.bad{color:#b91c1c;font-weight:700}
.cause{display:inline-block;border-radius:4px;padding:0 6px;color:#fff;font-size:12px;margin:1px 4px 1px 0}
.ok{color:#15803d;font-weight:600}
footer{color:#94a3b8;font-size:12px;margin-top:24px}
`

const cell = (n: number, bad = false) => `<td class="n${bad && n > 0 ? " bad" : ""}">${n}</td>`

const causeChip = (cause: keyof typeof Spans.causeColor, text: string) =>
  `<span class="cause" style="background:${Spans.causeColor[cause] ?? "#475569"}">${escape(text)}</span>`

const deviceRow = (d: DeviceSummary) =>
  `<tr data-device="${escape(d.device)}"><td><code>${escape(d.device)}</code></td><td>${escape(d.bus)}</td><td>${escape(d.kind)}</td>` +
  cell(d.completed) + cell(d.failedGone) + cell(d.lost, true) + cell(d.inFlight, true) +
  `<td>${
    d.unbinds.length === 0
      ? "<span class=\"sub\">—</span>"
      : d.unbinds.map((u) =>
        causeChip(
          u.cause,
          `${u.cause} @ ${ms(u.startedAt)} (${ms(u.virtualMillis)} virtual, ${ms(u.wallMillis)} wall; ${u.released} released, ${u.leaks} leaks)`
        )
      ).join("<br>")
  }</td>` +
  cell(d.released) + cell(d.leaks, true) + cell(d.iommuFaults, true) + "</tr>"

const section = (heading: string, content: string) => `<h2>${escape(heading)}</h2><div class="card">${content}</div>`

const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<string>) =>
  `<table><thead><tr>${head.map((h) => `<th>${escape(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`

/** A stop from outside and dropped events, stated at the top of the page. */
const cutNotice = (record: RunRecord): string => {
  const items = [
    ...(record.interrupted === undefined ? [] : [
      `<li class="interrupted">Interrupted at ${escape(ms(record.interrupted.at))} of virtual time ` +
      `(${escape(record.interrupted.reason)}): this is what ran until then.</li>`
    ]),
    ...(record.dropped.trace > 0
      ? [
        `<li class="dropped">${record.dropped.trace} older simulator events were dropped from the trace ` +
        `(it keeps the last ${record.trace.length}); IOMMU faults, violations and lifecycle events are all kept.</li>`
      ]
      : [])
  ]
  return items.length === 0 ? "" : `<div class="card"><ul class="violations">${items.join("")}</ul></div>`
}

/** Renders a run record as a self-contained HTML page. */
export const toHtml = (record: RunRecord): string => {
  const pass = passed(record)
  const bounds = Spans.timeBounds(record)
  const { spans } = Spans.bindings(record)
  const iommu = Spans.iommuFaultMarks(record)

  const violations = record.violations.length === 0
    ? `<p class="ok">Every guarantee held.</p>`
    : `<ul class="violations">${
      record.violations.map((v) =>
        `<li class="violation" data-guarantee="${escape(v.guarantee)}"><span class="g">${escape(v.guarantee)}</span>` +
        `<code>${escape(v.device)}</code>: ${escape(v.message)}</li>`
      ).join("")
    }</ul>`

  const failures = record.failures.length === 0 ? "" : section(
    `Driver failures (${record.failures.length})`,
    `<ul class="violations">${
      record.failures.map((f) =>
        `<li class="failure"><span class="g">${f.defect ? "defect" : "error"}</span><code>${escape(f.device)}</code>: ` +
        `${escape(f.where)}: ${escape(f.error)} <span class="mono">(at ${escape(ms(f.at))}${f.count > 1 ? `, ${f.count} times` : ""})</span></li>`
      ).join("")
    }</ul>`
  )

  const stalls = record.stalls.length === 0 ? "" : section(
    "The run did not end on its own",
    `<ul class="violations">${
      record.stalls.map((s) =>
        `<li class="stall"><span class="g">${escape(s.outcome === "Hung" ? "hung" : s.outcome === "Stalled" ? "stalled" : "timed out")}</span>` +
        `at ${escape(ms(s.at))}: ${escape(s.what)}` +
        (s.waitSites.length === 0
          ? "<br>wait sites: none recorded"
          : s.waitSites.map((w) => `<br>waiting in: <code>${escape(w)}</code>`).join("")) +
        "</li>"
      ).join("")
    }</ul>`
  )

  const notes = record.notes.length === 0 ? "" : section(
    `Warnings (${record.notes.length})`,
    `<ul class="notes">${
      record.notes.map((n) =>
        `<li><code>${escape(n.device)}</code>: ${escape(n.message)} <span class="mono">(at ${escape(ms(n.at))}${
          n.count > 1 ? `, ${n.count} times` : ""
        })</span></li>`
      ).join("")
    }</ul>`
  )

  const devices = table(
    ["device", "bus", "kind", "completed", "failed (gone)", "lost", "in flight", "unbinds", "released", "leaks", "IOMMU faults"],
    record.devices.map(deviceRow)
  )

  const faults = iommu.length === 0 ? "" : section(
    `IOMMU faults (${iommu.length})`,
    table(
      ["at", "device", "access", "reason", "by", "window", "mapped at", "unmapped / freed at"],
      iommu.map((m) => {
        const w = m.fault?.window
        return `<tr class="iommu-fault-row"><td>${m.at === undefined ? "?" : escape(ms(m.at))}</td><td><code>${escape(m.device)}</code></td>` +
          `<td>${escape(m.access)} 0x${m.iova.toString(16)}${m.fault ? ` (${m.fault.length} B)` : ""}</td><td>${escape(m.reason)}</td>` +
          `<td>${escape(m.fault?.by ?? "")}</td>` +
          `<td>${w === undefined ? "none" : escape(`${w.kind} 0x${w.iova.toString(16)}+${w.size} (${w.direction})`)}</td>` +
          `<td class="mono">${escape(w?.mappedAt ?? "")}</td><td class="mono">${escape(w?.unmappedAt ?? "")}</td></tr>`
      })
    )
  )

  const unbinds = spans.filter((s) => s.report !== undefined)
  const reports = unbinds.length === 0 ? "" : section(
    "Unbind reports",
    table(
      ["started at", "device", "driver", "cause", "released (in order)", "gates", "leaks"],
      unbinds.map((s) => {
        const r = s.report!
        return `<tr><td>${escape(ms(s.start))}</td><td><code>${escape(s.device)}</code></td><td>${escape(s.driver)}</td>` +
          `<td>${causeChip(r.cause, r.cause)}</td><td>${escape(r.released.join(", ") || "—")}</td>` +
          `<td>${
            escape(
              r.gates.map((g) => `${g.gate}: awaited ${g.awaited}, interrupted ${g.interrupted.length}, stuck ${g.stuck}`)
                .join("; ") || "—"
            )
          }</td>` +
          `<td${r.leaks.length > 0 ? " class=\"bad\"" : ""}>${
            r.leaks.length === 0 ? "none" : r.leaks.map((l) => escape(Leak.format(l))).join("<br>")
          }</td></tr>`
      })
    )
  )

  const actions = record.timeline.length === 0 ? "" : section(
    "Scenario actions",
    table(
      ["at", "action", "target", "in flight", "took (virtual)", "detail"],
      record.timeline.map((t) =>
        `<tr class="action"><td>${escape(ms(t.at))}</td><td>${escape(t.action)}</td><td><code>${escape(t.target)}</code></td>` +
        `<td class="in-flight">${t.inFlight === undefined ? "" : escape(inFlightText(t.inFlight))}</td>` +
        `<td>${t.tookMillis === undefined ? "" : escape(ms(t.tookMillis))}</td>` +
        `<td>${escape(t.detail ?? "")}</td></tr>`
      )
    )
  )

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>devscope: ${escape(record.scenario)} (${pass ? "PASS" : "FAIL"})</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>devscope · <span class="scenario">${escape(record.scenario)}</span></h1>
<span class="badge ${pass ? "pass" : "fail"}" id="result">${pass ? "PASS" : "FAIL"}</span></header>
<div class="meta"><span>seed <b>${escape(String(record.seed))}</b></span>
<span>virtual <b>${escape(ms(bounds.end - bounds.start))}</b></span>
<span>wall <b>${escape(ms(record.wallMillis))}</b></span>
<span>devices <b>${record.devices.length}</b></span>
<span>simulator events <b>${record.trace.length}</b></span>
<span>trace events <b>${Perfetto.toChromeTrace(record).traceEvents.length}</b></span></div>
${cutNotice(record)}
${section(record.violationCount === 0 ? "Guarantees" : `Violations (${record.violationCount})`, violations)}
${failures}
${stalls}
${section("Devices", devices)}
${section("Timeline (virtual ms)", timeline(record))}
${faults}
${reports}
${actions}
${notes}
<footer>Generated by devscope. Times are virtual milliseconds (TestClock) unless marked wall.</footer>
</main>
</body>
</html>
`
}

/** Writes the HTML report of a run record to `path`. */
export const writeHtml = (
  path: string,
  record: RunRecord
): Effect.Effect<void, PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFileString(path, toHtml(record)))
