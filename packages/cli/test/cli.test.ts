import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { Runner, Scenario } from "@devscope/cli"
import { demo } from "../src/internal/demo.js"
import { commands } from "../src/internal/flags.js"

const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")

// eslint-disable-next-line no-control-regex
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")

/** Runs the devscope command; resolves with its exit code and output. */
const devscope = (...args: Array<string>) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(tsx, ["--conditions=@devscope/source", bin, ...args], { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
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
      // Under load: the disk had requests in flight at its hot-unplug, and the unbind waited
      // for them to drain (virtual time passed; new submissions met the closed gate).
      const action = (name: string) => record.timeline.find((t) => `${t.action} ${t.target}` === name)!
      const unplug = action("unplug disk0")
      const requests = (unplug.inFlight?.read ?? 0) + (unplug.inFlight?.write ?? 0) + (unplug.inFlight?.flush ?? 0)
      expect(requests, JSON.stringify(unplug)).toBeGreaterThan(0)
      expect(unplug.tookMillis).toBeGreaterThan(0)
      const hotUnplug = byName.get("disk0")!.unbinds.find((u) => u.cause === "hot-unplug")!
      expect(hotUnplug.virtualMillis).toBeGreaterThan(0)
      expect(byName.get("disk0")!.failedGone).toBeGreaterThan(0)
      // The NIC was surprise-removed mid-transfer: frames sent and not yet completed, which
      // then failed with DeviceGone (more than the one pending receive).
      const surprise = action("surprise eth1")
      expect(surprise.inFlight?.send ?? 0, JSON.stringify(surprise)).toBeGreaterThan(0)
      expect(byName.get("eth1")!.failedGone).toBeGreaterThan(1)
      // ... and it shows in the report and the trace.
      const html = Runner.html(record)
      expect(html).toMatch(/<td>unplug<\/td><td><code>disk0<\/code><\/td><td class="in-flight">[^<]*\d+ (read|write|flush)/)
      const traced = JSON.parse(Runner.chromeTrace(record)).traceEvents.find((e: { name: string }) => e.name === "surprise eth1")
      expect(traced.args.inFlight.send).toBeGreaterThan(0)
      expect(record.failures).toEqual([])
      expect(record.stalls).toEqual([])
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
      // The interrupt handler's defect is in the verdict, one line naming device and defect,
      // not a raw stack dump from the logger.
      expect(stdout).toMatch(/^ {2}defect disk0: irq 0 handler failed: UseAfterUnbind: Use of Devres .* after it was released early at .*\(at [\d.]+ ms/m)
      expect(stderr).toMatch(/FAILED: \d+ guarantee violation\(s\), 1 driver failure\(s\)/)
      expect(stdout + stderr).not.toContain("DevresImpl.accessFailed")
      expect(stdout + stderr).not.toContain("level=ERROR")
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
        // The usage line names the whole command, not the sub-command alone.
        expect(stdout, command).toContain(`$ devscope ${command}`)
        expect(stdout, command).not.toMatch(new RegExp(`^\\$ ${command}`, "m"))
        expect(stdout, command).toMatch(/seed|scenario/)
      }
      const { code, stdout: raw } = yield* devscope("--help")
      const stdout = stripAnsi(raw)
      expect(code).toBe(0)
      expect(stdout).toContain("demo")
      expect(stdout).toContain("run")
    }), 120_000)

  it.effect("--seed is a plain decimal integer in range: hex, exponents, fractions, signs and spaces are refused, naming the flag", () =>
    Effect.gen(function*() {
      for (const bad of ["0x10", "1e3", "1.0", "-1", " 7"]) {
        const { code, stdout, stderr } = yield* devscope("run", "--seed", bad, "examples/scenarios/demo.json")
        expect(code, bad).toBe(2)
        expect(stdout + stderr, bad).toContain(`--seed ${JSON.stringify(bad)}: expected a decimal integer from 0 to 4294967295`)
      }
      const { code, stdout, stderr } = yield* devscope("run", "--seed", "4294967296", "examples/scenarios/demo.json")
      expect(code).toBe(2)
      expect(stdout + stderr).toContain("--seed 4294967296: expected an integer from 0 to 4294967295, got 4294967296")
    }), 120_000)

  it.effect("an unknown or repeated option is named as such, not taken for the file", () =>
    Effect.gen(function*() {
      const cases = [
        [["run", "--frobnicate", "examples/scenarios/demo.json"], "devscope: run: unknown option --frobnicate (run takes --seed, --trace, --report, --junit, --timeout, --backend, --json, --quiet, -q, --allow-large and --help)"],
        [["validate", "--seed", "3", "examples/scenarios/demo.json"], "devscope: validate: unknown option --seed (validate takes --allow-large and --help)"],
        [["run", "--seed", "1", "--seed", "2", "examples/scenarios/demo.json"], "devscope: run: --seed is given twice"],
        [["demo", "-q", "--quiet"], "devscope: demo: --quiet is given twice"]
      ] as const
      // A word that is a property of every object is not a sub-command (nor a crash).
      const odd = yield* devscope("constructor", "--frobnicate")
      expect(odd.code).toBe(2)
      expect(odd.stdout + odd.stderr).not.toContain("internal error")
      for (const [args, message] of cases) {
        const { code, stdout, stderr } = yield* devscope(...args)
        expect(code, args.join(" ")).toBe(2)
        expect(stdout + stderr, args.join(" ")).toContain(message)
        expect(stdout + stderr, args.join(" ")).not.toContain("must exist")
      }
      // The table of options the check uses is the commands' own: each is in the command's help.
      for (const [command, flags] of Object.entries(commands)) {
        const help = stripAnsi((yield* devscope(command, "--help")).stdout)
        for (const option of [...flags.valued, ...flags.switches]) expect(help, `${command} ${option}`).toContain(option)
        const listed = [...help.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((m) => m[0])
        for (const option of listed) {
          if (["--help", "--version", "--wizard", "--completions", "--log-level"].includes(option)) continue
          expect([...flags.valued, ...flags.switches], `${command} --help lists ${option}`).toContain(option)
        }
      }
    }), 120_000)

  it.effect("--version prints the version in the package's package.json", () =>
    Effect.gen(function*() {
      const { version } = JSON.parse(readFileSync(path.join(root, "packages/cli/package.json"), "utf8"))
      const { code, stdout } = yield* devscope("--version")
      expect(code).toBe(0)
      expect(stripAnsi(stdout).trim()).toBe(version)
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

  it.effect("every way a run cannot start exits 2 with a short message, and runs nothing", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => import("node:fs/promises").then((fs) => fs.mkdtemp("/tmp/devscope-")))
      const cases: Array<[Array<string>, RegExp]> = [
        [["run", "nope.json"], /invalid scenario nope\.json:\n {2}\(file\): no such file/],
        [["run"], /Missing argument <scenario\.json>/],
        [["frob"], /Invalid subcommand/],
        [["demo", "--seed", "abc"], /--seed "abc": expected a decimal integer from 0 to 4294967295/],
        [["demo", "--seed", "-5"], /--seed "-5": expected a decimal integer from 0 to 4294967295/],
        [["demo", "--seed", "4294967296"], /--seed 4294967296: expected an integer from 0 to 4294967295/],
        [["demo", "--trace", "/nonexistent-dir/t.json"], /--trace \/nonexistent-dir\/t\.json: directory \/nonexistent-dir does not exist/],
        [["run", "examples/scenarios/demo.json", "--report", dir], /to be a regular file|is a directory/],
        [["run", "examples/scenarios/demo.json", "--trace", `${dir}/x`, "--report", `${dir}/x`], /--trace and --report name the same file/],
        [["validate", dir], /\(file\): is a directory, not a scenario file/]
      ]
      const results = yield* Effect.all(cases.map(([args]) => devscope(...args)), { concurrency: 3 })
      results.forEach((result, i) => {
        const [args, message] = cases[i]!
        const what = `${args.join(" ")}: ${result.stderr}`
        expect(result.code, what).toBe(2)
        expect(stripAnsi(result.stderr), what).toMatch(message)
        // No raw JSON of an @effect/cli error, no stack, no log line; nothing ran.
        expect(result.stderr, what).not.toContain("{\"_tag\"")
        expect(result.stderr, what).not.toMatch(/\n\s+at /)
        expect(result.stderr.trim().split("\n").length, what).toBeLessThanOrEqual(3)
        expect(result.stdout, what).not.toContain("devscope: scenario")
      })
    }), 180_000)

  it.effect("a hung unbind: the run stops, names the wait site, keeps its evidence, writes trace and report, exits 1", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => import("node:fs/promises").then((fs) => fs.mkdtemp("/tmp/devscope-")))
      const { code, stdout, stderr } = yield* devscope(
        "run",
        "examples/scenarios/bug-hang-in-remove.json",
        "-q",
        "--trace",
        `${dir}/t.json`,
        "--report",
        `${dir}/r.html`
      )
      expect(code, stderr).toBe(1)
      expect(stdout).toContain("hung at 20.0 ms: unplug disk0")
      expect(stdout).toContain("waiting in: devscope.remove (device=disk0, driver=blk, bug=hang-in-remove)")
      expect(stdout).toMatch(/G4 disk0: unplug disk0 at 20 ms did not finish within 1000 ms of virtual time \(hung\)/)
      // The bus cuts the remove at its deadline (5 s), so the run ends instead of stalling.
      expect(stdout).toMatch(/G2 disk0: the driver's remove failed at unbind \(hot-unplug; driver "blk"\): Error: remove did not finish within 5s/)
      // The evidence recorded before the hang is kept: operations, lifecycle, trace.
      expect(stdout).toMatch(/disk0\s+blk\s+[1-9][\d,]*/)
      const fs = yield* Effect.promise(() => import("node:fs/promises"))
      const trace = JSON.parse(yield* Effect.promise(() => fs.readFile(`${dir}/t.json`, "utf8")))
      expect(trace.traceEvents.length).toBeGreaterThan(100)
      expect(trace.traceEvents.some((e: { name: string }) => /^hung: unplug disk0/.test(e.name))).toBe(true)
      expect(trace.traceEvents.some((e: { cat?: string; name: string }) => e.cat === "scenario" && e.name === "unplug disk0")).toBe(true)
      expect(trace.metadata["devscope-result"]).toBe("FAIL")
      const html = yield* Effect.promise(() => fs.readFile(`${dir}/r.html`, "utf8"))
      expect(html).toContain("FAIL")
      expect(html).toContain("waiting in: <code>devscope.remove (device=disk0, driver=blk, bug=hang-in-remove)</code>")
      expect(stderr).toMatch(/FAILED: .*an action hung/)
    }), 180_000)

  it.effect("validate warns about actions that will be refused; the package's bin runs the command", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => import("node:fs/promises").then((fs) => fs.mkdtemp("/tmp/devscope-")))
      const fs = yield* Effect.promise(() => import("node:fs/promises"))
      yield* Effect.promise(() =>
        fs.writeFile(
          `${dir}/w.json`,
          JSON.stringify({
            name: "w",
            duration: 50,
            devices: [{ name: "disk0", kind: "blk" }],
            drivers: [{ kind: "blk" }],
            timeline: [{ at: 10, action: "unplug", device: "disk0" }, { at: 20, action: "unplug", device: "disk0" }]
          })
        )
      )
      const warned = yield* devscope("validate", `${dir}/w.json`)
      expect(warned.code).toBe(0)
      expect(warned.stdout).toContain("timeline[1]: unplug of disk0 at 20 ms: it is not plugged then (refused)")
    }), 120_000)
})
