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
  /** How many violations were found, shown or not. */
  readonly violationCount: number
}
