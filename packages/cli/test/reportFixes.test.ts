/**
 * The report findings of issue 12: a probe failure's negative wall time, an unbind's "@" time
 * (its end, not its start), resource-lane labels too small to read, and a header counting
 * the simulator's events as the trace's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Runner, Scenario } from "@devscope/cli"
import { toChromeTrace } from "../src/internal/perfetto.js"
import { toHtml } from "../src/internal/report.js"
import { makeRecord } from "./recordFixture.js"

/** The disk's second DMA allocation fails: its first probe fails and is torn down. */
const probeFailure = Either.getOrThrow(Scenario.decode({
  name: "probe failure",
  seed: 3,
  duration: "30 millis",
  devices: [{ name: "disk0", kind: "blk", sectors: 256, latency: "200 micros" }, { name: "temp0", kind: "sensor" }],
  drivers: [{ kind: "blk" }, { kind: "sensor" }],
  faults: [{ kind: "fail-nth", request: "dma-alloc", n: 2, device: "disk0" }],
  timeline: [
    { at: 5, action: "bind", device: "disk0" },
    { at: 12, action: "unbind", device: "disk0" },
    { at: 20, action: "bind", device: "disk0" }
  ]
}, "inline"))

describe("report fixes", () => {
  it.effect("a probe failure's teardown has a wall time of at least 0 and starts at its probe; an unbind starts at its Unbinding", () =>
    Effect.gen(function*() {
      const record = yield* Runner.run(probeFailure)
      const disk = record.devices.find((d) => d.device === "disk0")!
      const failed = disk.unbinds.filter((u) => u.cause === "probe-failure")
      expect(failed).toHaveLength(1)
      const all = record.devices.flatMap((d) => d.unbinds.map((u) => ({ device: d.device, ...u })))
      expect(all.length).toBeGreaterThan(2)
      for (const u of all) {
        expect(u.wallMillis, `${u.device} ${u.cause}`).toBeGreaterThanOrEqual(0)
        expect(Object.is(u.wallMillis, -0), `${u.device} ${u.cause}`).toBe(false)
        expect(u.startedAt, `${u.device} ${u.cause}`).toBeLessThanOrEqual(u.at)
      }
      // Each unbind starts at the event that began it: Unbinding, or the failed probe's Probing.
      const events = record.lifecycle.map(({ event }) => event)
      for (const d of record.devices) {
        const starts = events.flatMap((e) => {
          if (e._tag !== "Unbinding" && e._tag !== "Probing" && e._tag !== "Unbound") return []
          return e.device.name === d.device ? [e] : []
        })
        const expected: Array<number> = []
        let start: number | undefined
        for (const e of starts) {
          if (e._tag === "Unbound") {
            expected.push(start!)
            start = undefined
          } else {
            start = e.at
          }
        }
        expect(d.unbinds.map((u) => u.startedAt), d.device).toEqual(expected)
      }
      const probe = events.find((e) => e._tag === "Probing" && e.device.name === "disk0")!
      expect(failed[0]!.startedAt).toBe(probe.at)
      // The manual unbind of disk0 at 12 ms (a drain of its requests) shows 12 ms, not the time it ended.
      const manual = disk.unbinds.find((u) => u.cause === "manual")!
      expect(manual.startedAt).toBe(12)
      expect(manual.at).toBeGreaterThan(12)

      const html = toHtml(record)
      expect(html).toContain(`manual @ 12 ms (`)
      expect(html).not.toContain(`manual @ ${manual.at} ms`)
      expect(html).not.toMatch(/, -[0-9.]+ ms wall/)
    }))

  it.effect("resource-lane labels are at least 11 px tall and fit their lane", () =>
    Effect.gen(function*() {
      const html = toHtml(yield* makeRecord())
      const font = html.match(/\.lane\{font:(\d+(?:\.\d+)?)px/)
      expect(font).not.toBeNull()
      expect(Number(font![1])).toBeGreaterThanOrEqual(11)
      const labels = Array.from(
        html.matchAll(/<rect x="[^"]*" y="([^"]*)" width="[^"]*" height="([^"]*)" class="resource [^"]*"[^>]*>.*?<\/rect><text x="[^"]*" y="([^"]*)" class="lane">/g),
        (m) => ({ top: Number(m[1]), height: Number(m[2]), baseline: Number(m[3]) })
      )
      expect(labels.length).toBeGreaterThan(0)
      for (const l of labels) {
        expect(l.height).toBeGreaterThanOrEqual(Number(font![1]))
        // The baseline leaves room for the capitals above it and is inside the bar.
        expect(l.baseline - l.top).toBeGreaterThanOrEqual(8)
        expect(l.baseline).toBeLessThanOrEqual(l.top + l.height)
      }
    }))

  it.effect("the header counts the written trace's events, and the simulator's separately", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const html = toHtml(record)
      const written = toChromeTrace(record).traceEvents.length
      expect(written).not.toBe(record.trace.length)
      expect(html).toContain(`trace events <b>${written}</b>`)
      expect(html).toContain(`simulator events <b>${record.trace.length}</b>`)
    }))
})
