/**
 * The hardware simulation service: simulated PCI-like and platform buses whose devices are
 * driven by device models, the `Hardware` service drivers run on, fault injection, virtual
 * time (Effect's Clock, so `TestClock` in tests) and a structured trace.
 *
 * - `plug` adds a device (its model starts, then the bus binds a matching driver);
 * - `unplug` is orderly removal: the driver unbinds while the device still works, then the
 *   device's activity stops;
 * - `surpriseRemove` marks the device disconnected first (reads return all-ones, writes are
 *   dropped, DMA and interrupts stop, in-flight device activity is aborted), then the normal
 *   unbind runs.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type Bus, type Device, type DeviceError, Hardware, type Lifecycle } from "@devscope/core"
import type * as Iommu from "./Iommu.js"
import * as internal from "./internal/simulator.js"
import type * as Model from "./Model.js"
import * as Trace from "./Trace.js"

/**
 * A fault rule. `device` limits a rule to one device (all devices otherwise).
 *
 * - `fail-nth`: the n-th request of that kind (counted from 1, per device if `device` is
 *   given, else across the simulator) is refused with `HardwareRefused`;
 * - `delay-completions`: device completions take `by` longer (with `probability`, default 1);
 * - `drop-completions`: device completions never happen (with `probability`, default 1);
 * - `irq-storm`: from virtual time `at` (default 0 after plug), the device raises `line`
 *   `count` times, one every `interval` (default 1 µs);
 * - `all-ones-reads`: from `at` on, the device's link is down: reads return all-ones, writes
 *   are dropped, its DMA and interrupts stop, as in a surprise removal, but the device stays
 *   on its bus (bound, until something unbinds or removes it).
 *
 * @since 0.1.0
 * @category models
 */
export type FaultRule =
  | { readonly kind: "fail-nth"; readonly request: "dma-alloc" | "dma-map" | "irq"; readonly n: number; readonly device?: string | undefined }
  | { readonly kind: "delay-completions"; readonly by: Duration.DurationInput; readonly probability?: number | undefined; readonly device?: string | undefined }
  | { readonly kind: "drop-completions"; readonly probability?: number | undefined; readonly device?: string | undefined }
  | {
    readonly kind: "irq-storm"
    readonly device: string
    readonly line: number
    readonly count: number
    readonly at?: Duration.DurationInput | undefined
    readonly interval?: Duration.DurationInput | undefined
  }
  | { readonly kind: "all-ones-reads"; readonly device: string; readonly at?: Duration.DurationInput | undefined }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Seed of the simulator's random numbers (probabilistic faults, models). Default 1. */
  readonly seed?: number | undefined
  readonly faults?: ReadonlyArray<FaultRule> | undefined
  /** Options of both buses. */
  readonly bus?: Omit<Bus.Options, "name"> | undefined
  /**
   * Called synchronously with every lifecycle event of either bus, in order with device
   * activity (after the event is in the trace). `bus.onEvent`, if given, is called too.
   */
  readonly onLifecycle?: ((bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => void) | undefined
  /** Record a trace. Default `true`. */
  readonly trace?: boolean | undefined
  /** Most recent trace events kept (see `Trace.Options.limit`). Default 100,000. */
  readonly traceLimit?: number | undefined
}

/**
 * A plugged device, seen from the simulator.
 * @since 0.1.0
 * @category models
 */
export interface SimDevice<M extends Model.Maps = Model.Maps> {
  readonly name: string
  readonly bus: "pci" | "platform"
  readonly device: Device.Device
  readonly model: Model.Model<M>
  /** The device side: register files, interrupts, DMA. */
  readonly ctx: Model.Context<M>
  readonly state: "present" | "disconnected" | "removed"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly pci: Bus.Service
  readonly platform: Bus.Service
  readonly trace: Trace.Service
  readonly hardware: Hardware.Service
  plug<M extends Model.Maps>(spec: {
    readonly bus: "pci" | "platform"
    readonly name: string
    readonly ids?: Device.Ids | undefined
    readonly model: Model.Model<M>
  }): Effect.Effect<SimDevice<M>, DeviceError.DeviceExists | DeviceError.BusShutDown | DeviceError.ParentUnbinding>
  /** Orderly removal. Returns the unbind report if a driver was bound. */
  unplug(name: string): Effect.Effect<Lifecycle.UnbindReport | undefined, DeviceError.DeviceNotFound>
  /** Surprise removal. Returns the unbind report if a driver was bound. */
  surpriseRemove(name: string): Effect.Effect<Lifecycle.UnbindReport | undefined, DeviceError.DeviceNotFound>
  device(name: string): Option.Option<SimDevice>
  /**
   * Adds a fault rule now, as if given to `make` but counted from this moment: a `fail-nth`
   * rule's `n` counts the requests made from now on (`n: 1` fails the next one); delayed and
   * dropped completions apply to completions that start from now; an `irq-storm` or
   * `all-ones-reads` rule starts `at` from now on its device if it is present (and, like any
   * rule, from their plug on devices plugged later). Fuzzers inject faults at a chosen step.
   */
  inject(rule: FaultRule): Effect.Effect<void>
  /** Every IOMMU fault so far, in order, each with its virtual time (`at`); never capped (unlike the trace). */
  readonly iommuFaults: () => ReadonlyArray<Iommu.Fault>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Simulator extends Context.Tag("@devscope/sim/Simulator")<Simulator, Service>() {}

/**
 * Makes a simulator in the current scope.
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Service, never, Scope.Scope> = internal.make

/**
 * The simulator, as the `Hardware` drivers run on, with its trace.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@devscope/sim"
 *
 * const program = Effect.gen(function*() {
 *   const sim = yield* Simulator.Simulator
 *   // sim.pci.registerDriver(...), sim.plug({ bus: "pci", name: "edu0", ids, model })
 * }).pipe(Effect.provide(Simulator.layer({ seed: 42 })))
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Simulator | Hardware.Hardware | Trace.Trace> =>
  Layer.scopedContext(
    Effect.map(internal.make(options), (sim) =>
      Context.make(Simulator, sim).pipe(
        Context.add(Hardware.Hardware, sim.hardware),
        Context.add(Trace.Trace, sim.trace)
      ))
  )

/**
 * The simulator's deterministic generator (mulberry32): numbers in [0, 1), the same sequence
 * for the same seed on every machine. For workloads and tests that must replay with a seed.
 *
 * @example
 * ```ts
 * import { Simulator } from "@devscope/sim"
 *
 * const next = Simulator.random(42)
 * const sector = Math.floor(next() * 2048)
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const random: (seed: number) => () => number = internal.prng
