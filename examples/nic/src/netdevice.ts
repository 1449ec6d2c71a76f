/**
 * What user code sees of a bound card: a `NetDevice` handle (the kernel's `net_device` seen
 * from a socket), published in the `NetDevices` registry while the card is bound.
 *
 * @since 0.1.0
 */
import { Context, Data, type Effect, Layer, Option } from "effect"
import type { DeviceError } from "@devscope/core"

/**
 * `send` found the TX ring full: back-pressure. The caller may retry once earlier sends have
 * completed.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import type { NetDevice } from "@devscope/example-nic"
 *
 * const sendPatiently = (dev: NetDevice, frame: Uint8Array) =>
 *   dev.send(frame).pipe(Effect.retry({ while: (e) => e._tag === "TxQueueFull", schedule: Schedule.spaced("50 micros") }))
 * ```
 * @since 0.1.0
 */
export class TxQueueFull extends Data.TaggedError("TxQueueFull")<{
  readonly device: string
  /** Frames the ring holds in flight. */
  readonly capacity: number
}> {
  override get message() {
    return `TX ring of "${this.device}" is full (${this.capacity} frames in flight)`
  }
}

/**
 * Counters of one card, kept by the driver.
 * @since 0.1.0
 */
export interface NetStats {
  readonly txFrames: number
  readonly txBytes: number
  readonly rxFrames: number
  readonly rxBytes: number
  /** Dropped by the device (no free descriptor, RX disabled) or by the driver (backlog full). */
  readonly rxDropped: number
  /** TX descriptors the device completed with an error. */
  readonly txErrors: number
  /** `send` calls refused with `TxQueueFull`. */
  readonly txQueueFull: number
  /** Interrupts handled. */
  readonly interrupts: number
  /** Poll batches run by the poll fiber. */
  readonly polls: number
  /** `LINK_CHANGE` interrupts seen. */
  readonly linkChanges: number
}

/**
 * A bound card, as user code holds it.
 * @since 0.1.0
 */
export interface NetDevice {
  readonly device: string
  readonly mac: number
  /**
   * Queue a frame; resolves when the device has sent it (TX completion); fails with DeviceGone
   * if the device goes away first, or the typed `TxQueueFull` when the ring is full
   * (back-pressure). Resolves exactly once.
   */
  send(frame: Uint8Array): Effect.Effect<void, DeviceError.DeviceGone | TxQueueFull>
  /**
   * Waits for the next received frame. Fails with DeviceGone once the device is being unbound
   * (pending receivers are woken with DeviceGone).
   */
  receive(): Effect.Effect<Uint8Array, DeviceError.DeviceGone>
  /** Outside the binding, through tryAccess: "down" once unbound. */
  link(): "up" | "down"
  /** Counters; readable after unbind too (last values). */
  stats(): NetStats
}

/**
 * The registry of bound cards (a `net` class), keyed by device name.
 * @since 0.1.0
 */
export interface NetDevicesRegistry {
  readonly register: (dev: NetDevice) => void
  readonly unregister: (dev: NetDevice) => void
  readonly lookup: (device: string) => Option.Option<NetDevice>
  readonly devices: () => ReadonlyArray<string>
}

/**
 * The registry as a service, provided where the driver is registered: cards appear at probe
 * and disappear at unbind.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { NetDevices } from "@devscope/example-nic"
 *
 * const ping = Effect.gen(function*() {
 *   const devs = yield* NetDevices
 *   const nic0 = Option.getOrThrow(devs.lookup("nic0"))
 *   yield* nic0.send(new Uint8Array(64))
 * })
 * ```
 * @since 0.1.0
 */
export class NetDevices extends Context.Tag("@devscope/example-nic/NetDevices")<NetDevices, NetDevicesRegistry>() {}

/**
 * A fresh registry.
 *
 * @example
 * ```ts
 * import { makeNetDevices } from "@devscope/example-nic"
 *
 * const devs = makeNetDevices()
 * devs.devices() // []
 * ```
 * @since 0.1.0
 */
export const makeNetDevices = (): NetDevicesRegistry => {
  const devs = new Map<string, NetDevice>()
  return {
    register: (dev) => void devs.set(dev.device, dev),
    unregister: (dev) => {
      if (devs.get(dev.device) === dev) devs.delete(dev.device)
    },
    lookup: (device) => Option.fromNullable(devs.get(device)),
    devices: () => [...devs.keys()]
  }
}

/**
 * `NetDevices` as a Layer (a fresh registry).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NetDevices, layer } from "@devscope/example-nic"
 *
 * const names = Effect.map(NetDevices, (devs) => devs.devices()).pipe(Effect.provide(layer))
 * ```
 * @since 0.1.0
 */
export const layer: Layer.Layer<NetDevices> = Layer.sync(NetDevices, makeNetDevices)
