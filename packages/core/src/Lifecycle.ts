/**
 * Lifecycle events a bus publishes, and the report of an unbind.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type { Device } from "./Device.js"
import type { LeakReport } from "./Leak.js"
import * as internalReports from "./internal/reports.js"

/**
 * Why a binding ended:
 * - `unload`: the driver was unregistered (or the bus shut down);
 * - `manual`: an explicit `unbind` (sysfs unbind);
 * - `hot-unplug`: orderly removal of the device;
 * - `surprise`: the device was already gone when software learned of it;
 * - `probe-failure`: the probe failed, deferred or was interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export type UnbindCause = "unload" | "manual" | "hot-unplug" | "surprise" | "probe-failure"

/**
 * A Devres release that failed. The others still ran.
 *
 * Failures of early releases (`Devres.release`, `Dma.unmap`, during the binding's life) are
 * listed too, with `atUnbind: false`: the early release also dies with the failure, but a
 * driver that swallows that defect cannot hide it from the report of the binding's unbind.
 * @since 0.1.0
 * @category models
 */
export interface ReleaseFailure {
  readonly resource: string
  readonly cause: Cause.Cause<unknown>
  /**
   * `true` for a release run by the unbind (step 4) or by the clean-up of a failed probe;
   * `false` for an early release by the driver during the binding's life.
   */
  readonly atUnbind: boolean
}

/**
 * What closing a Gate did (unbind step 2, or an explicit close).
 * @since 0.1.0
 * @category models
 */
export interface GateReport {
  readonly gate: string
  /** Sections in flight when the close began, which it waited for. */
  readonly awaited: number
  /** Fibers whose sections were still running at the deadline, and were interrupted. */
  readonly interrupted: ReadonlyArray<string>
  /** Sections that had not ended even after being interrupted (left running; reported). */
  readonly stuck: number
  readonly durationMillis: number
}

/**
 * What an unbind did.
 * @since 0.1.0
 * @category models
 */
export interface UnbindReport {
  readonly device: string
  readonly driver: string
  readonly cause: UnbindCause
  /** Where the unbind was requested. */
  readonly site: string
  /**
   * Consumers linked to this device, unbound first (step 1), each with its own report.
   *
   * @example
   * ```ts
   * import type { Lifecycle } from "@devscope/core"
   *
   * // Every device an unbind took down, consumers first.
   * const order = (report: Lifecycle.UnbindReport): Array<string> => [
   *   ...report.consumers.flatMap(order),
   *   report.device
   * ]
   * ```
   */
  readonly consumers: ReadonlyArray<UnbindReport>
  /**
   * Child devices the binding added (`Auxiliary.register`, or `addDevice` from binding code),
   * unbound and removed in step 1, before the linked consumers, each with its own report.
   */
  readonly children: ReadonlyArray<UnbindReport>
  /** Gates closed in step 2. */
  readonly gates: ReadonlyArray<GateReport>
  /** Fibers of the binding interrupted (and awaited) in step 4. */
  readonly fibersInterrupted: number
  /**
   * Devres resources released in step 4, in release order. Only the releases the unbind did:
   * resources the driver released early (`Devres.release`, `Dma.unmap`) are not listed (see
   * `releasedEarly`).
   */
  readonly released: ReadonlyArray<string>
  /**
   * How many Devres the driver released early, during the binding's life and before step 4
   * (`Devres.release`, `Dma.unmap`; from `remove` too), successfully. A count, not a list: a
   * driver mapping a buffer per request releases one per request.
   */
  readonly releasedEarly: number
  /**
   * Devres releases that failed: in step 4 (`atUnbind: true`, in release order), and earlier
   * ones by the driver (`atUnbind: false`), which also died in the effect that released.
   */
  readonly releaseFailures: ReadonlyArray<ReleaseFailure>
  /** The driver's `remove` hook failed; the unbind went on. */
  readonly removeFailure: Cause.Cause<unknown> | undefined
  readonly leaks: ReadonlyArray<LeakReport>
  /** Clock time (virtual under TestClock) the unbind took, in milliseconds. */
  readonly durationMillis: number
}

/**
 * A lifecycle event. Every event carries a sequence number (per bus) and the Clock time.
 * @since 0.1.0
 * @category models
 */
export type LifecycleEvent = Data.TaggedEnum<{
  DeviceAdded: { readonly seq: number; readonly at: number; readonly device: Device }
  DriverRegistered: { readonly seq: number; readonly at: number; readonly driver: string }
  DriverUnregistered: { readonly seq: number; readonly at: number; readonly driver: string }
  Probing: { readonly seq: number; readonly at: number; readonly device: Device; readonly driver: string }
  Bound: { readonly seq: number; readonly at: number; readonly device: Device; readonly driver: string }
  ProbeDeferred: {
    readonly seq: number
    readonly at: number
    readonly device: Device
    readonly driver: string
    readonly reason: string
  }
  ProbeFailed: {
    readonly seq: number
    readonly at: number
    readonly device: Device
    readonly driver: string
    readonly cause: Cause.Cause<unknown>
  }
  Unbinding: {
    readonly seq: number
    readonly at: number
    readonly device: Device
    readonly driver: string
    readonly cause: UnbindCause
  }
  Unbound: {
    readonly seq: number
    readonly at: number
    readonly device: Device
    readonly driver: string
    readonly cause: UnbindCause
    readonly report: UnbindReport
  }
  DeviceRemoved: {
    readonly seq: number
    readonly at: number
    readonly device: Device
    readonly cause: "hot-unplug" | "surprise"
  }
  LeakDetected: { readonly seq: number; readonly at: number; readonly leak: LeakReport }
  ObserverFailed: {
    readonly seq: number
    readonly at: number
    /** The tag of the event the bus's `onEvent` observer threw on. */
    readonly event: string
    readonly cause: Cause.Cause<unknown>
  }
  BusShuttingDown: { readonly seq: number; readonly at: number }
}>

/**
 * Constructors, guards (`$is`) and matchers (`$match`) for {@link LifecycleEvent}.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "@devscope/core"
 *
 * const describe = Lifecycle.LifecycleEvent.$match({
 *   Unbound: (e) => `${e.device.name} unbound (${e.cause})`,
 *   DeviceAdded: (e) => `${e.device.name} added`,
 *   DriverRegistered: (e) => `driver ${e.driver} registered`,
 *   DriverUnregistered: (e) => `driver ${e.driver} unregistered`,
 *   Probing: (e) => `probing ${e.device.name}`,
 *   Bound: (e) => `${e.device.name} bound to ${e.driver}`,
 *   ProbeDeferred: (e) => `${e.device.name} deferred: ${e.reason}`,
 *   ProbeFailed: (e) => `${e.device.name} probe failed`,
 *   Unbinding: (e) => `${e.device.name} unbinding`,
 *   DeviceRemoved: (e) => `${e.device.name} removed`,
 *   LeakDetected: () => "leak",
 *   ObserverFailed: (e) => `observer failed on ${e.event}`,
 *   BusShuttingDown: () => "bus shutting down"
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const LifecycleEvent = Data.taggedEnum<LifecycleEvent>()

/**
 * Every report in the tree under `report`, in the order the devices were unbound: each
 * device's children, then its linked consumers (each with everything under it), then the
 * device itself. Iterative: a report of a 10,000-deep link chain or device tree is walked
 * without recursion.
 *
 * @example
 * ```ts
 * import { Lifecycle } from "@devscope/core"
 *
 * // Every device an unbind took down, and every leak it found, nested ones included.
 * const summary = (report: Lifecycle.UnbindReport) => ({
 *   devices: Lifecycle.flatten(report).map((r) => r.device),
 *   leaks: Lifecycle.flatten(report).flatMap((r) => r.leaks).length
 * })
 * ```
 * @since 0.1.0
 * @category utils
 */
export const flatten: (report: UnbindReport) => Array<UnbindReport> = internalReports.flatten
