import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlkModel } from "@devscope/example-blk"
import { NicModel } from "@devscope/example-nic"
import { SensorModel } from "@devscope/example-sensor"
import * as Scenario from "../src/Scenario.js"
import { demo, demoJson } from "../src/internal/demo.js"

const root = path.resolve(__dirname, "../../..")
const scenariosDir = path.join(root, "examples/scenarios")

const issuesOf = (input: unknown) => {
  const result = Scenario.decode(input, "test")
  if (Either.isRight(result)) throw new Error("expected the scenario to be rejected")
  return result.left.issues
}

const base = {
  name: "t",
  duration: "100 millis",
  devices: [
    { name: "eth0", kind: "nic", cable: "c" },
    { name: "eth1", kind: "nic", cable: "c" },
    { name: "disk0", kind: "blk" }
  ],
  drivers: [{ kind: "nic" }, { kind: "blk" }]
}

describe("Scenario", () => {
  it("every sample scenario in examples/scenarios is valid", () => {
    const files = fs.readdirSync(scenariosDir).filter((f) => f.endsWith(".json") && !f.endsWith(".schema.json"))
    expect(files.length).toBeGreaterThanOrEqual(3)
    for (const file of files) {
      const result = Scenario.decode(JSON.parse(fs.readFileSync(path.join(scenariosDir, file), "utf8")), file)
      expect(Either.isRight(result), `${file}: ${Either.isLeft(result) ? result.left.message : ""}`).toBe(true)
    }
  })

  it("the demo built into the CLI is examples/scenarios/demo.json", () => {
    const { $schema, ...file } = JSON.parse(fs.readFileSync(path.join(scenariosDir, "demo.json"), "utf8"))
    expect($schema).toBe("./scenario.schema.json")
    expect(file).toEqual(demoJson)
    expect(demo.duration).toBe(300)
    expect(demo.timeline?.map((e) => e.at)).toEqual([60, 100, 140, 170, 220, 250])
  })

  it("times are milliseconds or duration strings", () => {
    const ok = Scenario.decode({ ...base, duration: 2.5, timeline: [{ at: "40 micros", action: "unplug", device: "disk0" }] }, "t")
    expect(Either.getOrThrow(ok).duration).toBe(2.5)
    expect(Either.getOrThrow(ok).timeline?.[0]?.at).toBeCloseTo(0.04)
    expect(issuesOf({ ...base, duration: -1 })).toEqual([{ path: "duration", message: expect.stringContaining("non-negative") }])
  })

  it("an invalid file gets one error per problem, each naming its field", () => {
    const text = fs.readFileSync(path.join(__dirname, "fixtures/invalid.json"), "utf8")
    const issues = issuesOf(JSON.parse(text))
    const paths = issues.map((i) => i.path)
    expect(paths).toContain("duration")
    expect(paths).toContain("devices[1].kind")
    expect(issues.find((i) => i.path === "duration")!.message).toContain("\"soon\"")
    expect(issues.find((i) => i.path === "devices[1].kind")!.message).toMatch(/"nic"|"blk"|"sensor"/)
  })

  it("a misspelled field is named, not ignored", () => {
    const issues = issuesOf({ ...base, timeline: [{ at: 1, action: "unplug", devcie: "disk0" }] })
    expect(issues.some((i) => i.path.startsWith("timeline[0]") && /devcie|device/.test(i.path + i.message))).toBe(true)
  })

  it("names must refer to things that exist, and be unique", () => {
    expect(issuesOf({ ...base, timeline: [{ at: 1, action: "unplug", device: "eth9" }] })).toEqual([
      { path: "timeline[0].device", message: expect.stringContaining("unknown device \"eth9\"") }
    ])
    expect(issuesOf({ ...base, timeline: [{ at: 1, action: "unload", driver: "sensor" }] })).toEqual([
      { path: "timeline[0].driver", message: "driver \"sensor\" is not in drivers" }
    ])
    expect(issuesOf({ ...base, devices: [...base.devices, { name: "disk0", kind: "sensor" }] })).toEqual([
      { path: "devices[3].name", message: "duplicate device name \"disk0\"" }
    ])
    expect(issuesOf({ ...base, devices: [...base.devices, { name: "eth2", kind: "nic", cable: "c" }] })[0]!.path).toBe("devices[3].cable")
    expect(issuesOf({ ...base, timeline: [{ at: "1 second", action: "unplug", device: "disk0" }] })[0]!.path).toBe("timeline[0].at")
    expect(issuesOf({ ...base, faults: [{ kind: "all-ones-reads", device: "nope" }] })[0]!.path).toBe("faults[0].device")
  })

  it("each problem is one line naming its field: no noise from optional parents or union members", () => {
    const nested = issuesOf({ ...base, workload: { blk: { workers: 0 } } })
    expect(nested).toEqual([{ path: "workload.blk.workers", message: "expected a positive number, got 0" }])
    const driver = issuesOf({ ...base, timeline: [{ at: 1, action: "unload", driver: "foo" }] })
    expect(driver).toEqual([{ path: "timeline[0].driver", message: "expected one of \"nic\", \"blk\", \"sensor\", \"edu\", \"pci-testdev\", got \"foo\"" }])
    const kind = issuesOf({ ...base, devices: [{ name: "d", kind: "floppy" }] })
    expect(kind).toEqual([{ path: "devices[0].kind", message: "expected one of \"nic\", \"blk\", \"sensor\", \"edu\", \"pci-testdev\", got \"floppy\"" }])
    const bug = issuesOf({ ...base, drivers: [{ kind: "blk", bug: "nope" }] })
    expect(bug).toEqual([{ path: "drivers[0].bug", message: expect.stringContaining("got \"nope\"") }])
    for (const issue of [...nested, ...driver, ...kind, ...bug]) expect(issue.message).not.toMatch(/undefined|Expected/)
    const misspelled = issuesOf({ ...base, timeline: [{ at: 1, action: "unplug", devcie: "disk0" }] })
    expect(misspelled).toEqual([
      { path: "timeline[0].devcie", message: "unknown field (allowed here: \"at\", \"action\", \"device\")" },
      { path: "timeline[0].device", message: "missing (required)" }
    ])
    expect(issuesOf({ ...base, seed: -5 })).toEqual([{ path: "seed", message: "expected an integer from 0 to 4294967295, got -5" }])
  })

  it("a bug the driver does not have is rejected, not ignored", () => {
    expect(issuesOf({ ...base, devices: [{ name: "temp0", kind: "sensor" }], drivers: [{ kind: "sensor", bug: "free-dma-before-stop" }] }))
      .toEqual([{ path: "drivers[0].bug", message: "the sensor driver has no planted bug \"free-dma-before-stop\" (its bugs: \"hang-in-remove\")" }])
    expect(Either.isRight(Scenario.decode({ ...base, drivers: [{ kind: "blk", bug: "free-dma-before-stop" }] }, "t"))).toBe(true)
    // The catalogue of bugs is the drivers' own.
    expect(Scenario.kinds.sensor.bugs).not.toContain("free-dma-before-stop")
  })

  it("the catalogue of kinds matches the device models (interrupt lines) and the drivers (buses)", () => {
    expect(NicModel.model({}).irqs).toBe(Scenario.kinds.nic.irqLines)
    expect(BlkModel.model({ store: BlkModel.store(8) }).irqs).toBe(Scenario.kinds.blk.irqLines)
    expect(SensorModel.model().irqs).toBe(Scenario.kinds.sensor.irqLines)
    expect([Scenario.kinds.nic.bus, Scenario.kinds.blk.bus, Scenario.kinds.sensor.bus]).toEqual(["pci", "pci", "platform"])
  })

  it("times: no negative durations (not even as strings), a positive duration, nothing after the end", () => {
    // Duration.decodeUnknown reads "-5 millis" as 0: the schema must refuse it.
    expect(issuesOf({ ...base, duration: "-5 millis" })).toEqual([{ path: "duration", message: expect.stringContaining("non-negative") }])
    expect(issuesOf({ ...base, workload: { nic: { interval: "-1 micros" } } })[0]!.path).toBe("workload.nic.interval")
    expect(issuesOf({ ...base, duration: 0 })).toEqual([{ path: "duration", message: "expected a duration greater than 0, got 0" }])
    expect(issuesOf({ ...base, faults: [{ kind: "delay-completions", by: -2 }] })[0]!.path).toBe("faults[0].by")
    expect(issuesOf({ ...base, faults: [{ kind: "drop-completions", probability: 1.5 }] })[0]!.path).toBe("faults[0].probability")
    expect(issuesOf({ ...base, faults: [{ kind: "all-ones-reads", device: "eth0", at: "1 second" }] })).toEqual([
      { path: "faults[0].at", message: "1000 ms is after the end of the scenario (duration 100 ms)" }
    ])
    // Just past the end is not printed as equal to it.
    expect(issuesOf({ ...base, faults: [{ kind: "all-ones-reads", device: "eth0", at: 100.000001 }] })).toEqual([
      { path: "faults[0].at", message: "100.000001 ms is after the end of the scenario (duration 100 ms)" }
    ])
    expect(issuesOf({ ...base, faults: [{ kind: "irq-storm", device: "disk0", line: 3, count: 5 }] })).toEqual([
      { path: "faults[0].line", message: "disk0 (blk) has 1 interrupt line (0), not line 3" }
    ])
  })

  it("warnings: actions that will be refused at run time, devices that never get a driver", () => {
    const valid = Either.getOrThrow(Scenario.decode({
      ...base,
      devices: [...base.devices, { name: "temp0", kind: "sensor" }],
      timeline: [
        { at: 10, action: "unplug", device: "disk0" },
        { at: 20, action: "surprise", device: "disk0" },
        { at: 30, action: "unbind", device: "eth0" },
        { at: 40, action: "unbind", device: "eth0" },
        { at: 45, action: "bind", device: "eth1" },
        { at: 50, action: "plug", device: "eth1" },
        { at: 60, action: "load", driver: "nic" }
      ]
    }, "t"))
    expect(Scenario.warnings(valid)).toEqual([
      { path: "timeline[1]", message: "surprise of disk0 at 20 ms: it is not plugged then (refused)" },
      { path: "timeline[3]", message: "unbind of eth0 at 40 ms: it was already unbound at 30 ms (refused)" },
      { path: "timeline[4]", message: "bind of eth1 at 45 ms: it is already bound (refused)" },
      { path: "timeline[5]", message: "plug of eth1 at 50 ms: it is already plugged (since the start; refused)" },
      { path: "timeline[6]", message: "load of \"nic\" at 60 ms: it is already loaded (refused)" },
      { path: "devices[3]", message: expect.stringContaining("no sensor driver is ever loaded: temp0 is never bound") }
    ])
    const demoFile = Either.getOrThrow(Scenario.decode(demoJson, "demo"))
    expect(Scenario.warnings(demoFile)).toEqual([])
  })

  it.effect("text that is not JSON is rejected at the root", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Scenario.parse("{ name: ", "broken.json"))
      expect(error._tag).toBe("InvalidScenario")
      expect(error.issues[0]!.path).toBe("(root)")
      expect(error.message).toContain("broken.json")
    }))
})
