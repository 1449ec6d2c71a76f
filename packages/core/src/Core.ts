/**
 * The Core token: proof that code runs inside a driver's `probe` or `remove` callback, with
 * the device lock held (the kernel's `Device<Core>`). Bus set-up operations that must not
 * race with bind/unbind require it. It is only valid while that callback runs: using it
 * afterwards (for example from a fiber that captured it) is the defect `CoreNotHeld`.
 *
 * @since 0.1.0
 */
import type * as Context from "effect/Context"
import type * as Types from "effect/Types"
import type { Device } from "./Device.js"
import * as internal from "./internal/binding.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.CoreTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.1.0
 * @category models
 */
export interface Core<in out D extends string> {
  readonly [TypeId]: { readonly _D: Types.Invariant<D> }
  readonly device: Device
  readonly driver: D
}

/**
 * The Context tag of a driver's Core token (`Driver.brand(name).Core`).
 * @since 0.1.0
 * @category models
 */
export interface Tag<in out D extends string> extends Context.Tag<Core<D>, Core<D>> {}

/**
 * Whether the callback the token was made for is still running.
 * @since 0.1.0
 * @category getters
 */
export const isHeld = <D extends string>(token: Core<D>): boolean => internal.coreHeld(token)

/**
 * Dies with `CoreNotHeld` unless the token's callback is running. Call it first in any
 * operation that is only legal in probe/remove.
 *
 * @example
 * ```ts
 * import { Core } from "@devscope/core"
 *
 * const enableBusMaster = <D extends string>(core: Core.Core<D>) => {
 *   Core.assertHeld(core)
 *   // ... touch configuration that must not race with bind/unbind
 * }
 * ```
 * @since 0.1.0
 * @category utils
 */
export const assertHeld = <D extends string>(token: Core<D>): void => internal.assertCoreHeld(token)
