/**
 * Register maps as data: name, offset, width, access, reset value and named bit fields. One
 * definition drives both the driver's typed `Mmio` accessors and the simulated device model.
 *
 * Access kinds:
 * - `RO` read-only (writes are ignored by the device, and a type error in the driver);
 * - `RW` read-write;
 * - `WO` write-only (reads return 0 on the device, and are a type error in the driver);
 * - `W1C` write-1-to-clear (a status register: writing 1 to a bit clears it);
 * - `RC` read-to-clear (reading returns the value and clears it; writes are ignored).
 *
 * @since 0.1.0
 */
import * as internal from "./internal/registerMap.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Access = "RO" | "RW" | "WO" | "W1C" | "RC"

/**
 * @since 0.1.0
 * @category models
 */
export type Width = 8 | 16 | 32

/**
 * A bit field: one bit (`bit`) or an inclusive range (`bits: [lo, hi]`), optionally with
 * named values.
 * @since 0.1.0
 * @category models
 */
export interface FieldSpec {
  readonly bit?: number | undefined
  readonly bits?: readonly [lo: number, hi: number] | undefined
  readonly values?: Readonly<Record<string, number>> | undefined
  readonly description?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RegisterSpec {
  readonly offset: number
  /** Bits; default 32. */
  readonly width?: Width | undefined
  readonly access: Access
  /** Value after reset; default 0. */
  readonly reset?: number | undefined
  /**
   * Named fields. When given, bits outside every field are reserved: the device model
   * reports writes that set them.
   */
  readonly fields?: Readonly<Record<string, FieldSpec>> | undefined
  readonly description?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export type Spec = Readonly<Record<string, RegisterSpec>>

/**
 * A validated register resolved for fast access.
 * @since 0.1.0
 * @category models
 */
export interface Register {
  readonly name: string
  readonly offset: number
  readonly width: Width
  readonly access: Access
  readonly reset: number
  /** Bits covered by fields (all bits of the width when the register has no fields). */
  readonly implemented: number
  readonly fields: ReadonlyArray<Field>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Field {
  readonly name: string
  readonly shift: number
  readonly mask: number
  readonly values: Readonly<Record<string, number>> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RegisterMap<S extends Spec = Spec> {
  readonly name: string
  /** Size of the register window in bytes. */
  readonly size: number
  readonly spec: S
  readonly registers: { readonly [K in keyof S]: Register }
  /** Register at a byte offset, if any. */
  at(offset: number): Register | undefined
}

/**
 * Names of registers the driver may read (everything but `WO`).
 * @since 0.1.0
 * @category type-level
 */
export type Readable<S extends Spec> = { [K in keyof S]: S[K]["access"] extends "WO" ? never : K }[keyof S] & string

/**
 * Names of registers the driver may write (`RW`, `WO`, `W1C`).
 * @since 0.1.0
 * @category type-level
 */
export type Writable<S extends Spec> =
  { [K in keyof S]: S[K]["access"] extends "RW" | "WO" | "W1C" ? K : never }[keyof S] & string

/**
 * Names of read-write registers (the only ones `modify` may read-modify-write).
 * @since 0.1.0
 * @category type-level
 */
export type ReadWrite<S extends Spec> = { [K in keyof S]: S[K]["access"] extends "RW" ? K : never }[keyof S] & string

/**
 * Names of the fields of register `R`.
 * @since 0.1.0
 * @category type-level
 */
export type FieldOf<S extends Spec, R extends keyof S> = S[R]["fields"] extends Readonly<Record<string, FieldSpec>>
  ? keyof S[R]["fields"] & string
  : never

/**
 * Makes a register map, checking it: registers inside the window, aligned to their width,
 * not overlapping; fields inside their register and not overlapping; reset values in range.
 * A bad map is a programming error and throws at definition time.
 *
 * @example
 * ```ts
 * import { RegisterMap } from "@devscope/core"
 *
 * export const EduRegs = RegisterMap.make("edu", 0x100, {
 *   ID: { offset: 0x00, access: "RO", reset: 0x010000ed },
 *   LIVENESS: { offset: 0x04, access: "RW" },
 *   STATUS: { offset: 0x20, access: "RW", fields: { COMPUTING: { bit: 0 }, IRQ_ON_DONE: { bit: 7 } } },
 *   IRQ_STATUS: { offset: 0x24, access: "RO" },
 *   IRQ_ACK: { offset: 0x64, access: "W1C" }
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make: <const S extends Spec>(name: string, size: number, spec: S) => RegisterMap<S> = internal.make

/**
 * Reads a field out of a register value.
 * @since 0.1.0
 * @category utils
 */
export const getField = (field: Field, value: number): number => ((value & field.mask) >>> field.shift)

/**
 * Returns `value` with `field` set to `fieldValue` (masked to the field).
 * @since 0.1.0
 * @category utils
 */
export const setField = (field: Field, value: number, fieldValue: number): number =>
  ((value & ~field.mask) | ((fieldValue << field.shift) & field.mask)) >>> 0
