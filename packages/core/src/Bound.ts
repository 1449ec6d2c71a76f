/**
 * The Bound token: proof, carried in the Effect context, that code runs inside a live
 * binding of driver `D` (the kernel's `Device<Bound>`). With it, a binding's resources are
 * reached synchronously and unconditionally (`devres.access(token)`). Only the framework
 * makes tokens; they are revoked at the end of unbind, and any later use is the defect
 * `UseAfterUnbind`.
 *
 * The driver name is part of the type, so `Bound<"nic">` is not accepted where
 * `Bound<"blk">` is needed.
 *
 * @since 0.1.0
 */
import type * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Types from "effect/Types"
import type { Device } from "./Device.js"
import * as internal from "./internal/binding.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.BoundTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.1.0
 * @category models
 */
export interface Bound<in out D extends string> {
  readonly [TypeId]: { readonly _D: Types.Invariant<D> }
  /** The bound device (identity only). */
  readonly device: Device
  /** The driver's name. */
  readonly driver: D
}

/**
 * The Context tag under which a driver's Bound token is found (`Driver.brand(name).Bound`).
 * @since 0.1.0
 * @category models
 */
export interface Tag<in out D extends string> extends Context.Tag<Bound<D>, Bound<D>> {}

/**
 * Whether the token's binding is still live. Synchronous.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bound, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const check = Effect.map(Nic.Bound, (token) => Bound.isLive(token))
 * ```
 * @since 0.1.0
 * @category getters
 */
export const isLive = <D extends string>(token: Bound<D>): boolean => internal.isLive(token)

/**
 * Forks `effect` as a fiber of the binding: it runs in the binding's scope, under the
 * binding's supervision (with the caller's context, which must provide what `effect` needs),
 * and the unbind interrupts and awaits it before any resource is released. Any fiber started
 * inside a binding (by probe, by a binding fiber, with `Effect.forkScoped` in a probe layer,
 * even with `Effect.forkDaemon`) is a binding fiber; this is the explicit way to start one
 * from code that merely holds the token. The fiber starts interruptible even when forked from
 * an uninterruptible region such as a Devres acquisition.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Bound, Driver } from "@devscope/core"
 *
 * const Sensor = Driver.brand("sensor")
 * const startPoller = Effect.gen(function*() {
 *   const bound = yield* Sensor.Bound
 *   yield* Bound.fork(bound, Effect.repeat(Effect.log("sample"), Schedule.spaced("1 second")))
 * })
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const fork = <D extends string, A, E, R>(
  token: Bound<D>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> => internal.forkIn(token, effect)
