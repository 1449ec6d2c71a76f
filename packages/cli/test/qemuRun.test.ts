/**
 * `run --backend qemu` (issue 13): the scenario kinds QEMU has (edu, pci-testdev) run on the
 * simulator's models and on QEMU's own, with the same drivers, timeline and oracle; scenarios
 * QEMU cannot run are refused before anything starts (exit code 2), as is a QEMU that is missing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Install } from "@devscope/qemu"
import { Runner, Scenario } from "@devscope/cli"
import { devscope, root } from "./command.js"

const qemu = Install.locate()
const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "0" && process.env.CI.toLowerCase() !== "false"
if (!qemu.available) {
  if (ci) throw new Error(`QEMU is required under CI: ${qemu.reason}`)
  console.warn(`skipping the runs on QEMU: ${qemu.reason}; ${qemu.hint}`)
}
const noQemu = !qemu.available

const file = path.join(root, "examples/scenarios/qemu.json")
const scenarioOf = (json: unknown) => Either.getOrThrow(Scenario.decode(json, "inline"))
const fromFile = () => scenarioOf(JSON.parse(fs.readFileSync(file, "utf8")))

/** The unbind causes of a device, in order. */
const causes = (record: Runner.RunRecord, device: string) =>
  record.devices.find((d) => d.device === device)!.unbinds.map((u) => u.cause)

describe("scenarios of QEMU's kinds on the simulator", () => {
  it.effect("examples/scenarios/qemu.json: edu under load unplugged, re-plugged, surprise-removed; pci-testdev removed and unloaded; every guarantee holds", () =>
    Effect.gen(function*() {
      const record = yield* Runner.run(fromFile())
      expect(Runner.passed(record)).toBe(true)
      expect(record.backend).toBeUndefined()
      const edu = record.devices.find((d) => d.device === "edu0")!
      expect(edu.completed).toBeGreaterThan(0)
      expect(edu.lost).toBe(0)
      expect(edu.leaks).toBe(0)
      expect(causes(record, "edu0")).toEqual(["hot-unplug", "surprise", "unload"])
      expect(causes(record, "testdev0")).toEqual(["surprise", "unload"])
      // Deterministic: the same seed, the same record (but for wall-clock figures).
      const virtual = (r: Runner.RunRecord) => r.devices.map((d) => ({ ...d, unbinds: d.unbinds.map(({ wallMillis: _, ...u }) => u) }))
      const again = yield* Runner.run(fromFile())
      expect(virtual(again)).toEqual(virtual(record))
    }))

  it("qemuIssues: kinds QEMU has no model of, fault rules", () => {
    const scenario = scenarioOf({
      name: "mixed",
      duration: 50,
      devices: [{ name: "edu0", kind: "edu" }, { name: "nic0", kind: "nic" }],
      drivers: [{ kind: "edu" }],
      faults: [{ kind: "fail-nth", request: "irq", n: 1 }]
    })
    expect(Runner.qemuIssues(scenario)).toEqual([
      { path: "devices[1].kind", message: "QEMU has no nic device (it has: edu, pci-testdev)" },
      { path: "faults", message: "fault rules are the simulator's; QEMU's devices do not take them" }
    ])
    expect(Runner.qemuIssues(fromFile())).toEqual([])
    // A platform driver (and its timeline events) would have no bus on QEMU; a machine has at most 30 devices.
    const drivers = scenarioOf({
      name: "platform driver",
      duration: 50,
      devices: Array.from({ length: 31 }, (_, i) => ({ name: `edu${i}`, kind: "edu" })),
      drivers: [{ kind: "edu" }, { kind: "sensor" }],
      timeline: [{ at: 10, action: "unload", driver: "sensor" }]
    })
    expect(Runner.qemuIssues(drivers).map((i) => i.path)).toEqual(["devices", "drivers[1].kind", "timeline[0].driver"])
  })
})

describe("run --backend qemu, refused before anything starts", () => {
  it.live("the demo's devices: exit code 2, each device QEMU lacks named with its field", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["run", "--backend", "qemu", path.join(root, "examples/scenarios/demo.json")])
      expect(ran.code).toBe(2)
      expect(ran.stderr).toMatch(/cannot run on QEMU/)
      expect(ran.stderr).toMatch(/devices\[0\]\.kind: QEMU has no nic device \(it has: edu, pci-testdev\)/)
    }), 60_000)

  it.live("QEMU missing (DEVSCOPE_QEMU names no binary): exit code 2 with what is missing, nothing ran", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["run", "--backend", "qemu", file], { env: { DEVSCOPE_QEMU: "/nonexistent/qemu" } })
      expect(ran.code).toBe(2)
      expect(ran.stderr).toMatch(/the qemu backend cannot run this: .*DEVSCOPE_QEMU=\/nonexistent\/qemu/)
      expect(ran.stderr).toMatch(/devscope doctor/)
      expect(ran.stdout).not.toMatch(/All guarantees held/)
    }), 60_000)

  it.effect("Runner.runOnQemu with a scenario QEMU cannot run: BackendUnavailable, QEMU not started", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Runner.runOnQemu(scenarioOf({
        name: "sensor", duration: 20, devices: [{ name: "t0", kind: "sensor" }], drivers: [{ kind: "sensor" }]
      })))
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("BackendUnavailable")
    }))
})

describe.skipIf(noQemu)("run on QEMU's own edu and pci-testdev", () => {
  it.live("examples/scenarios/qemu.json on QEMU: the same timeline, every guarantee holds, nothing lost or leaked", () =>
    Effect.gen(function*() {
      const record = yield* Runner.runOnQemu(fromFile())
      expect(record.failures).toEqual([])
      expect(record.violations).toEqual([])
      expect(Runner.passed(record)).toBe(true)
      expect(record.backend).toBe("qemu")
      const edu = record.devices.find((d) => d.device === "edu0")!
      expect(edu.completed).toBeGreaterThan(0)
      expect(edu.lost).toBe(0)
      expect(edu.leaks).toBe(0)
      expect(edu.iommuFaults).toBe(0)
      expect(causes(record, "edu0")).toEqual(["hot-unplug", "surprise", "unload"])
      expect(causes(record, "testdev0")).toEqual(["surprise", "unload"])
      expect(record.timeline.every((t) => t.detail === undefined || t.detail === "end of run")).toBe(true)
    }), 60_000)

  it.live("a planted hang-in-remove in the edu driver is caught on QEMU too (G4, the wait named)", () =>
    Effect.gen(function*() {
      const record = yield* Runner.runOnQemu(scenarioOf({
        name: "edu hang on QEMU",
        duration: 200,
        devices: [{ name: "edu0", kind: "edu" }],
        drivers: [{ kind: "edu", bug: "hang-in-remove" }],
        timeline: [{ at: 100, action: "unplug", device: "edu0" }]
      }))
      expect(Runner.passed(record)).toBe(false)
      expect(record.violations.some((v) => v.guarantee === "G4" && /planted bug hang-in-remove/.test(v.message))).toBe(true)
    }), 60_000)

  it.live("devscope run --backend qemu --json: passed, backend qemu, the replay command names the backend", () =>
    Effect.gen(function*() {
      const ran = yield* devscope(["run", "--backend", "qemu", "--json", file])
      expect(ran.code).toBe(0)
      expect(ran.stderr).toMatch(/of virtual time, on QEMU\)/)
      const verdict = JSON.parse(ran.stdout)
      expect(verdict).toMatchObject({ verdict: "passed", exitCode: 0, backend: "qemu" })
      expect(verdict.replay.command).toMatch(/^devscope run .*qemu\.json --seed 7 --backend qemu$/)
    }), 60_000)

  it.live("stopped (--timeout) while an unplug hangs in a driver's remove on QEMU: exit 124 within seconds, the summary printed", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(root, "node_modules/.cache-devscope-test-"))
      try {
        const hang = path.join(dir, "hang.json")
        fs.writeFileSync(hang, JSON.stringify({
          name: "edu hang, stopped",
          duration: 200,
          devices: [{ name: "edu0", kind: "edu" }],
          drivers: [{ kind: "edu", bug: "hang-in-remove" }],
          timeline: [{ at: 100, action: "unplug", device: "edu0" }]
        }))
        const started = performance.now()
        const ran = yield* devscope(["run", "--backend", "qemu", "--timeout", "400ms", hang])
        expect(ran.code).toBe(124)
        expect(performance.now() - started).toBeLessThan(20_000)
        expect(ran.stdout + ran.stderr).toMatch(/interrupted at .* ms of virtual time/)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }), 60_000)
})
