/**
 * The `devscope` command:
 *
 * - `devscope demo`: the default scenario (two NICs on a cable, a disk and a sensor under
 *   load; hot-unplug, surprise removal, re-plug, driver unload) with a live display and a
 *   summary table;
 * - `devscope run <scenario.json>`: a scenario file, validated before anything runs;
 * - `devscope validate <scenario.json>`: only the validation.
 *
 * `--seed` replays a run exactly (time is virtual, randomness seeded); `--trace out.json`
 * writes a Chrome/Perfetto trace and `--report out.html` a self-contained HTML timeline.
 * The exit code is 0 when every guarantee held, 1 when one was broken, 2 for a scenario that
 * cannot run.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { demo } from "./internal/demo.js"
import * as Perfetto from "./internal/perfetto.js"
import type { RunRecord } from "./internal/record.js"
import * as Report from "./internal/report.js"
import * as Runner from "./internal/runner.js"
import * as Summary from "./internal/summary.js"
import * as Scenario from "./Scenario.js"

/**
 * A run in which a guarantee of DESIGN.md section 5 was broken (exit code 1).
 * @since 0.1.0
 * @category errors
 */
export class GuaranteesBroken extends Data.TaggedError("GuaranteesBroken")<{
  readonly scenario: string
  readonly violations: number
}> {
  override get message() {
    return `${this.violations} guarantee violation(s) in scenario "${this.scenario}"`
  }
}

const seed = Options.integer("seed").pipe(
  Options.withDescription("Seed of the run's randomness (overrides the scenario's); the same seed replays the same run"),
  Options.optional
)
const trace = Options.file("trace").pipe(
  Options.withDescription("Write a Chrome/Perfetto trace (JSON) of the run to this file (open it in ui.perfetto.dev)"),
  Options.optional
)
const report = Options.file("report").pipe(
  Options.withDescription("Write a self-contained HTML report with an SVG timeline of the run to this file"),
  Options.optional
)
const quiet = Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("Only print the summary"))

interface RunFlags {
  readonly seed: Option.Option<number>
  readonly trace: Option.Option<string>
  readonly report: Option.Option<string>
  readonly quiet: boolean
}

/** Runs a validated scenario with live output, writes the requested files, judges the run. */
const execute = (scenario: Scenario.Scenario, flags: RunFlags) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
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
    }
    const record: RunRecord = yield* Runner.run(scenario, {
      seed: seedUsed,
      onProgress: tty ? (p) => process.stdout.write(`\r${Summary.progressLine(p)}\x1b[K`) : undefined,
      onAction: flags.quiet ? undefined : (entry, p) => {
        if (tty) process.stdout.write("\r\x1b[K")
        process.stdout.write(`${Summary.actionLine(entry)}\n`)
        process.stdout.write(`${tty ? "" : "    "}${Summary.progressLine(p)}${tty ? "" : "\n"}`)
      }
    })
    if (tty) process.stdout.write("\r\x1b[K")
    yield* Console.log(`\n${Summary.summary(record)}`)
    if (Option.isSome(flags.trace)) {
      yield* fs.writeFileString(flags.trace.value, Perfetto.chromeTraceJson(record))
      yield* Console.log(`trace written to ${flags.trace.value}`)
    }
    if (Option.isSome(flags.report)) {
      yield* fs.writeFileString(flags.report.value, Report.toHtml(record))
      yield* Console.log(`report written to ${flags.report.value}`)
    }
    if (record.violations.length > 0) {
      return yield* Effect.fail(new GuaranteesBroken({ scenario: scenario.name, violations: record.violationCount }))
    }
  })

const readScenario = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* Effect.mapError(
      fs.readFileString(path),
      (e) => new Scenario.InvalidScenario({ source: path, issues: [{ path: "(file)", message: e.message }] })
    )
    return yield* Scenario.parse(text, path)
  })

const demoCommand = Command.make("demo", { seed, trace, report, quiet }, (flags) => execute(demo, flags)).pipe(
  Command.withDescription(
    "Run the default scenario: two NICs on a cable, a block device and a sensor under load; " +
      "hot-unplug the disk, surprise-remove a NIC, plug both back, unload and reload a driver."
  )
)

const file = Args.file({ name: "scenario.json", exists: "yes" }).pipe(
  Args.withDescription("A scenario file (see examples/scenarios/)")
)

const runCommand = Command.make(
  "run",
  { file, seed, trace, report, quiet },
  (flags) => Effect.flatMap(readScenario(flags.file), (scenario) => execute(scenario, flags))
).pipe(Command.withDescription("Run a scenario file on the simulator; exits 1 if a guarantee was broken, 2 if the file is invalid"))

const validateCommand = Command.make(
  "validate",
  { file },
  ({ file }) =>
    Effect.flatMap(readScenario(file), (scenario) =>
      Console.log(`${file}: valid scenario "${scenario.name}" (${scenario.devices.length} devices, ${scenario.timeline?.length ?? 0} timeline events)`))
).pipe(Command.withDescription("Check a scenario file without running it"))

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
 * Parses `argv` (as `process.argv`) and runs the command.
 *
 * @example
 * ```ts
 * import { NodeContext, NodeRuntime } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { Cli } from "@devscope/cli"
 *
 * Cli.main(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
 * ```
 * @since 0.1.0
 * @category running
 */
export const main = Command.run(devscope, { name: "devscope", version: "0.1.0" })
