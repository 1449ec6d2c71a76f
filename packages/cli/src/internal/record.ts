/**
 * The record of one scenario run, as the runner produces it and the writers (Perfetto trace,
 * HTML report) consume it. Plain data: everything the writers show is derived from it.
 */
import type { Lifecycle } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"

/** A guarantee of the design brief (§5) a run can violate. */
export type Guarantee = "G1" | "G2" | "G3" | "G4" | "G5"

/** A guarantee the runner found broken, on one device. */
export interface Violation {
  readonly guarantee: Guarantee
  readonly device: string
  readonly message: string
}

/** One unbind of a device, as the runner measured it. */
export interface UnbindSummary {
  readonly cause: Lifecycle.UnbindCause
  readonly at: number
  readonly virtualMillis: number
  readonly wallMillis: number
  readonly released: number
  readonly leaks: number
}

/** Per-device totals of a run. */
export interface DeviceSummary {
  readonly device: string
  readonly kind: string
  readonly bus: "pci" | "platform"
  readonly completed: number
  readonly failedGone: number
  readonly lost: number
  readonly inFlight: number
  readonly unbinds: ReadonlyArray<UnbindSummary>
  readonly released: number
  readonly leaks: number
  readonly iommuFaults: number
}

/** A scenario action as executed (plug, unplug, surprise, unbind, bind, unload, ...). */
export interface TimelineEntry {
  readonly at: number
  readonly action: string
  readonly target: string
  readonly detail?: string | undefined
  /**
   * Operations of the target device (of the driver's devices, for `unload`/`load`) in
   * flight when the action started, by operation (`{ write: 3, read: 1 }`).
   */
  readonly inFlight?: Readonly<Record<string, number>> | undefined
  /** Virtual time the action took, in milliseconds (an unbind waits for its drain). */
  readonly tookMillis?: number | undefined
}

/**
 * A failure of driver code the binding machinery caught and logged instead of letting it
 * reach the user: an interrupt handler that died (`UseAfterUnbind` after a bad teardown), a
 * binding fiber that died, a handle's destructor that failed. Identical ones are counted.
 */
export interface DriverFailure {
  readonly device: string
  /** What failed: `irq 0: handler failed`, `binding fiber died`, ... */
  readonly where: string
  /** The defect or error, one line (`UseAfterUnbind: Use of Devres ... after ...`). */
  readonly error: string
  readonly defect: boolean
  /** Virtual time of the first one, milliseconds. */
  readonly at: number
  readonly count: number
}

/** A warning the drivers or the core logged (an interrupt storm, a gate deadline), counted. */
export interface Note {
  readonly device: string
  readonly message: string
  readonly at: number
  readonly count: number
}

/**
 * Why a run did not end on its own: an action that hung, a world where nothing could run any
 * more (stalled) or where time ran past the limit. `waitSites` say what was still waiting:
 * the spans of the fibers that waited (innermost first, joined by `<`), or the spans still
 * open when a hung action was given up on.
 */
export interface Stall {
  readonly outcome: "Stalled" | "TimedOut" | "Hung"
  /** The device (or driver) a hung action was about; "-" for the run as a whole. */
  readonly device: string
  /** Virtual time, milliseconds. */
  readonly at: number
  readonly what: string
  readonly waitSites: ReadonlyArray<string>
}

/** Everything one run produced. Times are virtual milliseconds unless named `wall`. */
export interface RunRecord {
  readonly scenario: string
  readonly seed: number
  /** Virtual time at the end of the run, in milliseconds. */
  readonly endedAt: number
  readonly wallMillis: number
  readonly lifecycle: ReadonlyArray<{ readonly bus: "pci" | "platform"; readonly event: Lifecycle.LifecycleEvent }>
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  /** Scenario actions as executed. */
  readonly timeline: ReadonlyArray<TimelineEntry>
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
}

/** A run passed when no guarantee was broken and no driver code failed. */
export const passed = (record: RunRecord): boolean => record.violations.length === 0 && record.failures.length === 0
