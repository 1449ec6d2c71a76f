import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { Scenario } from "@devscope/cli"

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

describe("every problem of a file in one pass", () => {
  it("a schema error in devices[0] and an unknown device in timeline[3] are both reported, in path order", () => {
    const issues = issuesOf({
      ...base,
      devices: [{ name: "eth0", kind: "floppy" }, ...base.devices.slice(1)],
      timeline: [
        { at: 1, action: "unplug", device: "disk0" },
        { at: 2, action: "plug", device: "disk0" },
        { at: 3, action: "unbind", device: "eth1" },
        { at: 4, action: "unplug", device: "eth9" }
      ]
    })
    expect(issues).toEqual([
      { path: "devices[0].kind", message: expect.stringContaining("\"floppy\"") },
      { path: "timeline[3].device", message: expect.stringContaining("unknown device \"eth9\"") }
    ])
  })

  it("a name in an element that did not decode is not called unknown; the other cross-checks still run", () => {
    const issues = issuesOf({
      ...base,
      devices: [...base.devices, { name: "temp0", kind: "sensor", present: "yes" }, { name: "disk0", kind: "blk" }],
      drivers: [{ kind: "nic" }, { kind: "nic" }, { kind: "blk" }],
      timeline: [{ at: 1, action: "unplug", device: "temp0" }, { at: 500, action: "plug", device: "disk0" }],
      faults: [{ kind: "irq-storm", device: "eth0", line: 3, count: 10 }, { kind: "drop-completions", probability: 2 }]
    })
    expect(issues).toEqual([
      { path: "devices[3].present", message: expect.any(String) },
      { path: "devices[4].name", message: "duplicate device name \"disk0\"" },
      { path: "devices[4].store", message: expect.stringContaining("store \"disk0\"") },
      { path: "drivers[1].kind", message: "driver \"nic\" listed twice" },
      { path: "timeline[1].at", message: "500 ms is after the end of the scenario (duration 100 ms)" },
      { path: "faults[0].line", message: expect.stringContaining("not line 3") },
      { path: "faults[1].probability", message: expect.any(String) }
    ])
  })

  it("issues are ordered by field (in the schema's order) and element, and not repeated", () => {
    const issues = issuesOf({
      faults: [{ kind: "all-ones-reads", device: "nope" }],
      timeline: [{ at: 1, action: "unplug", device: "nope" }, { at: 2, action: "unplug", device: "nope" }],
      drivers: [],
      devices: [{ name: "eth0", kind: "nic", loopback: 1 }],
      duration: "soon"
    })
    expect(issues.map((i) => i.path)).toEqual([
      "name",
      "duration",
      "devices[0].loopback",
      "timeline[0].device",
      "timeline[1].device",
      "faults[0].device"
    ])
    expect(new Set(issues.map((i) => `${i.path} ${i.message}`)).size).toBe(issues.length)
  })

  it("the limits are checked in the same pass once the fields they need decoded", () => {
    const { name: _, ...nameless } = base
    expect(issuesOf({ ...nameless, duration: "3650 days" })).toEqual([
      { path: "name", message: "missing (required)" },
      { path: "duration", message: expect.stringMatching(/^about .* simulator events .* limit 7\.5e5/) }
    ])
    // A device that does not decode: its load is unknown, so no estimate (and no false alarm).
    const broken = issuesOf({ ...base, duration: "3650 days", devices: [{ name: "eth0", kind: "nic", latency: "fast" }] })
    expect(broken.map((i) => i.path)).toEqual(["devices[0].latency"])
  })
})
