/**
 * Gates: subsystem-level revocation (the kernel's `drm_dev_enter/exit/unplug`, RDMA's SRCU
 * revocation of driver ops). User-facing entry points of a driver (calls on its handles, ioctls,
 * work arriving from other subsystems) run inside a gate's read section, which hands them the
 * Bound token: being inside an open gate of a live binding proves the device is bound.
 *
 * - `enter` costs a counter change, not a semaphore. Sections may span yields (they are
 *   sleepable) and may nest: a nested entry is a section of its own, which (like
 *   `drm_dev_enter`) succeeds while the gate is open and fails once it has closed.
 * - Closing stops new entries at once (they fail with `DeviceGone`) and waits for the sections
 *   in flight, and only those. After the deadline, the sections still running are interrupted
 *   and reported; the close always completes.
 * - A gate belongs to a binding: the unbind closes it at step 2, before `remove` runs, so
 *   `remove` and the release of resources never race with a user call.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Bound from "./Bound.js"
import type { Device } from "./Device.js"
import type { DeviceGone } from "./DeviceError.js"
import type * as Driver from "./Driver.js"
import * as internal from "./internal/gate.js"
import type { GateReport } from "./Lifecycle.js"

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
 * @since 0.1.0
 * @category models
 */
export interface Gate<in out D extends string> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly device: Device
  readonly isOpen: boolean
  /** Sections running now. */
  readonly inFlight: number
  /**
   * Runs `f` inside a read section, with the binding's Bound token. Fails with `DeviceGone`
   * (without calling `f`) once the gate has begun closing. The section keeps the caller's
   * interruptibility (entered from an uninterruptible region, it is entered and left with no
   * mask of its own).
   */
  enter<A, E, R>(f: (token: Bound.Bound<D>) => Effect.Effect<A, E, R>): Effect.Effect<A, E | DeviceGone, R>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Shown in `DeviceGone` and reports. Default `"gate"`. */
  readonly name?: string | undefined
  /**
   * How long closing waits for sections in flight before interrupting them (Clock time).
   * Default 5 seconds.
   */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * Opens a gate in the current binding. The unbind closes it at step 2.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Devres, Driver, Gate } from "@devscope/core"
 *
 * const Blk = Driver.brand("blk")
 *
 * const probe = Effect.gen(function*() {
 *   const queue = yield* Devres.make(Blk, { depth: 32 }, { label: "request queue" })
 *   const gate = yield* Gate.make(Blk, { name: "blk0 ioctl" })
 *   // Handed to user code: every call goes through the gate.
 *   return (n: number) => gate.enter((token) => Effect.succeed(queue.access(token).depth + n))
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <D extends string>(
  driver: Driver.Brand<D>,
  options?: Options
): Effect.Effect<Gate<D>, never, Bound.Bound<D>> => internal.make(driver, options)

/**
 * Runs `effect` inside a read section with the Bound token provided in its context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Driver, Gate } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const linkUp = (gate: Gate.Gate<"nic">) =>
 *   Gate.enterWith(gate, Effect.map(Nic.Bound, (token) => token.device.name))
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const enterWith = <D extends string, A, E, R>(
  gate: Gate<D>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | DeviceGone, Exclude<R, Bound.Bound<D>>> => internal.enterWith(gate, effect)

/**
 * Closes the gate now (a subsystem unregistering before the unbind, say): new entries fail
 * with `DeviceGone` at once; sections in flight are awaited, then interrupted at the deadline.
 * Closing again returns the first close's report.
 * @since 0.1.0
 * @category destructors
 */
export const close = <D extends string>(gate: Gate<D>): Effect.Effect<GateReport> => internal.close(gate)
