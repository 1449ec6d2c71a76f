/**
 * The invariant oracle: checks a run against the guarantees of DESIGN.md section 5 from
 * what the run left behind (lifecycle events of the buses, the simulator's trace and IOMMU
 * faults) and from the accounting of the operations the test started.
 *
 * - G1: no driver access reached a device while no binding of it existed (a stale access
 *   that is caught dies as `UseAfterUnbind` and never reaches the device);
 * - G2: no release failed, no remove failed, no object leaked;
 * - G3: no fiber of a binding outlived its unbind;
 * - G4: every operation resolved once, with a result or `DeviceGone` (none lost, none
 *   interrupted, none died, none returned wrong data), no gate section stuck, no stall;
 * - G5: the device never touched DMA memory it had no live mapping for.
 *
 * Usable by any test: hand `oracle.onLifecycle` to the simulator, run operations through
 * `oracle.ops.track`, then `oracle.check(sim)`.
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
  /** Judges the run so far. */
  check(
    sim: { readonly trace: { events(): ReadonlyArray<Trace.TraceEvent> }; iommuFaults(): ReadonlyArray<Iommu.Fault> },
    outcome?: Evidence["outcome"]
  ): Array<Violation>
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
 *   const violations = oracle.check(sim)
 *   if (violations.length > 0) console.log(Oracle.format(violations))
 * }).pipe(Effect.provide(Simulator.layer({ onLifecycle: oracle.onLifecycle })))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (): Oracle => {
  const lifecycle: Array<internal.Bused> = []
  const ledger = new ops.Ops()
  return {
    onLifecycle: (bus, event) => void lifecycle.push({ bus, event }),
    lifecycle,
    ops: ledger,
    track: (device, what, op, classify) => ledger.track(device, what, op, classify ?? byTag),
    check: (sim, outcome = "Done") =>
      internal.check({ lifecycle, trace: sim.trace.events(), iommuFaults: sim.iommuFaults(), ops: ledger.devices, outcome })
  }
}

/**
 * One line per violation.
 * @since 0.1.0
 * @category utils
 */
export const format = (violations: ReadonlyArray<Violation>): string =>
  violations.map((v) => `${v.guarantee} ${v.device}: ${v.message}`).join("\n")
