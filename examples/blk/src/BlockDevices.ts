/**
 * The user-facing side of the blk driver: `BlockDevice` handles and the `BlockDevices`
 * registry (a block-layer-like class where bound disks appear at probe and disappear at unbind).
 *
 * @since 0.1.0
 */
import { Context, Data, type Effect, Layer, Option } from "effect"
import type { DeviceError } from "@devscope/core"

/**
 * A request that does not fit the device: outside `[0, sectors)`, empty, or data that is not
 * whole sectors. Checked before anything reaches the device.
 * @since 0.1.0
 */
export class OutOfRange extends Data.TaggedError("OutOfRange")<{
  readonly device: string
  readonly sector: number
  /** Sectors asked for (a fraction when a write's data is not whole sectors). */
  readonly count: number
  readonly sectors: number
  readonly reason: "beyond capacity" | "empty" | "not whole sectors"
}> {}

/**
 * A request the platform could not map for DMA (the IOMMU refused its buffer, as a kernel
 * `dma_map_*` failure): nothing reached the device and no tag is held; the call may be
 * retried. Its `reason` is the hardware's.
 * @since 0.1.0
 */
export class IoRefused extends Data.TaggedError("IoRefused")<{
  readonly device: string
  readonly op: "read" | "write"
  readonly sector: number
  readonly reason: string
}> {}

/**
 * Counters of one block device; a snapshot, readable after unbind too (last values).
 * @since 0.1.0
 */
export interface BlkStats {
  /** Read requests submitted to the device. */
  readonly reads: number
  /** Write requests submitted to the device. */
  readonly writes: number
  /** Flush requests submitted to the device. */
  readonly flushes: number
  /** Submitted requests the device completed. */
  readonly completed: number
  /** Submitted requests failed with `DeviceGone` (the device went away with them). */
  readonly failed: number
  /** Submitted requests the device failed (a driver bug: resolved as a defect). */
  readonly errors: number
  /** Calls refused (`DeviceGone`, `IoRefused`) before anything was submitted. */
  readonly rejected: number
  /** Submitted requests not resolved yet. `reads + writes + flushes = completed + failed + errors + inFlight`. */
  readonly inFlight: number
  readonly bytesRead: number
  readonly bytesWritten: number
}

/**
 * One bound disk. Every call resolves exactly once: with its result, with `OutOfRange`, with
 * `IoRefused` when its buffer could not be mapped, or with `DeviceGone` once the device is
 * going away (guarantee G4).
 * @since 0.1.0
 */
export interface BlockDevice {
  readonly device: string
  readonly sectors: number
  readonly sectorSize: number
  /** Reads `count` sectors from `sector`. */
  read(sector: number, count: number): Effect.Effect<Uint8Array, DeviceError.DeviceGone | OutOfRange | IoRefused>
  /** Writes `data` (whole sectors) at `sector`; on the medium when this succeeds. */
  write(sector: number, data: Uint8Array): Effect.Effect<void, DeviceError.DeviceGone | OutOfRange | IoRefused>
  /** Completes after every write completed before it was submitted. */
  flush(): Effect.Effect<void, DeviceError.DeviceGone>
  /** Readable after unbind too (last values). */
  stats(): BlkStats
}

/**
 * The registry of bound block devices, by device name.
 * @since 0.1.0
 */
export interface BlockDevicesRegistry {
  readonly register: (device: BlockDevice) => void
  /** Removes `device` if it is the one registered under its name. */
  readonly unregister: (device: BlockDevice) => void
  readonly lookup: (name: string) => Option.Option<BlockDevice>
  /** Names of the registered devices. */
  readonly devices: () => ReadonlyArray<string>
}

/**
 * The registry as a service, provided where the driver is registered.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { BlockDevices } from "@devscope/example-blk"
 *
 * const firstSector = Effect.flatMap(BlockDevices, (disks) =>
 *   Option.match(disks.lookup("blk0"), {
 *     onNone: () => Effect.succeed(undefined),
 *     onSome: (disk) => disk.read(0, 1)
 *   }))
 * ```
 * @since 0.1.0
 */
export class BlockDevices extends Context.Tag("@devscope/example-blk/BlockDevices")<
  BlockDevices,
  BlockDevicesRegistry
>() {}

/**
 * A fresh registry.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { BlockDevices, makeBlockDevices } from "@devscope/example-blk"
 *
 * const disks = makeBlockDevices()
 * const withDisks = <A, E, R>(program: Effect.Effect<A, E, R>) => Effect.provideService(program, BlockDevices, disks)
 * ```
 * @since 0.1.0
 */
export const makeBlockDevices = (): BlockDevicesRegistry => {
  const byName = new Map<string, BlockDevice>()
  return {
    register: (device) => void byName.set(device.device, device),
    unregister: (device) => {
      if (byName.get(device.device) === device) byName.delete(device.device)
    },
    lookup: (name) => Option.fromNullable(byName.get(name)),
    devices: () => [...byName.keys()]
  }
}

/**
 * `BlockDevices` as a Layer (a fresh registry).
 * @since 0.1.0
 */
export const layer: Layer.Layer<BlockDevices> = Layer.sync(BlockDevices, makeBlockDevices)
