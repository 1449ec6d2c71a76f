/**
 * The Bus: holds devices and drivers, matches them, and runs the bind and unbind sequences.
 *
 * - Binding a driver opens a scope; the driver's probe Layer is built into it, with the
 *   Bound and Core tokens in its context. Every fiber started inside the binding belongs to it.
 * - Unbinding follows the contract (docs/concepts.md section 5): child devices removed and
 *   linked consumers unbound (step 1), gates closed (step 2), the driver's `remove` with full
 *   access, then every binding fiber interrupted and awaited, resources released in reverse
 *   order (failures collected, none stops the others), the token revoked, leak checks, an
 *   `Unbound` event. The whole sequence is uninterruptible and every wait in it has a
 *   deadline (`fiberStopTimeout`, `releaseTimeout`, `removeTimeout`, the gates' and
 *   registrations' own): driver code that outlives its deadline is reported as `Detached`
 *   and the unbind goes on, so it always ends, whatever the driver does.
 * - The bus's own life: open, then shutting down (its scope closing: no new device, driver
 *   or bind, `BusShutDown`), then closed.
 * - Bind, unbind and remove of one device are serialised by a per-device lock; different
 *   devices proceed concurrently.
 * - A probe failing with `ProbeDefer` queues the device; it is retried after any bind succeeds.
 * - Device links (the kernel's `device_link_add`): a consumer does not probe while one of its
 *   suppliers is not bound (it is deferred, and retried once they are), and unbinding a
 *   supplier, for any reason, first unbinds its bound consumers, recursively, with the same
 *   cause (step 1 of the unbind contract). A consumer is never bound while a supplier is not.
 *   Locks are taken supplier first, then consumer; a bind reads its suppliers' state only.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Device, Spec } from "./Device.js"
import type {
  AlreadyBound,
  BusShutDown,
  ParentUnbinding,
  DeviceExists,
  DeviceNotFound,
  DeviceRemoved,
  DriverAlreadyRegistered,
  DriverNotFound,
  LinkCycle,
  NoMatchingDriver,
  NotBound,
  ProbeDeferred,
  ProbeFailed
} from "./DeviceError.js"
import type * as Driver from "./Driver.js"
import * as internal from "./internal/bus/make.js"
import type { LeakReport } from "./Leak.js"
import type { LifecycleEvent, UnbindReport } from "./Lifecycle.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Bus name, shown on its devices. Default `"bus"`. */
  readonly name?: string | undefined
  /** Bind matching drivers when a device or driver appears. Default `true`. */
  readonly autoBind?: boolean | undefined
  /**
   * How long unbind waits for interrupted binding fibers (an uninterruptible region can
   * delay them). Fibers still running then are reported as `FiberLeak`s and the unbind
   * goes on, so it never hangs on them. Clock time (virtual under TestClock). Default 5 s.
   */
  readonly fiberStopTimeout?: Duration.DurationInput | undefined
  /**
   * How long a probe may run. With it, each probe runs in a fiber of its own: at the deadline
   * it is interrupted; if it still has not ended one deadline later (an uninterruptible
   * region), the bind stops waiting, reports it as a `Detached` leak and tears down what it
   * acquired; a bus shutdown cancels probes in flight. Without it (the default) a probe runs
   * in its binder's fiber, with no deadline: that fiber costs about a quarter of a bind, and
   * interrupting the binder cancels the probe the same way. Set it when drivers are not
   * trusted (the hostile-driver fuzzer does).
   */
  readonly probeTimeout?: Duration.DurationInput | undefined
  /**
   * How long the unbind waits for the driver's `remove` (step 3), interrupted then waited
   * for once more as for the probe; a `remove` that outlives both is `Detached` and the
   * unbind goes on. Default 5 s.
   */
  readonly removeTimeout?: Duration.DurationInput | undefined
  /**
   * How long the unbind waits for each release (a Devres, a probe Layer's finalizer),
   * interrupted then waited for once more; a release that outlives both is `Detached` and
   * the next one runs. No release waits on a sibling release. Default 5 s.
   */
  readonly releaseTimeout?: Duration.DurationInput | undefined
  /** Make unbind die with `LeaksDetected` (after completing) when it finds leaks. For tests. */
  readonly strict?: boolean | undefined
  /**
   * Which call sites to capture: where a Devres was acquired (its `acquiredAt`, and the
   * default label of an unlabelled one) and where each bind/unbind/remove was requested (a
   * report's `site`, the `revokedAt` of a `UseAfterUnbind`). A capture is a stack walk
   * (several µs: as much as the acquisition itself) and cannot be taken after the fact, when
   * a defect or report needs it.
   * - `"unlabelled"` (default): bus calls, and Devres acquired without a label (a label
   *   names a resource in reports and defects already; its `acquiredAt` then says so);
   * - `"always"`: every Devres too, for hunting where a labelled resource comes from;
   * - `"never"`: none (those fields say the site was not captured).
   * Leak reports (`Leak.track`, DMA mappings) name their site in every mode; streaming
   * mappings, a per-request path, sample theirs once a binding has made 64 (see `Dma.map`),
   * except with `"always"`.
   */
  readonly captureSites?: "always" | "unlabelled" | "never" | undefined
  /** Lifecycle events kept in `history`. Default 10,000. */
  readonly historySize?: number | undefined
  /**
   * Called synchronously with every event as it is published, in order with whatever else
   * the caller records (the simulator's trace uses it). Isolated: if it throws, the bus
   * publishes an `ObserverFailed` event (not handed to it) and the sequence goes on.
   */
  readonly onEvent?: ((event: LifecycleEvent) => void) | undefined
}

/**
 * What `bind` can fail with.
 * @since 0.1.0
 * @category models
 */
export type BindError =
  | DeviceNotFound
  | DeviceRemoved
  | AlreadyBound
  | BusShutDown
  | DriverNotFound
  | NoMatchingDriver
  | ProbeDeferred
  | ProbeFailed

/**
 * A device link: `consumer` needs `supplier` bound (the kernel's managed device link).
 * @since 0.1.0
 * @category models
 */
export interface Link {
  readonly consumer: Device
  readonly supplier: Device
}


/**
 * Options of `addDevice`.
 * @since 0.1.0
 * @category models
 */
export interface AddOptions {
  /**
   * Devices the new one consumes: linked before it is offered to drivers (as the kernel's
   * fw_devlink does from firmware), so it does not probe before they are bound.
   */
  readonly suppliers?: ReadonlyArray<Device | string> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly name: string
  /** Adds a device; binds a matching driver if `autoBind`. A failed probe does not fail this. */
  addDevice(spec: Spec): Effect.Effect<Device, DeviceExists | BusShutDown | ParentUnbinding>
  /**
   * Adds a device linked to its suppliers (all must be on this bus), then binds a matching
   * driver if `autoBind`: it is deferred until every supplier is bound.
   */
  addDevice(
    spec: Spec,
    options: AddOptions
  ): Effect.Effect<Device, DeviceExists | DeviceNotFound | DeviceRemoved | BusShutDown | ParentUnbinding>
  /**
   * Removes a device: unbinds it (cause `hot-unplug` unless told `surprise`; its linked
   * consumers first, with the same cause), drops its links, then forgets it.
   * Returns the unbind report if it was bound.
   */
  removeDevice(
    device: Device | string,
    options?: { readonly cause?: "hot-unplug" | "surprise" | undefined }
  ): Effect.Effect<UnbindReport | undefined, DeviceNotFound | DeviceRemoved>
  /** Registers a driver, capturing the environment it needs; binds matching unbound devices. */
  registerDriver<Drv extends Driver.Any>(
    driver: Drv
  ): Effect.Effect<void, DriverAlreadyRegistered | BusShutDown, Driver.Requirements<Drv>>
  /**
   * Unregisters a driver and unbinds every device it is bound to (cause `unload`). A device
   * unbound as the consumer of another is reported inside that one's report.
   */
  unregisterDriver(
    driver: string | Driver.Any
  ): Effect.Effect<ReadonlyArray<UnbindReport>, DriverNotFound>
  /**
   * Binds the device to the named driver, or to the first registered driver that matches.
   * Fails with `ProbeDeferred` (and queues the device) while one of its suppliers is not bound.
   */
  bind(device: Device | string, driver?: string): Effect.Effect<void, BindError>
  /** Unbinds the device (cause `manual`), its linked consumers first. */
  unbind(device: Device | string): Effect.Effect<UnbindReport, DeviceNotFound | DeviceRemoved | NotBound>
  /**
   * Links `consumer` to `supplier` (both on this bus): from now on the consumer probes only
   * while the supplier is bound, and is unbound before the supplier is. Linking twice is a
   * no-op; a link that would close a cycle (a self-link included) fails with `LinkCycle`.
   * If the consumer is bound and the supplier is not, the consumer is unbound first (cause
   * `manual`) and deferred: it binds again once the supplier is bound.
   *
   * @example
   * ```ts
   * import { Effect } from "effect"
   * import { Bus } from "@devscope/core"
   *
   * const program = Effect.gen(function*() {
   *   const bus = yield* Bus.Bus
   *   const clk = yield* bus.addDevice({ name: "clk0", ids: { compatible: ["acme,clk"] } })
   *   const uart = yield* bus.addDevice({ name: "uart0", ids: { compatible: ["acme,uart"] } })
   *   yield* bus.link(uart, clk)
   *   console.log(yield* bus.suppliersOf(uart)) // [clk]
   * }).pipe(Effect.provide(Bus.layer()))
   * ```
   */
  link(consumer: Device | string, supplier: Device | string): Effect.Effect<void, DeviceNotFound | DeviceRemoved | LinkCycle>
  /**
   * Removes the link, if there is one. A consumer deferred only because of it is retried.
   */
  unlink(consumer: Device | string, supplier: Device | string): Effect.Effect<void>
  /** Every link on the bus. */
  readonly links: Effect.Effect<ReadonlyArray<Link>>
  /** The devices this one consumes, in link order. */
  suppliersOf(device: Device | string): Effect.Effect<ReadonlyArray<Device>, DeviceNotFound | DeviceRemoved>
  /** The devices consuming this one, in link order. */
  consumersOf(device: Device | string): Effect.Effect<ReadonlyArray<Device>, DeviceNotFound | DeviceRemoved>
  device(name: string): Effect.Effect<Device, DeviceNotFound>
  readonly devices: Effect.Effect<ReadonlyArray<Device>>
  /** Names of the registered drivers, in registration order. */
  readonly drivers: Effect.Effect<ReadonlyArray<string>>
  /** Lifecycle events from the moment the stream is run. */
  readonly events: Stream.Stream<LifecycleEvent>
  /** A subscription that receives every event published after this effect runs. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<LifecycleEvent>, never, Scope.Scope>
  /** The most recent events (see `historySize`). */
  readonly history: Effect.Effect<ReadonlyArray<LifecycleEvent>>
  /** Every leak found so far, at unbinds and later. */
  readonly leaks: Effect.Effect<ReadonlyArray<LeakReport>>
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bus } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* Bus.Bus
 *   yield* bus.addDevice({ name: "sensor0", ids: { compatible: ["acme,temp"] } })
 * }).pipe(Effect.provide(Bus.layer({ name: "platform" })))
 * ```
 * @since 0.1.0
 * @category tags
 */
export class Bus extends Context.Tag("@devscope/core/Bus")<Bus, Service>() {}

/**
 * Makes a bus in the current scope. Closing the scope unbinds every device (cause `unload`).
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Service, never, Scope.Scope> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Bus> => Layer.scoped(Bus, internal.make(options))
