/**
 * Options shared by the commands that run a scenario, each checked before anything runs.
 * @internal
 */
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scenario from "../Scenario.js"
import { parseDuration } from "./stop.js"

export const invalid = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))

/**
 * An output path must be writable before the run starts (a long run must not be lost to a
 * typo in `--trace`): an existing file we may write, or a new name in a directory we may
 * write in.
 */
export const writable = (flag: string) => (file: string): Effect.Effect<string, ValidationError.ValidationError, FileSystem.FileSystem | Path.Path> =>
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

export const seed = Options.text("seed").pipe(
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
export const trace = Options.file("trace").pipe(
  Options.mapEffect(writable("trace")),
  Options.withDescription("Write a Chrome/Perfetto trace (JSON) of the run to this file (open it in ui.perfetto.dev); checked writable before the run"),
  Options.optional
)
export const report = Options.file("report").pipe(
  Options.mapEffect(writable("report")),
  Options.withDescription("Write a self-contained HTML report with an SVG timeline of the run to this file; checked writable before the run"),
  Options.optional
)
export const json = Options.boolean("json").pipe(
  Options.withDescription(
    "Print the verdict as one JSON document on stdout (format: docs/cli.md); the human output goes to stderr"
  )
)
export const junit = Options.file("junit").pipe(
  Options.mapEffect(writable("junit")),
  Options.withDescription("Write a JUnit XML file of the verdict to this file (a test case per guarantee and per device), for CI; checked writable before the run"),
  Options.optional
)
export const quiet = Options.boolean("quiet").pipe(
  Options.withAlias("q"),
  Options.withDescription("Only print the summary (and errors): no header, no timeline lines, no progress")
)

/** A `--timeout`: wall milliseconds, and the text given (for messages). */
export interface Timeout {
  readonly millis: number
  readonly text: string
}

export const timeout = Options.text("timeout").pipe(
  Options.withPseudoName("duration"),
  Options.mapEffect((text): Effect.Effect<Timeout, ValidationError.ValidationError> => {
    const parsed = parseDuration(text)
    return "millis" in parsed
      ? Effect.succeed({ millis: parsed.millis, text })
      : invalid(`--timeout ${JSON.stringify(text).slice(0, 40)}: ${parsed.problem}`)
  }),
  Options.withDescription(
    "Stop after this much wall time (30s, 2 minutes, 1.5h), as Ctrl-C does: what ran is still reported (a run's summary, " +
      "trace and report; a campaign's result of the cases run); exit code 124"
  ),
  Options.optional
)

export const backend = Options.choice("backend", ["sim", "qemu"]).pipe(
  Options.withDefault("sim" as const),
  Options.withDescription(
    "Where the devices are: the simulator's models (sim, the default) or QEMU's own device models (qemu: edu and pci-testdev " +
      "devices, no fault rules; needs QEMU and its qtest accelerator, see devscope doctor)"
  )
)

export interface RunFlags {
  readonly seed: Option.Option<number>
  readonly trace: Option.Option<string>
  readonly report: Option.Option<string>
  readonly quiet: boolean
  /** Print the verdict as JSON on stdout, the human output on stderr. */
  readonly json: boolean
  readonly junit: Option.Option<string>
  /** `--timeout`: stop the run after this much wall time (exit code 124). */
  readonly timeout?: Option.Option<Timeout> | undefined
  /** `--backend`: the simulator (default) or QEMU. */
  readonly backend?: "sim" | "qemu" | undefined
}

