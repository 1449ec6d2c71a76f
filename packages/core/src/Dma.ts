/**
 * DMA for drivers (the kernel's `dma::Coherent` with `dma_read!`/`dma_write!`,
 * `dma_map_single` with `dma_sync_single_for_cpu/device`, and `dma_set_mask`).
 *
 * - **Layouts** describe the memory shared with the device: `struct` computes field offsets
 *   (natural alignment, little-endian `u8`/`u16`/`u32`), `array` repeats a struct. A `View`
 *   over memory reads and writes fields by name: synchronous, allocation-free, checked at
 *   compile time (an unknown field is a type error); an index out of range is a `RangeError`.
 * - **Coherent allocations** (`allocCoherent`) are memory both CPU and device see, as a Devres
 *   of the binding: freed at unbind (or with `Devres.release`). After that, the `Coherent`'s
 *   view (and any view taken from it) raises `UseAfterUnbind`: a stale descriptor ring never
 *   reads a value, and the live path carries no extra check.
 * - **Streaming mappings** (`map`) hand a CPU buffer to the device in one direction, as a
 *   Devres of the binding. Ownership moves with `syncForCpu`/`syncForDevice`; the driver ends
 *   the mapping with `mapping.unmap()` (or `Dma.unmap`). A mapping still mapped when the
 *   binding ends is unmapped by the unbind *and* reported by its leak check as an
 *   `ObjectLeak` naming where it was mapped. Per-request paths map with the token
 *   (`map(token, ...)`: no context to read) and unmap with the plain call `mapping.unmap()`.
 *   Map and unmap sites are raw stack positions, formatted only when a report shows them, and
 *   sampled once a binding has made 64 mappings (see `map`).
 * - **`setMask`** sets the device's addressing limit; like the kernel's, it needs the Core
 *   token (probe/remove).
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Bound from "./Bound.js"
import type * as Core from "./Core.js"
import type * as Devres from "./Devres.js"
import type * as Driver from "./Driver.js"
import type { DmaDirection, Hardware, HardwareRefused } from "./Hardware.js"
import * as internal from "./internal/dma.js"
import { callSite } from "./internal/site.js"

/**
 * A field type: unsigned, little-endian, naturally aligned.
 * @since 0.1.0
 * @category models
 */
export type Scalar = "u8" | "u16" | "u32"

/**
 * Field names and types of a struct layout, in memory order.
 * @since 0.1.0
 * @category models
 */
export type Fields = { readonly [name: string]: Scalar }

/**
 * Direction of a streaming mapping, from the device's point of view of memory.
 * @since 0.1.0
 * @category models
 */
export type Direction = DmaDirection

/**
 * A struct layout: each field at its natural alignment, the size padded to the largest
 * alignment (as a C compiler lays out a struct of `u8`/`u16`/`u32`).
 * @since 0.1.0
 * @category models
 */
export interface StructLayout<F extends Fields> {
  readonly _tag: "Struct"
  readonly fields: F
  /** Byte offset of each field. */
  readonly offsets: { readonly [K in keyof F]: number }
  readonly size: number
  readonly align: number
}

/**
 * `length` consecutive structs (a descriptor ring, a table).
 * @since 0.1.0
 * @category models
 */
export interface ArrayLayout<F extends Fields> {
  readonly _tag: "Array"
  readonly element: StructLayout<F>
  readonly length: number
  /** Bytes from one element to the next (the element's size). */
  readonly stride: number
  readonly size: number
  readonly align: number
}

/**
 * @since 0.1.0
 * @category models
 */
export type Layout = StructLayout<any> | ArrayLayout<any>

/**
 * Field access to one struct in memory.
 * @since 0.1.0
 * @category models
 */
export interface StructView<F extends Fields> {
  readonly layout: StructLayout<F>
  get(field: keyof F & string): number
  /** Stores the value modulo 2^width, like a C store to an unsigned field. */
  set(field: keyof F & string, value: number): void
  /**
   * Copies `source` into the memory at `byteOffset` (from the start of the layout) in one
   * go: for payloads (frames, sectors), where a field-by-field loop would cost a call per byte.
   * A range outside the layout throws a `RangeError`; after the memory is freed,
   * `UseAfterUnbind`.
   */
  copyIn(byteOffset: number, source: Uint8Array): void
  /** Fills `target` from the memory at `byteOffset`; the same rules as `copyIn`. */
  copyOut(byteOffset: number, target: Uint8Array): void
}

/**
 * Field access to an array of structs in memory; an index outside `[0, length)` throws a
 * `RangeError`.
 * @since 0.1.0
 * @category models
 */
export interface ArrayView<F extends Fields> {
  readonly layout: ArrayLayout<F>
  readonly length: number
  get(index: number, field: keyof F & string): number
  /** Stores the value modulo 2^width, like a C store to an unsigned field. */
  set(index: number, field: keyof F & string, value: number): void
  /**
   * Copies `source` into the memory at `byteOffset` (from the start of the layout) in one
   * go: for payloads (frames, sectors), where a field-by-field loop would cost a call per byte.
   * A range outside the layout throws a `RangeError`; after the memory is freed,
   * `UseAfterUnbind`.
   */
  copyIn(byteOffset: number, source: Uint8Array): void
  /** Fills `target` from the memory at `byteOffset`; the same rules as `copyIn`. */
  copyOut(byteOffset: number, target: Uint8Array): void
}

/**
 * The view type of a layout.
 * @since 0.1.0
 * @category models
 */
export type View<L extends Layout> = L extends StructLayout<infer F> ? StructView<F>
  : L extends ArrayLayout<infer F> ? ArrayView<F>
  : never

/**
 * Coherent memory, shared by CPU and device for the whole binding.
 * @since 0.1.0
 * @category models
 */
export interface Coherent<L extends Layout> {
  readonly layout: L
  /** The address the device uses. */
  readonly iova: number
  readonly size: number
  /** Typed access to the memory; raises `UseAfterUnbind` once the allocation is freed. */
  readonly view: View<L>
  readonly isFreed: boolean
}

/**
 * A CPU buffer mapped for the device.
 * @since 0.1.0
 * @category models
 */
export interface Mapping {
  /** The address the device uses. */
  readonly iova: number
  readonly direction: Direction
  readonly buffer: Uint8Array
  readonly size: number
  /** Who may touch the buffer: the device after `map` and `syncForDevice`, the CPU after `syncForCpu`. */
  readonly owner: "device" | "cpu"
  readonly isMapped: boolean
  /** Gives the buffer to the CPU (after the device wrote it). `UseAfterUnbind` once unmapped. */
  syncForCpu(): void
  /** Gives the buffer back to the device (after the CPU wrote it). `UseAfterUnbind` once unmapped. */
  syncForDevice(): void
  /**
   * Ends the mapping now, as {@link unmap} does, as a plain synchronous call (for completion
   * paths that run no Effect): this call is the unmap site (sampled, see {@link map}), the
   * buffer belongs to the CPU afterwards, and the mapping leaves the leak check. Idempotent.
   * If the platform's unmap throws, the failure is recorded on the binding and rethrown.
   */
  unmap(): void
}

/**
 * Defines a struct layout. Field order is memory order; each field is naturally aligned and
 * the size is padded to the largest field.
 *
 * @example
 * ```ts
 * import { Dma } from "@devscope/core"
 *
 * const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16", status: "u8" })
 * // Desc.offsets: { addr: 0, len: 4, flags: 6, status: 8 }, Desc.size: 12
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const struct: <const F extends Fields>(fields: F) => StructLayout<F> = internal.struct

/**
 * Defines an array of `length` structs.
 *
 * @example
 * ```ts
 * import { Dma } from "@devscope/core"
 *
 * const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16" })
 * const Ring = Dma.array(Desc, 256) // 256 * 8 bytes
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const array: <F extends Fields>(element: StructLayout<F>, length: number) => ArrayLayout<F> = internal.array

/**
 * A view of a layout over plain memory, starting at `byteOffset`, tied to no binding and
 * never revoked (device models, tests). Throws a `RangeError` if the layout does not fit.
 *
 * @example
 * ```ts
 * import { Dma } from "@devscope/core"
 *
 * const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16" })
 * const ring = Dma.view(Dma.array(Desc, 4), new Uint8Array(32))
 * ring.set(1, "len", 1500)
 * ring.get(1, "len") // 1500
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const view: <L extends Layout>(layout: L, memory: Uint8Array, byteOffset?: number) => View<L> = internal.view

/**
 * Allocates coherent memory for `layout` into the current binding. It is freed when the
 * binding ends (or with `Devres.release`); from then on its view raises `UseAfterUnbind`.
 * The device must have been stopped from using it before (in `remove`).
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import { Devres, Dma, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const Ring = Dma.array(Dma.struct({ addr: "u32", len: "u16", flags: "u16" }), 64)
 *
 * class RxRing extends Context.Tag("nic/RxRing")<RxRing, Devres.Devres<Dma.Coherent<typeof Ring>, "nic">>() {}
 * const RxRingLive = Layer.effect(RxRing, Dma.allocCoherent(Nic, Ring, { label: "rx ring" }))
 *
 * const fill = Effect.gen(function*() {
 *   const ring = (yield* RxRing).access(yield* Nic.Bound)
 *   for (let i = 0; i < ring.view.length; i++) ring.view.set(i, "len", 2048)
 *   return ring.iova // for the device's ring base register
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const allocCoherent = <D extends string, L extends Layout>(
  driver: Driver.Brand<D>,
  layout: L,
  options?: { readonly label?: string | undefined }
): Effect.Effect<Devres.Devres<Coherent<L>, D>, HardwareRefused, Hardware | Bound.Bound<D>> =>
  internal.allocCoherent(driver, layout, options, callSite())

/**
 * Maps `buffer` for the device, into a binding. The device owns it until `syncForCpu`. End
 * the mapping with `mapping.unmap()` or {@link unmap}: one still mapped at unbind is unmapped
 * there and reported as an `ObjectLeak` ("dma mapping 0x… (direction)") naming this call.
 *
 * Two forms:
 * - `map(driver, ...)` takes the Bound token and `Hardware` from the Effect context (probe,
 *   `remove`, binding fibers);
 * - `map(token, ...)` takes the binding from the token (a Gate section's, a handler's), with
 *   nothing required from the context: the form for per-request paths, where providing a
 *   context per call would cost more than the mapping. A revoked token dies with
 *   `UseAfterUnbind`.
 *
 * **Sites.** The site of this call (and of each unmap) is captured as raw stack positions (a
 * walk of a few frames, formatted only if a leak report, an IOMMU fault or a defect shows it)
 * for a binding's first 64 maps and 64 unmaps; after that, one call in 256 is. A walk from a
 * request path costs 5 to 20 µs, more than the rest of the mapping, and a mapping per request
 * would pay it twice per request. A call that was not sampled names, instead of its own site,
 * the latest sampled one of the same kind and label in the binding (normally the same line):
 * `not captured (sampled: ...; the latest sampled mapping labelled "rx" was at driver.ts:80:7)`.
 * The site is taken when the effect is made: make one `map` effect per mapping. A bus with
 * `captureSites: "always"` captures every call instead (for hunting a leak).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dma, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 *
 * const receive = (frame: Uint8Array) =>
 *   Effect.gen(function*() {
 *     const mapping = (yield* Dma.map(Nic, frame, "from-device")).access(yield* Nic.Bound)
 *     // ... the device writes the frame at mapping.iova ...
 *     mapping.syncForCpu()
 *     const first = frame[0]
 *     yield* Dma.unmap(mapping)
 *     return first
 *   })
 * ```
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type Bound, Dma } from "@devscope/core"
 *
 * // Per request, with the token of a Gate section: map now, unmap on completion.
 * const submit = (token: Bound.Bound<"blk">, buffer: Uint8Array) =>
 *   Effect.map(Dma.map(token, buffer, "to-device", { label: "write buffer" }), (devres) => {
 *     const mapping = devres.access(token)
 *     // ... describe mapping.iova to the device; when it completes:
 *     return () => mapping.unmap()
 *   })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const map: {
  <D extends string>(
    token: Bound.Bound<D>,
    buffer: Uint8Array,
    direction: Direction,
    options?: { readonly label?: string | undefined }
  ): Effect.Effect<Devres.Devres<Mapping, D>, HardwareRefused>
  <D extends string>(
    driver: Driver.Brand<D>,
    buffer: Uint8Array,
    direction: Direction,
    options?: { readonly label?: string | undefined }
  ): Effect.Effect<Devres.Devres<Mapping, D>, HardwareRefused, Hardware | Bound.Bound<D>>
} = (
  owner: Driver.Brand<string> | Bound.Bound<string>,
  buffer: Uint8Array,
  direction: Direction,
  options?: { readonly label?: string | undefined }
) => internal.map(owner, buffer, direction, options, map) as any

/**
 * Unmaps a streaming mapping now (given the mapping or its Devres), naming this call as the
 * unmap site (sampled as `map` samples its sites). Idempotent; the buffer belongs to the CPU
 * afterwards, and the mapping is no longer reported by the leak check. `mapping.unmap()` does
 * the same as a plain call.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dma, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const send = (frame: Uint8Array) =>
 *   Effect.gen(function*() {
 *     const mapping = yield* Dma.map(Nic, frame, "to-device")
 *     // ... the device reads the frame ...
 *     yield* Dma.unmap(mapping)
 *   })
 * ```
 * @since 0.1.0
 * @category destructors
 */
export const unmap = (mapping: Mapping | Devres.Devres<Mapping, any>): Effect.Effect<void> =>
  internal.unmap(mapping, unmap)

/**
 * Sets how many address bits the device can drive (the kernel's `dma_set_mask`). Only legal
 * in probe/remove: with a Core token whose callback has returned, it dies with `CoreNotHeld`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Dma, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const probe = Layer.effectDiscard(Effect.flatMap(Nic.Core, (core) => Dma.setMask(core, 48)))
 * ```
 * @since 0.1.0
 * @category utils
 */
export const setMask = <D extends string>(core: Core.Core<D>, bits: number): Effect.Effect<void, never, Hardware> =>
  internal.setMask(core, bits)
