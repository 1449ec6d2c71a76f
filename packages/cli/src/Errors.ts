/**
 * The errors of the `devscope` command, each with its exit code: a broken guarantee (1), a
 * command line or file that cannot run (2), a run stopped from outside (124, 130, 143).
 * `GuaranteesBroken` and `UsageError` are also exported by `Cli`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

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

/**
 * `devscope doctor` found that this machine cannot run devscope at all (a Node older than
 * `engines.node`); the report was printed. Exit code 1.
 * @since 0.1.0
 * @category errors
 */
export class MachineUnfit extends Data.TaggedError("MachineUnfit")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/**
 * A scenario cannot run on the QEMU backend (a device QEMU has no model of, simulator fault
 * rules), or QEMU cannot start here (not installed, no qtest accelerator module: `devscope
 * doctor` says what is missing). Nothing ran. The command exits with code 2.
 * @since 0.1.0
 * @category errors
 */
export class BackendUnavailable extends Data.TaggedError("BackendUnavailable")<{
  readonly backend: "qemu"
  readonly reason: string
}> {
  override get message() {
    return `the ${this.backend} backend cannot run this: ${this.reason}`
  }
}

/**
 * A run stopped from outside: SIGINT (exit code 130), SIGTERM (143) or `--timeout` (124).
 * Its summary and files were still written; `message` is the line printed at the stop.
 * @since 0.1.0
 * @category errors
 */
export class RunInterrupted extends Data.TaggedError("RunInterrupted")<{
  readonly scenario: string
  /** What stopped it. */
  readonly reason: "SIGINT" | "SIGTERM" | "timeout"
  /** The exit code: 130 for SIGINT, 143 for SIGTERM, 124 for a timeout. */
  readonly code: 130 | 143 | 124
  /** Virtual time of the stop, in milliseconds. */
  readonly at: number
}> {
  override get message() {
    return `interrupted at ${this.at.toFixed(3)} ms of virtual time (${this.reason})`
  }
}

/**
 * An exploration or fuzzing campaign stopped from outside: SIGINT (exit code 130), SIGTERM
 * (143) or `--timeout` (124). The result of the cases that ran was still printed.
 * @since 0.1.0
 * @category errors
 */
export class CampaignInterrupted extends Data.TaggedError("CampaignInterrupted")<{
  readonly command: "explore" | "fuzz"
  readonly scenario: string
  /** What stopped it. */
  readonly reason: "SIGINT" | "SIGTERM" | "timeout"
  /** The exit code: 130 for SIGINT, 143 for SIGTERM, 124 for a timeout. */
  readonly code: 130 | 143 | 124
  /** Cases run before the stop, and cases planned that did not run. */
  readonly casesRun: number
  readonly notRun: number
}> {
  override get message() {
    return `${this.command} interrupted (${this.reason}) after ${this.casesRun} case(s), ${this.notRun} not run`
  }
}
