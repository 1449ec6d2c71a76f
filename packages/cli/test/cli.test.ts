import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { Runner, Scenario } from "@devscope/cli"
import { demo } from "../src/internal/demo.js"

const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")

// eslint-disable-next-line no-control-regex
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")

/** Runs the devscope command; resolves with its exit code and output. */
const devscope = (...args: Array<string>) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(tsx, [bin, ...args], { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
    })
  })

const small = Either.getOrThrow(Scenario.decode({
  name: "small",
  seed: 9,
  duration: "40 millis",
  devices: [
    { name: "eth0", kind: "nic", cable: "c" },
    { name: "eth1", kind: "nic", cable: "c" },
    { name: "disk0", kind: "blk", sectors: 512 },
    { name: "temp0", kind: "sensor" }
  ],
  drivers: [{ kind: "nic" }, { kind: "blk" }, { kind: "sensor" }],
  faults: [{ kind: "delay-completions", by: "30 micros", probability: 0.5 }],
  timeline: [
    { at: 10, action: "surprise", device: "disk0" },
    { at: 15, action: "unplug", device: "eth1" },
    { at: 20, action: "plug", device: "disk0" },
    { at: 25, action: "plug", device: "eth1" },
    { at: 30, action: "unbind", device: "temp0" }
  ]
}, "small"))

describe("devscope runs", () => {
  it.effect("the default scenario: every device worked, was removed and came back, no guarantee broken", () =>
    Effect.gen(function*() {
      const record = yield* Runner.run(demo)
      expect(record.violations).toEqual([])
      const byName = new Map(record.devices.map((d) => [d.device, d]))
      for (const device of record.devices) {
        expect(device.completed, device.device).toBeGreaterThan(100)
        expect(device.lost).toBe(0)
        expect(device.leaks).toBe(0)
        expect(device.iommuFaults).toBe(0)
      }
      expect(byName.get("disk0")!.unbinds.map((u) => u.cause)).toEqual(["hot-unplug", "unload"])
      expect(byName.get("eth1")!.unbinds.map((u) => u.cause)).toEqual(["surprise", "unload"])
      expect(byName.get("temp0")!.unbinds.map((u) => u.cause)).toEqual(["unload", "unload"])
      // Operations in flight at a removal failed with DeviceGone rather than vanishing.
      expect(byName.get("eth1")!.failedGone).toBeGreaterThan(0)
      expect(record.timeline.map((t) => `${t.action} ${t.target}`).slice(0, 6)).toEqual([
        "unplug disk0",
        "surprise eth1",
        "plug disk0",
        "plug eth1",
        "unload sensor",
        "load sensor"
      ])
      expect(Runner.summaryText(record)).toContain("All guarantees held")
    }), 120_000)

  it.effect("the same seed replays the same run; another seed gives another", () =>
    Effect.gen(function*() {
      const strip = (r: Runner.RunRecord) => ({
        devices: r.devices.map((d) => ({ ...d, unbinds: d.unbinds.map((u) => ({ ...u, wallMillis: 0 })) })),
        timeline: r.timeline,
        trace: r.trace.map((e) => JSON.stringify(e)),
        endedAt: r.endedAt
      })
      const a = yield* Runner.run(small)
      const b = yield* Runner.run(small)
      const c = yield* Runner.run(small, { seed: 10 })
      expect(a.violations).toEqual([])
      expect(strip(a)).toEqual(strip(b))
      expect(strip(c).trace).not.toEqual(strip(a).trace)
    }), 120_000)
})

describe("the devscope command", () => {
  it.effect("an injected driver bug (DMA memory freed before the device is stopped) exits 1 and names it", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* devscope("run", "examples/scenarios/bug-free-dma-early.json", "--quiet")
      expect(code).toBe(1)
      expect(stdout).toContain("G5 disk0: the device accessed DMA memory the driver had already freed or unmapped")
      expect(stdout).toContain("memory freed before the device was stopped")
      expect(stdout).toMatch(/freed\/unmapped at .*examples\/blk\/src\/driver\.ts/)
      expect(stderr).toContain("FAILED")
    }), 120_000)

  it.effect("an invalid scenario file exits 2, naming each field, and runs nothing", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* devscope("run", "packages/cli/test/fixtures/invalid.json")
      expect(code).toBe(2)
      expect(stderr).toContain("duration:")
      expect(stderr).toContain("devices[1].kind")
      expect(stdout).not.toContain("scenario \"invalid\"")
    }), 120_000)

  it.effect("every command has --help", () =>
    Effect.gen(function*() {
      for (const command of ["demo", "run", "validate"]) {
        const { code, stdout: raw } = yield* devscope(command, "--help")
        const stdout = stripAnsi(raw)
        expect(code, command).toBe(0)
        expect(stdout, command).toContain(`$ ${command}`)
        expect(stdout, command).toMatch(/seed|scenario/)
      }
      const { code, stdout: raw } = yield* devscope("--help")
      const stdout = stripAnsi(raw)
      expect(code).toBe(0)
      expect(stdout).toContain("demo")
      expect(stdout).toContain("run")
    }), 120_000)

  it.effect("--trace and --report write their files; validate checks without running", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => import("node:fs/promises").then((fs) => fs.mkdtemp("/tmp/devscope-")))
      const { code } = yield* devscope(
        "run",
        "examples/scenarios/nic-bug.json",
        "-q",
        "--trace",
        `${dir}/t.json`,
        "--report",
        `${dir}/r.html`
      )
      expect(code).toBe(1)
      const fs = yield* Effect.promise(() => import("node:fs/promises"))
      const trace = JSON.parse(yield* Effect.promise(() => fs.readFile(`${dir}/t.json`, "utf8")))
      expect(trace.traceEvents.length).toBeGreaterThan(10)
      const html = yield* Effect.promise(() => fs.readFile(`${dir}/r.html`, "utf8"))
      expect(html).toContain("<svg")
      expect(html).toContain("FAIL")
      const valid = yield* devscope("validate", "examples/scenarios/demo.json")
      expect(valid.code).toBe(0)
      expect(valid.stdout).toContain("valid scenario \"demo\"")
    }), 120_000)
})
