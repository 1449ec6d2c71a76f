/**
 * Typed register access (the kernel's `IoMem` / `io::register!`). An `Mmio` is created from a
 * register map and a `Region` (a register window: a simulated device's BAR, or plain memory);
 * its accessors are synchronous and allocation-free, and checked at compile time: unknown
 * registers, writes to read-only registers, reads of write-only ones and unknown fields are
 * type errors. `read32`/`write32` take dynamic offsets with runtime bounds and alignment
 * checks; `tryRead32`/`tryWrite32` return a typed error instead of dying.
 *
 * `mmio.register(name)` resolves one register once (at probe, say) into a handle whose
 * `read()`/`write()` over plain memory are a single typed-array load or store: the fastest
 * typed access, for hot paths.
 *
 * An `Mmio` is a Devres of its binding: when the binding ends, its region (and every handle's)
 * is swapped for one that raises `UseAfterUnbind`, so a stale `Mmio` or handle can never read
 * a value, and the live path carries no extra check.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Bound from "./Bound.js"
import type * as Devres from "./Devres.js"
import type * as Driver from "./Driver.js"
import * as internal from "./internal/mmio.js"
import type { FieldOf, Readable, ReadWrite, RegisterMap, Spec, Width, Writable } from "./RegisterMap.js"

/**
 * A register window as the hardware (or the simulator) provides it. Offsets are in bytes.
 * Implementations must be synchronous and must not allocate per access.
 *
 * @since 0.1.0
 * @category models
 */
export interface Region {
  readonly size: number
  read8(offset: number): number
  read16(offset: number): number
  read32(offset: number): number
  write8(offset: number, value: number): void
  write16(offset: number, value: number): void
  write32(offset: number, value: number): void
}

/**
 * A dynamic access outside the window or not aligned to its width.
 * @since 0.1.0
 * @category errors
 */
export const InvalidAccess: new(args: Pick<InvalidAccess, "region" | "offset" | "width" | "reason">) => InvalidAccess = internal.InvalidAccess

/**
 * A dynamic access outside the window or not aligned to its width (what the `try` accessors
 * return, and the unchecked ones die with).
 * @since 0.1.0
 * @category errors
 */
export interface InvalidAccess extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "InvalidAccess"
  /** The window's label (`iomap`'s `label` option, by default the register map's name). */
  readonly region: string
  /** The byte offset accessed, from the start of the window. */
  readonly offset: number
  /** The access width, in bits. */
  readonly width: 8 | 16 | 32
  /** Why it is invalid: outside the window, or not aligned to its width. */
  readonly reason: "out of range" | "misaligned"
}

/**
 * One register of an `Mmio`, resolved once: its accessors do no name lookup. Which accessors
 * exist follows the register's access kind, as for the `Mmio` methods of the same names:
 * `read`/`readField` unless `WO`, `write` for `RW`/`WO`/`W1C`, `modify` for `RW` only.
 * A handle is revoked with its `Mmio`: after the unbind every access raises `UseAfterUnbind`.
 *
 * @since 0.1.0
 * @category models
 */
export type RegisterHandle<S extends Spec, R extends keyof S & string> =
  & {
    readonly name: R
    /** Byte offset in the window. */
    readonly offset: number
    readonly width: Width
  }
  & (R extends Readable<S> ? {
      /** Reads the register (an `RC` register clears on read). */
      read(): number
      /** Reads one field. */
      readField(field: FieldOf<S, R>): number
    }
    : unknown)
  & (R extends Writable<S> ? {
      /** Writes the register. */
      write(value: number): void
    }
    : unknown)
  & (R extends ReadWrite<S> ? {
      /** Read-modify-write of one field. */
      modify(field: FieldOf<S, R>, value: number): void
    }
    : unknown)

/**
 * @since 0.1.0
 * @category models
 */
export interface Mmio<S extends Spec> {
  readonly map: RegisterMap<S>
  /**
   * The handle of one register (the same object on every call), for hot paths: resolve it
   * once, then `handle.read()` costs about what a raw typed-array read does.
   *
   * @example
   * ```ts
   * import { Mmio, RegisterMap } from "@devscope/core"
   *
   * const Regs = RegisterMap.make("uart", 0x10, {
   *   DATA: { offset: 0x0, access: "RW", width: 8 },
   *   STATUS: { offset: 0x4, access: "RO", fields: { RX_READY: { bit: 0 } } }
   * })
   * const uart = Mmio.unsafeMake(Regs, Mmio.memoryRegion(0x10))
   * const status = uart.register("STATUS") // once, at probe
   * const data = uart.register("DATA")
   * const poll = () => (status.readField("RX_READY") === 1 ? data.read() : -1)
   * // status.write(0) is a type error: STATUS is read-only
   * ```
   * @since 0.1.0
   */
  register<R extends keyof S & string>(name: R): RegisterHandle<S, R>
  /** Reads a register (not `WO`). `RC` registers clear on read, as on the device. */
  read(register: Readable<S>): number
  /** Writes a register (`RW`, `WO`, `W1C`). */
  write(register: Writable<S>, value: number): void
  /** Reads one field of a readable register. */
  readField<R extends Readable<S>>(register: R, field: FieldOf<S, R>): number
  /** Read-modify-write of one field of an `RW` register. */
  modify<R extends ReadWrite<S>>(register: R, field: FieldOf<S, R>, value: number): void
  /**
   * Dynamic reads and writes at a byte offset known only at run time (the kernel's
   * `read32`/`try_write8`...): checked against the window and the access width's alignment.
   * These die with `InvalidAccess`; the `try` variants return it instead.
   */
  read8(offset: number): number
  read16(offset: number): number
  read32(offset: number): number
  write8(offset: number, value: number): void
  write16(offset: number, value: number): void
  write32(offset: number, value: number): void
  tryRead8(offset: number): Either.Either<number, InvalidAccess>
  tryRead16(offset: number): Either.Either<number, InvalidAccess>
  tryRead32(offset: number): Either.Either<number, InvalidAccess>
  tryWrite8(offset: number, value: number): Either.Either<void, InvalidAccess>
  tryWrite16(offset: number, value: number): Either.Either<void, InvalidAccess>
  tryWrite32(offset: number, value: number): Either.Either<void, InvalidAccess>
}

/**
 * Maps a register window into the current binding as a Devres. `region` acquires the window
 * (and `release` gives it back); the region must be at least as large as the map.
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import { Devres, Driver, Mmio, RegisterMap } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * const EduRegs = RegisterMap.make("edu", 0x100, {
 *   ID: { offset: 0x00, access: "RO", reset: 0x010000ed },
 *   STATUS: { offset: 0x20, access: "RW", fields: { COMPUTING: { bit: 0 }, IRQ_ON_DONE: { bit: 7 } } }
 * })
 *
 * class Bar0 extends Context.Tag("edu/Bar0")<Bar0, Devres.Devres<Mmio.Mmio<typeof EduRegs.spec>, "edu">>() {}
 *
 * const Bar0Live = Layer.effect(Bar0, Mmio.iomap(Edu, EduRegs, Effect.sync(() => Mmio.memoryRegion(0x100))))
 *
 * const probe = Effect.gen(function*() {
 *   const bar0 = (yield* Bar0).access(yield* Edu.Bound)
 *   bar0.modify("STATUS", "IRQ_ON_DONE", 1)
 *   return bar0.read("ID")
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const iomap = <D extends string, S extends Spec, E, R>(
  driver: Driver.Brand<D>,
  map: RegisterMap<S>,
  region: Effect.Effect<Region, E, R>,
  options?: {
    readonly label?: string | undefined
    readonly release?: ((region: Region) => Effect.Effect<void>) | undefined
  }
): Effect.Effect<Devres.Devres<Mmio<S>, D>, E, R | Bound.Bound<D>> => internal.iomap(driver, map, region, options)

/**
 * A region backed by plain memory, with no device behind it (for tests and examples).
 * @since 0.1.0
 * @category constructors
 */
export const memoryRegion = (size: number): Region => new internal.MemoryRegion(size)

/**
 * An `Mmio` over a region without a binding (device models, tests). Never revoked.
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = <S extends Spec>(map: RegisterMap<S>, region: Region): Mmio<S> =>
  new internal.MmioImpl(map, region, map.name)
