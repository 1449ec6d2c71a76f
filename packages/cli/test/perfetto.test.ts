import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Trace } from "@devscope/sim"
import { type ChromeTrace, type ChromeTraceEvent, chromeTraceJson, toChromeTrace, writeChromeTrace } from "../src/internal/perfetto.js"
import type { RunRecord } from "../src/internal/record.js"
import { HOSTILE, makeRecord, unboundEvents } from "./recordFixture.js"

const threads = (trace: ChromeTrace) =>
  trace.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => ({
    pid: e.pid,
    tid: e.tid!,
    name: String(e.args?.name)
  }))

/** The device thread: named after the device, with its kind in parentheses. */
const deviceThread = (trace: ChromeTrace, device: string) => {
  const found = threads(trace).filter((t) => t.name === device || t.name.startsWith(`${device} (`))
  expect(found).toHaveLength(1)
  return found[0]!
}

const on = (trace: ChromeTrace, where: { pid: number; tid: number }) =>
  trace.traceEvents.filter((e) => e.pid === where.pid && e.tid === where.tid && e.ph !== "M")

const sanity = (e: ChromeTraceEvent) => {
  expect(Number.isInteger(e.ts), `${e.name} ts`).toBe(true)
  expect(e.ts).toBeGreaterThanOrEqual(0)
  if (e.ph === "X") {
    expect(Number.isInteger(e.dur), `${e.name} dur`).toBe(true)
    expect(e.dur!).toBeGreaterThanOrEqual(0)
  }
}

describe("toChromeTrace", () => {
  it.effect("one process per bus, one named thread per device, on its bus", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const trace = toChromeTrace(record)
      const processes = trace.traceEvents.filter((e) => e.ph === "M" && e.name === "process_name")
      expect(processes.map((p) => [p.pid, p.args?.name])).toEqual(
        expect.arrayContaining([[1, "pci bus"], [2, "platform bus"]])
      )
      expect(record.devices.map((d) => d.device)).toEqual(["sensor0", HOSTILE, "edu0", "edu1", "edu9"])
      for (const d of record.devices) {
        const t = deviceThread(trace, d.device)
        expect(t.pid).toBe(d.bus === "pci" ? 1 : 2)
      }
      // tids are unique, and no thread for the simulator's device-less ("-") trace events.
      const all = threads(trace)
      expect(new Set(all.map((t) => t.tid)).size).toBe(all.length)
      expect(all.some((t) => t.name.startsWith("-"))).toBe(false)
      expect(trace.displayTimeUnit).toBe("ms")
      expect(trace.metadata["devscope-result"]).toBe("FAIL")
    }))

  it.effect("lifecycle spans: probe, bound, unbind in order per device, the unbind carrying cause and report", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const trace = toChromeTrace(record)
      trace.traceEvents.forEach(sanity)
      const unbound = unboundEvents(record)
      expect(unbound.map((e) => [e.device.name, e.cause])).toEqual(
        expect.arrayContaining([
          ["sensor0", "hot-unplug"],
          ["edu0", "surprise"],
          [HOSTILE, "manual"],
          ["edu1", "unload"],
          ["edu9", "probe-failure"]
        ])
      )
      for (const event of unbound) {
        const lifecycle = on(trace, deviceThread(trace, event.device.name)).filter((e) => e.ph === "X" && e.cat === "lifecycle")
        // Phases follow each other without overlap.
        for (let i = 1; i < lifecycle.length; i++) {
          expect(lifecycle[i]!.ts).toBeGreaterThanOrEqual(lifecycle[i - 1]!.ts + lifecycle[i - 1]!.dur!)
        }
        if (event.cause === "probe-failure") {
          expect(lifecycle.map((e) => e.name)).toEqual(["probe"])
          expect(lifecycle[0]!.args).toMatchObject({ outcome: "failed", cause: "probe-failure", released: event.report.released })
          expect(lifecycle[0]!.ts + lifecycle[0]!.dur!).toBe(event.at * 1000)
          continue
        }
        expect(lifecycle.map((e) => e.name)).toEqual(["probe", "bound", "unbind"])
        const [probe, bound, unbind] = lifecycle as [ChromeTraceEvent, ChromeTraceEvent, ChromeTraceEvent]
        expect(probe.args?.outcome).toBe("bound")
        expect(bound.ts).toBe(probe.ts + probe.dur!)
        expect(unbind.ts).toBe(bound.ts + bound.dur!)
        expect(unbind.ts + unbind.dur!).toBe(event.at * 1000)
        expect(unbind.args).toMatchObject({
          cause: event.cause,
          released: event.report.released,
          leaks: [],
          gates: event.report.gates.map((g) => expect.objectContaining({ gate: g.gate, awaited: g.awaited }))
        })
      }
      // The sensors' unbind reports name their hwmon gate.
      const sensorUnbind = on(trace, deviceThread(trace, "sensor0")).find((e) => e.name === "unbind")!
      expect(sensorUnbind.args?.gates).toEqual([expect.objectContaining({ gate: "sensor0 hwmon" })])
    }))

  it.effect("complete events on one thread nest or are disjoint; async pairs match", () =>
    Effect.gen(function*() {
      const trace = toChromeTrace(yield* makeRecord())
      const byThread = new Map<string, Array<ChromeTraceEvent>>()
      for (const e of trace.traceEvents) {
        if (e.ph !== "X") continue
        const key = `${e.pid}/${e.tid}`
        byThread.set(key, [...(byThread.get(key) ?? []), e])
      }
      expect(byThread.size).toBeGreaterThan(5)
      for (const spans of byThread.values()) {
        for (const a of spans) {
          for (const b of spans) {
            if (a === b) continue
            const disjoint = a.ts + a.dur! <= b.ts || b.ts + b.dur! <= a.ts
            const nested = (a.ts <= b.ts && b.ts + b.dur! <= a.ts + a.dur!) || (b.ts <= a.ts && a.ts + a.dur! <= b.ts + b.dur!)
            expect(disjoint || nested, `${a.name} / ${b.name}`).toBe(true)
          }
        }
      }
      const begins = trace.traceEvents.filter((e) => e.ph === "b")
      const ends = trace.traceEvents.filter((e) => e.ph === "e")
      expect(begins.length).toBeGreaterThan(0)
      expect(ends).toHaveLength(begins.length)
      for (const b of begins) {
        const e = ends.filter((x) => x.id === b.id && x.cat === b.cat && x.name === b.name)
        expect(e).toHaveLength(1)
        expect(e[0]!.ts).toBeGreaterThanOrEqual(b.ts)
      }
    }))

  it.effect("DMA: streaming mappings as async spans, coherent allocations on resource lanes, the mapped-bytes counter back to 0", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const trace = toChromeTrace(record)
      const dma = record.trace.filter(Trace.TraceEvent.$is("Dma")).filter((e) => e.device === "edu0")
      const maps = dma.filter((e) => e.op === "map")
      expect(maps).toHaveLength(3)
      const begins = trace.traceEvents.filter((e) => e.ph === "b" && e.name === "edu0 dma map")
      expect(begins.map((b) => b.ts)).toEqual(maps.map((m) => m.at * 1000))
      const alloc = dma.find((e) => e.op === "alloc-coherent")!
      const free = dma.find((e) => e.op === "free-coherent")!
      const lanes = threads(trace).filter((t) => t.name.startsWith("edu0 resources"))
      expect(lanes.length).toBeGreaterThan(0)
      const coherent = lanes.flatMap((l) => on(trace, l)).filter((e) => e.ph === "X" && e.cat === "dma")
      expect(coherent).toHaveLength(1)
      expect(coherent[0]!.ts).toBe(alloc.at * 1000)
      expect(coherent[0]!.ts + coherent[0]!.dur!).toBe(free.at * 1000)
      // The released resources span the binding, on the same lanes.
      const resources = lanes.flatMap((l) => on(trace, l)).filter((e) => e.cat === "resource").map((e) => e.name)
      expect(resources).toEqual(expect.arrayContaining(["BAR0", "irq 0", "page"]))
      // The tx buffers were unmapped early by the driver: not in the unbind's report, so no span here
      // (their lifetimes are the streaming-mapping spans above).
      expect(resources.filter((name) => name.startsWith("tx buffer"))).toEqual([])
      const mapped = trace.traceEvents.filter((e) => e.ph === "C" && e.name === "edu0 dma mapped bytes")
      expect(mapped.length).toBe(dma.filter((e) => e.op !== "device-read" && e.op !== "device-write").length)
      expect(mapped[mapped.length - 1]!.args).toEqual({ coherent: 0, streaming: 0 })
      expect(Math.max(...mapped.map((c) => Number(c.args?.streaming)))).toBe(64)
    }))

  it.effect("IOMMU faults are instants on the device's thread, with provenance", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      expect(record.iommuFaults).toHaveLength(1)
      const trace = toChromeTrace(record)
      const faults = trace.traceEvents.filter((e) => e.cat === "iommu")
      expect(faults).toHaveLength(1)
      const f = faults[0]!
      expect(f.ph).toBe("i")
      const edu1 = deviceThread(trace, "edu1")
      expect([f.pid, f.tid]).toEqual([edu1.pid, edu1.tid])
      const traced = record.trace.filter(Trace.TraceEvent.$is("IommuFault"))[0]!
      expect(f.ts).toBe(traced.at * 1000)
      expect(f.args).toMatchObject({ device: "edu1", reason: "stale", access: "read", by: "edu dma engine (RAM to buffer)" })
      const window = f.args?.window as { mappedAt: string; unmappedAt: string }
      expect(window.mappedAt).toMatch(/recordFixture\.ts:\d+/)
      expect(window.unmappedAt).toMatch(/recordFixture\.ts:\d+/)
      // Without faults, no IOMMU instants.
      const clean = toChromeTrace({ ...record, iommuFaults: [], trace: record.trace.filter((e) => e._tag !== "IommuFault") })
      expect(clean.traceEvents.filter((e) => e.cat === "iommu")).toEqual([])
    }))

  it.effect("scenario actions are global instants; interrupts and device events are instants", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const trace = toChromeTrace(record)
      const actions = trace.traceEvents.filter((e) => e.cat === "scenario")
      expect(actions.map((a) => [a.ts, a.name, a.s])).toEqual(
        record.timeline.map((t) => [t.at * 1000, `${t.action} ${t.target}`, "g"])
      )
      const irqs = record.trace.filter(Trace.TraceEvent.$is("Irq"))
      expect(trace.traceEvents.filter((e) => e.cat === "irq" && e.ph === "i")).toHaveLength(irqs.length)
      const surprise = on(trace, deviceThread(trace, "edu0")).filter((e) => e.cat === "device").map((e) => e.name)
      expect(surprise).toEqual(expect.arrayContaining(["plug", "surprise-removal", "disconnect"]))
      // The bus lifecycle events the simulator echoes into its trace are not duplicated as instants.
      expect(surprise).not.toContain("Unbinding")
    }))

  it.effect("register accesses are aggregated into per-millisecond counters, even 100k of them", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const base = toChromeTrace(record).traceEvents.length
      let seq = 1_000_000
      const extra: Array<Trace.TraceEvent> = Array.from({ length: 100_000 }, (_, i) =>
        Trace.TraceEvent.MmioRead({
          seq: seq++,
          at: 20 + Math.floor(i / 5000), // 20 buckets of 5000 reads
          device: "edu1",
          region: "BAR0",
          register: "ID",
          offset: 0,
          width: 32,
          value: 0x010000ed
        }))
      const big: RunRecord = { ...record, trace: [...record.trace, ...extra].sort((a, b) => a.at - b.at) }
      const trace = toChromeTrace(big)
      expect(trace.traceEvents.length - base).toBeLessThan(100)
      const samples = trace.traceEvents.filter((e) => e.ph === "C" && e.name === "edu1 mmio/ms")
      const reads = samples.reduce((n, e) => n + Number(e.args?.reads), 0)
      const inRecord = big.trace.filter((e) => e._tag === "MmioRead" && e.device === "edu1").length
      expect(reads).toBe(inRecord)
      expect(samples.find((e) => e.ts === 25_000)?.args?.reads).toBeGreaterThanOrEqual(5000)
      for (const e of samples) expect(Number(e.args?.writes)).toBeGreaterThanOrEqual(0)
    }))

  it.effect("chromeTraceJson is the trace as JSON; writeChromeTrace writes it", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const json = chromeTraceJson(record)
      expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(toChromeTrace(record))))
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-perfetto-"))
      const file = path.join(dir, "trace.json")
      yield* writeChromeTrace(file, record).pipe(Effect.provide(NodeFileSystem.layer))
      expect(fs.readFileSync(file, "utf8")).toBe(json)
      fs.rmSync(dir, { recursive: true })
    }))
})
