/**
 * The user-facing side of the NVMe driver: the `NvmeDevice` handle a bound controller
 * publishes (namespace 1 as a block device), the errors its calls fail with, and the
 * `NvmeDevices` registry where bound controllers appear at probe and disappear at unbind.
 *
 * Every call resolves exactly once (guarantee G4): with its result; with a refusal made before
 * anything reached the controller (`InvalidRequest`, `IoRefused`); with the controller's own
 * status (`NvmeStatusError`, carrying its Status Code Type and Status Code); with `NvmeTimeout`
 * when no completion came within the deadline; or with `DeviceGone` once the device is going
 * away.
 *
 * @since 0.1.0
 */
import { Context, Data, type Effect, Layer, Option } from "effect"
import type { DeviceError } from "@devscope/core"
import type { ControllerInfo, NamespaceInfo } from "./commands.js"

/** The calls, as errors and stats name them. @since 0.1.0 */
export type Op = "read" | "write" | "flush" | "passthrough"

/**
 * The controller completed the command with a status other than success (NVMe 1.4, section
 * 4.6.1.2): `sct` is the Status Code Type (0 generic, 1 command specific, 2 media and data
 * integrity, 3 path), `sc` the Status Code; `name` names the generic ones (0x01 "Invalid
 * Command Opcode", 0x80 "LBA Out of Range"...). The command is over: nothing of it is left on
 * the controller.
 * @since 0.1.0
 */
export class NvmeStatusError extends Data.TaggedError("NvmeStatusError")<{
  readonly device: string
  readonly op: Op | "admin"
  readonly opcode: number
  readonly sct: number
  readonly sc: number
  readonly dnr: boolean
  readonly more: boolean
  readonly name: string
  /** The starting LBA of a read or write. */
  readonly lba?: number | undefined
}> {
  override get message() {
    const where = this.lba === undefined ? "" : ` at LBA ${this.lba}`
    return `${this.device}: ${this.op} (opcode 0x${this.opcode.toString(16)})${where} failed: ${this.name} (SCT 0x${this.sct.toString(16)}, SC 0x${this.sc.toString(16)}${this.dnr ? ", do not retry" : ""})`
  }
}

/**
 * No completion came within the call's deadline (Effect `Clock` time), after one last look at
 * the completion queue (a lost interrupt is found there). The command may still be on the
 * controller: its command id and its buffer stay reserved until it completes or the
 * controller is disabled.
 * @since 0.1.0
 */
export class NvmeTimeout extends Data.TaggedError("NvmeTimeout")<{
  readonly device: string
  readonly op: Op | "admin"
  readonly opcode: number
  readonly timeoutMillis: number
}> {
  override get message() {
    return `${this.device}: ${this.op} (opcode 0x${this.opcode.toString(16)}) did not complete within ${this.timeoutMillis} ms`
  }
}

/**
 * A request the driver refuses before it reaches the controller: not whole blocks, no
 * blocks, more than one request may carry, an LBA that is not a non-negative integer.
 * (An LBA beyond the namespace is the controller's to refuse: `NvmeStatusError` "LBA Out of
 * Range".)
 * @since 0.1.0
 */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly device: string
  readonly op: Op
  readonly reason: string
}> {
  override get message() {
    return `${this.device}: ${this.op} refused: ${this.reason}`
  }
}

/**
 * The platform could not map the request's buffer for DMA: nothing reached the controller;
 * the call may be retried.
 * @since 0.1.0
 */
export class IoRefused extends Data.TaggedError("IoRefused")<{
  readonly device: string
  readonly op: Op
  readonly reason: string
}> {
  override get message() {
    return `${this.device}: ${this.op} refused by the platform: ${this.reason}`
  }
}

/** Every way a started call can fail. @since 0.1.0 */
export type NvmeError = DeviceError.DeviceGone | NvmeStatusError | NvmeTimeout

/**
 * A command without data for the I/O queue (as Linux's `NVME_IOCTL_IO_CMD` without a
 * buffer): for vendor commands, and for seeing what the controller does with an opcode.
 * @since 0.1.0
 */
export interface Passthrough {
  readonly opcode: number
  readonly cdw10?: number | undefined
  readonly cdw11?: number | undefined
  readonly cdw12?: number | undefined
}

/**
 * Counters of one bound controller; a snapshot, readable after unbind too. Calls that reached
 * the controller: `submitted = completed + statusErrors + gone + timedOut + abandoned + pending`,
 * and `resolutions` counts each of them once.
 * @since 0.1.0
 */
export interface NvmeStats {
  readonly submitted: number
  /** Completed with success. */
  readonly completed: number
  /** Completed with an error status. */
  readonly statusErrors: number
  /** Failed with `DeviceGone` (the device went away with them). */
  readonly gone: number
  /** Failed with `NvmeTimeout`. */
  readonly timedOut: number
  /** Whose caller was interrupted while waiting. */
  readonly abandoned: number
  /** Submitted and not resolved yet. */
  readonly pending: number
  /** Resolutions of submitted calls (one each). */
  readonly resolutions: number
  /** Command ids still held on the controller (a timed-out command's until it completes). */
  readonly onController: number
  /** Completions that came for a call already resolved (timed out or abandoned). */
  readonly late: number
  /** Completions whose command id was not in flight (none expected). */
  readonly unknown: number
  /** Refused before reaching the controller (bad arguments, closed gate, DMA refused). */
  readonly refused: number
  /** Interrupt handler runs that found completions. */
  readonly interrupts: number
  /** Reads, writes and flushes submitted, and how many went through a PRP list page. */
  readonly reads: number
  readonly writes: number
  readonly flushes: number
  readonly prpLists: number
}

/**
 * One bound NVMe controller, its namespace 1 as a block device. Calls go through the
 * binding's gate: once the unbind begins, new calls fail with `DeviceGone`; a call already
 * submitted resolves once, with its completion if the controller completes it during
 * `remove`'s drain, else with `DeviceGone`.
 * @since 0.1.0
 */
export interface NvmeDevice {
  readonly device: string
  /** Identify Controller. */
  readonly controller: ControllerInfo
  /** Identify Namespace of namespace 1. */
  readonly namespace: NamespaceInfo
  /** The most blocks one read or write carries (the controller's MDTS, the PRP list page). */
  readonly maxBlocks: number
  /** Reads `blocks` logical blocks from `lba`. */
  read(lba: number, blocks: number): Effect.Effect<Uint8Array, NvmeError | InvalidRequest | IoRefused>
  /** Writes `data` (whole logical blocks) at `lba`. */
  write(lba: number, data: Uint8Array): Effect.Effect<void, NvmeError | InvalidRequest | IoRefused>
  /** Flush: what completed writes put in a volatile write cache is on the medium when this succeeds. */
  flush(): Effect.Effect<void, NvmeError>
  /** A command without data on the I/O queue; succeeds with the completion's dword 0. */
  passthrough(command: Passthrough): Effect.Effect<number, NvmeError | InvalidRequest>
  /** Readable after unbind too (last values). */
  stats(): NvmeStats
}

/** The registry of bound NVMe controllers, by device name. @since 0.1.0 */
export interface NvmeDevicesRegistry {
  readonly register: (device: NvmeDevice) => void
  /** Removes `device` if it is the one registered under its name. */
  readonly unregister: (device: NvmeDevice) => void
  readonly lookup: (name: string) => Option.Option<NvmeDevice>
  readonly devices: () => ReadonlyArray<string>
}

/** The registry as a service, provided where the driver is registered. @since 0.1.0 */
export class NvmeDevices extends Context.Tag("@devscope/example-nvme/NvmeDevices")<NvmeDevices, NvmeDevicesRegistry>() {}

/** A fresh registry. @since 0.1.0 */
export const makeNvmeDevices = (): NvmeDevicesRegistry => {
  const byName = new Map<string, NvmeDevice>()
  return {
    register: (device) => void byName.set(device.device, device),
    unregister: (device) => {
      if (byName.get(device.device) === device) byName.delete(device.device)
    },
    lookup: (name) => Option.fromNullable(byName.get(name)),
    devices: () => [...byName.keys()]
  }
}

/** `NvmeDevices` as a Layer (a fresh registry). @since 0.1.0 */
export const layer: Layer.Layer<NvmeDevices> = Layer.sync(NvmeDevices, makeNvmeDevices)
