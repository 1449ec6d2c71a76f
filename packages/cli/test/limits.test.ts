import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"
import { demo } from "../src/internal/demo.js"

const root = path.resolve(__dirname, "../../..")
const scenariosDir = path.join(root, "examples/scenarios")

const sensor = {
  name: "l",
  duration: "100 millis",
  devices: [{ name: "temp0", kind: "sensor" }],
  drivers: [{ kind: "sensor" }]
}

const storm = (interval: unknown, count = 1000) => ({
  ...sensor,
  faults: [{ kind: "irq-storm", device: "temp0", line: 0, count, interval }]
})

/** The issues `decode` refuses `input` with ([] when it is accepted). */
const issuesOf = (input: unknown, allowLarge = false) => {
  const result = Scenario.decode(input, "test", { allowLarge })
  return Either.isLeft(result) ? result.left.issues : []
}

const decoded = (input: unknown) => Either.getOrThrow(Scenario.decode(input, "test", { allowLarge: true }))

describe("the estimate of a run's work and its limits", () => {
  it("the example scenarios and the demo are inside every limit", () => {
    const files = fs.readdirSync(scenariosDir).filter((f) => f.endsWith(".json") && !f.endsWith(".schema.json"))
    expect(files.length).toBeGreaterThanOrEqual(5)
    for (const file of files) {
      const scenario = Either.getOrThrow(Scenario.decode(JSON.parse(fs.readFileSync(path.join(scenariosDir, file), "utf8")), file))
      const estimate = Scenario.estimate(scenario)
      expect(estimate.events, file).toBeLessThan(Scenario.limits.events * 0.8)
      expect(estimate.memoryBytes, file).toBeLessThan(Scenario.limits.memoryBytes * 0.8)
      expect(estimate.devices, file).toBe(scenario.devices.length)
    }
    // The demo (the largest example) at about three quarters of the events limit; a run twice as long is over.
    const estimate = Scenario.estimate(demo)
    expect(estimate.virtualMillis).toBe(300)
    expect(estimate.events).toBeGreaterThan(Scenario.limits.events / 2)
    expect(issuesOf({ ...JSON.parse(fs.readFileSync(path.join(scenariosDir, "demo.json"), "utf8")), duration: 600 })).toEqual([
      { path: "duration", message: expect.stringMatching(/^about 1\.2e6 simulator events \(1\.9e6 per virtual second for 0\.6 s of virtual time\), limit 7\.5e5/) }
    ])
  })

  it("the estimate grows with the load: intervals, windows, workers, readers, devices, duration", () => {
    const base = Scenario.estimate(decoded(sensor))
    expect(base.eventsPerSecond).toBeGreaterThan(0)
    expect(base.events).toBeCloseTo(base.eventsPerSecond * 0.1 + 2 * 200, 0)
    const faster = Scenario.estimate(decoded({ ...sensor, workload: { sensor: { interval: "1 millis" } } }))
    expect(faster.eventsPerSecond).toBeGreaterThan(base.eventsPerSecond)
    const readers = Scenario.estimate(decoded({ ...sensor, workload: { sensor: { readers: 8 } } }))
    expect(readers.eventsPerSecond).toBeGreaterThan(faster.eventsPerSecond)
    const two = Scenario.estimate(decoded({ ...sensor, devices: [...sensor.devices, { name: "temp1", kind: "sensor" }] }))
    expect(two.eventsPerSecond).toBeCloseTo(2 * base.eventsPerSecond, 6)
    expect(Scenario.estimate(decoded({ ...sensor, duration: 1000 })).events).toBeCloseTo(base.eventsPerSecond + 2 * 200, 0)
    // A storm's interrupts are counted once per plug of its device.
    const stormed = Scenario.estimate(decoded(storm("20 micros", 1000)))
    const replugged = Scenario.estimate(decoded({
      ...storm("20 micros", 1000),
      timeline: [{ at: 10, action: "unplug", device: "temp0" }, { at: 20, action: "plug", device: "temp0" }]
    }))
    expect(stormed.events - base.events).toBe(4000)
    expect(replugged.events - stormed.events).toBe(4000 + 2 * 200)
    // Delayed completions slow the loads down.
    const disk = { ...sensor, devices: [{ name: "disk0", kind: "blk" }], drivers: [{ kind: "blk" }] }
    const delayed = { ...disk, faults: [{ kind: "delay-completions", by: "1 millis" }] }
    expect(Scenario.estimate(decoded(delayed)).eventsPerSecond).toBeLessThan(Scenario.estimate(decoded(disk)).eventsPerSecond / 5)
  })

  it("durations of 1e308 ms or ten years are refused, naming duration and the estimate", () => {
    expect(issuesOf({ ...sensor, duration: 1e308 })).toEqual([
      { path: "duration", message: expect.stringMatching(/^over 1e308 simulator events \(8800 per virtual second for 1e305 s of virtual time\), limit 7\.5e5 \(--allow-large/) }
    ])
    expect(issuesOf({ ...sensor, duration: "3650 days" })).toEqual([
      { path: "duration", message: expect.stringMatching(/^about 2\.8e12 simulator events .*for 3\.2e8 s of virtual time\), limit 7\.5e5/) }
    ])
  })

  it("a storm every nanosecond is refused by the limit; an interval of 0 or a denormal by the schema", () => {
    expect(issuesOf(storm("1 nanos"))).toEqual([
      { path: "faults[0].interval", message: expect.stringContaining("the interrupt storm of faults[0] is about 4e9 simulator events per virtual second, limit 1e8") }
    ])
    expect(issuesOf(storm(1e-6))).toEqual(issuesOf(storm("1 nanos")))
    expect(issuesOf(storm("20 micros"))).toEqual([])
    for (const zero of [0, 5e-324, "0 micros"]) {
      expect(issuesOf(storm(zero), true), String(zero)).toEqual([
        { path: "faults[0].interval", message: expect.stringContaining("expected an interval of at least 1 ns") }
      ])
    }
  })

  it("too many devices, timeline events or fault rules are refused before decoding them", () => {
    const devices = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `t${i}`, kind: "sensor" }))
    expect(issuesOf({ ...sensor, devices: devices(256) })).toEqual([])
    expect(issuesOf({ ...sensor, devices: devices(257) })).toEqual([
      { path: "devices", message: "257 devices, limit 256 (--allow-large to run it anyway)" }
    ])
    // A million devices: refused at once (not a million elements decoded).
    const million = Array.from({ length: 1_000_000 }, () => ({ name: "x" }))
    const started = performance.now()
    expect(issuesOf({ ...sensor, devices: million })).toEqual([{ path: "devices", message: "1000000 devices, limit 256 (--allow-large to run it anyway)" }])
    expect(performance.now() - started).toBeLessThan(1000)
    const timeline = Array.from({ length: 10_001 }, () => ({ at: 1, action: "unbind", device: "temp0" }))
    expect(issuesOf({ ...sensor, timeline })).toEqual([{ path: "timeline", message: "10001 timeline events, limit 10000 (--allow-large to run it anyway)" }])
    const faults = Array.from({ length: 1001 }, () => ({ kind: "drop-completions", probability: 0 }))
    expect(issuesOf({ ...sensor, faults })).toEqual([{ path: "faults", message: "1001 fault rules, limit 1000 (--allow-large to run it anyway)" }])
  })

  it("the field named is the one that drives the load", () => {
    // Many devices with an ordinary load: devices.
    const disks = Array.from({ length: 200 }, (_, i) => ({ name: `d${i}`, kind: "blk", sectors: 64 }))
    expect(issuesOf({ ...sensor, devices: disks, drivers: [{ kind: "blk" }] })[0]?.path).toBe("devices")
    // One NIC with a fast, wide load: the workload field furthest from its default.
    const nic = { ...sensor, devices: [{ name: "eth0", kind: "nic", loopback: true }], drivers: [{ kind: "nic" }] }
    expect(issuesOf({ ...nic, workload: { nic: { window: 256 } } })[0]).toEqual({
      path: "workload.nic.window",
      message: expect.stringMatching(/^about 5\.9e6 simulator events \(5\.9e7 per virtual second for 0\.1 s of virtual time\), limit 7\.5e5/)
    })
    expect(issuesOf({ ...nic, duration: 500, workload: { nic: { interval: "1 micros" } } })[0]?.path).toBe("workload.nic.interval")
    // A disk whose medium does not fit: its sectors.
    expect(issuesOf({ ...sensor, devices: [{ name: "d", kind: "blk", sectors: 1 << 20 }], drivers: [{ kind: "blk" }] })).toEqual([
      { path: "devices[0].sectors", message: expect.stringMatching(/^about 520 MiB of memory, limit 320 MiB/) }
    ])
  })

  it("allowLarge accepts a scenario over the limits; parse and parseBytes take it too", () =>
    Effect.gen(function*() {
      const long = { ...sensor, duration: "3650 days" }
      expect(issuesOf(long, true)).toEqual([])
      const text = JSON.stringify(long)
      const refused = yield* Effect.flip(Scenario.parse(text, "t"))
      expect(refused.issues[0]!.path).toBe("duration")
      const accepted = yield* Scenario.parseBytes(new TextEncoder().encode(text), "t", { allowLarge: true })
      expect(accepted.duration).toBe(3650 * 86_400_000)
    }))
})
