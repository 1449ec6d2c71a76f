/**
 * The bus's state: its own life, its drivers, and one record (`Entry`) per device, with the
 * device's lifecycle as an explicit state machine.
 *
 * # Invariants
 * - The bus's life only moves forward: `open` → `shutting-down` → `closed`. Outside `open`
 *   no device, driver or bind is accepted (`BusShutDown`) and nothing binds, so nothing
 *   binds during or after the shutdown.
 * - A device's state changes only through {@link transition}, along {@link TRANSITIONS},
 *   with the device's lock held (the one exception: a new device starts `unbound`).
 * - `entry.binding` is set from the start of a probe (`probing`) to the end of an unbind or
 *   of a failed probe's clean-up: exactly while the state is `probing`, `bound` or
 *   `unbinding`.
 * - A child device (added by a binding) is in its parent's `children` from its addition to
 *   its removal; the parent's unbind removes it at step 1, so no child outlives the binding
 *   that added it. Once that step has begun, `closingChildren` is set and no child is added.
 * - Links are symmetric: `a.suppliers.has(b)` exactly when `b.consumers.has(a)`.
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Device from "../../Device.js"
import { BusShutDown, DeviceNotFound, DeviceRemoved } from "../../DeviceError.js"
import * as Driver from "../../Driver.js"
import type { LeakReport } from "../../Leak.js"
import type { UnbindReport } from "../../Lifecycle.js"
import type { Binding, BindingOptions } from "../binding.js"
import type { DeviceImpl } from "../device.js"
import type { EventLog } from "../events.js"
import { DeviceLock } from "../lock.js"

/** Every device state change the bus makes; anything else is a bug in devscope. */
export const TRANSITIONS: { readonly [S in Device.State]: ReadonlyArray<Device.State> } = {
  unbound: ["probing", "deferred", "removed"],
  deferred: ["probing", "removed"],
  probing: ["bound", "unbound", "deferred"],
  bound: ["unbinding"],
  unbinding: ["unbound"],
  removed: []
}

/** One device on the bus. */
export class Entry {
  binding: Binding | undefined = undefined
  readonly lock = new DeviceLock()
  /** Device links: the devices this one consumes, and the devices consuming it. */
  readonly suppliers = new Set<Entry>()
  readonly consumers = new Set<Entry>()
  /** Devices this device's bindings added (see the invariants above). */
  readonly children = new Set<Entry>()
  /** Set when the unbind of this device starts removing its children. */
  closingChildren = false
  constructor(
    readonly device: DeviceImpl,
    readonly parent: Entry | undefined
  ) {}
}

/** Moves `entry` to state `to`; a move outside {@link TRANSITIONS} is a defect. */
export const transition = (entry: Entry, to: Device.State): void => {
  const from = entry.device.state
  if (!TRANSITIONS[from].includes(to)) {
    throw new Error(`devscope bug: device "${entry.device.name}" cannot go from "${from}" to "${to}"`)
  }
  entry.device.state = to
}

/** A registered driver, with the environment captured at registration. */
export interface Registered {
  readonly driver: Driver.Any
  readonly context: Context.Context<never>
}

/** The bus's options, resolved. */
export interface Settings {
  readonly autoBind: boolean
  readonly strict: boolean
  readonly probeTimeout: Duration.Duration | undefined
  readonly removeTimeout: Duration.Duration
  readonly captureSites: "always" | "unlabelled" | "never"
  readonly binding: BindingOptions
}

/** The bus's own life (see the invariants above). */
export type Life = "open" | "shutting-down" | "closed"

/** Everything the bus's protocols share. */
export class BusState {
  life: Life = "open"
  readonly entries = new Map<string, Entry>()
  readonly drivers = new Map<string, Registered>()
  /** Devices waiting for a retry (EPROBE_DEFER). */
  readonly deferred = new Set<Entry>()
  readonly leaks: Array<LeakReport> = []
  /** Driver unloads in flight: a second unload of the same driver joins the first. */
  readonly unloading = new Map<
    string,
    { readonly registered: Registered; readonly fiber: Fiber.RuntimeFiber<ReadonlyArray<UnbindReport>, never> }
  >()
  /** Adds a child device of `parent`'s device (set by make.ts; `Auxiliary.register`). */
  addChild: (
    parent: Binding,
    spec: Device.Spec,
    onCreated: (device: Device.Device) => void
  ) => Effect.Effect<Device.Device, unknown> = () => Effect.die("bus not ready")
  /** A deferred-probe retry sequence is running; `retryAgain`: something bound meanwhile. */
  retrying = false
  retryAgain = false

  constructor(
    readonly name: string,
    readonly settings: Settings,
    readonly clock: Clock.Clock,
    readonly log: EventLog
  ) {}

  publish(event: Parameters<EventLog["publish"]>[0]): void {
    this.log.publish(event)
  }

  recordLeaks(found: ReadonlyArray<LeakReport>): void {
    for (const leak of found) this.leaks.push(leak)
  }

  /** `BusShutDown` unless the bus is open. */
  refusal(): BusShutDown | undefined {
    return this.life === "open" ? undefined : new BusShutDown({ bus: this.name, state: this.life })
  }

  /** A device reference's entry; a stale Device object is "removed". */
  lookup(ref: Device.Device | string): Entry | DeviceNotFound | DeviceRemoved {
    const name = typeof ref === "string" ? ref : ref.name
    const entry = this.entries.get(name)
    if (entry !== undefined && (typeof ref === "string" || (entry.device as Device.Device) === ref)) return entry
    if (typeof ref !== "string" && ref.state === "removed") return new DeviceRemoved({ device: name })
    return new DeviceNotFound({ device: name })
  }

  firstMatch(device: DeviceImpl): Registered | undefined {
    for (const registered of this.drivers.values()) {
      if (Driver.matches(registered.driver, device)) return registered
    }
    return undefined
  }
}

export const isEntry = (found: Entry | DeviceNotFound | DeviceRemoved): found is Entry => found instanceof Entry
