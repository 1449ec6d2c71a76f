import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")

interface Result {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs the devscope command with `input` on its stdin (none: stdin at end of file). */
const devscope = (args: ReadonlyArray<string>, input: string | Uint8Array = "") =>
  Effect.async<Result>((resume) => {
    const child = execFile(
      tsx,
      ["--conditions=@devscope/source", bin, ...args],
      { cwd: root, timeout: 120_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
      }
    )
    child.stdin?.on("error", () => {}) // the command may stop reading early
    child.stdin?.end(input)
  })

const dir = mkdtempSync(path.join(os.tmpdir(), "devscope-files-"))
const write = (name: string, scenario: unknown) => {
  const file = path.join(dir, name)
  writeFileSync(file, typeof scenario === "string" ? scenario : JSON.stringify(scenario))
  return file
}
const tiny = (name: string) => ({
  name,
  seed: 3,
  duration: "5 millis",
  devices: [{ name: "temp0", kind: "sensor" }],
  drivers: [{ kind: "sensor" }]
})
const okA = write("a-ok.json", tiny("a"))
const okB = write("b-ok.json", tiny("b"))
const tenYears = write("ten-years.json", { ...tiny("long"), duration: "3650 days" })
const broken = write("broken.json", { ...tiny("broken"), devices: [{ name: "temp0", kind: "floppy" }], timeline: [{ at: 1, action: "unplug", device: "x" }] })

describe("scenario files on the command line", () => {
  it.effect("validate takes several files and a glob, reports each, and exits 2 if any is invalid", () =>
    Effect.gen(function*() {
      const all = yield* devscope(["validate", okA, okB])
      expect(all.code, all.stderr).toBe(0)
      expect(all.stdout).toContain(`${okA}: valid scenario "a"`)
      expect(all.stdout).toContain(`${okB}: valid scenario "b"`)
      const mixed = yield* devscope(["validate", path.join(dir, "*.json")])
      expect(mixed.code).toBe(2)
      // Sorted, each named: the valid ones on stdout, the invalid ones with every problem.
      expect(mixed.stdout.indexOf(okA)).toBeLessThan(mixed.stdout.indexOf(okB))
      expect(mixed.stderr).toContain(`invalid scenario ${broken}:\n  devices[0].kind: expected one of "nic", "blk", "sensor", "edu", "pci-testdev", got "floppy"\n  timeline[0].device: unknown device "x"`)
      expect(mixed.stderr).toMatch(new RegExp(`invalid scenario ${tenYears}:\\n {2}duration: about 2\\.8e12 simulator events .*, limit 7\\.5e5 \\(--allow-large`))
      expect(mixed.stderr).toContain("devscope: 2 of 4 scenario files are invalid")
      const none = yield* devscope(["validate", path.join(dir, "*.yaml")])
      expect(none.code).toBe(2)
      expect(none.stderr).toContain(`devscope: pattern ${path.join(dir, "*.yaml")} matches no file`)
    }), 120_000)

  it.effect("a glob skips JSON Schemas: the sample scenarios' pattern is the sample scenarios", () =>
    Effect.gen(function*() {
      const samples = yield* devscope(["validate", path.join(root, "examples/scenarios/*.json")])
      expect(samples.code, samples.stderr).toBe(0)
      expect(samples.stdout).toContain("demo.json: valid scenario \"demo\"")
      expect(samples.stdout + samples.stderr).not.toContain("scenario.schema.json")
    }), 120_000)

  it.effect("- reads the scenario from stdin, with the 1 MiB limit enforced while reading", () =>
    Effect.gen(function*() {
      const ok = yield* devscope(["validate", "-"], JSON.stringify(tiny("piped")))
      expect(ok.code, ok.stderr).toBe(0)
      expect(ok.stdout).toContain("(stdin): valid scenario \"piped\"")
      const huge = yield* devscope(["validate", "-"], new Uint8Array(3 * 1024 * 1024).fill(0x20))
      expect(huge.code).toBe(2)
      expect(huge.stderr).toContain("(stdin):\n  (file): has more than 1,048,576 bytes; a scenario may have at most 1 MiB (reading stopped there)")
      const twice = yield* devscope(["validate", "-", "-"])
      expect(twice.code).toBe(2)
      expect(twice.stderr).toContain("- (standard input) is given twice")
    }), 120_000)

  it.effect("over the limits: refused with exit 2 naming the field, by validate and run; --allow-large lets it through", () =>
    Effect.gen(function*() {
      const storm = write("storm.json", { ...tiny("storm"), faults: [{ kind: "irq-storm", device: "temp0", line: 0, count: 10, interval: "1 nanos" }] })
      const refused = yield* devscope(["run", storm])
      expect(refused.code).toBe(2)
      expect(refused.stderr).toContain("faults[0].interval: the interrupt storm of faults[0] is about 4e9 simulator events per virtual second, limit 1e8")
      expect(refused.stdout).not.toContain("devscope: scenario")
      const allowed = yield* devscope(["validate", "--allow-large", tenYears, storm])
      expect(allowed.code, allowed.stderr).toBe(0)
      const ran = yield* devscope(["run", "--allow-large", "-q", storm])
      expect(ran.code, ran.stderr).toBe(0)
    }), 120_000)

  it.effect("run runs each file in turn after validating all; a summary per file, a final line, the worst exit code", () =>
    Effect.gen(function*() {
      const invalid = yield* devscope(["run", okA, broken])
      expect(invalid.code).toBe(2)
      expect(invalid.stderr).toContain("1 of 2 scenario files are invalid; nothing ran")
      expect(invalid.stdout).not.toContain("devscope: scenario")
      const both = yield* devscope(["run", "-q", okA, "examples/scenarios/nic-bug.json", okB])
      expect(both.code).toBe(1)
      expect(both.stdout.match(/All guarantees held/g)?.length).toBe(2)
      expect(both.stdout).toContain("== examples/scenarios/nic-bug.json")
      expect(both.stdout).toContain("devscope: 3 scenario files: 2 passed, 1 failed (examples/scenarios/nic-bug.json)")
      expect(both.stderr).toMatch(/FAILED: .* in scenario "nic-bug"/)
      const traced = yield* devscope(["run", okA, okB, "--trace", path.join(dir, "t.json")])
      expect(traced.code).toBe(2)
      expect(traced.stderr).toContain("--trace names one file, and 2 scenario files are given")
    }), 180_000)

  it.effect("--wizard with stdin not a terminal is refused instead of hanging", () =>
    Effect.gen(function*() {
      for (const args of [["--wizard"], ["run", "--wizard"]]) {
        const { code, stderr } = yield* devscope(args)
        expect(code, args.join(" ")).toBe(2)
        expect(stderr).toContain("--wizard asks its questions on a terminal, and standard input is not one")
      }
    }), 120_000)
})
