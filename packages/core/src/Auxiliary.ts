/**
 * Child devices: the auxiliary bus of Linux (`auxiliary_device_add`) and Rust-for-Linux's
 * `auxiliary::Registration`. A binding splits its device into functions (an MFD, a hub's
 * ports, a NIC's RDMA half) by registering child devices on its own bus; a separate driver
 * binds each child, with its own binding, token, fibers and supervision, and reads the data
 * the parent handed it (which may borrow the parent's resources: the child is unbound and
 * removed at step 1 of the parent's unbind, before any of the parent's resources go).
 *
 * A device added by binding code with `bus.addDevice` is a child too; this module names it
 * and types its data.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Auxiliary, Driver } from "@devscope/core"
 *
 * // The parent: a multi-function device with a GPIO block.
 * const Gpio = Auxiliary.make<{ readonly lines: number }>("acme.gpio")
 * const Mfd = Driver.brand("mfd")
 * export const MfdDriver = Driver.make(Mfd, {
 *   match: [{ vendor: 0xacde }],
 *   probe: () =>
 *     Layer.effectDiscard(Effect.gen(function*() {
 *       const token = yield* Mfd.Bound
 *       yield* Auxiliary.register(Gpio, token, { id: 0, data: { lines: 32 } })
 *     }))
 * })
 *
 * // The child's driver: matched by name, reads the parent's data.
 * const GpioBrand = Driver.brand("gpio")
 * export const GpioDriver = Driver.make(GpioBrand, {
 *   match: Gpio.match,
 *   probe: (device) => Layer.effectDiscard(Effect.log(`${Auxiliary.data(Gpio, device).lines} lines`))
 * })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Bound from "./Bound.js"
import type { Device } from "./Device.js"
import type { BusShutDown, DeviceExists, ParentUnbinding } from "./DeviceError.js"
import type * as Driver from "./Driver.js"
import { liveBinding } from "./internal/binding.js"

/**
 * A kind of child device: its name (the child's match key) and the type of its data.
 * @since 0.1.0
 * @category models
 */
export interface Auxiliary<A> {
  readonly name: string
  /** The match table of the child's driver: every child registered under this name. */
  readonly match: Driver.Match
  /** @internal */
  readonly _A?: (_: never) => A
}

const dataOf = new WeakMap<Device, unknown>()

/**
 * A kind of child device named `name`, whose data is an `A`.
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(name: string): Auxiliary<A> => ({ name, match: [{ auxiliary: name }] })

/**
 * Registers a child device of the token's device: named `<parent>.<name>.<id>`, with ids
 * `{ auxiliary: name, id }` and `data`, bound by a matching driver at once (if the bus binds
 * automatically). It is unbound and removed at step 1 of the parent's unbind, before the
 * parent's consumers; its report is in the parent's `children`. Fails with
 * `ParentUnbinding` once that step has begun, `BusShutDown` during the bus's shutdown.
 * @since 0.1.0
 * @category constructors
 */
export const register = <A, D extends string>(
  kind: Auxiliary<A>,
  token: Bound.Bound<D>,
  options: { readonly id: number; readonly data: A }
): Effect.Effect<Device, DeviceExists | BusShutDown | ParentUnbinding> =>
  Effect.suspend(() => {
    const binding = liveBinding(token, `auxiliary device "${kind.name}"`)
    const spec = { name: `${binding.device.name}.${kind.name}.${options.id}`, ids: { auxiliary: kind.name, id: options.id } }
    // The data is the device's before any driver can bind it.
    return binding.addChild!(spec, (device) => void dataOf.set(device, options.data)) as Effect.Effect<
      Device,
      DeviceExists | BusShutDown | ParentUnbinding
    >
  })

/**
 * The data a child device was registered with. A defect if `device` is not a child of
 * `kind` (its driver's match table should have made sure).
 * @since 0.1.0
 * @category getters
 */
export const data = <A>(kind: Auxiliary<A>, device: Device): A => {
  if (device.ids["auxiliary"] !== kind.name || !dataOf.has(device)) {
    throw new Error(`device "${device.name}" is not an auxiliary device "${kind.name}"`)
  }
  return dataOf.get(device) as A
}
