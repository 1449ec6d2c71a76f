/**
 * A `Device` is the identity of a piece of hardware on a bus: its name, bus-specific ids
 * and current state. Holding one is always safe and grants no hardware access (the
 * kernel's `ARef<Device>` in the Normal context); access comes from a binding's tokens.
 *
 * @since 0.1.0
 */
import * as internal from "./internal/device.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Where a device is in its life:
 * - `unbound`: on the bus, no driver;
 * - `probing`: a driver's probe is running;
 * - `bound`: a driver is bound;
 * - `unbinding`: the unbind sequence is running;
 * - `deferred`: a probe asked to be retried later;
 * - `removed`: gone from the bus for good.
 *
 * @since 0.1.0
 * @category models
 */
export type State = "unbound" | "probing" | "bound" | "unbinding" | "deferred" | "removed"

/**
 * Bus-specific identifiers, matched against driver match tables: PCI-like
 * `{ vendor: 0x1234, device: 0x11e8 }`, platform `{ compatible: ["acme,temp-v2", "acme,temp"] }`.
 * An array value matches when it contains the wanted value.
 *
 * @since 0.1.0
 * @category models
 */
export type Ids = Readonly<Record<string, string | number | ReadonlyArray<string>>>

/**
 * What is needed to add a device to a bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec {
  /** Unique on its bus, e.g. `"0000:00:03.0"` or `"sensor@48"`. */
  readonly name: string
  readonly ids?: Ids | undefined
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bus } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* Bus.Bus
 *   const dev = yield* bus.addDevice({ name: "edu0", ids: { vendor: 0x1234, device: 0x11e8 } })
 *   console.log(dev.name, dev.state, dev.driver) // "edu0" "unbound" undefined
 * })
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Device {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Name of the bus the device sits on. */
  readonly bus: string
  readonly ids: Ids
  /** Current state, read live. */
  readonly state: State
  /** Name of the bound driver, if any. */
  readonly driver: string | undefined
  /**
   * The device whose binding added this one (a child device: `Auxiliary.register`, or
   * `addDevice` from binding code), if any. A child is unbound and removed before its
   * parent's binding ends.
   */
  readonly parent: string | undefined
}

/**
 * @since 0.1.0
 * @category guards
 */
export const isDevice = (u: unknown): u is Device => typeof u === "object" && u !== null && TypeId in u
