import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
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
    const files = fs.readdirSync(scenariosDir).filter((f) => f.endsWith(".json"))
    expect(files.length).toBeGreaterThanOrEqual(3)
    for (const file of files) {
      const result = Scenario.decode(JSON.parse(fs.readFileSync(path.join(scenariosDir, file), "utf8")), file)
      expect(Either.isRight(result), `${file}: ${Either.isLeft(result) ? result.left.message : ""}`).toBe(true)
    }
  })

  it("the demo built into the CLI is examples/scenarios/demo.json", () => {
    const file = JSON.parse(fs.readFileSync(path.join(scenariosDir, "demo.json"), "utf8"))
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

  it.effect("text that is not JSON is rejected at the root", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Scenario.parse("{ name: ", "broken.json"))
      expect(error._tag).toBe("InvalidScenario")
      expect(error.issues[0]!.path).toBe("(root)")
      expect(error.message).toContain("broken.json")
    }))
})
