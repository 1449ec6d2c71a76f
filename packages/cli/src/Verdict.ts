/**
 * Machine-readable verdicts of a run, for CI: the JSON document `devscope run --json` prints
 * on stdout (`RunVerdict`, format `version` 1), and the JUnit XML file `--junit FILE` writes
 * (one `<testsuite>` per scenario, a `<testcase>` per guarantee G1-G5, per device and for the
 * run as a whole).
 *
 * @since 0.1.0
 */
import * as internal from "./internal/verdict.js"
import type { DeviceSummary, DriverFailure, Guarantee, Note, RunRecord, Stall, TimelineEntry, Violation } from "./Runner.js"

/**
 * The version of the JSON format (`RunVerdict.version`). It changes when a field is removed
 * or changes meaning; fields may be added within a version.
 * @since 0.1.0
 * @category models
 */
export const FORMAT_VERSION: 1 = internal.FORMAT_VERSION

/**
 * Where a run's scenario came from and how to run it again, event for event.
 * @since 0.1.0
 * @category models
 */
export interface Replay {
  /** The seed the run used (`--seed`, else the scenario's, else 1). */
  readonly seed: number
  /** The scenario file as given on the command line, or `"demo"` for the built-in scenario. */
  readonly source: string
  /** The command line that replays the run: `devscope run FILE --seed N` (`devscope demo --seed N`). */
  readonly command: string
}

/**
 * How each guarantee fared in a run.
 * @since 0.1.0
 * @category models
 */
export interface GuaranteeResult {
  /** The guarantee. */
  readonly guarantee: Guarantee
  /** What it promises, in a few words. */
  readonly title: string
  /** No violation of it was found. */
  readonly held: boolean
  /** Violations of it among those listed in `violations` (a sample: at most 5 per device and kind). */
  readonly shown: number
}

/**
 * The JSON document of one run (`devscope run --json`, `devscope demo --json`). Times are
 * virtual milliseconds unless named `wall`.
 * @since 0.1.0
 * @category models
 */
export interface RunVerdict {
  /** The format's version, `FORMAT_VERSION`. */
  readonly version: 1
  /** `passed`: every guarantee held and no driver code failed; `failed`; `interrupted`: stopped early (a signal or `--timeout`), judged on what ran. */
  readonly verdict: "passed" | "failed" | "interrupted"
  /** The command's exit code for this run: 0 passed, 1 failed; interrupted: 130 SIGINT, 143 SIGTERM, 124 `--timeout`. */
  readonly exitCode: 0 | 1 | 124 | 130 | 143
  /** The verdict in words (`2 guarantee violation(s), 1 driver failure(s)`, `all guarantees held`). */
  readonly summary: string
  /** The scenario. */
  readonly scenario: {
    /** Its `name`. */
    readonly name: string
    /** Its `description`, if it has one. */
    readonly description?: string | undefined
    /** Its `duration`, in milliseconds. */
    readonly duration: number
  }
  /** The seed the run used. */
  readonly seed: number
  /** `"qemu"` for a run on QEMU's device models (`--backend qemu`); absent on the simulator. */
  readonly backend?: "qemu" | undefined
  /** How to run it again. */
  readonly replay: Replay
  /** Virtual time at the end of the run. */
  readonly endedAt: number
  /** Wall-clock time the run took, in milliseconds. */
  readonly wallMillis: number
  /** G1-G5, each held or not. */
  readonly guarantees: ReadonlyArray<GuaranteeResult>
  /** Per-device totals, in the scenario's order. */
  readonly devices: ReadonlyArray<DeviceSummary>
  /** How many violations were found, listed or not. */
  readonly violationCount: number
  /** A sample of the violations (at most 5 per guarantee and device). */
  readonly violations: ReadonlyArray<Violation>
  /** Driver code that failed where the binding machinery caught it. */
  readonly failures: ReadonlyArray<DriverFailure>
  /** Hangs and stalls, with their wait sites. */
  readonly stalls: ReadonlyArray<Stall>
  /** Warnings logged during the run (they do not fail it). */
  readonly notes: ReadonlyArray<Note>
  /** The scenario's actions as executed, with the ones the end of the run added. */
  readonly timeline: ReadonlyArray<TimelineEntry>
  /** Present when the run was stopped early: why, and at what virtual time. */
  readonly interrupted?: { readonly reason: string; readonly at: number } | undefined
  /** What capped buffers let go: `trace`, the simulator events dropped from the trace (0 when none). */
  readonly dropped: { readonly trace: number }
}

/**
 * The JSON document of `devscope run --json` given several scenario files (a glob, several
 * paths): one `RunVerdict` per scenario, in order, with the worst verdict and exit code.
 * @since 0.1.0
 * @category models
 */
export interface RunsVerdict {
  /** The format's version, `FORMAT_VERSION`. */
  readonly version: 1
  /** `interrupted` if a run was, else `failed` if a run failed, else `passed`. */
  readonly verdict: "passed" | "failed" | "interrupted"
  /** The command's exit code: that of the first run with the worst verdict. */
  readonly exitCode: 0 | 1 | 124 | 130 | 143
  /** Each scenario's verdict, in the order they ran. */
  readonly runs: ReadonlyArray<RunVerdict>
}

/**
 * Where a run came from, for its replay command: the scenario file (or `"demo"`) and the
 * scenario itself.
 * @since 0.1.0
 * @category models
 */
export interface RunSource {
  /** The scenario file as given on the command line, or `"demo"`. */
  readonly source: string
  /** The scenario's `name`. */
  readonly name: string
  /** Its `description`. */
  readonly description?: string | undefined
  /** Its `duration`, in milliseconds. */
  readonly duration: number
}

/**
 * The JSON document of a run.
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Runner, Scenario, Verdict } from "@devscope/cli"
 *
 * const scenario = Either.getOrThrow(Scenario.decode({
 *   name: "one sensor", duration: 20, devices: [{ name: "temp0", kind: "sensor" }], drivers: [{ kind: "sensor" }]
 * }, "inline"))
 * Effect.runPromise(Runner.run(scenario, { seed: 5 })).then((record) => {
 *   const verdict = Verdict.toJson(record, { source: "one.json", ...scenario })
 *   console.log(verdict.verdict, verdict.replay.command) // passed devscope run one.json --seed 5
 * })
 * ```
 * @since 0.1.0
 * @category rendering
 */
export const toJson: (record: RunRecord, source: RunSource) => RunVerdict = internal.toJson

/**
 * The JSON document of several runs (`RunsVerdict`): each one's `RunVerdict`, with the worst
 * verdict and exit code.
 * @since 0.1.0
 * @category rendering
 */
export const toJsonAll: (
  runs: ReadonlyArray<{ readonly record: RunRecord; readonly source: RunSource }>
) => RunsVerdict = internal.toJsonAll

/**
 * A JUnit XML document of one or more runs: a `<testsuite>` per run (named after its
 * scenario), a `<testcase>` per guarantee G1-G5, per device and for the run as a whole, each
 * broken one with a `<failure>` (or an `<error>` for an interrupted run) saying what broke
 * and how to replay it.
 * @since 0.1.0
 * @category rendering
 */
export const junitXml: (
  runs: ReadonlyArray<{ readonly record: RunRecord; readonly source: RunSource }>
) => string = internal.junitXml
