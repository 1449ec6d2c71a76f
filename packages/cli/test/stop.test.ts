import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Runner, Scenario } from "@devscope/cli"
import { ansiAllowed, plainConsole, strip } from "../src/internal/ansi.js"
import { oneLine } from "../src/internal/input.js"
import * as Perfetto from "../src/internal/perfetto.js"
import * as Display from "../src/internal/progress.js"
import * as Report from "../src/internal/report.js"
import * as InternalRunner from "../src/internal/runner.js"
import { parseDuration } from "../src/internal/stop.js"
import * as Summary from "../src/internal/summary.js"

import { devscope, root } from "./command.js"

const dir = mkdtempSync(path.join(tmpdir(), "devscope-stop-"))

/** An hour of virtual time: far longer than any test waits (the work estimate needs --allow-large). */
const long = path.join(dir, "long.json")
writeFileSync(
  long,
  JSON.stringify({
    name: "long",
    duration: "1 hour",
    devices: [{ name: "disk0", kind: "blk" }, { name: "temp0", kind: "sensor" }],
    drivers: [{ kind: "blk" }, { kind: "sensor" }]
  })
)

const stoppedRun = (signal: NodeJS.Signals | undefined, extra: ReadonlyArray<string>, code: number, reason: string) =>
  Effect.gen(function*() {
    const trace = path.join(dir, `${reason}.trace.json`)
    const report = path.join(dir, `${reason}.report.html`)
    const ran = yield* devscope(["run", long, "--allow-large", "--trace", trace, "--report", report, ...extra], { signal })
    expect(ran.code, ran.stderr).toBe(code)
    expect(ran.stdout).toMatch(new RegExp(`interrupted at \\d+\\.\\d{3} ms of virtual time \\(${reason}`))
    // The summary of what ran, its statement of the stop, and the files.
    expect(ran.stdout).toMatch(/scenario "long", seed 1: .* of virtual time in .* of wall time/)
    expect(ran.stdout).toContain(`Interrupted at `)
    expect(ran.stdout).toContain(`trace written to ${trace}`)
    expect(ran.stdout).toContain(`report written to ${report}`)
    const chrome = JSON.parse(readFileSync(trace, "utf8")) as {
      readonly metadata: Record<string, unknown>
      readonly traceEvents: ReadonlyArray<{ readonly name: string; readonly cat?: string }>
    }
    expect(chrome.metadata["devscope-interrupted"]).toMatchObject({ reason })
    expect(chrome.traceEvents.some((e) => e.cat === "interrupted" && e.name === `interrupted (${reason})`)).toBe(true)
    const html = readFileSync(report, "utf8")
    expect(html).toMatch(/^<!DOCTYPE html>[\s\S]*<\/html>\n$/)
    expect(html).toContain(`(${reason}): this is what ran until then`)
    // No ANSI escape on a pipe.
    expect(ran.stdout).not.toContain("\x1b")
    return ran
  })

describe("stopping a run (the real command)", () => {
  it.effect("SIGINT during a long run: exit 130, 'interrupted at', the summary, trace and report of what ran", () =>
    Effect.gen(function*() {
      const ran = yield* stoppedRun("SIGINT", [], 130, "SIGINT")
      expect(ran.afterSignal).toBeLessThan(5_000)
    }), 120_000)

  it.effect("SIGTERM during a long run: exit 143, the same", () =>
    Effect.gen(function*() {
      const ran = yield* stoppedRun("SIGTERM", [], 143, "SIGTERM")
      expect(ran.afterSignal).toBeLessThan(5_000)
    }), 120_000)

  it.effect("--timeout of wall time stops the run the same way: exit 124", () =>
    Effect.gen(function*() {
      const ran = yield* stoppedRun(undefined, ["--timeout", "1500ms"], 124, "timeout")
      expect(ran.stdout).toContain("--timeout 1500ms of wall time")
    }), 120_000)

  it.effect("a bad --timeout is refused naming the flag, exit 2, nothing run", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["run", long, "--allow-large", "--timeout", "30"])
      expect(ran.code).toBe(2)
      expect(strip(ran.stdout + ran.stderr)).toContain("--timeout \"30\"")
      expect(ran.stdout).not.toContain("devices:")
    }), 120_000)

  it.effect("--help piped, and with NO_COLOR, carries no ANSI escape", () =>
    Effect.gen(function*() {
      for (const env of [{}, { NO_COLOR: "1" }]) {
        const ran = yield* devscope(["run", "--help"], { env })
        expect(ran.code).toBe(0)
        expect(ran.stdout).toContain("--timeout")
        expect(ran.stdout).not.toContain("\x1b")
        expect(ran.stderr).not.toContain("\x1b")
      }
    }), 120_000)

  it.effect("the run header shows a description as one line of at most 120 characters", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "described.json")
      writeFileSync(
        file,
        JSON.stringify({
          name: "described",
          description: `${"word ".repeat(40_000)}\n${"second line ".repeat(10_000)}`,
          duration: "2 millis",
          devices: [{ name: "temp0", kind: "sensor" }],
          drivers: [{ kind: "sensor" }]
        })
      )
      const ran = yield* devscope(["run", file])
      expect(ran.code, ran.stderr).toBe(0)
      const header = ran.stdout.split("\n")[1]!
      expect(header.startsWith("  word word")).toBe(true)
      expect(header.trim().length).toBeLessThanOrEqual(120)
      expect(header.endsWith("…")).toBe(true)
      expect(ran.stdout).not.toContain("second line")
      expect(ran.stdout.length).toBeLessThan(10_000)
    }), 120_000)
})

const decode = (input: unknown) => Either.getOrThrow(Scenario.decode(input, "inline", { allowLarge: true }))

describe("a stopped run's record", () => {
  it.effect("an abort mid-run returns the record of what ran, cut at the stop, with interrupted { reason, at }", () =>
    Effect.gen(function*() {
      const controller = new AbortController()
      setTimeout(() => controller.abort("SIGINT"), 300)
      const scenario = decode({
        name: "long",
        duration: "1 hour",
        devices: [{ name: "disk0", kind: "blk" }],
        drivers: [{ kind: "blk" }]
      })
      const started = performance.now()
      const record = yield* Runner.run(scenario, { signal: controller.signal })
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(record.interrupted?.reason).toBe("SIGINT")
      expect(record.interrupted!.at).toBeGreaterThan(0)
      expect(record.endedAt).toBe(record.interrupted!.at)
      expect(record.trace.every((e) => e.at <= record.interrupted!.at)).toBe(true)
      expect(record.devices[0]!.completed).toBeGreaterThan(0)
      // Operations cut by the stop are not lost, and break nothing.
      expect(record.devices[0]!.lost).toBe(0)
      expect(record.violations).toEqual([])
      expect(Summary.summary(record)).toContain("Interrupted at ")
    }), 30_000)

  it.effect("a run that is not stopped has no interrupted field and drops nothing when under the trace limit", () =>
    Effect.gen(function*() {
      const record = yield* Runner.run(decode({
        name: "short",
        duration: "5 millis",
        devices: [{ name: "temp0", kind: "sensor" }],
        drivers: [{ kind: "sensor" }]
      }))
      expect(record.interrupted).toBeUndefined()
      expect(record.dropped).toEqual({ trace: 0 })
      expect(Summary.summary(record)).not.toContain("dropped")
      expect(Report.toHtml(record)).not.toContain("class=\"dropped\"")
    }))
})

describe("nothing dropped silently", () => {
  const buggy = decode(JSON.parse(readFileSync(path.join(root, "examples/scenarios/bug-free-dma-early.json"), "utf8")))

  it.effect("past the trace limit the drop is counted, stated in summary, report and trace; IOMMU faults keep their times", () =>
    Effect.gen(function*() {
      const full = yield* InternalRunner.run(buggy)
      const record = yield* InternalRunner.run(buggy, {}, { traceLimit: 2_000 })
      expect(full.dropped.trace).toBe(0)
      expect(record.trace.length).toBe(2_000)
      expect(record.dropped.trace).toBe(full.trace.length - 2_000)
      // The faults (at 40 ms, long dropped from the capped trace) are all there, with times.
      expect(full.iommuFaults.length).toBeGreaterThan(0)
      expect(record.iommuFaults.map((f) => f.at)).toEqual(full.iommuFaults.map((f) => f.at))
      expect(record.iommuFaults.every((f) => typeof f.at === "number")).toBe(true)
      // ... and their trace events are among those dropped (the old lookup showed "at ?").
      expect(record.iommuFaults.some((f) => f.at! < record.trace[0]!.at)).toBe(true)
      expect(record.violationCount).toBe(full.violationCount)
      expect(record.lifecycle.length).toBe(full.lifecycle.length)

      expect(Summary.summary(record)).toContain(`${record.dropped.trace.toLocaleString("en-US")} older simulator events were dropped`)
      const html = Report.toHtml(record)
      expect(html).toContain(`${record.dropped.trace} older simulator events were dropped`)
      const rows = html.match(/<tr class="iommu-fault-row"><td>[^<]*<\/td>/g) ?? []
      expect(rows.length).toBe(record.iommuFaults.length)
      expect(rows.some((r) => r.includes("<td>?</td>"))).toBe(false)
      const chrome = Perfetto.toChromeTrace(record)
      expect(chrome.metadata["devscope-dropped-trace-events"]).toBe(record.dropped.trace)
      expect(chrome.metadata["devscope-iommu-faults-without-time"]).toBeUndefined()
      expect(chrome.traceEvents.some((e) => e.name.includes("older simulator events dropped"))).toBe(true)
    }), 60_000)
})

describe("pieces", () => {
  it("--timeout durations are parsed strictly", () => {
    expect(parseDuration("30s")).toEqual({ millis: 30_000 })
    expect(parseDuration("2 minutes")).toEqual({ millis: 120_000 })
    expect(parseDuration("1.5h")).toEqual({ millis: 5_400_000 })
    expect(parseDuration("500ms")).toEqual({ millis: 500 })
    for (const bad of ["30", "", "s", "-1s", "1e3s", "0x10s", " 30s", "30s ", "30  s", "3 fortnights", "0s", "0.0001ms", "30 days", "1,000s"]) {
      expect("problem" in parseDuration(bad), bad).toBe(true)
    }
  })

  it("ANSI escapes only on a terminal without NO_COLOR (an empty NO_COLOR does not count)", () => {
    expect(ansiAllowed({ isTTY: true }, {})).toBe(true)
    expect(ansiAllowed({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
    expect(ansiAllowed({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    expect(ansiAllowed({ isTTY: false }, {})).toBe(false)
    expect(ansiAllowed({}, {})).toBe(false)
    expect(strip("\x1b[1m\x1b[32mbold green\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[2K")).toBe("bold green link ")
  })

  it.effect("the plain Console strips what it prints", () =>
    Effect.gen(function*() {
      const printed: Array<unknown> = []
      const base = { ...(yield* Effect.console) }
      const fake = plainConsole({ ...base, log: (...args) => Effect.sync(() => void printed.push(...args)) }, false, true)
      yield* fake.log("\x1b[1mUSAGE\x1b[0m", 3)
      expect(printed).toEqual(["USAGE", 3])
    }))

  it("one-line echo of a description: first line, blanks collapsed, at most 120 characters", () => {
    expect(oneLine("short  and\tsweet")).toBe("short and sweet")
    expect(oneLine("first\nsecond")).toBe("first…")
    expect(oneLine("first\n   \n")).toBe("first")
    const cut = oneLine("x".repeat(50_000_000))
    expect(cut.length).toBe(120)
    expect(cut.endsWith("…")).toBe(true)
  })

  const progress = (virtualMillis: number) => ({ virtualMillis, duration: 1000, devices: [], resolved: 0, inFlight: 0 })

  it("progress: percentage and ETA from the wall rate", () => {
    expect(Display.etaText(progress(0), 0)).toBe("0.0%")
    expect(Display.etaText(progress(250), 10_000)).toBe("25.0% ETA 30s")
    expect(Display.etaText(progress(500), 3_600_000)).toBe("50.0% ETA 1h 00m")
    expect(Display.etaText(progress(1000), 5)).toBe("100.0%")
  })

  it("progress on a terminal redraws one line and clears it; elsewhere a plain line every 5 s; none when quiet", () => {
    let clock = 0
    const written: Array<string> = []
    const out = { write: (text: string) => void written.push(text) }
    const live = Display.display(out, { live: true, plain: false, ansi: false }, () => clock)
    clock = 1_000
    live.progress(progress(100))
    expect(written[0]!.startsWith("\r10.0% ETA 9s")).toBe(true)
    live.clear()
    expect(written[1]).toMatch(/^\r {20,}\r$/)
    expect(written.join("")).not.toContain("\x1b")
    const withAnsi = Display.display(out, { live: true, plain: false, ansi: true }, () => clock)
    withAnsi.progress(progress(100))
    withAnsi.print("line")
    expect(written.slice(-2)).toEqual(["\r\x1b[K", "line\n"])

    written.length = 0
    clock = 0
    const plain = Display.display(out, { live: false, plain: true, ansi: false }, () => clock)
    for (clock = 0; clock <= 12_000; clock += 100) plain.progress(progress(clock / 100))
    expect(written.length).toBe(2) // at 5 s and 10 s
    expect(written.every((w) => w.startsWith("progress: ") && w.endsWith("\n"))).toBe(true)
    plain.clear()
    expect(written.length).toBe(2)

    written.length = 0
    const quiet = Display.display(out, { live: false, plain: false, ansi: false }, () => clock)
    for (clock = 0; clock <= 12_000; clock += 100) quiet.progress(progress(1))
    expect(written).toEqual([])
  })
})
