/**
 * Device models: what a simulated device is made of (register windows, interrupt lines) and
 * what it does (callbacks on its registers, device-side fibers such as a DMA engine).
 *
 * A model's `start` runs when the device is plugged, in the device's own scope: fibers it
 * starts (`ctx.spawn`) are the device's activity, not the driver's, and stop when the device
 * is removed (a surprise removal aborts them mid-transfer).
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { RegisterMap } from "@devscope/core"
import type * as Iommu from "./Iommu.js"
import type * as RegisterFile from "./RegisterFile.js"
import type * as Trace from "./Trace.js"

/**
 * The register maps of a model's windows, in window order.
 * @since 0.1.0
 * @category models
 */
export type Maps = ReadonlyArray<RegisterMap.RegisterMap<any>>

/**
 * The device side of a plugged device, handed to the model.
 * @since 0.1.0
 * @category models
 */
export interface Context<M extends Maps> {
  readonly device: string
  /** The register files, one per window, typed by the maps. */
  readonly regions: { readonly [K in keyof M]: RegisterFile.RegisterFile<M[K]["spec"]> }
  /** Raises interrupt line `line` (an edge: delivered once, or kept pending while masked). */
  raise(line: number): void
  /** The device's IOMMU domain: `deviceRead` / `deviceWrite` reach memory. */
  readonly dma: Iommu.Domain
  readonly trace: Trace.Service
  readonly disconnected: boolean
  /**
   * Waits a device latency in virtual time, with the simulator's completion faults applied
   * (extra delay, dropped completions). Returns `false` when the completion is dropped.
   */
  completion(what: string, latency: Duration.DurationInput): Effect.Effect<boolean>
  /** Starts device activity (from a register callback, which is synchronous). */
  spawn(what: string, effect: Effect.Effect<void>): void
  /** A deterministic random number in [0, 1), from the simulator's seed. */
  random(): number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Model<M extends Maps = Maps> {
  /** The kind of device, e.g. `"edu"`. */
  readonly kind: string
  readonly regions: M
  readonly irqs: number
  readonly start?: ((ctx: Context<M>) => Effect.Effect<void, never, Scope.Scope>) | undefined
}

/**
 * Defines a device model.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RegisterMap } from "@devscope/core"
 * import { Model } from "@devscope/sim"
 *
 * const Regs = RegisterMap.make("timer", 0x10, {
 *   COUNT: { offset: 0x0, access: "RO" },
 *   KICK: { offset: 0x4, access: "WO" }
 * })
 *
 * export const Timer = Model.make({
 *   kind: "timer",
 *   regions: [Regs],
 *   irqs: 1,
 *   start: (ctx) =>
 *     Effect.sync(() => {
 *       const [regs] = ctx.regions
 *       regs.onWrite("KICK", () => {
 *         regs.set("COUNT", regs.get("COUNT") + 1)
 *         ctx.raise(0)
 *       })
 *     })
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <const M extends Maps>(model: Model<M>): Model<M> => model
