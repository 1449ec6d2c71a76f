import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Bound from "../Bound.js"
import * as Devres from "../Devres.js"
import type * as Driver from "../Driver.js"
import type * as Mmio from "../Mmio.js"
import type { Region, RegisterHandle } from "../Mmio.js"
import type { Register, RegisterMap, Spec } from "../RegisterMap.js"
import { type Binding, bindingOf } from "./binding.js"

/** @internal */
export class InvalidAccess
  extends Data.TaggedError("InvalidAccess")<Pick<Mmio.InvalidAccess, "region" | "offset" | "width" | "reason">>
  implements Mmio.InvalidAccess
{
  override get message() {
    return `${this.width}-bit access at 0x${this.offset.toString(16)} of ${this.region}: ${this.reason}`
  }
}

/**
 * Plain memory as a register window. Register accesses are aligned (maps are validated, and
 * dynamic accesses are checked), so typed-array views serve them directly; like device
 * registers they are little-endian, which is also every platform Node runs on.
 * @internal
 */
export class MemoryRegion implements Region {
  /** Read by register handles, which access plain memory without a call. */
  readonly u8: Uint8Array
  readonly u16: Uint16Array
  readonly u32: Uint32Array
  constructor(readonly size: number) {
    const buffer = new ArrayBuffer(Math.ceil(size / 4) * 4)
    this.u8 = new Uint8Array(buffer)
    this.u16 = new Uint16Array(buffer)
    this.u32 = new Uint32Array(buffer)
  }
  read8(offset: number) {
    return this.u8[offset]!
  }
  read16(offset: number) {
    return this.u16[offset >>> 1]!
  }
  read32(offset: number) {
    return this.u32[offset >>> 2]!
  }
  write8(offset: number, value: number) {
    this.u8[offset] = value
  }
  write16(offset: number, value: number) {
    this.u16[offset >>> 1] = value
  }
  write32(offset: number, value: number) {
    this.u32[offset >>> 2] = value
  }
}

/** What a released Mmio reads through: every access raises the binding's defect. */
class RevokedRegion implements Region {
  constructor(readonly binding: Binding, readonly label: string, readonly size: number) {}
  fail(): never {
    throw this.binding.useAfterUnbind(`Mmio "${this.label}"`)
  }
  read8() {
    return this.fail()
  }
  read16() {
    return this.fail()
  }
  read32() {
    return this.fail()
  }
  write8() {
    this.fail()
  }
  write16() {
    this.fail()
  }
  write32() {
    this.fail()
  }
}

const unknownRegister = (map: string, name: string): never => {
  throw new Error(`register map ${map} has no register "${name}"`)
}

/**
 * One register of an `Mmio`, resolved once. Over plain memory a handle holds the typed array
 * and the element index (the subclasses below), so an access is one load or store; over any
 * other region it calls the region (`RegionHandle`). Revocation swaps the handle's region for
 * the revoked one and its prototype for `RegionHandle`'s: the live path keeps no check (a
 * caller's optimised code guards the handle's hidden class anyway, and the swap changes it).
 * @internal
 */
export abstract class HandleImpl {
  readonly name: string
  readonly offset: number
  readonly width: 8 | 16 | 32
  constructor(readonly register: Register, public io: Region) {
    this.name = register.name
    this.offset = register.offset
    this.width = register.width
  }
  abstract read(): number
  abstract write(value: number): void
  readField(field: string): number {
    const f = fieldOf(this.register, field)
    return (this.read() & f.mask) >>> f.shift
  }
  modify(field: string, value: number): void {
    const f = fieldOf(this.register, field)
    this.write(((this.read() & ~f.mask) | ((value << f.shift) & f.mask)) >>> 0)
  }
}

class RegionHandle extends HandleImpl {
  read(): number {
    const w = this.width
    return w === 32 ? this.io.read32(this.offset) : w === 16 ? this.io.read16(this.offset) : this.io.read8(this.offset)
  }
  write(value: number): void {
    const w = this.width
    if (w === 32) this.io.write32(this.offset, value >>> 0)
    else if (w === 16) this.io.write16(this.offset, value & 0xffff)
    else this.io.write8(this.offset, value & 0xff)
  }
}

// A one-element view of the register's word: the access is a load at a constant index, with
// no index to fetch. Typed-array stores wrap modulo 2^width, as the masks in RegionHandle do.
class Memory32 extends HandleImpl {
  readonly cell: Uint32Array
  constructor(register: Register, io: MemoryRegion) {
    super(register, io)
    const index = register.offset >>> 2
    this.cell = io.u32.subarray(index, index + 1)
  }
  read(): number {
    return this.cell[0]!
  }
  write(value: number): void {
    this.cell[0] = value
  }
}

class Memory16 extends HandleImpl {
  readonly cell: Uint16Array
  constructor(register: Register, io: MemoryRegion) {
    super(register, io)
    const index = register.offset >>> 1
    this.cell = io.u16.subarray(index, index + 1)
  }
  read(): number {
    return this.cell[0]!
  }
  write(value: number): void {
    this.cell[0] = value
  }
}

class Memory8 extends HandleImpl {
  readonly cell: Uint8Array
  constructor(register: Register, io: MemoryRegion) {
    super(register, io)
    const index = register.offset
    this.cell = io.u8.subarray(index, index + 1)
  }
  read(): number {
    return this.cell[0]!
  }
  write(value: number): void {
    this.cell[0] = value
  }
}

const makeHandle = (register: Register, io: Region): HandleImpl => {
  if (!(io instanceof MemoryRegion)) return new RegionHandle(register, io)
  return register.width === 32
    ? new Memory32(register, io)
    : register.width === 16
    ? new Memory16(register, io)
    : new Memory8(register, io)
}

/** @internal */
export class MmioImpl<S extends Spec> implements Mmio.Mmio<S> {
  readonly registers: Readonly<Record<string, Register>>
  /** A handle per register, made up front: `read(name)` is a property load and a call. */
  readonly handles: Readonly<Record<string, HandleImpl>>
  constructor(readonly map: RegisterMap<S>, public io: Region, readonly label: string) {
    this.registers = map.registers as Readonly<Record<string, Register>>
    const handles: Record<string, HandleImpl> = {}
    for (const name of Object.keys(this.registers)) handles[name] = makeHandle(this.registers[name]!, io)
    this.handles = handles
  }

  /** Revocation: every access, through the Mmio or a handle, now reaches `revoked`. */
  revoke(revoked: Region): void {
    this.io = revoked
    for (const name of Object.keys(this.handles)) {
      const handle = this.handles[name]!
      handle.io = revoked
      if (!(handle instanceof RegionHandle)) Object.setPrototypeOf(handle, RegionHandle.prototype)
    }
  }

  register(name: string): RegisterHandle<S, any> {
    return (this.handles[name] ?? unknownRegister(this.map.name, name)) as unknown as RegisterHandle<S, any>
  }

  private handle(name: string): HandleImpl {
    return this.handles[name] ?? unknownRegister(this.map.name, name)
  }

  read(name: string): number {
    return this.handle(name).read()
  }

  write(name: string, value: number): void {
    this.handle(name).write(value)
  }

  readField(name: string, field: string): number {
    return this.handle(name).readField(field)
  }

  modify(name: string, field: string, value: number): void {
    this.handle(name).modify(field, value)
  }

  check(offset: number, width: 8 | 16 | 32 = 32): InvalidAccess | undefined {
    const bytes = width >>> 3
    if (!Number.isInteger(offset) || offset < 0 || offset + bytes > this.io.size) {
      return new InvalidAccess({ region: this.label, offset, width, reason: "out of range" })
    }
    if ((offset & (bytes - 1)) !== 0) return new InvalidAccess({ region: this.label, offset, width, reason: "misaligned" })
    return undefined
  }

  private rawRead(offset: number, width: 8 | 16 | 32): number {
    return width === 32 ? this.io.read32(offset) : width === 16 ? this.io.read16(offset) : this.io.read8(offset)
  }

  private rawWrite(offset: number, width: 8 | 16 | 32, value: number): void {
    if (width === 32) this.io.write32(offset, value >>> 0)
    else if (width === 16) this.io.write16(offset, value & 0xffff)
    else this.io.write8(offset, value & 0xff)
  }

  private checkedRead(offset: number, width: 8 | 16 | 32): number {
    const invalid = this.check(offset, width)
    if (invalid !== undefined) throw invalid
    return this.rawRead(offset, width)
  }

  private checkedWrite(offset: number, width: 8 | 16 | 32, value: number): void {
    const invalid = this.check(offset, width)
    if (invalid !== undefined) throw invalid
    this.rawWrite(offset, width, value)
  }

  private tryRead(offset: number, width: 8 | 16 | 32): Either.Either<number, InvalidAccess> {
    const invalid = this.check(offset, width)
    return invalid === undefined ? Either.right(this.rawRead(offset, width)) : Either.left(invalid)
  }

  private tryWrite(offset: number, width: 8 | 16 | 32, value: number): Either.Either<void, InvalidAccess> {
    const invalid = this.check(offset, width)
    if (invalid !== undefined) return Either.left(invalid)
    this.rawWrite(offset, width, value)
    return Either.right(undefined)
  }

  read8(offset: number) {
    return this.checkedRead(offset, 8)
  }
  read16(offset: number) {
    return this.checkedRead(offset, 16)
  }
  read32(offset: number) {
    return this.checkedRead(offset, 32)
  }
  write8(offset: number, value: number) {
    this.checkedWrite(offset, 8, value)
  }
  write16(offset: number, value: number) {
    this.checkedWrite(offset, 16, value)
  }
  write32(offset: number, value: number) {
    this.checkedWrite(offset, 32, value)
  }
  tryRead8(offset: number) {
    return this.tryRead(offset, 8)
  }
  tryRead16(offset: number) {
    return this.tryRead(offset, 16)
  }
  tryRead32(offset: number) {
    return this.tryRead(offset, 32)
  }
  tryWrite8(offset: number, value: number) {
    return this.tryWrite(offset, 8, value)
  }
  tryWrite16(offset: number, value: number) {
    return this.tryWrite(offset, 16, value)
  }
  tryWrite32(offset: number, value: number) {
    return this.tryWrite(offset, 32, value)
  }
}

const fieldOf = (r: Register, name: string) => {
  for (const f of r.fields) if (f.name === name) return f
  throw new Error(`register ${r.name} has no field "${name}"`)
}

/** @internal */
export const iomap = <D extends string, S extends Spec, E, R>(
  driver: Driver.Brand<D>,
  map: RegisterMap<S>,
  region: Effect.Effect<Region, E, R>,
  options?: {
    readonly label?: string | undefined
    readonly release?: ((region: Region) => Effect.Effect<void>) | undefined
  }
): Effect.Effect<Devres.Devres<Mmio.Mmio<S>, D>, E, R | Bound.Bound<D>> => {
  const label = options?.label ?? map.name
  return Effect.flatMap(driver.Bound, (token: Bound.Bound<D>) =>
    Devres.acquireRelease(
      driver,
      Effect.flatMap(region, (io) =>
        io.size < map.size
          ? Effect.dieMessage(`region for ${label} is ${io.size} bytes, the register map needs ${map.size}`)
          : Effect.succeed(new MmioImpl(map, io, label))),
      (mmio) =>
        Effect.suspend(() => {
          const io = mmio.io
          mmio.revoke(new RevokedRegion(bindingOf(token), label, io.size))
          return options?.release === undefined ? Effect.void : options.release(io)
        }),
      { label }
    ) as Effect.Effect<Devres.Devres<Mmio.Mmio<S>, D>, E, R | Bound.Bound<D>>)
}
