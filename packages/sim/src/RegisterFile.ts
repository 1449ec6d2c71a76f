/**
 * The device-model side of a register map. A `RegisterFile` holds a device's register values
 * and implements `Mmio.Region`, so a driver's typed `Mmio` (from `Mmio.iomap` or
 * `Mmio.unsafeMake`) reads and writes the model directly, with the register map's semantics:
 *
 * - values start at each register's reset value;
 * - `RO`: writes are ignored (fault `write-to-read-only`); `RC`: reads return the value and
 *   clear it, writes are ignored (fault `write-to-read-only`);
 * - `WO`: writes are stored, reads return 0 (fault `read-of-write-only`);
 * - `W1C`: a write clears the bits that are 1 in the value written;
 * - a write setting bits outside the register's fields is a `reserved-bits` fault and those
 *   bits are not stored;
 * - an access where no register is reads 0 and drops writes (`unimplemented`); an access of the
 *   wrong width or inside a register reads all-ones and drops writes (`bad-width`);
 * - after `disconnect()` (surprise removal) every read returns all-ones for its width and every
 *   write is dropped (`disconnected-access`).
 *
 * Driver accesses are synchronous; with no trace (or a disabled one) they do not allocate.
 * Every driver access is recorded in the trace as `MmioRead` / `MmioWrite`, followed by its
 * faults. The model's own view (`get`, `set`, `getField`, `setField`) bypasses the access
 * semantics and is never traced; `onWrite` and `onRead` attach device behaviour.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Mmio from "@devscope/core/Mmio"
import type { FieldOf, RegisterMap, Spec } from "@devscope/core/RegisterMap"
import * as internal from "./internal/registerFile.js"
import type * as Trace from "./Trace.js"

/**
 * A register or field name the register map does not have, given to the model-side API.
 * @since 0.1.0
 * @category errors
 */
export const UnknownRegister: new(args: Pick<UnknownRegister, "map" | "register" | "field">) => UnknownRegister = internal.UnknownRegister

/**
 * A register or field name the register map does not have, given to the model-side API.
 * @since 0.1.0
 * @category errors
 */
export interface UnknownRegister extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "UnknownRegister"
  /** The register map's name. */
  readonly map: string
  /** The register asked for (or the register whose field was asked for). */
  readonly register: string
  /** The field asked for; `undefined` when the register itself is unknown. */
  readonly field: string | undefined
}

/**
 * Called after a driver write is applied, with the value the driver wrote (without reserved
 * bits) and the register's value before the write. For `W1C` the stored value is then
 * `previous & ~value`; read it with `get`.
 * @since 0.1.0
 * @category models
 */
export type WriteHandler = (value: number, previous: number) => void

/**
 * Provides the value a driver read returns, instead of the stored value.
 * @since 0.1.0
 * @category models
 */
export type ReadHandler = () => number

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The device named in trace events. */
  readonly device: string
  /** The region named in trace events; default the register map's name. */
  readonly region?: string | undefined
  readonly trace?: Trace.Service | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RegisterFile<S extends Spec = Spec> extends Mmio.Region {
  readonly map: RegisterMap<S>
  readonly device: string
  readonly region: string
  readonly trace: Trace.Service | undefined
  /** True after `disconnect()`. */
  readonly isDisconnected: boolean
  /** Faults of driver accesses so far. */
  readonly faults: number
  /** Faults of one kind so far (all faults without `kind`). */
  faultCount(kind?: Trace.FaultKind): number
  /**
   * Surprise removal: from now on reads return all-ones and writes are dropped (traced as a
   * `Lifecycle` event `"disconnect"`). There is no way back.
   */
  disconnect(): void
  /** The stored value of a register (no access semantics, no `onRead`, not traced). */
  get(register: keyof S & string): number
  /** Stores a value (masked to the register's width; no access semantics, not traced). */
  set(register: keyof S & string, value: number): void
  getField<R extends keyof S & string>(register: R, field: FieldOf<S, R>): number
  setField<R extends keyof S & string>(register: R, field: FieldOf<S, R>, value: number): void
  /** Calls `handler` after each applied driver write of the register. Returns a remover. */
  onWrite(register: keyof S & string, handler: WriteHandler): () => void
  /**
   * Makes driver reads of the register return `handler()` (masked to its width) instead of
   * the stored value; an `RC` register still clears its stored value. One handler per
   * register: a new one replaces the old. Returns a remover.
   */
  onRead(register: keyof S & string, handler: ReadHandler): () => void
  /** Every register back to its reset value (traced as a `Lifecycle` event `"reset"`). */
  reset(): void
}

/**
 * Makes a register file for a register map.
 *
 * @example
 * ```ts
 * import { Mmio, RegisterMap } from "@devscope/core"
 * import { RegisterFile, Trace } from "@devscope/sim"
 *
 * const EduRegs = RegisterMap.make("edu", 0x100, {
 *   ID: { offset: 0x00, access: "RO", reset: 0x010000ed },
 *   FACTORIAL: { offset: 0x08, access: "RW" },
 *   IRQ_STATUS: { offset: 0x24, access: "RO" },
 *   IRQ_ACK: { offset: 0x64, access: "W1C" }
 * })
 *
 * const trace = Trace.make()
 * const regs = RegisterFile.make(EduRegs, { device: "edu0", trace })
 * regs.onWrite("FACTORIAL", (n) => {
 *   let f = 1
 *   for (let i = 2; i <= n; i++) f = Math.imul(f, i)
 *   regs.set("FACTORIAL", f)
 * })
 *
 * const bar0 = Mmio.unsafeMake(EduRegs, regs)
 * bar0.write("FACTORIAL", 5)
 * console.log(bar0.read("FACTORIAL")) // 120
 * console.log(bar0.read("ID").toString(16)) // "10000ed"
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <S extends Spec>(map: RegisterMap<S>, options: Options): RegisterFile<S> =>
  new internal.RegisterFileImpl(map, options)
