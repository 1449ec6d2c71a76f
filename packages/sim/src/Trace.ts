/**
 * A structured trace of simulator events: register accesses, faults, interrupts, DMA,
 * IOMMU faults and lifecycle events, each with a sequence number, the (virtual) time and the
 * device it concerns.
 *
 * - `record` is synchronous and cheap; when the trace is disabled it does nothing, and
 *   simulator hot paths check `enabled` before they build an event, so a disabled trace
 *   costs one branch per access.
 * - Time comes from the `now` function the trace is given. `layer` and `fromClock` read
 *   Effect's `Clock`, so under `TestClock` events carry virtual time.
 * - The trace keeps the most recent `limit` events; `dropped` counts the older ones let go.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/trace.js"

/**
 * What a device model reports as wrong with a driver access:
 * - `write-to-read-only`: a write to an `RO` or `RC` register (ignored);
 * - `read-of-write-only`: a read of a `WO` register (returns 0);
 * - `reserved-bits`: a write setting bits outside the register's fields (those bits are dropped);
 * - `unimplemented`: an access where no register is (reads return 0, writes are dropped);
 * - `bad-width`: an access whose width or alignment does not match the register (reads
 *   return all-ones, writes are dropped);
 * - `disconnected-access`: an access after surprise removal (reads return all-ones, writes
 *   are dropped).
 *
 * @since 0.1.0
 * @category models
 */
export type FaultKind =
  | "write-to-read-only"
  | "read-of-write-only"
  | "reserved-bits"
  | "unimplemented"
  | "bad-width"
  | "disconnected-access"

/**
 * Every fault kind, in a fixed order.
 * @since 0.1.0
 * @category constants
 */
export const faultKinds: ReadonlyArray<FaultKind> = internal.faultKinds

/**
 * A DMA transfer direction, as the kernel's `dma_data_direction`.
 * @since 0.1.0
 * @category models
 */
export type DmaDirection = "to-device" | "from-device" | "bidirectional"

/**
 * What a `Dma` trace event records: the driver's allocations and mappings, and the device's
 * own accesses to memory.
 * @since 0.1.0
 * @category models
 */
export type DmaOp = "alloc-coherent" | "free-coherent" | "map" | "unmap" | "device-read" | "device-write"

/**
 * A simulator event. Every event carries `seq` (increasing, per trace), `at` (the trace's
 * time in milliseconds, virtual under `TestClock`) and `device`.
 *
 * - `MmioRead` / `MmioWrite`: a driver access to a register window (`register` is
 *   `undefined` where no register is); `value` is what the read returned or the write wrote.
 * - `Fault`: something wrong with an access (see {@link FaultKind}); `value` is the value
 *   written, or returned by a read.
 * - `Lifecycle`: a device-side lifecycle event (`"disconnect"`, `"reset"`, ...).
 * - `Irq`: an interrupt line raised, lowered, or a spurious interrupt.
 * - `Dma`: a DMA transfer through the device's IOMMU view.
 * - `IommuFault`: a DMA access the IOMMU refused.
 *
 * @since 0.1.0
 * @category models
 */
export type TraceEvent = Data.TaggedEnum<{
  MmioRead: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly region: string
    readonly register: string | undefined
    readonly offset: number
    readonly width: 8 | 16 | 32
    readonly value: number
  }
  MmioWrite: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly region: string
    readonly register: string | undefined
    readonly offset: number
    readonly width: 8 | 16 | 32
    readonly value: number
  }
  Fault: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly fault: FaultKind
    readonly region: string
    readonly register: string | undefined
    readonly offset: number
    readonly width: 8 | 16 | 32
    readonly value: number | undefined
    readonly detail: string
  }
  Lifecycle: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly event: string
    readonly detail: string | undefined
  }
  Irq: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly line: number
    readonly kind: "raise" | "lower" | "spurious"
  }
  Dma: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly op: DmaOp
    readonly direction: DmaDirection
    readonly iova: number
    readonly length: number
  }
  IommuFault: {
    readonly seq: number
    readonly at: number
    readonly device: string
    readonly iova: number
    readonly access: "read" | "write"
    readonly reason: string
  }
}>

/**
 * Guards (`$is`) and matchers (`$match`) for {@link TraceEvent}. Events are recorded with
 * {@link Service.record}, which assigns `seq` and `at`.
 *
 * @example
 * ```ts
 * import { Trace } from "@devscope/sim"
 *
 * const isFault = Trace.TraceEvent.$is("Fault")
 * const trace = Trace.make()
 * trace.record({ _tag: "Irq", device: "edu0", line: 0, kind: "spurious" })
 * console.log(trace.events().filter(isFault).length) // 0
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const TraceEvent = Data.taggedEnum<TraceEvent>()

/**
 * The tag of a trace event kind.
 * @since 0.1.0
 * @category models
 */
export type Kind = TraceEvent["_tag"]

/**
 * What `record` takes: an event without `seq` and `at`, which the trace assigns.
 * @since 0.1.0
 * @category models
 */
export type Input = TraceEvent extends infer E ? E extends TraceEvent ? Omit<E, "seq" | "at"> : never : never

/**
 * Selects events by kind (one tag or several) and device.
 * @since 0.1.0
 * @category models
 */
export interface Selector<K extends Kind = Kind> {
  readonly kind?: K | ReadonlyArray<K> | undefined
  readonly device?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The current time in milliseconds; default `() => 0`. */
  readonly now?: (() => number) | undefined
  /** Record events; default `true`. */
  readonly enabled?: boolean | undefined
  /** Keep at most this many of the most recent events; default 100 000. */
  readonly limit?: number | undefined
}

/**
 * A trace.
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** When `false`, `record` is a no-op. Can be switched at any time. */
  enabled: boolean
  readonly limit: number
  /** Events let go because of `limit`. */
  readonly dropped: number
  /**
   * Records an event, stamped with the next `seq` and the current time. The trace keeps the
   * object it is given and stamps it in place (no copy per event): pass a fresh object.
   */
  record(event: Input): void
  /** The events kept, oldest first. */
  events(): ReadonlyArray<TraceEvent>
  filter<K extends Kind>(selector: Selector<K> & { readonly kind: K | ReadonlyArray<K> }): ReadonlyArray<
    Extract<TraceEvent, { readonly _tag: K }>
  >
  filter(selector: Selector): ReadonlyArray<TraceEvent>
  filter<A extends TraceEvent>(refinement: (event: TraceEvent) => event is A): ReadonlyArray<A>
  filter(predicate: (event: TraceEvent) => boolean): ReadonlyArray<TraceEvent>
  /** Drops every event kept. Sequence numbers keep increasing. */
  clear(): void
  /**
   * The events as JSON Lines: one object per line (each line ends with `\n`), keys in a
   * fixed order (`seq`, `at`, `device`, `_tag`, then the kind's fields), numbers as numbers,
   * `undefined` fields left out.
   */
  toJsonLines(): string
}

/**
 * Makes a trace.
 *
 * @example
 * ```ts
 * import { Trace } from "@devscope/sim"
 *
 * let now = 0
 * const trace = Trace.make({ now: () => now })
 * trace.record({ _tag: "Lifecycle", device: "edu0", event: "reset", detail: undefined })
 * now = 5
 * trace.record({ _tag: "Irq", device: "edu0", line: 0, kind: "raise" })
 * console.log(trace.filter({ kind: "Irq" })[0].at) // 5
 * console.log(trace.toJsonLines())
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Service => new internal.TraceImpl(options)

/**
 * Makes a trace whose time is Effect's `Clock` (virtual under `TestClock`).
 * @since 0.1.0
 * @category constructors
 */
export const fromClock: (options?: Omit<Options, "now">) => Effect.Effect<Service> = internal.fromClock

/**
 * The trace service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Trace } from "@devscope/sim"
 *
 * const program = Effect.gen(function*() {
 *   const trace = yield* Trace.Trace
 *   trace.record({ _tag: "Irq", device: "edu0", line: 3, kind: "raise" })
 *   return trace.events()
 * }).pipe(Effect.provide(Trace.layer()))
 * ```
 * @since 0.1.0
 * @category tags
 */
export class Trace extends Context.Tag("@devscope/sim/Trace")<Trace, Service>() {}

/**
 * A trace timed by Effect's `Clock`.
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Omit<Options, "now">): Layer.Layer<Trace> => Layer.effect(Trace, internal.fromClock(options))
