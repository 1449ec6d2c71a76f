import type * as Dma from "../Dma.js"

// ---------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------

const SIZE: Readonly<Record<Dma.Scalar, number>> = { u8: 1, u16: 2, u32: 4 }

/**
 * Each field is encoded as one number, `offset * 4 + code` with code 1 (u8), 2 (u16) or
 * 3 (u32), so an access is one keyed load and a switch. An unknown name reads `undefined`
 * (or an Object.prototype member), whose `& 3` is 0: the default branch, off the hot path.
 */
const CODE: Readonly<Record<Dma.Scalar, number>> = { u8: 1, u16: 2, u32: 3 }

/** Offsets are encoded in 30 bits. */
const MAX_SIZE = 2 ** 30

const alignUp = (n: number, align: number) => Math.ceil(n / align) * align

/** @internal */
export class StructLayoutImpl<F extends Dma.Fields> implements Dma.StructLayout<F> {
  readonly _tag = "Struct"
  constructor(
    readonly fields: F,
    readonly offsets: { readonly [K in keyof F]: number },
    readonly size: number,
    readonly align: number,
    readonly codes: Readonly<Record<string, number>>
  ) {}
  toString() {
    return `struct { ${Object.keys(this.fields).map((k) => `${k}: ${this.fields[k]}`).join(", ")} } (${this.size} bytes)`
  }
}

/** @internal */
export class ArrayLayoutImpl<F extends Dma.Fields> implements Dma.ArrayLayout<F> {
  readonly _tag = "Array"
  readonly stride: number
  readonly size: number
  readonly align: number
  constructor(readonly element: StructLayoutImpl<F>, readonly length: number) {
    this.stride = element.size
    this.size = element.size * length
    this.align = element.align
  }
  toString() {
    return `${this.element}[${this.length}] (${this.size} bytes)`
  }
}

/** @internal */
export const struct = <F extends Dma.Fields>(fields: F): Dma.StructLayout<F> => {
  let offset = 0
  let align = 1
  const offsets: Record<string, number> = {}
  const codes: Record<string, number> = {}
  const copy: Record<string, Dma.Scalar> = {}
  for (const name of Object.keys(fields)) {
    const type = fields[name]
    if (type !== "u8" && type !== "u16" && type !== "u32") {
      throw new TypeError(`Dma.struct: field "${name}" has type ${String(type)}; expected "u8", "u16" or "u32"`)
    }
    if (name === "__proto__") throw new TypeError(`Dma.struct: "__proto__" cannot be a field name`)
    const size = SIZE[type]
    offset = alignUp(offset, size)
    offsets[name] = offset
    codes[name] = offset * 4 + CODE[type]
    copy[name] = type
    offset += size
    if (size > align) align = size
  }
  const size = alignUp(offset, align)
  if (size >= MAX_SIZE) throw new RangeError(`Dma.struct: ${size} bytes is too large`)
  return new StructLayoutImpl(
    Object.freeze(copy) as F,
    Object.freeze(offsets) as { readonly [K in keyof F]: number },
    size,
    align,
    codes
  )
}

/** @internal */
export const array = <F extends Dma.Fields>(element: Dma.StructLayout<F>, length: number): Dma.ArrayLayout<F> => {
  if (!(element instanceof StructLayoutImpl)) throw new TypeError("Dma.array: the element must be a Dma.struct layout")
  const el = element as StructLayoutImpl<F>
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Dma.array: length must be a non-negative integer, got ${length}`)
  }
  if (el.size * length >= MAX_SIZE) throw new RangeError(`Dma.array: ${el.size * length} bytes is too large`)
  return new ArrayLayoutImpl(el, length)
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

/** The part of a DataView a view uses; a revoked view reads through a stand-in that throws. */
export interface Memory {
  getUint8(offset: number): number
  getUint16(offset: number, littleEndian: boolean): number
  getUint32(offset: number, littleEndian: boolean): number
  setUint8(offset: number, value: number): void
  setUint16(offset: number, value: number, littleEndian: boolean): void
  setUint32(offset: number, value: number, littleEndian: boolean): void
}

const unknownField = (layout: StructLayoutImpl<any>, field: string): never => {
  throw new TypeError(`Dma view of ${layout}: no field "${String(field)}"`)
}

const badIndex = (length: number, index: number): never => {
  throw new RangeError(`Dma view: index ${index} out of range [0, ${length})`)
}

const badCopy = (size: number, byteOffset: number, length: number): never => {
  throw new RangeError(`Dma view: ${length} bytes at offset ${byteOffset} do not fit in ${size}`)
}

/**
 * Bulk copies between a view's memory and a buffer. `bytes` is the view's window while the
 * memory is live; revocation clears it, and the copy then goes through the revoked memory,
 * which raises `UseAfterUnbind`.
 */
const copyIn = (view: AnyViewImpl, byteOffset: number, source: Uint8Array): void => {
  const bytes = view.bytes
  if (bytes === undefined) return void view.memory.getUint8(0)
  if (!(byteOffset >>> 0 === byteOffset && byteOffset + source.byteLength <= bytes.byteLength)) {
    return badCopy(bytes.byteLength, byteOffset, source.byteLength)
  }
  bytes.set(source, byteOffset)
}

const copyOut = (view: AnyViewImpl, byteOffset: number, target: Uint8Array): void => {
  const bytes = view.bytes
  if (bytes === undefined) return void view.memory.getUint8(0)
  if (!(byteOffset >>> 0 === byteOffset && byteOffset + target.byteLength <= bytes.byteLength)) {
    return badCopy(bytes.byteLength, byteOffset, target.byteLength)
  }
  target.set(bytes.subarray(byteOffset, byteOffset + target.byteLength))
}

/** @internal */
export class StructViewImpl<F extends Dma.Fields> implements Dma.StructView<F> {
  constructor(
    readonly layout: StructLayoutImpl<F>,
    public memory: DataView,
    readonly codes: Readonly<Record<string, number>>,
    public bytes: Uint8Array | undefined
  ) {}

  copyIn(byteOffset: number, source: Uint8Array): void {
    copyIn(this, byteOffset, source)
  }

  copyOut(byteOffset: number, target: Uint8Array): void {
    copyOut(this, byteOffset, target)
  }

  get(field: string): number {
    const c = this.codes[field]
    switch (c & 3) {
      case 3:
        return this.memory.getUint32(c >>> 2, true)
      case 2:
        return this.memory.getUint16(c >>> 2, true)
      case 1:
        return this.memory.getUint8(c >>> 2)
      default:
        return unknownField(this.layout, field)
    }
  }

  set(field: string, value: number): void {
    const c = this.codes[field]
    switch (c & 3) {
      case 3:
        return this.memory.setUint32(c >>> 2, value, true)
      case 2:
        return this.memory.setUint16(c >>> 2, value, true)
      case 1:
        return this.memory.setUint8(c >>> 2, value)
      default:
        return unknownField(this.layout, field)
    }
  }
}

/** @internal */
export class ArrayViewImpl<F extends Dma.Fields> implements Dma.ArrayView<F> {
  readonly length: number
  readonly stride: number
  constructor(
    readonly layout: ArrayLayoutImpl<F>,
    public memory: DataView,
    readonly codes: Readonly<Record<string, number>>,
    public bytes: Uint8Array | undefined
  ) {
    this.length = layout.length
    this.stride = layout.stride
  }

  copyIn(byteOffset: number, source: Uint8Array): void {
    copyIn(this, byteOffset, source)
  }

  copyOut(byteOffset: number, target: Uint8Array): void {
    copyOut(this, byteOffset, target)
  }

  get(index: number, field: string): number {
    if (!(index >>> 0 === index && index < this.length)) return badIndex(this.length, index)
    const c = this.codes[field]
    const offset = index * this.stride + (c >>> 2)
    switch (c & 3) {
      case 3:
        return this.memory.getUint32(offset, true)
      case 2:
        return this.memory.getUint16(offset, true)
      case 1:
        return this.memory.getUint8(offset)
      default:
        return unknownField(this.layout.element, field)
    }
  }

  set(index: number, field: string, value: number): void {
    if (!(index >>> 0 === index && index < this.length)) return badIndex(this.length, index)
    const c = this.codes[field]
    const offset = index * this.stride + (c >>> 2)
    switch (c & 3) {
      case 3:
        return this.memory.setUint32(offset, value, true)
      case 2:
        return this.memory.setUint16(offset, value, true)
      case 1:
        return this.memory.setUint8(offset, value)
      default:
        return unknownField(this.layout.element, field)
    }
  }
}

export type AnyViewImpl = StructViewImpl<any> | ArrayViewImpl<any>

/** @internal */
export const view = <L extends Dma.Layout>(layout: L, bytes: Uint8Array, byteOffset = 0): Dma.View<L> => {
  if (!(layout instanceof StructLayoutImpl) && !(layout instanceof ArrayLayoutImpl)) {
    throw new TypeError("Dma.view: not a layout made by Dma.struct or Dma.array")
  }
  if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + layout.size > bytes.byteLength) {
    throw new RangeError(
      `Dma.view: ${layout} at offset ${byteOffset} does not fit in ${bytes.byteLength} bytes`
    )
  }
  const memory = new DataView(bytes.buffer, bytes.byteOffset + byteOffset, layout.size)
  const window = bytes.subarray(byteOffset, byteOffset + layout.size)
  const made: AnyViewImpl = layout instanceof StructLayoutImpl
    ? new StructViewImpl(layout, memory, layout.codes, window)
    : new ArrayViewImpl(layout, memory, layout.element.codes, window)
  return made as unknown as Dma.View<L>
}
