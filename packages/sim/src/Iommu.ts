/**
 * The simulated IOMMU: each device reaches memory only through its own domain, a set of
 * mapped windows (coherent allocations and streaming mappings) with permissions by direction.
 * A device access outside a live window, against its direction, or to a streaming buffer the
 * CPU owns is an IOMMU fault, recorded with provenance: where the window was mapped, where
 * it was unmapped or freed, and which device access hit it.
 *
 * @since 0.1.0
 */
import type { Hardware } from "@devscope/core"
import * as internal from "./internal/iommu.js"
import type * as Trace from "./Trace.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Window {
  readonly iova: number
  readonly size: number
  readonly kind: "coherent" | "streaming"
  readonly direction: Hardware.DmaDirection
  readonly mappedAt: string
  /** Set when unmapped or freed. */
  readonly unmappedAt: string | undefined
  /** For streaming mappings: who may touch the buffer now. */
  readonly owner: "cpu" | "device"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Fault {
  readonly device: string
  readonly iova: number
  readonly length: number
  readonly access: "read" | "write"
  readonly reason: "unmapped" | "stale" | "direction" | "cpu-owned" | "out-of-bounds"
  /** Which device access hit it (the model's label for the access, e.g. "edu dma engine"). */
  readonly by: string
  /** The window the address fell in, live or stale, if any. */
  readonly window: Window | undefined
  /**
   * Virtual time of the access, in milliseconds (from `Options.now`; the simulator's
   * domains have it); absent for a domain made without a clock.
   */
  readonly at?: number | undefined
}

/**
 * A device's IOMMU domain: the driver side (`Hardware.DmaPort`) and the device side.
 * @since 0.1.0
 * @category models
 */
export interface Domain extends Hardware.DmaPort {
  /** Device-side read of `length` bytes at `iova`; `undefined` after a fault (recorded). */
  deviceRead(iova: number, length: number, by: string): Uint8Array | undefined
  /** Device-side write; `false` after a fault (recorded). */
  deviceWrite(iova: number, data: Uint8Array, by: string): boolean
  /** Live windows. */
  readonly windows: ReadonlyArray<Window>
  readonly faults: ReadonlyArray<Fault>
  /** Stops all device-side access (surprise removal): accesses are dropped, not faults. */
  disconnect(): void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly device: string
  readonly trace?: Trace.Service | undefined
  /** Called before each driver request; returns a reason to refuse it (fault injection). */
  readonly refuse?: ((request: "dma-alloc" | "dma-map") => string | undefined) | undefined
  /** Called on each fault (the simulator collects them). */
  readonly onFault?: ((fault: Fault) => void) | undefined
  /** The current time in milliseconds, stamped on each fault as its `at` (the simulator passes its clock). */
  readonly now?: (() => number) | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Domain => new internal.DomainImpl(options)

/**
 * A one-line description of a fault, with its provenance.
 * @since 0.1.0
 * @category utils
 */
export const format = (fault: Fault): string => internal.format(fault)

