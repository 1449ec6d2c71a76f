/**
 * The invariant oracle: checks a run against the guarantees G1-G5 (docs/contract.md) from
 * what the run left behind (lifecycle events of the buses, the simulator's trace and IOMMU
 * faults) and from the accounting of the operations the test started.
 *
 * - G1: no driver access reached a device while no binding of it existed (a stale access
 *   that is caught dies as `UseAfterUnbind` and never reaches the device);
 * - G2: no release failed, no remove failed, nothing the leak check of an unbind found (a
 *   streaming DMA mapping left mapped, a `Leak.track`ed object), and, from the trace, the DMA
 *   memory of every binding freed or unmapped by the end of its unbind, the probe's in
 *   reverse order of acquisition;
 * - G3: no fiber of a binding outlived its unbind (found by an unbind's leak check, or
 *   started after the binding ended);
 * - G4: every operation resolved once, with a result or `DeviceGone` (none lost, none
 *   interrupted, none died, none returned wrong data), no gate section stuck, no stall;
 * - G5: the device never touched DMA memory it had no live mapping for.
 *
 * Usable by any test: hand `oracle.onLifecycle` to the simulator, run operations through
 * `oracle.track`, then `oracle.check(sim)` (a sample of the violations) or
 * `oracle.judge(sim)` (the verdict: how many were found, the sample, what it leaves out).
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Lifecycle } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"
import * as ops from "./internal/ops.js"
import * as internal from "./internal/oracle.js"

/**
 * A guarantee of docs/contract.md: G1 (no access without a binding), G2 (everything
 * released), G3 (no fiber outlives its binding), G4 (every operation resolves once), G5 (no
 * DMA without a live mapping).
 * @since 0.1.0
 * @category models
 */
export type Guarantee = "G1" | "G2" | "G3" | "G4" | "G5"

/**
 * A guarantee found broken, on one device.
 * @since 0.1.0
 * @category models
 */
export interface Violation {
  /** The guarantee broken. */
  readonly guarantee: Guarantee
  /** The device it was broken on; `"-"` when the run as a whole broke it (it stalled, or did not finish). */
  readonly device: string
  /** What went wrong, in one line, as far as the evidence tells. */
  readonly message: string
}

/**
 * Violations of one guarantee on one device left out of a verdict's sample.
 * @since 0.1.0
 * @category models
 */
export interface Omitted {
  /** The guarantee broken. */
  readonly guarantee: Guarantee
  /** The device it was broken on (`"-"` for the run as a whole). */
  readonly device: string
  /** How many of its violations the sample does not show. */
  readonly count: number
}

/**
 * What the oracle found: `count` violations in all; `violations`, a sample of them (at most
 * {@link SAMPLE_PER_KIND} per guarantee and device, in the order found); `omitted`, per
 * guarantee and device, how many the sample leaves out.
 * @since 0.1.0
 * @category models
 */
export interface Verdict {
  /** How many violations were found: all of them, shown or not (0 when every guarantee held). */
  readonly count: number
  /** A sample of them, in the order found: at most {@link SAMPLE_PER_KIND} per guarantee and device. */
  readonly violations: ReadonlyArray<Violation>
  /** Per guarantee and device, the violations found beyond the sample. */
  readonly omitted: ReadonlyArray<Omitted>
}

/**
 * How many violations of one guarantee on one device a verdict shows.
 * @since 0.1.0
 * @category models
 */
export const SAMPLE_PER_KIND: number = internal.SAMPLE_PER_KIND

/**
 * A lifecycle event as the oracle records it: the event, and the bus it happened on.
 * @since 0.1.0
 * @category models
 */
export interface BusEvent {
  /** The bus the event happened on. */
  readonly bus: "pci" | "platform"
  /** The event (with its unbind report, for `Unbound`). */
  readonly event: Lifecycle.LifecycleEvent
}

/**
 * Per-device accounting of operations: how many started, how each one resolved, which are
 * still in flight. Counters only grow; a ledger's {@link Ops.track} keeps them.
 * @since 0.1.0
 * @category models
 */
export interface DeviceOps {
  /** The device's name. */
  readonly device: string
  /** Operations started. */
  started: number
  /** Operations that succeeded. */
  completed: number
  /** Operations that failed with `DeviceGone` (classified `gone`). */
  gone: number
  /** Typed refusals that are part of the API (a full TX ring, an out-of-range sector). */
  rejected: number
  /** Operations that died with a defect (a G4 violation). */
  defects: number
  /** Operations interrupted instead of resolving (a G4 violation). */
  interrupted: number
  /** Completed, but with wrong data (a frame corrupted, acknowledged data not read back). */
  corrupt: number
  /** Ids of the operations still running; one left at the end of a run is lost (G4). */
  readonly inFlight: Set<number>
  /** The first few problems (at most 5 messages), for the verdict. */
  readonly problems: Array<string>
  /** Every problem recorded (`problems` keeps only the first few messages). */
  problemCount: number
}

/**
 * Operation accounting: `track` runs one operation and records how it resolved, per device.
 * @since 0.1.0
 * @category models
 */
export interface Ops {
  /** Per device (by name), its accounting (made on first use, see `of`). */
  readonly devices: Map<string, DeviceOps>
  /** Set at the end of the run, once the drivers are unloaded: loads stop starting operations. Default false. */
  stopping: boolean
  /** The accounting of `device`, made empty on first use. */
  of(device: string): DeviceOps
  /** Operations in flight, every device counted. */
  readonly inFlight: number
  /** Operations resolved (completed, gone or rejected), every device counted. */
  readonly resolved: number
  /** Records a problem of `device` (counted; the message kept if it is among the first 5). */
  problem(device: string, message: string): void
  /**
   * Runs one operation of `device` (`what` names it in problems), recording how it resolves:
   * a success, a typed failure (`classify` tells `gone` from `rejected`), a defect, an
   * interruption. Never fails: the result is `Some` on success, `None` otherwise.
   */
  track<A, E, R>(
    device: string,
    what: string,
    op: Effect.Effect<A, E, R>,
    classify: (error: E) => "gone" | "rejected"
  ): Effect.Effect<Option.Option<A>, never, R>
}

/**
 * A fresh operation ledger.
 * @since 0.1.0
 * @category constructors
 */
export const makeOps = (): Ops => new ops.Ops()

/**
 * What the oracle judges.
 * @since 0.1.0
 * @category models
 */
export interface Evidence {
  /** The lifecycle events of both buses, in order (every unbind report included). */
  readonly lifecycle: ReadonlyArray<BusEvent>
  /** The simulator's trace (`Simulator.Service.trace`). */
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  /** The IOMMU faults the simulator recorded. */
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  /** The accounting of the operations the test started, by device (`Ops.devices`). */
  readonly ops: ReadonlyMap<string, DeviceOps>
  /**
   * How the run ended (see `VirtualTime.Outcome`); `Stalled` and `TimedOut` break G4.
   * `Interrupted` (stopped from outside, by its signal) does not: the evidence is judged as
   * far as the run went.
   */
  readonly outcome: "Done" | "Stalled" | "TimedOut" | "Interrupted"
}

/**
 * Judges evidence. Pure.
 * @since 0.1.0
 * @category checking
 */
export const judge: (evidence: Evidence) => Verdict = internal.judge

/**
 * Judges evidence and returns the verdict's sample of violations (empty when every guarantee
 * held). Use {@link judge} for the number of violations found. Pure.
 * @since 0.1.0
 * @category checking
 */
export const check: (evidence: Evidence) => Array<Violation> = internal.check

/**
 * An oracle watching one simulator.
 * @since 0.1.0
 * @category models
 */
export interface Oracle {
  /** Pass to `Simulator.make` / `Simulator.layer` as `onLifecycle`. */
  readonly onLifecycle: (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => void
  /** The lifecycle events `onLifecycle` received so far, in order. */
  readonly lifecycle: ReadonlyArray<BusEvent>
  /** The ledger of the operations run through `track`. */
  readonly ops: Ops
  /**
   * Runs one user operation of `device` through the ledger. `classify` tells a typed failure
   * `gone` from `rejected`; by default a failure tagged `DeviceGone` is `gone`, any other
   * `rejected`.
   */
  track<A, E, R>(
    device: string,
    what: string,
    op: Effect.Effect<A, E, R>,
    classify?: (error: E) => "gone" | "rejected"
  ): Effect.Effect<Option.Option<A>, never, R>
  /** Judges the run so far: the sample of violations (see {@link check}); `outcome` defaults to `Done`. */
  check(sim: SimEvidence, outcome?: Evidence["outcome"]): Array<Violation>
  /** Judges the run so far: the verdict (see {@link judge}); `outcome` defaults to `Done`. */
  judge(sim: SimEvidence, outcome?: Evidence["outcome"]): Verdict
}

/**
 * What an oracle reads from the simulator.
 * @since 0.1.0
 * @category models
 */
export interface SimEvidence {
  /** The simulator's trace. */
  readonly trace: {
    /** The events recorded so far, in order. */
    events(): ReadonlyArray<Trace.TraceEvent>
  }
  /** The IOMMU faults recorded so far. */
  iommuFaults(): ReadonlyArray<Iommu.Fault>
}

const byTag = (error: unknown): "gone" | "rejected" =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "DeviceGone" ? "gone" : "rejected"

/**
 * Makes an oracle.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { Oracle } from "@devscope/testing"
 *
 * const oracle = Oracle.make()
 * const program = Effect.gen(function*() {
 *   const sim = yield* Simulator.Simulator
 *   // ... register drivers, plug devices, run operations through oracle.track(...)
 *   const verdict = oracle.judge(sim)
 *   if (verdict.count > 0) console.log(`${verdict.count} violation(s)\n${Oracle.format(verdict)}`)
 * }).pipe(Effect.provide(Simulator.layer({ onLifecycle: oracle.onLifecycle })))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Oracle => {
  const lifecycle: Array<BusEvent> = []
  const ledger = new ops.Ops()
  const judgeRun = (sim: SimEvidence, outcome: Evidence["outcome"]) =>
    internal.judge({ lifecycle, trace: sim.trace.events(), iommuFaults: sim.iommuFaults(), ops: ledger.devices, outcome })
  return {
    onLifecycle: (bus, event) => void lifecycle.push({ bus, event }),
    lifecycle,
    ops: ledger,
    track: (device, what, op, classify) => ledger.track(device, what, op, classify ?? byTag),
    check: (sim, outcome = "Done") => judgeRun(sim, outcome).violations.slice(),
    judge: (sim, outcome = "Done") => judgeRun(sim, outcome)
  }
}

/**
 * One line per violation; given a verdict, also one line per guarantee and device of which
 * violations were left out of the sample (`G5 edu0: (11 more of the same left out)`).
 * @since 0.1.0
 * @category utils
 */
export const format: (violations: ReadonlyArray<Violation> | Verdict) => string = internal.format
