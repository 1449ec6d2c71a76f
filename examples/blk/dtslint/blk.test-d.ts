import type { Effect } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import type { Bound, DeviceError, Devres, Driver, Hardware, Mmio } from "@devscope/core"
import { Dma } from "@devscope/core"
import { BlkModel, type BlkStats, type BlockDevice, type BlockDevices, driver, type IoRefused, type OutOfRange } from "../src/index.js"

declare const disk: BlockDevice
declare const bar: Mmio.Mmio<typeof BlkModel.registers.spec>
declare const bar0: Devres.Devres<Mmio.Mmio<typeof BlkModel.registers.spec>, "blk">
declare const nicToken: Bound.Bound<"nic">
declare const bytes: Uint8Array

describe("BlockDevice", () => {
  it("types each call's errors exactly", () => {
    const read = disk.read(0, 1)
    expectTypeOf<Effect.Effect.Success<typeof read>>().toEqualTypeOf<Uint8Array>()
    expectTypeOf<Effect.Effect.Error<typeof read>>().toEqualTypeOf<DeviceError.DeviceGone | OutOfRange | IoRefused>()
    expectTypeOf<Effect.Effect.Context<typeof read>>().toEqualTypeOf<never>()
    const write = disk.write(0, bytes)
    expectTypeOf<Effect.Effect.Success<typeof write>>().toEqualTypeOf<void>()
    expectTypeOf<Effect.Effect.Error<typeof write>>().toEqualTypeOf<DeviceError.DeviceGone | OutOfRange | IoRefused>()
    const flush = disk.flush()
    // A flush has no range to get wrong and maps no buffer.
    expectTypeOf<Effect.Effect.Error<typeof flush>>().toEqualTypeOf<DeviceError.DeviceGone>()
    expectTypeOf(disk.stats()).toEqualTypeOf<BlkStats>()
    // @ts-expect-error: a write takes bytes
    disk.write(0, "hello")
    // @ts-expect-error: stats are a snapshot, not writable counters
    disk.stats().reads = 1
  })

  it("the driver needs the hardware and a BlockDevices registry where it is registered", () => {
    type Requirements = Driver.Requirements<ReturnType<typeof driver>>
    expectTypeOf<Requirements>().toEqualTypeOf<Hardware.Hardware | BlockDevices>()
    // @ts-expect-error: the planted bug is one specific bug
    driver({ bug: "use-after-free" })
  })
})

describe("the acme blk register map", () => {
  it("types register names, access kinds and fields", () => {
    expectTypeOf(bar.read("CAPACITY")).toEqualTypeOf<number>()
    bar.write("SQ_TAIL", 1)
    bar.write("INT_STATUS", BlkModel.INT_CQ)
    bar.modify("CTRL", "ENABLE", 1)
    expectTypeOf(bar.readField("STATUS", "READY")).toEqualTypeOf<number>()
    // @ts-expect-error: a register name typo does not compile
    bar.read("SQ_TAIIL")
    // @ts-expect-error: SQ_TAIL is a write-only doorbell
    bar.read("SQ_TAIL")
    // @ts-expect-error: CAPACITY is read-only
    bar.write("CAPACITY", 0)
    // @ts-expect-error: STATUS has no BUSY field
    bar.readField("STATUS", "BUSY")
    // @ts-expect-error: INT_STATUS is W1C, not RW: no read-modify-write
    bar.modify("INT_STATUS", "CQ", 1)
  })

  it("BAR0 is reached only with a blk token", () => {
    // @ts-expect-error: another driver's token does not type-check
    bar0.access(nicToken)
  })

  it("descriptors have typed fields", () => {
    const sqe = Dma.view(BlkModel.Sqe, bytes)
    expectTypeOf(sqe.get("sector")).toEqualTypeOf<number>()
    // @ts-expect-error: no such descriptor field
    sqe.get("lba")
    const cqe = Dma.view(BlkModel.Cqe, bytes)
    // @ts-expect-error: no such completion field
    cqe.set("valid", 1)
  })
})
