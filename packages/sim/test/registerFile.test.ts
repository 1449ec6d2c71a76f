import { describe, expect, it } from "@effect/vitest"
import { Mmio, RegisterMap } from "@devscope/core"
import { RegisterFile, Trace } from "@devscope/sim"

const Regs = RegisterMap.make("dev", 0x40, {
  ID: { offset: 0x00, access: "RO", reset: 0x1234abcd },
  CTRL: {
    offset: 0x04,
    access: "RW",
    reset: 0x2,
    fields: { ENABLE: { bit: 0 }, MODE: { bits: [1, 3], values: { idle: 1, run: 2 } }, IRQ_ON_DONE: { bit: 7 } }
  },
  DOORBELL: { offset: 0x08, access: "WO" },
  STATUS: { offset: 0x0c, access: "W1C", reset: 0xf0f0 },
  EVENTS: { offset: 0x10, access: "RC" },
  SCRATCH: { offset: 0x14, access: "RW" },
  LEVEL: { offset: 0x18, width: 16, access: "RW", reset: 0xbeef },
  BYTE: { offset: 0x1a, width: 8, access: "RW", reset: 0x5a }
})

const setup = () => {
  const trace = Trace.make()
  const file = RegisterFile.make(Regs, { device: "dev0", trace })
  return { trace, file }
}

const faults = (trace: Trace.Service) => trace.filter({ kind: "Fault" }).map((e) => [e.fault, e.register])

describe("RegisterFile", () => {
  it("starts at reset values and reads them through the region", () => {
    const { file } = setup()
    expect(file.size).toBe(0x40)
    expect(file.region).toBe("dev")
    expect(file.read32(0x00)).toBe(0x1234abcd)
    expect(file.read32(0x04)).toBe(0x2)
    expect(file.read16(0x18)).toBe(0xbeef)
    expect(file.read8(0x1a)).toBe(0x5a)
    expect(file.faults).toBe(0)
  })

  it("W1C: a write clears exactly the bits written as 1", () => {
    const { file, trace } = setup()
    file.write32(0x0c, 0x0130)
    expect(file.get("STATUS")).toBe(0xf0c0)
    expect(file.read32(0x0c)).toBe(0xf0c0)
    file.write32(0x0c, 0)
    expect(file.get("STATUS")).toBe(0xf0c0)
    file.write32(0x0c, 0xffffffff)
    expect(file.get("STATUS")).toBe(0)
    expect(file.faults).toBe(0)
    expect(trace.filter({ kind: "MmioWrite" }).map((e) => e.value)).toEqual([0x0130, 0, 0xffffffff])
  })

  it("RC: a read returns the value, then the register reads 0", () => {
    const { file } = setup()
    file.set("EVENTS", 0x81)
    expect(file.read32(0x10)).toBe(0x81)
    expect(file.read32(0x10)).toBe(0)
    expect(file.get("EVENTS")).toBe(0)
    file.set("EVENTS", 0x3)
    file.write32(0x10, 0xff)
    expect(file.get("EVENTS")).toBe(0x3)
    expect(file.faultCount("write-to-read-only")).toBe(1)
  })

  it("RO: a write is ignored and recorded as a fault", () => {
    const { file, trace } = setup()
    let called = 0
    file.onWrite("ID", () => called++)
    file.write32(0x00, 0xdeadbeef)
    expect(file.read32(0x00)).toBe(0x1234abcd)
    expect(called).toBe(0)
    expect(file.faults).toBe(1)
    expect(file.faultCount("write-to-read-only")).toBe(1)
    expect(faults(trace)).toEqual([["write-to-read-only", "ID"]])
    const [fault] = trace.filter({ kind: "Fault" })
    expect(fault).toMatchObject({ device: "dev0", region: "dev", offset: 0, width: 32, value: 0xdeadbeef })
  })

  it("WO: a write is stored and delivered; a read returns 0 and is a fault", () => {
    const { file, trace } = setup()
    const seen: Array<number> = []
    file.onWrite("DOORBELL", (v) => seen.push(v))
    file.write32(0x08, 7)
    expect(file.get("DOORBELL")).toBe(7)
    expect(seen).toEqual([7])
    expect(file.read32(0x08)).toBe(0)
    expect(file.faultCount("read-of-write-only")).toBe(1)
    expect(faults(trace)).toEqual([["read-of-write-only", "DOORBELL"]])
    expect(trace.filter({ kind: "MmioRead" })).toMatchObject([{ register: "DOORBELL", value: 0 }])
  })

  it("reserved bits: a write setting them is a fault, and they are not stored", () => {
    const { file, trace } = setup()
    // CTRL implements bits 0..3 and 7.
    file.write32(0x04, 0x8f | 0x100 | 0x40)
    expect(file.get("CTRL")).toBe(0x8f)
    expect(file.faultCount("reserved-bits")).toBe(1)
    const [fault] = trace.filter({ kind: "Fault" })
    expect(fault).toMatchObject({ fault: "reserved-bits", register: "CTRL", value: 0x1cf })
    expect(fault.detail).toContain("0x140")
    file.write32(0x04, 0x1)
    expect(file.faultCount("reserved-bits")).toBe(1)
    // Registers without fields implement every bit.
    file.write32(0x14, 0xffffffff)
    expect(file.get("SCRATCH")).toBe(0xffffffff)
    expect(file.faults).toBe(1)
  })

  it("unimplemented offsets read 0 and drop writes", () => {
    const { file, trace } = setup()
    expect(file.read32(0x20)).toBe(0)
    file.write32(0x20, 0x55)
    expect(file.read32(0x20)).toBe(0)
    file.write8(0x1b, 1)
    expect(file.read32(0x100)).toBe(0)
    expect(file.faultCount("unimplemented")).toBe(5)
    expect(faults(trace)).toEqual(Array.from({ length: 5 }, () => ["unimplemented", undefined]))
    expect(trace.filter({ kind: "MmioWrite" })).toMatchObject([
      { register: undefined, offset: 0x20, value: 0x55 },
      { register: undefined, offset: 0x1b, width: 8, value: 1 }
    ])
  })

  it("an access of the wrong width reads all-ones and drops writes", () => {
    const { file, trace } = setup()
    expect(file.read16(0x04)).toBe(0xffff)
    expect(file.read8(0x05)).toBe(0xff)
    expect(file.read32(0x18)).toBe(0xffffffff)
    file.write8(0x14, 0x12)
    file.write16(0x16, 0x3456)
    file.write32(0x18, 0)
    expect(file.get("SCRATCH")).toBe(0)
    expect(file.get("LEVEL")).toBe(0xbeef)
    expect(file.get("BYTE")).toBe(0x5a)
    expect(file.faultCount("bad-width")).toBe(6)
    expect(faults(trace)).toEqual([
      ["bad-width", "CTRL"],
      ["bad-width", "CTRL"],
      ["bad-width", "LEVEL"],
      ["bad-width", "SCRATCH"],
      ["bad-width", "SCRATCH"],
      ["bad-width", "LEVEL"]
    ])
  })

  it("disconnected: reads are all-ones for their width, writes are dropped, each a fault", () => {
    const { file, trace } = setup()
    let writes = 0
    file.onWrite("SCRATCH", () => writes++)
    file.onRead("SCRATCH", () => 1)
    file.disconnect()
    expect(file.isDisconnected).toBe(true)
    expect(file.read32(0x00)).toBe(0xffffffff)
    expect(file.read32(0x14)).toBe(0xffffffff)
    expect(file.read16(0x18)).toBe(0xffff)
    expect(file.read8(0x1a)).toBe(0xff)
    expect(file.read32(0x30)).toBe(0xffffffff)
    expect(file.read32(0x10)).toBe(0xffffffff)
    file.write32(0x14, 0x1234)
    file.write16(0x18, 1)
    file.write8(0x1a, 1)
    expect(writes).toBe(0)
    expect(file.get("SCRATCH")).toBe(0)
    expect(file.get("LEVEL")).toBe(0xbeef)
    expect(file.get("BYTE")).toBe(0x5a)
    expect(file.faults).toBe(9)
    expect(file.faultCount("disconnected-access")).toBe(9)
    expect(trace.filter({ kind: "Lifecycle" })).toMatchObject([{ event: "disconnect", device: "dev0" }])
  })

  it("onWrite sees the value written and the previous value; onRead provides read values", () => {
    const { file } = setup()
    const calls: Array<[number, number, number]> = []
    const remove = file.onWrite("STATUS", (value, previous) => calls.push([value, previous, file.get("STATUS")]))
    file.write32(0x0c, 0x10)
    expect(calls).toEqual([[0x10, 0xf0f0, 0xf0e0]])
    remove()
    file.write32(0x0c, 0x20)
    expect(calls.length).toBe(1)

    let counter = 0
    file.onRead("SCRATCH", () => ++counter)
    expect(file.read32(0x14)).toBe(1)
    expect(file.read32(0x14)).toBe(2)
    expect(file.get("SCRATCH")).toBe(0)
    // The provider's value is masked to the register width.
    file.onRead("LEVEL", () => 0x12345)
    expect(file.read16(0x18)).toBe(0x2345)
    // RC with a provider still clears the stored value.
    file.set("EVENTS", 9)
    const stopEvents = file.onRead("EVENTS", () => 0x77)
    expect(file.read32(0x10)).toBe(0x77)
    expect(file.get("EVENTS")).toBe(0)
    stopEvents()
    file.set("EVENTS", 5)
    expect(file.read32(0x10)).toBe(5)

    // A device reacting to a doorbell: the model writes its own registers.
    file.onWrite("DOORBELL", (v) => file.setField("CTRL", "MODE", v))
    file.write32(0x08, 2)
    expect(file.getField("CTRL", "MODE")).toBe(2)
  })

  it("the model side bypasses access semantics and is not traced; reset restores reset values", () => {
    const { file, trace } = setup()
    file.set("ID", 0x1_0000_0001)
    expect(file.get("ID")).toBe(1)
    file.set("LEVEL", 0x12345)
    expect(file.get("LEVEL")).toBe(0x2345)
    file.setField("CTRL", "IRQ_ON_DONE", 1)
    file.setField("CTRL", "MODE", 0xff)
    expect(file.get("CTRL")).toBe(0x8e)
    expect(file.getField("CTRL", "MODE")).toBe(7)
    expect(trace.events()).toEqual([])
    file.reset()
    expect(file.get("ID")).toBe(0x1234abcd)
    expect(file.get("CTRL")).toBe(0x2)
    expect(file.get("LEVEL")).toBe(0xbeef)
    expect(file.faults).toBe(0)
    expect(() => file.get("NOPE" as any)).toThrow(RegisterFile.UnknownRegister)
    expect(() => file.getField("CTRL", "NOPE" as any)).toThrow('has no field "NOPE"')
  })

  it("a driver's Mmio reads and writes the model", () => {
    const { file, trace } = setup()
    const mmio = Mmio.unsafeMake(Regs, file)
    expect(mmio.read("ID")).toBe(0x1234abcd)
    expect(mmio.readField("CTRL", "MODE")).toBe(1)
    mmio.modify("CTRL", "ENABLE", 1)
    mmio.modify("CTRL", "MODE", 2)
    expect(file.get("CTRL")).toBe(0x5)
    expect(file.getField("CTRL", "MODE")).toBe(2)
    file.setField("CTRL", "IRQ_ON_DONE", 1)
    expect(mmio.readField("CTRL", "IRQ_ON_DONE")).toBe(1)
    mmio.write("STATUS", 0xf000)
    expect(mmio.read("STATUS")).toBe(0x00f0)
    file.set("EVENTS", 3)
    expect(mmio.read("EVENTS")).toBe(3)
    expect(mmio.read("EVENTS")).toBe(0)
    mmio.write("LEVEL", 0xcafe)
    expect(file.get("LEVEL")).toBe(0xcafe)
    mmio.write("BYTE", 0x1ff)
    expect(file.get("BYTE")).toBe(0xff)
    expect(mmio.read32(0x14)).toBe(0)
    expect(file.faults).toBe(0)
    const accesses = trace.filter({ kind: ["MmioRead", "MmioWrite"] }).map((e) => `${e._tag}:${e.register}`)
    expect(accesses.slice(0, 4)).toEqual(["MmioRead:ID", "MmioRead:CTRL", "MmioRead:CTRL", "MmioWrite:CTRL"])
    // Surprise removal seen through the driver's accessor.
    file.disconnect()
    expect(mmio.read("ID")).toBe(0xffffffff)
    expect(mmio.read("LEVEL")).toBe(0xffff)
    expect(mmio.read("BYTE")).toBe(0xff)
  })

  it("with a disabled trace, or none, accesses are counted but nothing is recorded", () => {
    const trace = Trace.make({ enabled: false })
    const file = RegisterFile.make(Regs, { device: "dev0", region: "bar0", trace })
    file.write32(0x00, 1)
    file.read32(0x08)
    expect(file.faults).toBe(2)
    expect(trace.events()).toEqual([])
    trace.enabled = true
    file.read32(0x00)
    expect(trace.events()).toMatchObject([{ _tag: "MmioRead", region: "bar0", register: "ID", seq: 0 }])
    const untraced = RegisterFile.make(Regs, { device: "dev1" })
    untraced.write32(0x20, 1)
    untraced.disconnect()
    expect(untraced.read32(0)).toBe(0xffffffff)
    expect(untraced.faultCount()).toBe(2)
  })
})
