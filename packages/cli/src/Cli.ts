/**
 * The `devscope` command:
 *
 * - `devscope demo`: the default scenario (two NICs on a cable, a disk and a sensor under
 *   load; hot-unplug, surprise removal, re-plug, driver unload) with a live display and a
 *   summary table;
 * - `devscope run <scenario.json>...`: scenario files (paths, quoted globs, `-` for stdin),
 *   all validated before anything runs, then run in turn; `--backend qemu` runs them on
 *   QEMU's own edu and pci-testdev models instead of the simulator's;
 * - `devscope validate <scenario.json>...`: only the validation (and the warnings), including
 *   the limits on a run's work (`Scenario.limits`; `--allow-large` lifts them);
 * - `devscope schema`: the scenario format as JSON Schema;
 * - `devscope list`: device kinds, drivers, planted bugs, fault kinds and timeline actions;
 * - `devscope doctor`: what this machine can do (Node, CPUs for `--workers`, QEMU for the
 *   QEMU backend, each missing piece with its fix); exit code 1 only when Node is too old.
 *
 * `--seed` replays a run exactly (time is virtual, randomness seeded); `--trace out.json`
 * writes a Chrome/Perfetto trace and `--report out.html` a self-contained HTML timeline;
 * `--json` prints the verdict as JSON on stdout (the human output on stderr) and `--junit
 * out.xml` writes it as JUnit XML (see `Verdict`).
 *
 * Exit codes (`exitCode`): 0 every guarantee held; 1 a guarantee was broken or driver code
 * failed (a defect in an interrupt handler or a binding fiber, an action that hung, a stall);
 * 2 the scenario cannot run or the command line is wrong (an invalid or missing file, a bad
 * option, an output file that cannot be written), with a short message and nothing run;
 * 130, 143, 124 a run stopped by SIGINT (Ctrl-C), SIGTERM or `--timeout`, after its summary
 * and files of what ran were written.
 *
 * @since 0.1.0
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import * as Campaigns from "./internal/campaignCommands.js"
import { demo } from "./internal/demo.js"
import { doctorCommand } from "./internal/doctor.js"
import * as errors from "./Errors.js"
import { emitVerdicts, execute, printWarnings, type Ran } from "./internal/execute.js"
import { helpArgs, optionProblem, wizardProblem } from "./internal/flags.js"
import * as List from "./internal/list.js"
import { withPlainConsole } from "./internal/ansi.js"
import { backend, json, junit, quiet, report, seed, timeout, trace } from "./internal/options.js"
import { allowLarge, files, runAll, validateAll } from "./internal/scenarioFiles.js"
import * as Scenario from "./Scenario.js"

/**
 * A run in which a guarantee G1-G5 (docs/contract.md) was broken, or driver code failed
 * (exit code 1). Defined in `Errors`.
 * @since 0.1.0
 * @category errors
 */
export const GuaranteesBroken: typeof errors.GuaranteesBroken = errors.GuaranteesBroken

/**
 * @since 0.1.0
 * @category errors
 */
export type GuaranteesBroken = errors.GuaranteesBroken

/**
 * The command line asks for something that cannot be done before anything runs, or an
 * output file could not be written (exit code 2). Defined in `Errors`.
 * @since 0.1.0
 * @category errors
 */
export const UsageError: typeof errors.UsageError = errors.UsageError

/**
 * @since 0.1.0
 * @category errors
 */
export type UsageError = errors.UsageError

const demoCommand = Command.make("demo", { seed, trace, report, junit, json, quiet, timeout }, (flags) => execute(demo, flags)).pipe(
  Command.withDescription(
    "Run the default scenario: two NICs on a cable, a block device and a sensor under load; " +
      "hot-unplug the disk and surprise-remove a NIC with operations in flight, plug both back, unload and reload a driver."
  )
)

const runCommand = Command.make(
  "run",
  { files, seed, trace, report, junit, json, quiet, allowLarge, timeout, backend },
  (flags) =>
    Effect.gen(function*() {
      // --json and --junit cover every scenario file: one document, a testsuite per run.
      const ran: Array<Ran> = []
      const exit = yield* Effect.exit(
        runAll(flags.files, { allowLarge: flags.allowLarge }, (scenario, source) => execute(scenario, flags, source, ran), [
          ["--trace", flags.trace],
          ["--report", flags.report]
        ], flags.json ? Console.error : Console.log)
      )
      yield* emitVerdicts(ran, flags, exit._tag === "Failure")
      return yield* exit
    })
).pipe(
  Command.withDescription(
    "Run scenario files on the simulator (or, with --backend qemu, on QEMU's device models), each in turn (all are validated first). " +
      "Exit code 0: every guarantee held; " +
      "1: a guarantee was broken or driver code failed; 2: a file or the command line is invalid (nothing runs), " +
      "or the run's work is over the limits (--allow-large)"
  )
)

const validateCommand = Command.make(
  "validate",
  { files, allowLarge },
  ({ allowLarge, files }) =>
    validateAll(files, { allowLarge }, (file, scenario) =>
      Effect.zipRight(
        Console.log(
          `${file}: valid scenario "${scenario.name}" (${scenario.devices.length} devices, ${scenario.timeline?.length ?? 0} timeline events)`
        ),
        printWarnings(file, Scenario.warnings(scenario))
      ))
).pipe(
  Command.withDescription(
    "Check scenario files without running them: the schema, the cross-checks (names, times), the limits on the run's work " +
      "(--allow-large), and warnings for timeline actions that will be refused; exit code 2 if any file is invalid"
  )
)

const schemaCommand = Command.make(
  "schema",
  {},
  () => Console.log(JSON.stringify(Scenario.jsonSchema(), null, 2))
).pipe(
  Command.withDescription(
    "Print the scenario format as a JSON Schema (draft 2020-12), generated from its effect/Schema definition; " +
      "name it in a scenario's \"$schema\" for an editor to check the file"
  )
)

const listCommand = Command.make(
  "list",
  { json: Options.boolean("json").pipe(Options.withDescription("Print the lists as one JSON document")) },
  ({ json }) => Console.log(json ? JSON.stringify(List.catalogue(), null, 2) : List.catalogueText())
).pipe(
  Command.withDescription(
    "List what a scenario can name: device kinds (bus, interrupt lines), drivers, planted bugs (what each does), " +
      "fault kinds and timeline actions, with their fields"
  )
)

/**
 * The root command.
 * @since 0.1.0
 * @category commands
 */
export const devscope = Command.make("devscope").pipe(
  Command.withDescription("Run device drivers on the devscope simulator and check the lifetime guarantees"),
  Command.withSubcommands([
    demoCommand,
    runCommand,
    validateCommand,
    schemaCommand,
    listCommand,
    Campaigns.exploreCommand,
    Campaigns.fuzzCommand,
    Campaigns.replayCommand,
    Campaigns.mergeCommand,
    doctorCommand
  ])
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
 * printed its diagnostic for usage errors); 130 a run stopped by SIGINT, 143 by SIGTERM, 124
 * by `--timeout` (its summary and files still written). Never fails. Nothing printed carries
 * an ANSI escape unless its stream is a terminal and `NO_COLOR` is not set.
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
export const exitCode = (
  argv: ReadonlyArray<string>
): Effect.Effect<0 | 1 | 2 | 124 | 130 | 143, never, CliApp.CliApp.Environment> =>
  Effect.suspend(() => {
    const problem = optionProblem(argv.slice(2)) ?? wizardProblem(argv.slice(2), process.stdin.isTTY === true)
    return problem === undefined
      ? main([...argv.slice(0, 2), ...helpArgs(argv.slice(2))])
      : Effect.fail(new errors.UsageError({ reason: problem }))
  }).pipe(
    Effect.as(0 as const),
    Effect.catchAll((e): Effect.Effect<1 | 2 | 124 | 130 | 143> => {
      if (ValidationError.isValidationError(e)) return Effect.succeed(2) // @effect/cli printed it
      switch (e._tag) {
        case "RunInterrupted":
          return Effect.succeed(e.code) // the run printed "interrupted at ..." and its summary
        case "CampaignInterrupted":
          return Effect.succeed(e.code) // the campaign printed "interrupted ..." and its result
        case "GuaranteesBroken":
          return Effect.as(Console.error(`\ndevscope: FAILED: ${e.message}`), 1 as const)
        case "MachineUnfit":
          return Effect.as(Console.error(`devscope: this machine cannot run devscope: ${e.message}`), 1 as const)
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
    ),
    // @effect/cli colours its help and errors whatever the output: strip where not allowed.
    withPlainConsole
  )
