/**
 * The `devscope` command:
 *
 * - `devscope demo`: the default scenario (two NICs on a cable, a disk and a sensor under
 *   load; hot-unplug, surprise removal, re-plug, driver unload) with a live display and a
 *   summary table;
 * - `devscope run <scenario.json>`: a scenario file, validated before anything runs;
 * - `devscope validate <scenario.json>`: only the validation (and the warnings).
 *
 * `--seed` replays a run exactly (time is virtual, randomness seeded); `--trace out.json`
 * writes a Chrome/Perfetto trace and `--report out.html` a self-contained HTML timeline.
 *
 * Exit codes (`exitCode`): 0 every guarantee held; 1 a guarantee was broken or driver code
 * failed (a defect in an interrupt handler or a binding fiber, an action that hung, a stall);
 * 2 the scenario cannot run or the command line is wrong (an invalid or missing file, a bad
 * option, an output file that cannot be written), with a short message and nothing run.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { readFileSync } from "node:fs"
import { demo } from "./internal/demo.js"
import { optionProblem } from "./internal/flags.js"
import { sizeIssue } from "./internal/input.js"
import * as Perfetto from "./internal/perfetto.js"
import { passed, type RunRecord } from "./internal/record.js"
import * as Report from "./internal/report.js"
import * as Runner from "./internal/runner.js"
import * as Summary from "./internal/summary.js"
import * as Scenario from "./Scenario.js"

/**
 * A run in which a guarantee G1-G5 (docs/contract.md) was broken, or driver code failed
 * (exit code 1).
 * @since 0.1.0
 * @category errors
 */
export class GuaranteesBroken extends Data.TaggedError("GuaranteesBroken")<{
  readonly scenario: string
  readonly violations: number
  /** Driver failures (defects caught in interrupt handlers, binding fibers, destructors). */
  readonly failures: number
  /** The verdict in a few words: `3 guarantee violation(s), 1 driver failure(s)`. */
  readonly verdict: string
}> {
  override get message() {
    return `${this.verdict} in scenario "${this.scenario}"`
  }
}

/**
 * The command line asks for something that cannot be done before anything runs, or an
 * output file could not be written (exit code 2).
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const invalid = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))

/**
 * An output path must be writable before the run starts (a long run must not be lost to a
 * typo in `--trace`): an existing file we may write, or a new name in a directory we may
 * write in.
 */
const writable = (flag: string) => (file: string): Effect.Effect<string, ValidationError.ValidationError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const resolved = path.resolve(file)
    const info = yield* Effect.option(fs.stat(resolved))
    if (Option.isSome(info)) {
      if (info.value.type === "Directory") return yield* invalid(`--${flag} ${file}: is a directory, not a file`)
      const ok = yield* Effect.isSuccess(fs.access(resolved, { writable: true }))
      if (!ok) return yield* invalid(`--${flag} ${file}: the file exists and is not writable`)
      return file
    }
    const dir = path.dirname(resolved)
    const parent = yield* Effect.option(fs.stat(dir))
    if (Option.isNone(parent)) return yield* invalid(`--${flag} ${file}: directory ${dir} does not exist`)
    if (parent.value.type !== "Directory") return yield* invalid(`--${flag} ${file}: ${dir} is not a directory`)
    const ok = yield* Effect.isSuccess(fs.access(dir, { writable: true }))
    if (!ok) return yield* invalid(`--${flag} ${file}: cannot create files in ${dir} (not writable)`)
    return file
  })

const seed = Options.text("seed").pipe(
  Options.withPseudoName("integer"),
  // A plain decimal integer only (a number parser would take "0x10", "1e3" or "1.0"), then
  // the scenario's own schema for seeds, with the flag named in the message.
  Options.mapEffect((text) =>
    /^(0|[1-9][0-9]{0,9})$/.test(text)
      ? Effect.mapError(
        Schema.decodeUnknown(Scenario.Seed)(Number(text)),
        (e) => ValidationError.invalidValue(HelpDoc.p(`--seed ${text}: ${Scenario.issuesOf(e)[0]?.message ?? "invalid"}`))
      )
      : Effect.fail(ValidationError.invalidValue(HelpDoc.p(
        `--seed ${JSON.stringify(text).slice(0, 40)}: expected a decimal integer from 0 to 4294967295 (no sign, hex, exponent or fraction)`
      )))
  ),
  Options.withDescription(
    "Seed of the run's randomness, an integer from 0 to 4294967295 (overrides the scenario's); the same seed replays the same run"
  ),
  Options.optional
)
const trace = Options.file("trace").pipe(
  Options.mapEffect(writable("trace")),
  Options.withDescription("Write a Chrome/Perfetto trace (JSON) of the run to this file (open it in ui.perfetto.dev); checked writable before the run"),
  Options.optional
)
const report = Options.file("report").pipe(
  Options.mapEffect(writable("report")),
  Options.withDescription("Write a self-contained HTML report with an SVG timeline of the run to this file; checked writable before the run"),
  Options.optional
)
const quiet = Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("Only print the summary"))

interface RunFlags {
  readonly seed: Option.Option<number>
  readonly trace: Option.Option<string>
  readonly report: Option.Option<string>
  readonly quiet: boolean
}

const printWarnings = (source: string, warnings: ReadonlyArray<Scenario.Issue>) =>
  warnings.length === 0 ? Effect.void : Console.log(
    `${source}: ${warnings.length} warning(s) (the run goes on; these actions will be refused when they run):\n` +
      warnings.map((w) => `  ${w.path}: ${w.message}`).join("\n")
  )

/** Runs a validated scenario with live output, writes the requested files, judges the run. */
const execute = (scenario: Scenario.Scenario, flags: RunFlags) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    if (Option.isSome(flags.trace) && Option.isSome(flags.report) && path.resolve(flags.trace.value) === path.resolve(flags.report.value)) {
      return yield* new UsageError({ reason: `--trace and --report name the same file (${flags.trace.value})` })
    }
    const tty = process.stdout.isTTY === true && !flags.quiet
    const seedUsed = Option.getOrElse(flags.seed, () => scenario.seed ?? 1)
    if (!flags.quiet) {
      yield* Console.log(`devscope: scenario "${scenario.name}" (seed ${seedUsed}, ${scenario.duration} ms of virtual time)`)
      if (scenario.description) yield* Console.log(`  ${scenario.description}`)
      yield* Console.log(
        `  devices: ${scenario.devices.map((d) => `${d.name} (${d.kind})`).join(", ")}; drivers: ${
          scenario.drivers.map((d) => d.kind + (d.bug ? ` [bug: ${d.bug}]` : "")).join(", ")
        }`
      )
      yield* printWarnings("  scenario", Scenario.warnings(scenario))
    }
    const line = (text: string) => {
      if (tty) process.stdout.write("\r\x1b[K")
      process.stdout.write(`${text}\n`)
    }
    const record: RunRecord = yield* Runner.run(scenario, {
      seed: seedUsed,
      onProgress: tty ? (p) => process.stdout.write(`\r${Summary.progressLine(p)}\x1b[K`) : undefined,
      onAction: flags.quiet ? undefined : (entry, p) => {
        line(Summary.actionLine(entry))
        process.stdout.write(`${tty ? "" : "    "}${Summary.progressLine(p)}${tty ? "" : "\n"}`)
      },
      onNote: flags.quiet ? undefined : (note) => line(`  ! ${note}`)
    })
    if (tty) process.stdout.write("\r\x1b[K")
    yield* Console.log(`\n${Summary.summary(record)}`)
    // The run happened: write what it recorded even when it failed; a write that fails now
    // is reported, and does not hide the verdict.
    const unwritten: Array<string> = []
    const write = (flag: string, file: Option.Option<string>, render: (record: RunRecord) => string, what: string) =>
      Option.match(file, {
        onNone: () => Effect.void,
        onSome: (file) =>
          fs.writeFileString(file, render(record)).pipe(
            Effect.zipRight(Console.log(`${what} written to ${file}`)),
            Effect.catchAll((e) => Effect.sync(() => void unwritten.push(`--${flag} ${file}: ${e.message}`)))
          )
      })
    yield* write("trace", flags.trace, Perfetto.chromeTraceJson, "trace")
    yield* write("report", flags.report, Report.toHtml, "report")
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
  })

const readScenario = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const cannotRead = (e: PlatformError) =>
      new Scenario.InvalidScenario({
        source: path,
        issues: [{ path: "(file)", message: e._tag === "SystemError" ? `cannot read it (${e.reason}: ${e.description ?? e.message})` : e.message }]
      })
    // The size is checked before anything is read: a hostile file costs nothing.
    const info = yield* Effect.mapError(fs.stat(path), cannotRead)
    const tooLarge = sizeIssue(Number(info.size))
    if (tooLarge !== undefined) return yield* new Scenario.InvalidScenario({ source: path, issues: [tooLarge] })
    const bytes = yield* Effect.mapError(fs.readFile(path), cannotRead)
    return yield* Scenario.parseBytes(bytes, path)
  })

const demoCommand = Command.make("demo", { seed, trace, report, quiet }, (flags) => execute(demo, flags)).pipe(
  Command.withDescription(
    "Run the default scenario: two NICs on a cable, a block device and a sensor under load; " +
      "hot-unplug the disk and surprise-remove a NIC with operations in flight, plug both back, unload and reload a driver."
  )
)

const file = Args.file({ name: "scenario.json", exists: "yes" }).pipe(
  Args.withDescription("A scenario file (see examples/scenarios/)")
)

const runCommand = Command.make(
  "run",
  { file, seed, trace, report, quiet },
  (flags) => Effect.flatMap(readScenario(flags.file), (scenario) => execute(scenario, flags))
).pipe(
  Command.withDescription(
    "Run a scenario file on the simulator. Exit code 0: every guarantee held; 1: a guarantee was broken or driver code failed; " +
      "2: the file or the command line is invalid (nothing runs)"
  )
)

const validateCommand = Command.make(
  "validate",
  { file },
  ({ file }) =>
    Effect.flatMap(readScenario(file), (scenario) =>
      Effect.zipRight(
        Console.log(
          `${file}: valid scenario "${scenario.name}" (${scenario.devices.length} devices, ${scenario.timeline?.length ?? 0} timeline events)`
        ),
        printWarnings(file, Scenario.warnings(scenario))
      ))
).pipe(
  Command.withDescription(
    "Check a scenario file without running it: the schema, the cross-checks (names, times), and warnings for timeline actions that will be refused"
  )
)

/**
 * The root command.
 * @since 0.1.0
 * @category commands
 */
export const devscope = Command.make("devscope").pipe(
  Command.withDescription("Run device drivers on the devscope simulator and check the lifetime guarantees"),
  Command.withSubcommands([demoCommand, runCommand, validateCommand])
)

/**
 * Parses `argv` (as `process.argv`) and runs the command; fails with what went wrong (see
 * `exitCode` for the exit code of each).
 * @since 0.1.0
 * @category running
 */
export const main = Command.run(devscope, { name: "devscope", version: packageVersion() })

/** The package's own version, read from its package.json (both src/ and dist/ sit one level below it). */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { readonly version: string }
  return manifest.version
}

/**
 * Runs the command and turns every outcome into an exit code, with a short message on
 * stderr: 0 every guarantee held (or help was shown); 1 a guarantee was broken or driver code
 * failed; 2 the scenario cannot run or the command line is wrong (@effect/cli has already
 * printed its diagnostic for usage errors). Never fails.
 *
 * @example
 * ```ts
 * import * as NodeContext from "@effect/platform-node/NodeContext"
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import { Effect } from "effect"
 * import { Cli } from "@devscope/cli"
 *
 * Cli.exitCode(process.argv).pipe(
 *   Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code))),
 *   Effect.provide(NodeContext.layer),
 *   NodeRuntime.runMain
 * )
 * ```
 * @since 0.1.0
 * @category running
 */
export const exitCode = (argv: ReadonlyArray<string>): Effect.Effect<0 | 1 | 2, never, CliApp.CliApp.Environment> =>
  Effect.suspend(() => {
    const problem = optionProblem(argv.slice(2))
    return problem === undefined ? main(argv) : Effect.fail(new UsageError({ reason: problem }))
  }).pipe(
    Effect.as(0 as const),
    Effect.catchAll((e): Effect.Effect<1 | 2> => {
      if (ValidationError.isValidationError(e)) return Effect.succeed(2) // @effect/cli printed it
      switch (e._tag) {
        case "GuaranteesBroken":
          return Effect.as(Console.error(`\ndevscope: FAILED: ${e.message}`), 1 as const)
        case "InvalidScenario":
          return Effect.as(Console.error(`devscope: ${e.message}`), 2 as const)
        case "UsageError":
          return Effect.as(Console.error(`devscope: ${e.message}`), 2 as const)
        default:
          return Effect.as(Console.error(`devscope: ${(e as { readonly message?: unknown }).message ?? String(e)}`), 2 as const)
      }
    }),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.succeed(2 as const)
        : Effect.as(Console.error(`devscope: internal error (please report it):\n${Cause.pretty(cause)}`), 2 as const)
    )
  )
