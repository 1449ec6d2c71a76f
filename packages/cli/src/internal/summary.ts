/**
 * Text output of a run: the live progress line, the timeline lines and the summary table.
 */
import { passed, type RunRecord, type TimelineEntry } from "./record.js"
import type { Progress } from "../Runner.js"

const pad = (s: string, n: number, right = false) => right ? s.padStart(n) : s.padEnd(n)

const fmt = (n: number) => n.toLocaleString("en-US")

const ms = (n: number) => n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(n < 10 ? 2 : 1)} ms`

/** One line: virtual time, devices and their state, operations resolved, in flight. */
export const progressLine = (p: Progress): string => {
  const states = p.devices.map((d) => `${d.name}${d.state === "bound" ? "+" : d.state === "unbound" ? "~" : "-"}`).join(" ")
  const rate = p.virtualMillis > 0 ? (p.resolved / p.virtualMillis) * 1000 : 0
  const bound = p.devices.filter((d) => d.state === "bound").length
  return `[${pad(p.virtualMillis.toFixed(1), 7, true)} / ${p.duration} ms] bound ${bound}/${p.devices.length}  ` +
    `ops ${pad(fmt(p.resolved), 8, true)} (${fmt(Math.round(rate))}/s virtual)  in flight ${pad(String(p.inFlight), 3, true)}  ${states}`
}

/** `3 write, 1 read` */
export const inFlightText = (inFlight: Readonly<Record<string, number>> | undefined): string => {
  const parts = Object.entries(inFlight ?? {}).filter(([, n]) => n > 0).map(([what, n]) => `${n} ${what}`)
  return parts.length === 0 ? "nothing" : parts.join(", ")
}

export const actionLine = (entry: TimelineEntry): string => {
  const facts = [
    ...(entry.inFlight === undefined ? [] : [`in flight: ${inFlightText(entry.inFlight)}`]),
    ...(entry.tookMillis !== undefined && entry.tookMillis > 0 ? [`took ${ms(entry.tookMillis)}`] : []),
    ...(entry.detail ? [entry.detail] : [])
  ]
  return `  ${pad(entry.at.toFixed(1), 8, true)} ms  ${pad(entry.action, 8)} ${entry.target}${facts.length > 0 ? `  (${facts.join("; ")})` : ""}`
}

/** The run's failures of driver code, one line each. */
export const failureLines = (record: RunRecord): Array<string> =>
  record.failures.map((f) =>
    `  ${f.defect ? "defect" : "error"} ${f.device}: ${f.where}: ${f.error} (at ${ms(f.at)}${f.count > 1 ? `, ${fmt(f.count)} times` : ""})`
  )

/** Stalls and hangs, with their wait sites. */
export const stallLines = (record: RunRecord): Array<string> =>
  record.stalls.flatMap((s) => [
    `  ${s.outcome === "Hung" ? "hung" : s.outcome === "Stalled" ? "stalled" : "timed out"} at ${ms(s.at)}: ${s.what}`,
    ...(s.waitSites.length === 0 ? ["    wait sites: none recorded"] : s.waitSites.map((w) => `    waiting in: ${w}`))
  ])

/** The one-line verdict the command ends with on failure. */
export const verdict = (record: RunRecord): string => {
  const parts = [
    ...(record.violationCount > 0 ? [`${record.violationCount} guarantee violation(s)`] : []),
    ...(record.failures.length > 0 ? [`${record.failures.length} driver failure(s)`] : []),
    ...(record.stalls.length > 0 ? [record.stalls.some((s) => s.outcome !== "Hung") ? "the run stalled" : "an action hung"] : [])
  ]
  return passed(record) ? "all guarantees held" : parts.join(", ")
}

/** Renders rows as an aligned table with a header rule. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, numeric: ReadonlySet<number>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => pad(c, widths[i]!, numeric.has(i))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

/** What the record does not hold in full: a stop from outside, events dropped by a capped buffer. */
export const boundLines = (record: RunRecord): Array<string> => {
  const lines: Array<string> = []
  if (record.interrupted !== undefined) {
    lines.push(
      `Interrupted at ${ms(record.interrupted.at)} of virtual time (${record.interrupted.reason}): ` +
        "this is what ran until then (operations in flight at the stop are not counted lost).",
      ""
    )
  }
  if (record.dropped.trace > 0) {
    lines.push(
      `${fmt(record.dropped.trace)} older simulator events were dropped from the trace (it keeps the last ${fmt(record.trace.length)}); ` +
        "IOMMU faults, violations and lifecycle events are all kept.",
      ""
    )
  }
  return lines
}

export const summary = (record: RunRecord): string => {
  const header = [
    "device",
    "kind",
    "completed",
    "DeviceGone",
    "lost",
    "unbinds",
    "unbind (virtual)",
    "unbind (wall)",
    "released",
    "leaks",
    "IOMMU faults"
  ]
  const rows = record.devices.map((d) => {
    const worstVirtual = Math.max(0, ...d.unbinds.map((u) => u.virtualMillis))
    const worstWall = Math.max(0, ...d.unbinds.map((u) => u.wallMillis))
    // Grouped by cause (a device unplugged 150 times is one cell, not 150 words).
    const byCause = new Map<string, number>()
    for (const u of d.unbinds) byCause.set(u.cause, (byCause.get(u.cause) ?? 0) + 1)
    const causes = [...byCause].map(([cause, n]) => (n === 1 ? cause : `${cause} x${n}`)).join(", ")
    return [
      d.device,
      d.kind,
      fmt(d.completed),
      fmt(d.failedGone),
      fmt(d.lost),
      d.unbinds.length === 0 ? "0" : `${d.unbinds.length} (${causes})`,
      d.unbinds.length === 0 ? "-" : `max ${ms(worstVirtual)}`,
      d.unbinds.length === 0 ? "-" : `max ${ms(worstWall)}`,
      fmt(d.released),
      fmt(d.leaks),
      fmt(d.iommuFaults)
    ]
  })
  const ops = record.devices.reduce((n, d) => n + d.completed + d.failedGone, 0)
  const lines = [
    `scenario "${record.scenario}", seed ${record.seed}: ${ms(record.endedAt)} of virtual time in ${ms(record.wallMillis)} of wall time, ` +
    `${fmt(ops)} operations resolved (${fmt(Math.round(ops / Math.max(record.wallMillis, 1) * 1000))}/s wall)`,
    "",
    table(header, rows, new Set([2, 3, 4, 8, 9, 10])),
    ""
  ]
  lines.push(...boundLines(record))
  if (record.stalls.length > 0) {
    lines.push("The run did not end on its own:", ...stallLines(record), "")
  }
  if (record.notes.length > 0) {
    lines.push("Warnings logged during the run:")
    for (const n of record.notes) lines.push(`  ${n.device}: ${n.message} (at ${ms(n.at)}${n.count > 1 ? `, ${fmt(n.count)} times` : ""})`)
    lines.push("")
  }
  if (record.violations.length === 0) {
    lines.push("All guarantees held: G1 no revoked access returned a value, G2 every resource released once, " +
      "G3 no fiber outlived its unbind, G4 every operation resolved once, G5 no unreported or faulting DMA.")
  } else {
    lines.push(`${record.violationCount} guarantee violation(s):`)
    for (const v of record.violations) lines.push(`  ${v.guarantee} ${v.device}: ${v.message}`)
    const hidden = record.violationCount - record.violations.length
    if (hidden > 0) lines.push(`  (${hidden} more not shown: at most 5 per guarantee and device)`)
  }
  if (record.failures.length > 0) {
    lines.push(`${record.failures.length} driver failure(s) (caught by the binding machinery, reported instead of dumped):`)
    lines.push(...failureLines(record))
  }
  return lines.join("\n")
}
