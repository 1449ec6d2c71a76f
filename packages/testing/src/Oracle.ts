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
 * @since 0.1.0
 * @category models
 */
export type Guarantee = internal.Guarantee

/**
 * @since 0.1.0
 * @category models
 */
export type Violation = internal.Violation

/**
 * Violations of one guarantee on one device left out of a verdict's sample.
 * @since 0.1.0
 * @category models
 */
export type Omitted = internal.Omitted

/**
 * What the oracle found: `count` violations in all; `violations`, a sample of them (at most
 * {@link SAMPLE_PER_KIND} per guarantee and device, in the order found); `omitted`, per
 * guarantee and device, how many the sample leaves out.
 * @since 0.1.0
 * @category models
 */
export type Verdict = internal.Verdict

/**
 * How many violations of one guarantee on one device a verdict shows.
 * @since 0.1.0
 * @category models
 */
export const SAMPLE_PER_KIND: number = internal.SAMPLE_PER_KIND

/**
 * Per-device accounting of operations.
 * @since 0.1.0
 * @category models
 */
export type DeviceOps = ops.DeviceOps

/**
 * Operation accounting: `track` runs one operation and records how it resolved.
 * @since 0.1.0
 * @category models
 */
export type Ops = ops.Ops

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
  readonly lifecycle: ReadonlyArray<internal.Bused>
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  readonly ops: ReadonlyMap<string, DeviceOps>
  /** How the run ended (see `VirtualTime.Outcome`); anything but `Done` breaks G4. */
  readonly outcome: "Done" | "Stalled" | "TimedOut"
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
  readonly lifecycle: ReadonlyArray<internal.Bused>
  readonly ops: Ops
  /** Runs one user operation of `device` through the ledger. */
  track<A, E, R>(
    device: string,
    what: string,
    op: Effect.Effect<A, E, R>,
    classify?: (error: E) => "gone" | "rejected"
  ): Effect.Effect<Option.Option<A>, never, R>
  /** Judges the run so far: the sample of violations (see {@link check}). */
  check(sim: SimEvidence, outcome?: Evidence["outcome"]): Array<Violation>
  /** Judges the run so far: the verdict (see {@link judge}). */
  judge(sim: SimEvidence, outcome?: Evidence["outcome"]): Verdict
}

/**
 * What an oracle reads from the simulator.
 * @since 0.1.0
 * @category models
 */
export interface SimEvidence {
  readonly trace: { events(): ReadonlyArray<Trace.TraceEvent> }
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
  const lifecycle: Array<internal.Bused> = []
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
