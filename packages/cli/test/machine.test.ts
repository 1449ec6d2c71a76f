/**
 * The command's machine-readable outputs, end to end: `run --json` (one JSON document on
 * stdout, the human output on stderr), `--junit FILE`, `devscope schema`, `devscope list`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"
import { catalogue, catalogueText } from "../src/internal/list.js"

const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")

const devscope = (...args: Array<string>) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(tsx, ["--conditions=@devscope/source", bin, ...args], { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
    })
  })

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "devscope-machine-"))

const small = {
  $schema: "../../examples/scenarios/scenario.schema.json",
  name: "small",
  seed: 4,
  duration: "20 millis",
  devices: [{ name: "disk0", kind: "blk", sectors: 256 }, { name: "temp0", kind: "sensor" }],
  drivers: [{ kind: "blk" }, { kind: "sensor" }],
  timeline: [{ at: 5, action: "unplug", device: "disk0" }, { at: 10, action: "plug", device: "disk0" }]
}

describe("machine-readable output", () => {
  it.effect("run --json: stdout is one JSON document, the human output is on stderr; --junit writes the XML", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const file = path.join(dir, "small run.json")
      fs.writeFileSync(file, JSON.stringify(small))
      const junit = path.join(dir, "out.xml")
      const { code, stderr, stdout } = yield* devscope("run", file, "--json", "--junit", junit, "--seed", "6")
      expect(code).toBe(0)
      const v = JSON.parse(stdout)
      expect(stdout.trim().startsWith("{") && stdout.trim().endsWith("}")).toBe(true)
      expect(v.version).toBe(1)
      expect([v.verdict, v.exitCode, v.seed]).toEqual(["passed", 0, 6])
      expect(v.scenario).toEqual({ name: "small", duration: 20 })
      expect(v.replay).toEqual({ seed: 6, source: file, command: `devscope run '${file}' --seed 6` })
      expect(v.devices.map((d: { device: string }) => d.device)).toEqual(["disk0", "temp0"])
      expect(v.timeline.slice(0, 2).map((t: { action: string }) => t.action)).toEqual(["unplug", "plug"])
      expect(stderr).toContain(`devscope: scenario "small" (seed 6`)
      expect(stderr).toContain("All guarantees held")
      expect(stderr).toContain(`JUnit XML written to ${junit}`)
      const xml = fs.readFileSync(junit, "utf8")
      expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<testsuites name="devscope" tests="8" failures="0" errors="0"/)
      expect(xml).toContain(`<testsuite name="small" tests="8" failures="0" errors="0"`)
    }), 120_000)

  it.effect("a failing run: the JSON says failed with its violations, exit 1 as its exitCode, the FAILED line on stderr", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const junit = path.join(dir, "out.xml")
      const { code, stderr, stdout } = yield* devscope("run", "examples/scenarios/nic-bug.json", "--json", "--quiet", "--junit", junit)
      expect(code).toBe(1)
      const v = JSON.parse(stdout)
      expect([v.verdict, v.exitCode]).toEqual(["failed", 1])
      expect(v.violationCount).toBeGreaterThan(0)
      expect(v.violations.every((x: { guarantee: string }) => x.guarantee === "G5")).toBe(true)
      expect(v.guarantees.find((g: { guarantee: string }) => g.guarantee === "G5").held).toBe(false)
      expect(v.replay.command).toBe("devscope run examples/scenarios/nic-bug.json --seed 3")
      expect(stderr).toContain("devscope: FAILED:")
      const xml = fs.readFileSync(junit, "utf8")
      expect(xml).toContain(`<failure type="G5"`)
    }), 120_000)

  it.effect("several scenario files: one JSON document with a verdict per run, one JUnit file with a testsuite per run", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const first = path.join(dir, "a.json")
      const second = path.join(dir, "b.json")
      fs.writeFileSync(first, JSON.stringify(small))
      fs.writeFileSync(second, JSON.stringify({ ...small, name: "second", drivers: [{ kind: "blk", bug: "free-dma-before-stop" }, { kind: "sensor" }] }))
      const junit = path.join(dir, "all.xml")
      const { code, stderr, stdout } = yield* devscope("run", first, second, "--json", "--quiet", "--junit", junit)
      expect(code).toBe(1)
      const v = JSON.parse(stdout)
      expect([v.version, v.verdict, v.exitCode]).toEqual([1, "failed", 1])
      expect(v.runs.map((r: { scenario: { name: string }; verdict: string }) => [r.scenario.name, r.verdict])).toEqual([
        ["small", "passed"],
        ["second", "failed"]
      ])
      expect(v.runs[1].replay.command).toBe(`devscope run ${second} --seed 4`)
      expect(stderr).toContain(`== ${first}`)
      expect(stderr).toContain("2 scenario files: 1 passed, 1 failed")
      const xml = fs.readFileSync(junit, "utf8")
      expect(Array.from(xml.matchAll(/<testsuite name="([^"]*)"/g), (m) => m[1])).toEqual(["small", "second"])
    }), 120_000)

  it.effect("--junit is checked before the run like --trace: a missing directory, a directory, the same file as --trace", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const cases = [
        [["run", "examples/scenarios/demo.json", "--junit", path.join(dir, "nope", "x.xml")], /--junit .*directory .* does not exist/],
        [["run", "examples/scenarios/demo.json", "--junit", dir], /is a directory|to be a regular file/],
        [["run", "examples/scenarios/demo.json", "--junit", `${dir}/x`, "--trace", `${dir}/x`], /--junit and --trace name the same file/]
      ] as const
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* devscope(...args)
        expect(code, args.join(" ")).toBe(2)
        expect(stdout + stderr, args.join(" ")).toMatch(message)
        expect(stdout, args.join(" ")).not.toContain("devscope: scenario")
      }
    }), 120_000)

  it.effect("devscope schema prints the generated JSON Schema; devscope list prints the catalogue, as JSON with --json", () =>
    Effect.gen(function*() {
      const schema = yield* devscope("schema")
      expect(schema.code).toBe(0)
      expect(schema.stdout).toBe(`${JSON.stringify(Scenario.jsonSchema(), null, 2)}\n`)
      const list = yield* devscope("list")
      expect(list.code).toBe(0)
      expect(list.stdout).toBe(`${catalogueText()}\n`)
      const json = yield* devscope("list", "--json")
      expect(json.code).toBe(0)
      expect(JSON.parse(json.stdout)).toEqual(catalogue())
      const extra = yield* devscope("schema", "--frobnicate")
      expect(extra.code).toBe(2)
      expect(extra.stderr).toContain("schema: unknown option --frobnicate")
    }), 120_000)
})
