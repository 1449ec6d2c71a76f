import type { Field, Register, RegisterMap, Spec } from "@devscope/core/RegisterMap"
import * as Data from "effect/Data"
import type * as RegisterFile from "../RegisterFile.js"
import type * as Trace from "../Trace.js"

/** @internal */
export class UnknownRegister
  extends Data.TaggedError("UnknownRegister")<Pick<RegisterFile.UnknownRegister, "map" | "register" | "field">>
  implements RegisterFile.UnknownRegister
{
  override get message() {
    return this.field === undefined
      ? `register map ${this.map} has no register "${this.register}"`
      : `register ${this.register} of register map ${this.map} has no field "${this.field}"`
  }
}

type Width = 8 | 16 | 32

const ACCESS_RO = 0
const ACCESS_RW = 1
const ACCESS_WO = 2
const ACCESS_W1C = 3
const ACCESS_RC = 4

const accessCode = { RO: ACCESS_RO, RW: ACCESS_RW, WO: ACCESS_WO, W1C: ACCESS_W1C, RC: ACCESS_RC } as const

const ones = (width: Width): number => (width === 32 ? 0xffffffff : width === 16 ? 0xffff : 0xff)

const hex = (n: number): string => `0x${n.toString(16)}`

const noWriteHandlers: ReadonlyArray<RegisterFile.WriteHandler> = []

/** One register's state, found by offset on the access path. */
class Slot {
  value: number
  readonly name: string
  readonly offset: number
  readonly width: Width
  readonly access: number
  readonly reset: number
  readonly implemented: number
  readonly mask: number
  onRead: RegisterFile.ReadHandler | undefined = undefined
  onWrite: ReadonlyArray<RegisterFile.WriteHandler> = noWriteHandlers
  constructor(readonly register: Register) {
    this.name = register.name
    this.offset = register.offset
    this.width = register.width
    this.access = accessCode[register.access]
    this.reset = register.reset
    this.implemented = register.implemented
    this.mask = ones(register.width)
    this.value = register.reset
  }
}

/** @internal */
export class RegisterFileImpl<S extends Spec> implements RegisterFile.RegisterFile<S> {
  readonly size: number
  readonly device: string
  readonly region: string
  readonly trace: Trace.Service | undefined
  private disconnected = false
  /** Register covering each byte of the window (`undefined` where none is). */
  private readonly table: Array<Slot | undefined>
  private readonly slots: Readonly<Record<string, Slot>>
  private readonly counts: Record<Trace.FaultKind, number> = {
    "write-to-read-only": 0,
    "read-of-write-only": 0,
    "reserved-bits": 0,
    "unimplemented": 0,
    "bad-width": 0,
    "disconnected-access": 0
  }
  private total = 0

  constructor(readonly map: RegisterMap<S>, options: RegisterFile.Options) {
    this.size = map.size
    this.device = options.device
    this.region = options.region ?? map.name
    this.trace = options.trace
    const table = new Array<Slot | undefined>(map.size).fill(undefined)
    const slots: Record<string, Slot> = {}
    for (const register of Object.values(map.registers as Readonly<Record<string, Register>>)) {
      const slot = new Slot(register)
      slots[register.name] = slot
      for (let i = 0; i < register.width / 8; i++) table[register.offset + i] = slot
    }
    this.table = table
    this.slots = slots
  }

  // --- driver side (Mmio.Region) ---

  read8(offset: number): number {
    return this.read(offset, 8)
  }
  read16(offset: number): number {
    return this.read(offset, 16)
  }
  read32(offset: number): number {
    return this.read(offset, 32)
  }
  write8(offset: number, value: number): void {
    this.write(offset, 8, value & 0xff)
  }
  write16(offset: number, value: number): void {
    this.write(offset, 16, value & 0xffff)
  }
  write32(offset: number, value: number): void {
    this.write(offset, 32, value >>> 0)
  }

  private read(offset: number, width: Width): number {
    const slot = this.table[offset]
    if (this.disconnected || slot === undefined || slot.offset !== offset || slot.width !== width) {
      return this.readFault(offset, width, slot)
    }
    let value: number
    switch (slot.access) {
      case ACCESS_WO: {
        this.traceRead(slot.name, offset, width, 0)
        this.fault("read-of-write-only", slot, offset, width, 0, false)
        return 0
      }
      case ACCESS_RC: {
        value = slot.onRead === undefined ? slot.value : (slot.onRead() & slot.mask) >>> 0
        slot.value = 0
        break
      }
      default: {
        value = slot.onRead === undefined ? slot.value : (slot.onRead() & slot.mask) >>> 0
      }
    }
    this.traceRead(slot.name, offset, width, value)
    return value
  }

  private write(offset: number, width: Width, value: number): void {
    const slot = this.table[offset]
    if (this.disconnected || slot === undefined || slot.offset !== offset || slot.width !== width) {
      this.writeFault(offset, width, value, slot)
      return
    }
    const trace = this.trace
    if (trace !== undefined && trace.enabled) {
      trace.record({
        _tag: "MmioWrite",
        device: this.device,
        region: this.region,
        register: slot.name,
        offset,
        width,
        value
      })
    }
    const access = slot.access
    if (access === ACCESS_RO || access === ACCESS_RC) {
      this.fault("write-to-read-only", slot, offset, width, value, true)
      return
    }
    const reserved = (value & ~slot.implemented) >>> 0
    if (reserved !== 0) {
      this.fault("reserved-bits", slot, offset, width, value, true)
      value = (value & slot.implemented) >>> 0
    }
    const previous = slot.value
    slot.value = access === ACCESS_W1C ? (previous & ~value) >>> 0 : value
    const handlers = slot.onWrite
    for (let i = 0; i < handlers.length; i++) handlers[i](value, previous)
  }

  private traceRead(register: string | undefined, offset: number, width: Width, value: number): void {
    const trace = this.trace
    if (trace !== undefined && trace.enabled) {
      trace.record({ _tag: "MmioRead", device: this.device, region: this.region, register, offset, width, value })
    }
  }

  /** Counts a fault and, when tracing, records it; the detail text is built only then. */
  private fault(
    kind: Trace.FaultKind,
    slot: Slot | undefined,
    offset: number,
    width: Width,
    value: number,
    write: boolean
  ): void {
    this.counts[kind]++
    this.total++
    const trace = this.trace
    if (trace !== undefined && trace.enabled) {
      trace.record({
        _tag: "Fault",
        device: this.device,
        fault: kind,
        region: this.region,
        register: kind === "unimplemented" ? undefined : slot?.name,
        offset,
        width,
        value,
        detail: this.detail(kind, slot, offset, width, value, write)
      })
    }
  }

  private detail(kind: Trace.FaultKind, slot: Slot | undefined, offset: number, width: Width, value: number, write: boolean) {
    const access = write ? `${width}-bit write of ${hex(value)}` : `${width}-bit read`
    switch (kind) {
      case "write-to-read-only":
        return `${access} ignored by read-only register ${slot?.name}`
      case "read-of-write-only":
        return `${access} of write-only register ${slot?.name} returns 0`
      case "reserved-bits": {
        const implemented = slot?.implemented ?? 0
        return `${access}: reserved bits ${hex((value & ~implemented) >>> 0)} (implemented ${hex(implemented)}) not stored`
      }
      case "unimplemented": {
        const where = Number.isInteger(offset) && offset >= 0 && offset < this.size
          ? `no register at ${hex(offset)}`
          : `offset ${offset} outside the ${this.size}-byte window`
        return `${access}: ${where}; ${write ? "dropped" : "returns 0"}`
      }
      case "bad-width": {
        const where = slot === undefined
          ? ""
          : slot.offset === offset
          ? ` of ${slot.width}-bit register ${slot.name}`
          : ` inside ${slot.width}-bit register ${slot.name} at ${hex(slot.offset)}`
        return `${access} at ${hex(offset)}${where}; ${write ? "dropped" : `returns ${hex(ones(width))}`}`
      }
      case "disconnected-access":
        return `${access} at ${hex(offset)} after disconnect; ${write ? "dropped" : `returns ${hex(ones(width))}`}`
    }
  }

  /** Why an access does not reach its register (slow path). */
  private miss(slot: Slot | undefined): Trace.FaultKind {
    if (this.disconnected) return "disconnected-access"
    if (slot === undefined) return "unimplemented"
    return "bad-width"
  }

  private readFault(offset: number, width: Width, slot: Slot | undefined): number {
    const kind = this.miss(slot)
    const value = kind === "unimplemented" ? 0 : ones(width)
    this.traceRead(kind === "unimplemented" ? undefined : slot?.name, offset, width, value)
    this.fault(kind, slot, offset, width, value, false)
    return value
  }

  private writeFault(offset: number, width: Width, value: number, slot: Slot | undefined): void {
    const kind = this.miss(slot)
    const trace = this.trace
    if (trace !== undefined && trace.enabled) {
      const register = kind === "unimplemented" ? undefined : slot?.name
      trace.record({ _tag: "MmioWrite", device: this.device, region: this.region, register, offset, width, value })
    }
    this.fault(kind, slot, offset, width, value, true)
  }

  // --- state and counters ---

  get isDisconnected(): boolean {
    return this.disconnected
  }

  get faults(): number {
    return this.total
  }

  faultCount(kind?: Trace.FaultKind): number {
    return kind === undefined ? this.total : this.counts[kind]
  }

  disconnect(): void {
    if (this.disconnected) return
    this.disconnected = true
    this.trace?.record({ _tag: "Lifecycle", device: this.device, event: "disconnect", detail: `region ${this.region}` })
  }

  // --- model side ---

  private slot(name: string): Slot {
    const slot = this.slots[name]
    if (slot === undefined) throw new UnknownRegister({ map: this.map.name, register: name, field: undefined })
    return slot
  }

  private field(slot: Slot, name: string): Field {
    for (const f of slot.register.fields) if (f.name === name) return f
    throw new UnknownRegister({ map: this.map.name, register: slot.name, field: name })
  }

  get(name: string): number {
    return this.slot(name).value
  }

  set(name: string, value: number): void {
    const slot = this.slot(name)
    slot.value = (value & slot.mask) >>> 0
  }

  getField(name: string, field: string): number {
    const slot = this.slot(name)
    const f = this.field(slot, field)
    return (slot.value & f.mask) >>> f.shift
  }

  setField(name: string, field: string, value: number): void {
    const slot = this.slot(name)
    const f = this.field(slot, field)
    slot.value = ((slot.value & ~f.mask) | ((value << f.shift) & f.mask)) >>> 0
  }

  onWrite(name: string, handler: RegisterFile.WriteHandler): () => void {
    const slot = this.slot(name)
    slot.onWrite = [...slot.onWrite, handler]
    let removed = false
    return () => {
      if (removed) return
      removed = true
      const i = slot.onWrite.indexOf(handler)
      if (i >= 0) slot.onWrite = [...slot.onWrite.slice(0, i), ...slot.onWrite.slice(i + 1)]
    }
  }

  onRead(name: string, handler: RegisterFile.ReadHandler): () => void {
    const slot = this.slot(name)
    slot.onRead = handler
    return () => {
      if (slot.onRead === handler) slot.onRead = undefined
    }
  }

  reset(): void {
    for (const name in this.slots) {
      const slot = this.slots[name]
      slot.value = slot.reset
    }
    this.trace?.record({ _tag: "Lifecycle", device: this.device, event: "reset", detail: `region ${this.region}` })
  }
}
