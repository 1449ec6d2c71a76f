/**
 * Runs a scenario on the simulator in virtual time and produces its `RunRecord`: what ran,
 * the lifecycle events and trace, per-device totals, and the guarantees found broken.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { Lifecycle } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"
import type { BackendUnavailable } from "./Errors.js"
import * as perfetto from "./internal/perfetto.js"
import * as qemuRun from "./internal/qemuRun.js"
import * as recordInternal from "./internal/record.js"
import * as report from "./internal/report.js"
import * as internal from "./internal/runner.js"
import * as summary from "./internal/summary.js"
import type { Issue, Scenario } from "./Scenario.js"

/**
 * A guarantee of docs/contract.md a run can violate (G1-G5, as the oracle checks them).
 * @since 0.1.0
 * @category models
 */
export type Guarantee = "G1" | "G2" | "G3" | "G4" | "G5"

/**
 * A guarantee the runner found broken, on one device.
 * @since 0.1.0
 * @category models
 */
export interface Violation {
  /** The guarantee broken. */
  readonly guarantee: Guarantee
  /** The device it was broken on; `"-"` for the run as a whole. */
  readonly device: string
  /** What went wrong, in one line. */
  readonly message: string
}

/**
 * One unbind of a device, as the runner measured it.
 * @since 0.1.0
 * @category models
 */
export interface UnbindSummary {
  /** Why the device was unbound. */
  readonly cause: Lifecycle.UnbindCause
  /**
   * Virtual time the unbind started at, in milliseconds: its `Unbinding` event's `at` (for a
   * probe failure's teardown, which has none, the failed probe's `Probing`).
   */
  readonly startedAt: number
  /** Virtual time the unbind ended at, in milliseconds (its `Unbound` event's `at`). */
  readonly at: number
  /** Virtual time the unbind took, in milliseconds. */
  readonly virtualMillis: number
  /** Wall-clock time the unbind took, in milliseconds. */
  readonly wallMillis: number
  /** Resources the unbind released. */
  readonly released: number
  /** Leaks its leak check found. */
  readonly leaks: number
}

/**
 * Per-device totals of a run.
 * @since 0.1.0
 * @category models
 */
export interface DeviceSummary {
  /** The device's name. */
  readonly device: string
  /** Its kind in the scenario (`nic`, `blk`, `sensor`). */
  readonly kind: string
  /** The bus it sits on. */
  readonly bus: "pci" | "platform"
  /** Operations that succeeded. */
  readonly completed: number
  /** Operations that failed with `DeviceGone`. */
  readonly failedGone: number
  /** Operations that never resolved: still in flight at the end, or interrupted. */
  readonly lost: number
  /** Operations still in flight at the end of the run. */
  readonly inFlight: number
  /** Its unbinds, in order. */
  readonly unbinds: ReadonlyArray<UnbindSummary>
  /** Resources released, every unbind counted. */
  readonly released: number
  /** Leaks found, every unbind counted. */
  readonly leaks: number
  /** IOMMU faults the device caused. */
  readonly iommuFaults: number
}

/**
 * A scenario action as executed (plug, unplug, surprise, unbind, bind, unload, ...).
 * @since 0.1.0
 * @category models
 */
export interface TimelineEntry {
  /** Virtual time the action started at, in milliseconds. */
  readonly at: number
  /** The action (`plug`, `unplug`, `surprise`, `unbind`, `bind`, `unload`, `load`, ...). */
  readonly action: string
  /** The device or driver it was about. */
  readonly target: string
  /** What came of it, in words (a refusal, `hung: ...`, `skipped: ...`); absent when nothing is worth saying. */
  readonly detail?: string | undefined
  /**
   * Operations of the target device (of the driver's devices, for `unload`/`load`) in
   * flight when the action started, by operation (`{ write: 3, read: 1 }`).
   */
  readonly inFlight?: Readonly<Record<string, number>> | undefined
  /** Virtual time the action took, in milliseconds (an unbind waits for its drain); absent if it hung. */
  readonly tookMillis?: number | undefined
}

/**
 * A failure of driver code the binding machinery caught and logged instead of letting it
 * reach the user: an interrupt handler that died (`UseAfterUnbind` after a bad teardown), a
 * binding fiber that died, a handle's destructor that failed. Identical ones are counted.
 * @since 0.1.0
 * @category models
 */
export interface DriverFailure {
  /** The device whose driver code failed. */
  readonly device: string
  /** What failed: `irq 0: handler failed`, `binding fiber died`, ... */
  readonly where: string
  /** The defect or error, one line (`UseAfterUnbind: Use of Devres ... after ...`). */
  readonly error: string
  /** A defect (a die), rather than a typed failure. */
  readonly defect: boolean
  /** Virtual time of the first one, milliseconds. */
  readonly at: number
  /** How many identical ones there were. */
  readonly count: number
}

/**
 * Why a run did not end on its own: an action that hung, a world where nothing could run any
 * more (stalled) or where time ran past the limit. `waitSites` say what was still waiting:
 * the spans of the fibers that waited (innermost first, joined by `<`), or the spans still
 * open when a hung action was given up on.
 * @since 0.1.0
 * @category models
 */
export interface Stall {
  /** How the run was stuck: stalled, past the time limit, or an action that hung. */
  readonly outcome: "Stalled" | "TimedOut" | "Hung"
  /** The device (or driver) a hung action was about; "-" for the run as a whole. */
  readonly device: string
  /** Virtual time, milliseconds. */
  readonly at: number
  /** What was stuck, in words (the action, or the run). */
  readonly what: string
  /** The wait sites: spans joined by `<`, innermost first. */
  readonly waitSites: ReadonlyArray<string>
}

/**
 * A warning the drivers or the core logged during a run (an interrupt storm, a gate
 * deadline), counted.
 * @since 0.1.0
 * @category models
 */
export interface Note {
  /** The device it is about. */
  readonly device: string
  /** The warning. */
  readonly message: string
  /** Virtual time of the first one, milliseconds. */
  readonly at: number
  /** How many identical ones were logged. */
  readonly count: number
}

/**
 * Everything one run produced. Times are virtual milliseconds unless named `wall`.
 * @since 0.1.0
 * @category models
 */
export interface RunRecord {
  /** The scenario's name. */
  readonly scenario: string
  /** The simulator's seed the run used. */
  readonly seed: number
  /** Virtual time at the end of the run, in milliseconds. */
  readonly endedAt: number
  /** Wall-clock time the run took, in milliseconds. */
  readonly wallMillis: number
  /** The lifecycle events of both buses, in order. */
  readonly lifecycle: ReadonlyArray<{
    /** The bus the event happened on. */
    readonly bus: "pci" | "platform"
    /** The event. */
    readonly event: Lifecycle.LifecycleEvent
  }>
  /** The simulator's trace. */
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  /** The IOMMU faults recorded. */
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  /** Scenario actions as executed. */
  readonly timeline: ReadonlyArray<TimelineEntry>
  /** Per-device totals, in the scenario's order. */
  readonly devices: ReadonlyArray<DeviceSummary>
  /** A sample of the violations found (the oracle shows at most 5 per guarantee and device). */
  readonly violations: ReadonlyArray<Violation>
  /** Driver code that died or failed where the binding machinery caught it (a failed run). */
  readonly failures: ReadonlyArray<DriverFailure>
  /** Warnings logged during the run (not failures). */
  readonly notes: ReadonlyArray<Note>
  /** Hangs and stalls (each also breaks G4, listed in `violations`). */
  readonly stalls: ReadonlyArray<Stall>
  /** How many violations were found, shown or not. */
  readonly violationCount: number
  /**
   * What capped buffers let go: `trace`, the oldest simulator events the trace dropped past
   * its limit (1,000,000 events). IOMMU faults, violations and lifecycle events are never
   * dropped (their lists are not capped), and the writers take their times from those lists.
   */
  readonly dropped: {
    /** Simulator events dropped from the trace (the oldest ones). */
    readonly trace: number
  }
  /**
   * Set when the run was stopped from outside (`RunOptions.signal`): the record holds what
   * was recorded up to the stop, and the guarantees are judged on that. Operations in flight
   * at the stop are counted in `DeviceSummary.inFlight`, not as lost, and break nothing.
   */
  readonly interrupted?: {
    /** Why: the signal's reason when it is a string (the command passes "SIGINT", "SIGTERM" or "timeout"), else "aborted". */
    readonly reason: string
    /** Virtual time of the stop, in milliseconds (also `endedAt`). */
    readonly at: number
  } | undefined
  /** `"qemu"` for a run on QEMU's device models ({@link runOnQemu}); absent on the simulator. */
  readonly backend?: "qemu" | undefined
}

/**
 * Whether a run passed: no guarantee broken, no driver failure (exit code 0).
 * @since 0.1.0
 * @category models
 */
export const passed: (record: RunRecord) => boolean = recordInternal.passed

/**
 * What the live display shows, as a run goes.
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  /** Virtual time now, in milliseconds. */
  readonly virtualMillis: number
  /** The scenario's duration, in milliseconds of virtual time. */
  readonly duration: number
  /** The scenario's devices, in its order, each with its state now. */
  readonly devices: ReadonlyArray<{
    /** The device's name. */
    readonly name: string
    /** `bound` to a driver, present but `unbound`, or `absent` from its bus. */
    readonly state: "bound" | "unbound" | "absent"
  }>
  /** Operations resolved so far (completed, gone or rejected). */
  readonly resolved: number
  /** Operations in flight now. */
  readonly inFlight: number
}

/**
 * Options of {@link run}.
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /** The simulator's seed (default: the scenario's `seed`, else 1). */
  readonly seed?: number | undefined
  /** Called as the run goes (wall-clock paced), for a live display. */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Called after each timeline action, in virtual-time order. */
  readonly onAction?: ((entry: TimelineEntry, progress: Progress) => void) | undefined
  /**
   * Called when driver code fails where the binding machinery catches it (the first of a
   * kind), when a warning is logged (the first of a kind), and when an action hangs.
   */
  readonly onNote?: ((line: string) => void) | undefined
  /**
   * Stops the run when aborted (within about 20 ms of wall time, even inside a busy
   * simulation): the record is cut at the stop and `RunRecord.interrupted` says why and when.
   * Abort it with a string reason (`controller.abort("SIGINT")`) to have it recorded.
   */
  readonly signal?: AbortSignal | undefined
}

/**
 * Runs a scenario. Deterministic: the same scenario and seed give the same record (but for
 * wall-clock figures).
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Runner, Scenario } from "@devscope/cli"
 *
 * const scenario = Either.getOrThrow(Scenario.decode({
 *   name: "one sensor",
 *   duration: "50 millis",
 *   devices: [{ name: "temp0", kind: "sensor" }],
 *   drivers: [{ kind: "sensor" }]
 * }, "inline"))
 * Effect.runPromise(Runner.run(scenario)).then((record) => console.log(record.violations.length)) // 0
 * ```
 * @since 0.1.0
 * @category running
 */
export const run: (scenario: Scenario, options?: RunOptions) => Effect.Effect<RunRecord> = (scenario, options) =>
  internal.run(scenario, options)

/**
 * What keeps a scenario off QEMU (`runOnQemu`), each problem with its field: a device kind
 * QEMU has no model of (QEMU has `edu` and `pci-testdev`), fault rules (the simulator's). Empty
 * when the scenario can run there.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Runner, Scenario } from "@devscope/cli"
 *
 * const scenario = Either.getOrThrow(Scenario.decode({
 *   name: "one sensor", duration: 20, devices: [{ name: "temp0", kind: "sensor" }], drivers: [{ kind: "sensor" }]
 * }, "inline"))
 * console.log(Runner.qemuIssues(scenario)) // [{ path: "devices[0].kind", message: "QEMU has no sensor device (it has: edu, pci-testdev)" }]
 * ```
 * @since 0.1.0
 * @category running
 */
export const qemuIssues: (scenario: Scenario) => ReadonlyArray<Issue> = qemuRun.issues

/**
 * Runs a scenario on QEMU's own device models instead of the simulator's (`devscope run
 * --backend qemu`): QEMU is started before the run (a q35 machine with each of the scenario's
 * devices behind its own PCIe root port), its clock is driven from the run's virtual time, the
 * timeline's removals are PCIe hot-unplug (orderly: `device_del` and the attention button;
 * surprise: the slot's power cut), and QEMU is stopped when the run ends. The same record as
 * {@link run}, with `backend: "qemu"`; trouble QEMU had (it died, a handler threw) is a failure
 * of the run. Fails with `BackendUnavailable`, having run nothing, when the scenario cannot run
 * there ({@link qemuIssues}) or QEMU cannot start (not installed, no qtest accelerator:
 * `devscope doctor` says what is missing).
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Runner, Scenario } from "@devscope/cli"
 *
 * const scenario = Either.getOrThrow(Scenario.decode({
 *   name: "edu on QEMU", duration: "300 millis",
 *   devices: [{ name: "edu0", kind: "edu" }], drivers: [{ kind: "edu" }],
 *   timeline: [{ at: 150, action: "surprise", device: "edu0" }]
 * }, "inline"))
 * const verdict = Runner.runOnQemu(scenario).pipe(
 *   Effect.map((record) => Runner.passed(record) ? "passed" : "failed"),
 *   Effect.catchTag("BackendUnavailable", (e) => Effect.succeed(`not run: ${e.reason}`))
 * )
 * ```
 * @since 0.1.0
 * @category running
 */
export const runOnQemu = (scenario: Scenario, options?: RunOptions): Effect.Effect<RunRecord, BackendUnavailable> =>
  internal.runOn(scenario, qemuRun.start(scenario), options)

/**
 * The summary table printed at the end of a run.
 * @since 0.1.0
 * @category rendering
 */
export const summaryText: (record: RunRecord) => string = summary.summary

/**
 * The run as a Chrome/Perfetto trace (JSON text).
 * @since 0.1.0
 * @category rendering
 */
export const chromeTrace: (record: RunRecord) => string = perfetto.chromeTraceJson

/**
 * The run as a self-contained HTML page with an SVG timeline.
 * @since 0.1.0
 * @category rendering
 */
export const html: (record: RunRecord) => string = report.toHtml
