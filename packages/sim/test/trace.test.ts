import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Mmio, RegisterMap } from "@devscope/core"
import { RegisterFile, Trace } from "@devscope/sim"

const Regs = RegisterMap.make("uart", 0x10, {
  DATA: { offset: 0x0, width: 8, access: "RW" },
  STATUS: { offset: 0x4, access: "RO", reset: 0x60 }
})

describe("Trace", () => {
  it("stamps events with increasing seq and the time of `now`", () => {
    let now = 10
    const trace = Trace.make({ now: () => now })
    trace.record({ _tag: "Lifecycle", device: "uart0", event: "probe", detail: undefined })
    now = 25
    trace.record({ _tag: "Irq", device: "uart0", line: 4, kind: "raise" })
    trace.record({ _tag: "Dma", op: "map", device: "nic0", direction: "to-device", iova: 0x1000, length: 64 })
    trace.record({ _tag: "IommuFault", device: "nic0", iova: 0xdead000, access: "write", reason: "unmapped" })
    expect(trace.events().map((e) => [e.seq, e.at, e._tag])).toEqual([
      [0, 10, "Lifecycle"],
      [1, 25, "Irq"],
      [2, 25, "Dma"],
      [3, 25, "IommuFault"]
    ])
    const untimed = Trace.make()
    untimed.record({ _tag: "Irq", device: "uart0", line: 4, kind: "lower" })
    expect(untimed.events()[0].at).toBe(0)
  })

  it("filters by kind, device or predicate", () => {
    const trace = Trace.make()
    trace.record({ _tag: "Irq", device: "a", line: 1, kind: "raise" })
    trace.record({ _tag: "Irq", device: "b", line: 2, kind: "spurious" })
    trace.record({ _tag: "Lifecycle", device: "a", event: "reset", detail: "cold" })
    const irqs = trace.filter({ kind: "Irq" })
    expect(irqs.map((e) => e.line)).toEqual([1, 2])
    expect(trace.filter({ device: "a" }).map((e) => e._tag)).toEqual(["Irq", "Lifecycle"])
    expect(trace.filter({ kind: ["Irq", "Lifecycle"], device: "a" }).length).toBe(2)
    expect(trace.filter({ kind: "Irq", device: "b" }).map((e) => e.kind)).toEqual(["spurious"])
    expect(trace.filter(Trace.TraceEvent.$is("Lifecycle")).map((e) => e.detail)).toEqual(["cold"])
    expect(trace.filter((e) => e.seq > 0).length).toBe(2)
  })

  it("disabled: record does nothing and consumes no sequence number", () => {
    const trace = Trace.make({ enabled: false })
    trace.record({ _tag: "Irq", device: "a", line: 1, kind: "raise" })
    expect(trace.events()).toEqual([])
    trace.enabled = true
    trace.record({ _tag: "Irq", device: "a", line: 1, kind: "raise" })
    expect(trace.events().map((e) => e.seq)).toEqual([0])
  })

  it("keeps the most recent `limit` events; clear drops them and seq goes on", () => {
    const trace = Trace.make({ limit: 3 })
    for (let i = 0; i < 500; i++) trace.record({ _tag: "Irq", device: "a", line: i, kind: "raise" })
    expect(trace.filter({ kind: "Irq" }).map((e) => e.line)).toEqual([497, 498, 499])
    expect(trace.dropped).toBe(497)
    trace.clear()
    expect(trace.events()).toEqual([])
    expect(trace.dropped).toBe(0)
    trace.record({ _tag: "Irq", device: "a", line: 0, kind: "lower" })
    expect(trace.events()[0].seq).toBe(500)
    expect(() => Trace.make({ limit: -1 })).toThrow(RangeError)
  })

  it("JSON lines: one object per line, fixed key order, numbers as numbers, round-trips", () => {
    let now = 0
    const trace = Trace.make({ now: () => now })
    const file = RegisterFile.make(Regs, { device: "uart0", trace })
    const mmio = Mmio.unsafeMake(Regs, file)
    mmio.write("DATA", 0x41)
    now = 3
    mmio.read("STATUS")
    file.write32(0x4, 1)
    trace.record({ _tag: "Lifecycle", device: "uart0", event: "suspend", detail: undefined })
    const text = trace.toJsonLines()
    expect(text.endsWith("\n")).toBe(true)
    const lines = text.slice(0, -1).split("\n")
    expect(lines.length).toBe(trace.events().length)
    expect(lines.length).toBe(5)
    const parsed = lines.map((line) => JSON.parse(line))
    expect(parsed).toEqual(trace.events().map((e) => ({ ...e })))
    expect(lines[0]).toBe(
      `{"seq":0,"at":0,"device":"uart0","_tag":"MmioWrite","region":"uart","register":"DATA","offset":0,"width":8,"value":65}`
    )
    expect(Object.keys(parsed[3])).toEqual(["seq", "at", "device", "_tag", "fault", "region", "register", "offset", "width", "value", "detail"])
    expect(parsed[3]).toMatchObject({ at: 3, fault: "write-to-read-only", value: 1 })
    expect(lines[4]).toBe(`{"seq":4,"at":3,"device":"uart0","_tag":"Lifecycle","event":"suspend"}`)
    expect(Trace.make().toJsonLines()).toBe("")
  })

  it.effect("the Trace layer takes time from Effect's Clock: virtual under TestClock", () =>
    Effect.gen(function*() {
      const trace = yield* Trace.Trace
      const file = RegisterFile.make(Regs, { device: "uart0", trace })
      file.read8(0x0)
      yield* TestClock.adjust("150 millis")
      file.write8(0x0, 0x42)
      yield* TestClock.adjust("2 seconds")
      file.disconnect()
      file.read8(0x0)
      expect(trace.events().map((e) => [e._tag, e.at])).toEqual([
        ["MmioRead", 0],
        ["MmioWrite", 150],
        ["Lifecycle", 2150],
        ["MmioRead", 2150],
        ["Fault", 2150]
      ])
      expect(trace.filter({ kind: "Fault" })[0]).toMatchObject({ fault: "disconnected-access", value: 0xff })
    }).pipe(Effect.provide(Trace.layer())))

  it.effect("fromClock makes a trace on the current Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("7 millis")
      const trace = yield* Trace.fromClock({ limit: 10 })
      trace.record({ _tag: "Irq", device: "a", line: 0, kind: "raise" })
      expect(trace.events()[0].at).toBe(7)
      expect(trace.limit).toBe(10)
    }))
})
