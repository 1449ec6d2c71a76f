import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Bound from "../Bound.js"
import * as Devres from "../Devres.js"
import type * as Driver from "../Driver.js"
import type { Mmio, Region } from "../Mmio.js"
import type { Register, RegisterMap, Spec } from "../RegisterMap.js"
import { type Binding, bindingOf } from "./binding.js"

/** @internal */
export class InvalidAccess extends Data.TaggedError("InvalidAccess")<{
  readonly region: string
  readonly offset: number
  readonly width: 8 | 16 | 32
  readonly reason: "out of range" | "misaligned"
}> {
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
  private readonly u8: Uint8Array
  private readonly u16: Uint16Array
  private readonly u32: Uint32Array
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

/** @internal */
export class MmioImpl<S extends Spec> implements Mmio<S> {
  readonly registers: Readonly<Record<string, Register>>
  constructor(readonly map: RegisterMap<S>, public io: Region, readonly label: string) {
    this.registers = map.registers as Readonly<Record<string, Register>>
  }

  private reg(name: string): Register {
    return this.registers[name] ?? unknownRegister(this.map.name, name)
  }

  read(name: string): number {
    const r = this.reg(name)
    return r.width === 32 ? this.io.read32(r.offset) : r.width === 16 ? this.io.read16(r.offset) : this.io.read8(r.offset)
  }

  write(name: string, value: number): void {
    const r = this.reg(name)
    if (r.width === 32) this.io.write32(r.offset, value >>> 0)
    else if (r.width === 16) this.io.write16(r.offset, value & 0xffff)
    else this.io.write8(r.offset, value & 0xff)
  }

  readField(name: string, field: string): number {
    const f = fieldOf(this.reg(name), field)
    return (this.read(name) & f.mask) >>> f.shift
  }

  modify(name: string, field: string, value: number): void {
    const f = fieldOf(this.reg(name), field)
    this.write(name, ((this.read(name) & ~f.mask) | ((value << f.shift) & f.mask)) >>> 0)
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
): Effect.Effect<Devres.Devres<Mmio<S>, D>, E, R | Bound.Bound<D>> => {
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
          mmio.io = new RevokedRegion(bindingOf(token), label, io.size)
          return options?.release === undefined ? Effect.void : options.release(io)
        }),
      { label }
    ) as Effect.Effect<Devres.Devres<Mmio<S>, D>, E, R | Bound.Bound<D>>)
}
