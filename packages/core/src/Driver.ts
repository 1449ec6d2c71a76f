/**
 * Drivers: a brand (the driver's name, which types its tokens), a match table, a `probe`
 * that builds the binding's resources as Layers, and an optional `remove` hook.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Bound from "./Bound.js"
import type * as Core from "./Core.js"
import type { Device, Ids } from "./Device.js"

/**
 * A driver's name with the Context tags of its tokens. Define it first, on its own, so
 * that layers and helpers can name the tokens before the driver itself is assembled.
 *
 * @since 0.1.0
 * @category models
 */
export interface Brand<D extends string> {
  readonly name: D
  /** Tag of the Bound token, in the context of all code running inside a binding. */
  readonly Bound: Bound.Tag<D>
  /** Tag of the Core token, in the context of `probe` and `remove`. */
  readonly Core: Core.Tag<D>
}

/**
 * Makes a driver brand. The name must be a string literal: it becomes the type of the
 * driver's tokens.
 *
 * @example
 * ```ts
 * import { Driver } from "@devscope/core"
 *
 * export const Edu = Driver.brand("edu")
 * // Edu.Bound: Context.Tag<Bound<"edu">, Bound<"edu">>
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const brand = <const D extends string>(name: string extends D ? never : D): Brand<D> => ({
  name,
  Bound: Context.GenericTag<Bound.Bound<D>>(`@devscope/core/Bound/${name}`) as Bound.Tag<D>,
  Core: Context.GenericTag<Core.Core<D>>(`@devscope/core/Core/${name}`) as Core.Tag<D>
})

/**
 * One entry of a match table: every listed id must equal the device's (or be contained in
 * it, for array-valued ids like `compatible`).
 * @since 0.1.0
 * @category models
 */
export type MatchEntry = Readonly<Record<string, string | number>>

/**
 * A match table, or a predicate over the device.
 * @since 0.1.0
 * @category models
 */
export type Match = ReadonlyArray<MatchEntry> | ((device: Device) => boolean)

/**
 * What `probe` may return: the binding's resources as a Layer, or an Effect that decides
 * which Layer (and may fail with `ProbeDefer`).
 * @since 0.1.0
 * @category models
 */
export type ProbeResult =
  | Layer.Layer.Any
  | Effect.Effect<Layer.Layer.Any, any, any>

type LayerOf<P> = P extends Layer.Layer<infer A, infer E, infer R> ? [A, E, R]
  : P extends Effect.Effect<Layer.Layer<infer A, infer E, infer R>, infer E2, infer R2> ? [A, E | E2, R | R2]
  : never

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Probe {
  /**
   * Services the probe layer provides to `remove` and to the binding's fibers.
   * @since 0.1.0
   */
  export type Out<P> = LayerOf<P>[0]
  /**
   * How the probe can fail: the layer's errors and, for an Effect probe, the Effect's.
   * @since 0.1.0
   */
  export type Error<P> = LayerOf<P>[1]
  /**
   * What the probe needs from the binding and the environment the driver is registered in.
   * @since 0.1.0
   */
  export type Requirements<P> = LayerOf<P>[2]
}

/**
 * A driver. `ROut` is what its probe layer provides (the driver data), `E` how probe can
 * fail, `R` what the driver needs from the environment it is registered in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Driver<D extends string, ROut = unknown, E = unknown, R = never> {
  readonly brand: Brand<D>
  readonly name: D
  readonly match: Match
  readonly probe: (device: Device) => ProbeResult
  readonly remove: ((device: Device) => Effect.Effect<void, unknown, any>) | undefined
  /** Type-level only. */
  readonly "~types"?: { readonly out: ROut; readonly error: E; readonly requirements: R }
}

/**
 * Any driver, whatever its types.
 * @since 0.1.0
 * @category models
 */
export type Any = Driver<any, any, any, any>

/**
 * What registering a driver requires from the environment.
 * @since 0.1.0
 * @category models
 */
export type Requirements<T> = T extends Driver<any, any, any, infer R> ? R : never

/**
 * Defines a driver. `probe` runs with the device lock held, the Bound and Core tokens in
 * its context; the Layer it returns is built into the binding scope. `remove` runs at the
 * start of unbind (step 3) with both tokens and the probe layer's services, while every
 * resource is still live.
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import { Devres, Driver } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 *
 * class Regs extends Context.Tag("Regs")<Regs, Devres.Devres<Uint32Array, "edu">>() {}
 *
 * const RegsLive = Layer.effect(
 *   Regs,
 *   Devres.acquireRelease(Edu, Effect.sync(() => new Uint32Array(64)), () => Effect.void, { label: "BAR0" })
 * )
 *
 * export const EduDriver = Driver.make(Edu, {
 *   match: [{ vendor: 0x1234, device: 0x11e8 }],
 *   probe: () => RegsLive,
 *   remove: () => Effect.log("edu: stopping DMA engine")
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <
  D extends string,
  P extends ProbeResult,
  RRemove = never
>(
  brand: Brand<D>,
  definition: {
    readonly match: Match
    readonly probe: P | ((device: Device) => P)
    readonly remove?: (device: Device) => Effect.Effect<void, unknown, RRemove>
  }
): Driver<
  D,
  Probe.Out<P>,
  Probe.Error<P>,
  Exclude<Probe.Requirements<P> | Exclude<RRemove, Probe.Out<P>>, Bound.Bound<D> | Core.Core<D>>
> => ({
  brand,
  name: brand.name,
  match: definition.match,
  probe: typeof definition.probe === "function"
    ? definition.probe as (device: Device) => ProbeResult
    : () => definition.probe as ProbeResult,
  // A span names the wait site when a remove hangs (a stall report shows the span).
  remove: definition.remove === undefined ? undefined : ((remove) => (device: Device) =>
    Effect.withSpan(remove(device), "devscope.remove", { attributes: { device: device.name, driver: brand.name } }))(
      definition.remove
    )
})

const idMatches = (have: string | number | ReadonlyArray<string> | undefined, want: string | number): boolean =>
  Array.isArray(have) ? have.includes(want as string) : have === want

/**
 * Whether the driver's match table accepts the device.
 * @since 0.1.0
 * @category utils
 */
export const matches = (driver: Any, device: Device): boolean => {
  const match = driver.match
  if (typeof match === "function") return match(device)
  const ids: Ids = device.ids
  return match.some((entry) => Object.keys(entry).every((key) => idMatches(ids[key], entry[key]!)))
}
