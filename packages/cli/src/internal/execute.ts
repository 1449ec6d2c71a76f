/**
 * Runs a validated scenario for the command: the header, the live display, the summary, the
 * files asked for, and the verdict as an error.
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scenario from "../Scenario.js"
import * as Scenarios from "../Scenario.js"
import { ansiAllowed } from "./ansi.js"
import { GuaranteesBroken, RunInterrupted, UsageError } from "../Errors.js"
import { oneLine } from "./input.js"
import type { RunFlags } from "./options.js"
import * as Perfetto from "./perfetto.js"
import * as QemuRun from "./qemuRun.js"
import * as Display from "./progress.js"
import { passed, type RunRecord } from "./record.js"
import * as Report from "./report.js"
import * as Runner from "./runner.js"
import * as Stop from "./stop.js"
import * as Summary from "./summary.js"
import type { RunSource as VerdictSource } from "../Verdict.js"
import * as Verdict from "./verdict.js"

export const printWarnings = (
  source: string,
  warnings: ReadonlyArray<Scenario.Issue>,
  print: (text: string) => Effect.Effect<void> = Console.log
) =>
  warnings.length === 0 ? Effect.void : print(
    `${source}: ${warnings.length} warning(s) (the run goes on; these actions will be refused when they run):\n` +
      warnings.map((w) => `  ${w.path}: ${w.message}`).join("\n")
  )

/** A run that ended, for the verdicts of `--json` and `--junit`. */
export interface Ran {
  readonly record: RunRecord
  readonly source: VerdictSource
}

/**
 * Prints the JSON document (`--json`: one run's `RunVerdict`, several runs' `RunsVerdict`) and
 * writes the JUnit XML file (`--junit`: a testsuite per run) of the runs that ended. Nothing
 * when none did. A file that cannot be written is reported: a `UsageError` when the runs
 * passed, else on stderr (the runs' failure is the verdict).
 */
export const emitVerdicts = (runs: ReadonlyArray<Ran>, flags: RunFlags, failed: boolean) =>
  Effect.gen(function*() {
    if (runs.length === 0) return
    const fs = yield* FileSystem.FileSystem
    const out = flags.json ? process.stderr : process.stdout
    if (Option.isSome(flags.junit)) {
      const file = flags.junit.value
      const written = yield* Effect.either(fs.writeFileString(file, Verdict.junitXml(runs)))
      if (written._tag === "Right") yield* Effect.sync(() => void out.write(`JUnit XML written to ${file}\n`))
      else if (failed) yield* Console.error(`devscope: could not write --junit ${file}: ${written.left.message}`)
      else return yield* new UsageError({ reason: `could not write --junit ${file}: ${written.left.message}` })
    }
    if (flags.json) {
      const document = runs.length === 1 ? Verdict.toJson(runs[0]!.record, runs[0]!.source) : Verdict.toJsonAll(runs)
      yield* Effect.sync(() => void process.stdout.write(`${JSON.stringify(document, null, 2)}\n`))
    }
  })

/**
 * Runs a validated scenario with live output, writes the requested files, judges the run.
 * `source` is the scenario file as given (`"demo"` for the built-in one), for the replay
 * command of `--json` and `--junit`. With `ran`, the run is added to it and the caller emits
 * the verdicts of all its runs (`emitVerdicts`); without, this run's are emitted here.
 */
export const execute = (scenario: Scenario.Scenario, flags: RunFlags, source = "demo", ran?: Array<Ran>) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    if (Option.isSome(flags.trace) && Option.isSome(flags.report) && path.resolve(flags.trace.value) === path.resolve(flags.report.value)) {
      return yield* new UsageError({ reason: `--trace and --report name the same file (${flags.trace.value})` })
    }
    for (const [flag, other] of [["trace", flags.trace], ["report", flags.report]] as const) {
      if (Option.isSome(flags.junit) && Option.isSome(other) && path.resolve(flags.junit.value) === path.resolve(other.value)) {
        return yield* new UsageError({ reason: `--junit and --${flag} name the same file (${flags.junit.value})` })
      }
    }
    // With --json, stdout carries the JSON document only: the human output goes to stderr.
    const onQemu = flags.backend === "qemu"
    if (onQemu) {
      const issues = QemuRun.issues(scenario)
      if (issues.length > 0) {
        return yield* new UsageError({
          reason: `${source}: cannot run on QEMU:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")}`
        })
      }
    }
    const out = flags.json ? process.stderr : process.stdout
    const say = (text: string) => Effect.sync(() => void out.write(`${text}\n`))
    const tty = out.isTTY === true
    // Progress: redrawn in place on a terminal, a plain line every few seconds elsewhere,
    // none with --quiet; ANSI escapes only on a terminal without NO_COLOR.
    const shown = Display.display(out, { live: tty && !flags.quiet, plain: !tty && !flags.quiet, ansi: ansiAllowed(out) })
    const seedUsed = Option.getOrElse(flags.seed, () => scenario.seed ?? 1)
    if (!flags.quiet) {
      yield* say(`devscope: scenario "${scenario.name}" (seed ${seedUsed}, ${scenario.duration} ms of virtual time${onQemu ? ", on QEMU" : ""})`)
      if (scenario.description) yield* say(`  ${oneLine(scenario.description)}`)
      yield* say(
        `  devices: ${scenario.devices.map((d) => `${d.name} (${d.kind})`).join(", ")}; drivers: ${
          scenario.drivers.map((d) => d.kind + (d.bug ? ` [bug: ${d.bug}]` : "")).join(", ")
        }`
      )
      yield* printWarnings("  scenario", Scenarios.warnings(scenario), say)
    }
    const timeout = Option.getOrUndefined(flags.timeout ?? Option.none())
    // SIGINT, SIGTERM and --timeout stop the run through its signal, for this run only; a
    // second signal (while the run winds down or its files are written) exits at once.
    const stopper = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Stop.watch(timeout?.millis, (code, reason) => {
          shown.clear()
          process.stderr.write(`\ndevscope: ${reason} again: exiting now, without the rest of the files (exit code ${code})\n`)
          process.exit(code)
        })
      ),
      (stopper) => Effect.sync(() => stopper.dispose())
    )
    const runOptions: Parameters<typeof Runner.run>[1] = {
      seed: seedUsed,
      signal: stopper.signal,
      onProgress: flags.quiet ? undefined : shown.progress,
      onAction: flags.quiet ? undefined : (entry, p) => {
        shown.print(Summary.actionLine(entry))
        if (tty) shown.progress(p)
        else out.write(`    ${Summary.progressLine(p)}\n`)
      },
      onNote: flags.quiet ? undefined : (note) => shown.print(`  ! ${note}`)
    }
    const record: RunRecord = onQemu
      ? yield* Runner.runOn(scenario, QemuRun.start(scenario), runOptions).pipe(
        Effect.tapError(() => Effect.sync(() => shown.clear())),
        Effect.mapError((error) => new UsageError({ reason: `${error.message} (devscope doctor says what this machine has)` }))
      )
      : yield* Runner.run(scenario, runOptions)
    stopper.ran()
    shown.clear()
    if (record.interrupted !== undefined) {
      const reason = record.interrupted.reason === "timeout" && timeout !== undefined
        ? `timeout: --timeout ${timeout.text} of wall time`
        : record.interrupted.reason
      yield* say(`devscope: interrupted at ${record.interrupted.at.toFixed(3)} ms of virtual time (${reason})`)
    }
    yield* say(`\n${Summary.summary(record)}`)
    // The run happened: write what it recorded even when it failed; a write that fails now
    // is reported, and does not hide the verdict.
    const unwritten: Array<string> = []
    const write = (flag: string, file: Option.Option<string>, render: (record: RunRecord) => string, what: string) =>
      Option.match(file, {
        onNone: () => Effect.void,
        onSome: (file) =>
          fs.writeFileString(file, render(record)).pipe(
            Effect.zipRight(say(`${what} written to ${file}`)),
            Effect.catchAll((e) => Effect.sync(() => void unwritten.push(`--${flag} ${file}: ${e.message}`)))
          )
      })
    yield* write("trace", flags.trace, Perfetto.chromeTraceJson, "trace")
    yield* write("report", flags.report, Report.toHtml, "report")
    const from: VerdictSource = { source, name: scenario.name, description: scenario.description, duration: scenario.duration }
    if (ran !== undefined) ran.push({ record, source: from })
    else {
      yield* write("junit", flags.junit, (record) => Verdict.junitXml([{ record, source: from }]), "JUnit XML")
      if (flags.json) yield* Effect.sync(() => void process.stdout.write(`${JSON.stringify(Verdict.toJson(record, from), null, 2)}\n`))
    }
    const stoppedBy = stopper.reason()
    if (stoppedBy !== undefined) {
      // Stopped: the exit code says by what, whatever the verdict of what ran (the summary has it).
      if (unwritten.length > 0) yield* Console.error(unwritten.map((u) => `devscope: could not write ${u}`).join("\n"))
      return yield* new RunInterrupted({
        scenario: scenario.name,
        reason: stoppedBy,
        code: Stop.exitCodes[stoppedBy],
        at: record.interrupted?.at ?? record.endedAt
      })
    }
    if (!passed(record)) {
      if (unwritten.length > 0) yield* Console.error(unwritten.map((u) => `devscope: could not write ${u}`).join("\n"))
      return yield* new GuaranteesBroken({
        scenario: scenario.name,
        violations: record.violationCount,
        failures: record.failures.length,
        verdict: Summary.verdict(record)
      })
    }
    if (unwritten.length > 0) return yield* new UsageError({ reason: unwritten.map((u) => `could not write ${u}`).join("\n") })
  }))
