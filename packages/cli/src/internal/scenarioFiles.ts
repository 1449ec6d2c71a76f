/**
 * The scenario files of `run` and `validate`: one or more paths, glob patterns (expanded
 * here: quoted patterns reach the command unexpanded) and `-` for standard input. Every file
 * is read and validated before anything runs.
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Options from "@effect/cli/Options"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as path from "node:path"
import { glob } from "tinyglobby"
import * as Scenario from "../Scenario.js"
import { UsageError } from "../Errors.js"
import { readScenario, readStdin, STDIN } from "./sources.js"

export const files = Args.text({ name: "scenario.json" }).pipe(
  Args.withDescription(
    "Scenario files (see examples/scenarios/): paths, quoted glob patterns ('examples/scenarios/*.json'), or - for standard input"
  ),
  Args.atLeast(1)
)

export const allowLarge = Options.boolean("allow-large").pipe(
  Options.withDescription(
    "Run (or call valid) a scenario over the limits on a run's work (devices, simulator events, memory; see docs/cli.md), " +
      "which are refused by default"
  )
)

/** Whether an argument is a glob pattern rather than a file name. */
export const isPattern = (arg: string): boolean => /[*?[\]{}]/.test(arg)

/** One scenario file to read: its name in messages, and how to read it. */
interface Source {
  readonly source: string
  readonly read: (options: Scenario.DecodeOptions) => Effect.Effect<Scenario.Scenario, Scenario.InvalidScenario, FileSystem.FileSystem>
}

/** The files the arguments name, in order: patterns expanded (sorted), `-` as stdin, duplicates once. */
export const expand = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out: Array<Source> = []
    const seen = new Set<string>()
    const add = (file: string) => {
      const key = path.resolve(file)
      if (seen.has(key)) return
      seen.add(key)
      out.push({ source: file, read: (options) => readScenario(file, options) })
    }
    let stdin = false
    for (const arg of args) {
      if (arg === "-") {
        if (stdin) return yield* new UsageError({ reason: "- (standard input) is given twice" })
        stdin = true
        out.push({ source: STDIN, read: readStdin })
        continue
      }
      if (!isPattern(arg)) {
        add(arg)
        continue
      }
      const matched = yield* Effect.tryPromise({
        // JSON Schemas (`*.schema.json`, as the one beside the sample scenarios) are not
        // scenarios: a pattern skips them; named explicitly, one is read (and refused).
        try: () => glob([arg], { onlyFiles: true, expandDirectories: false, absolute: path.isAbsolute(arg), ignore: ["**/*.schema.json"] }),
        catch: (e) => new UsageError({ reason: `pattern ${arg}: ${(e as Error).message}` })
      })
      if (matched.length === 0) return yield* new UsageError({ reason: `pattern ${arg} matches no file` })
      for (const file of [...matched].sort()) add(file)
    }
    return out
  })

interface Read {
  readonly source: string
  readonly result: Either.Either<Scenario.Scenario, Scenario.InvalidScenario>
}

/** Reads and validates every file the arguments name. */
export const readAll = (args: ReadonlyArray<string>, options: Scenario.DecodeOptions) =>
  Effect.flatMap(
    expand(args),
    (sources) =>
      Effect.forEach(sources, (s) => Effect.map(Effect.either(s.read(options)), (result): Read => ({ source: s.source, result })))
  )

const invalidOf = (read: ReadonlyArray<Read>) =>
  read.flatMap((r) => (Either.isLeft(r.result) ? [r.result.left] : []))

/**
 * `validate`: each file's verdict, the invalid ones on stderr; fails (exit 2) if any is
 * invalid, with the file's own error when there is one file.
 */
export const validateAll = (
  args: ReadonlyArray<string>,
  options: Scenario.DecodeOptions,
  onValid: (source: string, scenario: Scenario.Scenario) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const read = yield* readAll(args, options)
    const invalid = invalidOf(read)
    if (read.length === 1 && invalid.length === 1) return yield* invalid[0]!
    for (const r of read) {
      if (Either.isRight(r.result)) yield* onValid(r.source, r.result.right)
      else yield* Console.error(`devscope: ${r.result.left.message}`)
    }
    if (invalid.length > 0) {
      return yield* new UsageError({ reason: `${invalid.length} of ${read.length} scenario files are invalid` })
    }
  })

/** The exit code an error of a run maps to (as `Cli.exitCode` maps it). */
/** How bad an error is, to pick the one the command exits with: a stop from outside is the worst (it ends everything). */
const codeOf = (e: { readonly _tag: string }) => (e._tag === "RunInterrupted" ? 3 : e._tag === "GuaranteesBroken" ? 1 : 2)

/**
 * `run`: every file read and validated first (nothing runs if one is invalid), then each run
 * in turn; a final line with each file's outcome; fails with the worst run's error.
 */
export const runAll = <E extends { readonly _tag: string; readonly message: string }, R>(
  args: ReadonlyArray<string>,
  options: Scenario.DecodeOptions,
  run: (scenario: Scenario.Scenario, source: string) => Effect.Effect<void, E, R>,
  /** Options that name one output file: refused with several scenario files. */
  outputs: ReadonlyArray<readonly [string, Option.Option<string>]> = [],
  /** Where the lines between runs go (stderr under `--json`, whose stdout is the document). */
  log: (text: string) => Effect.Effect<void> = Console.log
) =>
  Effect.gen(function*() {
    const read = yield* readAll(args, options)
    const invalid = invalidOf(read)
    if (read.length === 1) {
      const only = read[0]!
      if (Either.isLeft(only.result)) return yield* only.result.left
      return yield* run(only.result.right, only.source)
    }
    const given = outputs.filter(([, file]) => Option.isSome(file)).map(([flag]) => flag)
    if (given.length > 0) {
      return yield* new UsageError({
        reason: `${given.join(" and ")} ${given.length === 1 ? "names" : "name"} one file, and ${read.length} scenario files are given ` +
          `(run them one at a time for their files)`
      })
    }
    if (invalid.length > 0) {
      for (const e of invalid) yield* Console.error(`devscope: ${e.message}`)
      return yield* new UsageError({ reason: `${invalid.length} of ${read.length} scenario files are invalid; nothing ran` })
    }
    const outcomes: Array<{ readonly source: string; readonly error: E | undefined }> = []
    for (const r of read) {
      const scenario = Either.getOrThrow(r.result)
      yield* log(`\n== ${r.source}`)
      const result = yield* Effect.either(run(scenario, r.source))
      outcomes.push({ source: r.source, error: Either.isLeft(result) ? result.left : undefined })
      if (Either.isLeft(result)) yield* Console.error(`devscope: ${r.source}: ${result.left.message}`)
      // A stop (SIGINT, SIGTERM, --timeout) stops every run, not just this one.
      if (Either.isLeft(result) && result.left._tag === "RunInterrupted") break
    }
    const failed = outcomes.filter((o) => o.error !== undefined)
    yield* log(
      `\ndevscope: ${outcomes.length} scenario files: ${outcomes.length - failed.length} passed` +
        (failed.length === 0 ? "" : `, ${failed.length} failed (${failed.map((f) => f.source).join(", ")})`)
    )
    if (failed.length > 0) {
      const worst = failed.reduce((a, b) => (codeOf(b.error!) > codeOf(a.error!) ? b : a))
      return yield* Effect.fail(worst.error!)
    }
  })
