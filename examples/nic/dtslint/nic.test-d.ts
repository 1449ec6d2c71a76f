import type { Effect } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import type { Bound, DeviceError, Hardware } from "@devscope/core"
import { Dma, Driver } from "@devscope/core"
import {
  driver,
  type NetDevice,
  type NetDevices,
  type NetStats,
  NicModel,
  type Probed,
  type TxQueueFull
} from "../src/index.js"

declare const dev: NetDevice
declare const probed: Probed
declare const nicToken: Bound.Bound<"nic">
declare const blkToken: Bound.Bound<"blk">

describe("NetDevice", () => {
  it("send fails with exactly DeviceGone | TxQueueFull; receive only with DeviceGone", () => {
    const send = dev.send(new Uint8Array(64))
    expectTypeOf(send).toEqualTypeOf<Effect.Effect<void, DeviceError.DeviceGone | TxQueueFull>>()
    expectTypeOf<Effect.Effect.Error<typeof send>>().toEqualTypeOf<DeviceError.DeviceGone | TxQueueFull>()
    expectTypeOf(dev.receive()).toEqualTypeOf<Effect.Effect<Uint8Array, DeviceError.DeviceGone>>()
    expectTypeOf(dev.link()).toEqualTypeOf<"up" | "down">()
    // @ts-expect-error: frames are bytes
    dev.send("hello")
    // @ts-expect-error: receive takes no buffer
    dev.receive(new Uint8Array(64))
  })

  it("stats are a read-only snapshot", () => {
    const stats = dev.stats()
    expectTypeOf(stats.txFrames).toEqualTypeOf<number>()
    expectTypeOf(stats).toEqualTypeOf<NetStats>()
    // @ts-expect-error: counters are read-only
    stats.txFrames = 0
    // @ts-expect-error: no such counter
    void stats.collisions
  })
})

describe("registers", () => {
  it("a register name typo, a write to a device-owned register or a bad field does not compile", () => {
    const bar = probed.bar.access(nicToken)
    expectTypeOf(bar.read("STATUS")).toEqualTypeOf<number>()
    bar.write("TX_TAIL", 1)
    bar.write("INT_STATUS", NicModel.INT_ALL) // W1C
    expectTypeOf(bar.readField("STATUS", "LINK_UP")).toEqualTypeOf<number>()
    // @ts-expect-error: typo
    bar.read("STAUTS")
    // @ts-expect-error: TX_HEAD is device-owned (RO)
    bar.write("TX_HEAD", 0)
    // @ts-expect-error: statistics counters are RO
    bar.write("RX_DROPPED", 0)
    // @ts-expect-error: STATUS has no such field
    bar.readField("STATUS", "LINK_DOWN")
    // @ts-expect-error: modify needs an RW register; INT_STATUS is W1C
    bar.modify("INT_STATUS", "RX", 1)
  })

  it("descriptor fields are checked", () => {
    const ring = probed.txRing.access(nicToken).view
    expectTypeOf(ring.get(0, "flags")).toEqualTypeOf<number>()
    // @ts-expect-error: no such descriptor field
    ring.get(0, "status")
    const desc = Dma.view(NicModel.Desc, new Uint8Array(NicModel.Desc.size))
    // @ts-expect-error: a struct view takes no index
    desc.get(0, "len")
  })
})

describe("tokens", () => {
  it("another driver's token does not fit the nic's resources", () => {
    // @ts-expect-error: Bound<"blk"> is not Bound<"nic">
    probed.bar.access(blkToken)
    // @ts-expect-error: Bound<"blk"> is not Bound<"nic">
    probed.rxRing.access(blkToken)
    // @ts-expect-error: Bound<"blk"> is not Bound<"nic">
    probed.completions.access(blkToken)
    // @ts-expect-error: Bound<"blk"> is not Bound<"nic">
    probed.datapath.reapTx(blkToken, 16)
    expectTypeOf(probed.gate.enter).parameter(0).parameter(0).toEqualTypeOf<Bound.Bound<"nic">>()
  })

  it("the driver needs Hardware and the NetDevices registry where it is registered, nothing else", () => {
    const nic = driver()
    expectTypeOf(nic.name).toEqualTypeOf<"nic">()
    expectTypeOf<Driver.Requirements<typeof nic>>().toEqualTypeOf<Hardware.Hardware | NetDevices>()
    // @ts-expect-error: not a planted bug the driver knows
    driver({ bug: "use-after-free" })
    const Other = Driver.brand("other")
    expectTypeOf(Other).not.toEqualTypeOf<typeof nic.brand>()
  })
})
