/**
 * The user-facing side of the edu driver: the `EduDevice` handle a bound edu device publishes,
 * the errors its calls can fail with, and the `EduDevices` registry (a subsystem-like class
 * where bound devices appear at probe and disappear at unbind, as disks do in the blk example).
 *
 * Every call on an `EduDevice` resolves exactly once: with its result, with a refusal made
 * before anything reached the device (`InvalidArgument`, `DmaOutOfRange`), with `EduTimeout`
 * when the device did not answer within the call's deadline, or with `DeviceGone` once the
 * device is going away (guarantee G4).
 */
import { Context, Data, type Effect, Layer, Option } from "effect"
import type { DeviceError } from "@devscope/core"

/** The operations of the edu device, as they appear in errors and stats. */
export type Op = "factorial" | "raise" | "dma-to-device" | "dma-from-device"

/**
 * An argument the device cannot take (a factorial operand that is not a u32, interrupt bits
 * the driver keeps for the device's own events). Refused before anything reaches the device.
 */
export class InvalidArgument extends Data.TaggedError("InvalidArgument")<{
  readonly device: string
  readonly op: Op
  readonly value: number
  readonly reason: string
}> {
  override get message() {
    return `${this.device}: ${this.op}(${this.value}) refused: ${this.reason}`
  }
}

/**
 * A transfer that does not fit the device's 4 KiB buffer (at 0x40000 in the device's address
 * space). Refused by the driver before it reaches the device: QEMU's edu does not stop such a
 * transfer (older versions call `hw_error` and abort the whole machine; newer ones log a guest
 * error and copy past the end of their buffer anyway).
 */
export class DmaOutOfRange extends Data.TaggedError("DmaOutOfRange")<{
  readonly device: string
  readonly op: Op
  /** Offset into the device's buffer. */
  readonly offset: number
  readonly length: number
  /** The buffer's size (4096). */
  readonly size: number
  readonly reason: "empty" | "beyond the device buffer" | "not an integer"
}> {
  override get message() {
    return `${this.device}: ${this.op} of ${this.length} byte(s) at buffer offset ${this.offset} refused: ${this.reason} (buffer ${this.size} bytes)`
  }
}

/**
 * The device did not complete the call within its deadline (virtual time), counting the time
 * spent waiting for the unit (factorial, DMA) to be free. The work may still be running on the
 * device: the driver keeps the unit busy until the device says it is done (a DMA engine that
 * still runs must not be given another transfer, nor its buffer reused).
 */
export class EduTimeout extends Data.TaggedError("EduTimeout")<{
  readonly device: string
  readonly op: Op
  readonly timeoutMillis: number
}> {
  override get message() {
    return `${this.device}: ${this.op} did not complete within ${this.timeoutMillis} ms`
  }
}

/** Where a transfer lands or comes from inside the device's buffer. */
export interface DmaOptions {
  /** Byte offset into the device's 4 KiB buffer. Default 0. */
  readonly offset?: number | undefined
}

/**
 * Counters of one bound edu device; a snapshot, readable after unbind too (last values).
 * `started = completed + failed + inFlight` (a timed-out call stays in flight until the device
 * finishes or the unbind fails it).
 */
export interface EduStats {
  /** Calls that reached the device (registers written). */
  readonly started: number
  /** Started calls the device completed. */
  readonly completed: number
  /** Of those, completions seen first by the interrupt handler... */
  readonly byIrq: number
  /** ...by polling the device's status (the fallback)... */
  readonly byPoll: number
  /** ...or by `remove`, draining in-flight work at unbind. */
  readonly byRemove: number
  /** Started calls failed with `DeviceGone` (the device went away with them). */
  readonly failed: number
  /** Calls whose caller stopped waiting at the deadline (`EduTimeout`). */
  readonly timedOut: number
  /** Calls refused before reaching the device (bad arguments, closed gate). */
  readonly refused: number
  /** Started calls not resolved yet. */
  readonly inFlight: number
  /** Interrupt handler runs that found `IRQ_STATUS` bits (and acknowledged them). */
  readonly interrupts: number
}

/**
 * One bound edu device. Calls go through the binding's gate: once the unbind begins, new calls
 * fail with `DeviceGone`; a call already started resolves once, with its result if the device
 * finishes it during `remove`'s drain, else with `DeviceGone`.
 */
export interface EduDevice {
  readonly device: string
  /** From the `ID` register (`0xMMmm00ed`). */
  readonly version: { readonly major: number; readonly minor: number }
  /**
   * Computes `n!` modulo 2^32 on the device (`n` a u32). One at a time: the device has a
   * single factorial unit, and ignores a write to `FACT` while it computes.
   */
  factorial(n: number): Effect.Effect<number, DeviceError.DeviceGone | InvalidArgument | EduTimeout>
  /**
   * Raises interrupt bits (`IRQ_RAISE`) and completes once the interrupt handler has seen (and
   * acknowledged) all of them. The device's own bits, 0x1 (factorial) and 0x100 (DMA), are
   * refused: a raised 0x100 would look like a DMA completion.
   */
  raise(bits: number): Effect.Effect<void, DeviceError.DeviceGone | InvalidArgument | EduTimeout>
  /** Copies `bytes` into the device's buffer (at `offset`), by DMA from a coherent buffer. */
  dmaToDevice(
    bytes: Uint8Array,
    options?: DmaOptions
  ): Effect.Effect<void, DeviceError.DeviceGone | DmaOutOfRange | EduTimeout>
  /** Reads `length` bytes of the device's buffer (from `offset`), by DMA into a coherent buffer. */
  dmaFromDevice(
    length: number,
    options?: DmaOptions
  ): Effect.Effect<Uint8Array, DeviceError.DeviceGone | DmaOutOfRange | EduTimeout>
  /** Readable after unbind too (last values). */
  stats(): EduStats
}

/** The registry of bound edu devices, by device name. */
export interface EduDevicesRegistry {
  readonly register: (device: EduDevice) => void
  /** Removes `device` if it is the one registered under its name. */
  readonly unregister: (device: EduDevice) => void
  readonly lookup: (name: string) => Option.Option<EduDevice>
  /** Names of the registered devices. */
  readonly devices: () => ReadonlyArray<string>
}

/** The registry as a service, provided where the driver is registered. */
export class EduDevices extends Context.Tag("@devscope/example-edu/EduDevices")<EduDevices, EduDevicesRegistry>() {}

/** A fresh registry. */
export const makeEduDevices = (): EduDevicesRegistry => {
  const byName = new Map<string, EduDevice>()
  return {
    register: (device) => void byName.set(device.device, device),
    unregister: (device) => {
      if (byName.get(device.device) === device) byName.delete(device.device)
    },
    lookup: (name) => Option.fromNullable(byName.get(name)),
    devices: () => [...byName.keys()]
  }
}

/** `EduDevices` as a Layer (a fresh registry). */
export const layer: Layer.Layer<EduDevices> = Layer.sync(EduDevices, makeEduDevices)
