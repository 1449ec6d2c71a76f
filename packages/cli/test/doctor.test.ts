/**
 * `devscope doctor`: the checks judged from injected facts (a QEMU that `locate` cannot find,
 * a Node too old, no setpriv, no /dev/shm), the text and JSON shapes, colour, and the real
 * command on this machine (`--probe` where QEMU is installed, with the QEMU tests' skip policy).
 */
import { describe, expect, it } from "@effect/vitest"
import { Install } from "@devscope/qemu"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ansiAllowed } from "../src/internal/ansi.js"
import { diagnose, type Facts, render, report, type Report } from "../src/internal/doctor.js"
import { devscope } from "./command.js"

const STAMP = `qemu_stamp_${"5".repeat(40)}`

const available: Install.Availability = {
  available: true,
  binary: "/usr/bin/qemu-system-x86_64",
  version: "1:7.2+dfsg-7+deb12u18+b3",
  versionLine: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
  moduleDir: "/home/u/.cache/devscope/qemu/1:7.2+dfsg-7+deb12u18+b3",
  stamp: STAMP,
  setpriv: "/usr/bin/setpriv"
}

const facts = (over: Partial<Facts> = {}): Facts => ({
  node: "20.11.0",
  engines: ">=20",
  platform: "linux",
  arch: "x64",
  cpus: 8,
  qemu: available,
  shm: { writable: true, freeBytes: 1 << 30 },
  repository: "/src/devscope",
  ...over
})

const byName = (r: Report) => new Map(r.checks.map((c) => [c.name, c]))

/** An empty directory for PATH and HOME, so that the real `locate` finds nothing. */
const scratch = () => fs.mkdtempSync(path.join(os.tmpdir(), "devscope-doctor-"))

/** A fake `qemu-system-x86_64`: prints Debian's version line and carries a stamp, but has no module anywhere. */
const fakeQemu = (dir: string) => {
  const bin = path.join(dir, "bin")
  fs.mkdirSync(bin)
  const file = path.join(bin, "qemu-system-x86_64")
  fs.writeFileSync(file, `#!/bin/sh\n# ${STAMP}\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)'\n`, { mode: 0o755 })
  return bin
}

describe("devscope doctor: the checks", () => {
  it("everything present: every check ok, no fix, exit code 0", () => {
    const r = diagnose(facts())
    expect(r.checks.map((c) => c.name)).toEqual(["node", "platform", "cpus", "qemu", "qtest", "setpriv", "shm"])
    expect(r.checks.map((c) => c.status)).toEqual(Array(7).fill("ok"))
    for (const c of r.checks) expect(c.fix, c.name).toBeUndefined()
    expect(r).toMatchObject({ version: 1, exitCode: 0, simulator: true, qemuBackend: true })
    const c = byName(r)
    expect(c.get("node")!.detail).toBe("Node 20.11.0 (engines.node >=20)")
    expect(c.get("cpus")!.detail).toContain("--workers up to 8")
    expect(c.get("qemu")!.detail).toBe(`${available.binary}: ${available.versionLine}`)
    expect(c.get("qtest")!.detail).toBe(`accel-qtest-x86_64.so for ${available.version} in ${available.moduleDir}`)
  })

  it("QEMU missing (the real locate with an empty PATH): missing with the fix, still exit code 0", () => {
    const dir = scratch()
    const env = { PATH: dir, HOME: dir }
    const qemu = Install.locate(env)
    expect(qemu.available).toBe(false)
    const inRepo = diagnose(facts({ qemu }), env)
    expect(inRepo).toMatchObject({ exitCode: 0, simulator: true, qemuBackend: false })
    const c = byName(inRepo)
    expect(c.get("qemu")).toMatchObject({ status: "missing", detail: "qemu-system-x86_64 is not on PATH (nor is DEVSCOPE_QEMU set)" })
    expect(c.get("qemu")!.fix).toMatch(/^run `pnpm qemu:setup`: it installs Debian's qemu-system-x86 if needed and builds the qtest accelerator \(in \/src\/devscope\)$/)
    expect(c.get("qtest")!.status).toBe("missing")
    expect(c.get("node")!.status).toBe("ok")
    // Outside the repository: the same steps by hand (the apt package, the module to build).
    const outside = byName(diagnose(facts({ qemu, repository: undefined }), env)).get("qemu")!
    expect(outside.fix).toContain("`apt-get install --no-install-recommends qemu-system-x86`")
    expect(outside.fix).toContain("accel-qtest-x86_64.so")
    expect(outside.fix).toContain(path.join(dir, ".cache", "devscope", "qemu"))
    const text = render(inRepo, { ansi: false })
    expect(text).toMatch(/^missing {2}qemu +qemu-system-x86_64 is not on PATH/m)
    expect(text).toMatch(/^ +fix: run `pnpm qemu:setup`/m)
    expect(text).toContain("QEMU backend: not available (optional; missing: qemu, qtest)")
    fs.rmSync(dir, { recursive: true })
  })

  it("QEMU found without its qtest module: says where it looked, the fix names the version and directory", () => {
    const dir = scratch()
    const env = { PATH: fakeQemu(dir), HOME: dir }
    const qemu = Install.locate(env)
    const c = byName(diagnose(facts({ qemu }), env))
    expect(c.get("qemu")).toMatchObject({ status: "ok", detail: `${path.join(dir, "bin", "qemu-system-x86_64")} (version 1:7.2+dfsg-7+deb12u18+b3)` })
    const qtest = c.get("qtest")!
    expect(qtest.status).toBe("missing")
    expect(qtest.detail).toContain("no qtest accelerator module (accel-qtest-x86_64.so)")
    expect(qtest.detail).toContain(Install.cacheDir("1:7.2+dfsg-7+deb12u18+b3", env)) // where it looked
    expect(qtest.fix).toContain(`for 1:7.2+dfsg-7+deb12u18+b3 into ${Install.cacheDir("1:7.2+dfsg-7+deb12u18+b3", env)}`)
    fs.rmSync(dir, { recursive: true })
  })

  it.effect("Node older than engines.node: the only check that fails the command (exit code 1)", () =>
    Effect.gen(function*() {
      const r = diagnose(facts({ node: "18.19.0" }))
      expect(r).toMatchObject({ exitCode: 1, simulator: false })
      expect(byName(r).get("node")).toEqual({
        name: "node",
        status: "missing",
        detail: "Node 18.19.0 is older than engines.node >=20: devscope does not run on it",
        fix: "install Node 20 or later"
      })
      expect(render(r, { ansi: false })).toContain("simulator: cannot run here")
      // Cli.exitCode turns a MachineUnfit into exit code 1.
      const e = yield* Effect.flip(report(facts({ node: "18.19.0" }), { json: true }))
      expect(e._tag).toBe("MachineUnfit")
      expect(e.message).toBe("Node 18.19.0 is older than engines.node >=20: devscope does not run on it; install Node 20 or later")
      expect(diagnose(facts({ node: "20.0.0" })).exitCode).toBe(0)
      expect(diagnose(facts({ node: "24.1.0", engines: ">=20.5" })).exitCode).toBe(0)
      expect(diagnose(facts({ node: "20.4.9", engines: ">=20.5" })).exitCode).toBe(1)
    }))

  it("warnings and missing pieces beside QEMU: no setpriv, no /dev/shm, one CPU, not Linux, a failed probe", () => {
    const noSetpriv = { ...available, setpriv: undefined }
    const c = byName(diagnose(facts({ qemu: noSetpriv, cpus: 1, shm: { writable: false, error: "EROFS: read-only file system" } })))
    expect(c.get("setpriv")).toMatchObject({ status: "warning", fix: "install util-linux (`apt-get install util-linux`), which provides setpriv" })
    expect(c.get("shm")!.status).toBe("missing")
    expect(c.get("shm")!.detail).toContain("EROFS")
    expect(c.get("cpus")!.status).toBe("warning")
    const small = byName(diagnose(facts({ shm: { writable: true, freeBytes: 32 << 20 } }))).get("shm")!
    expect(small).toMatchObject({ status: "warning" })
    const mac = diagnose(facts({ platform: "darwin", arch: "arm64" }))
    expect(mac).toMatchObject({ exitCode: 0, qemuBackend: false })
    expect(byName(mac).get("platform")!.status).toBe("warning")
    const failed = diagnose(facts({ probe: { problem: "exited with 1 without answering OK", millis: 40 } }))
    expect(byName(failed).get("probe")).toMatchObject({ status: "missing", detail: "exited with 1 without answering OK" })
    expect(failed).toMatchObject({ exitCode: 0, qemuBackend: false })
    expect(byName(diagnose(facts({ probe: { problem: undefined, millis: 60 } }))).get("probe")!.status).toBe("ok")
  })

  it("colour only on a terminal without NO_COLOR", () => {
    const r = diagnose(facts({ qemu: { ...available, setpriv: undefined } }))
    expect(render(r, { ansi: ansiAllowed({ isTTY: true }, {}) })).toContain("\x1b[32mok")
    expect(render(r, { ansi: ansiAllowed({ isTTY: true }, {}) })).toContain("\x1b[33mwarning")
    expect(render(r, { ansi: ansiAllowed({ isTTY: true }, { NO_COLOR: "1" }) })).not.toContain("\x1b")
    expect(render(r, { ansi: ansiAllowed({ isTTY: false }, {}) })).not.toContain("\x1b")
  })
})

// The QEMU tests' skip policy (packages/qemu/test/qemuAvailable.ts): without QEMU the probe
// test is skipped with the reason printed, except under CI, where it runs and fails.
const found = Install.locate()
const skipReason = found.available ? undefined : `${found.reason}; ${found.hint}`
const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "0" && process.env.CI.toLowerCase() !== "false"
if (skipReason !== undefined && !ci) console.warn(`devscope doctor: skipping the --probe test, which needs QEMU: ${skipReason}`)

const LINE = /^(ok|missing|warning) +(node|platform|cpus|qemu|qtest|setpriv|shm|probe) +\S/

describe("devscope doctor: the command", () => {
  it.effect("prints one line per check, no escape when not a terminal, exit code 0", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* devscope(["doctor"], { env: { NO_COLOR: "1" } })
      expect(code, stderr).toBe(0)
      const [checks, verdict] = stdout.trimEnd().split("\n\n")
      const lines = checks!.split("\n").filter((l) => !/^ +fix: /.test(l))
      for (const line of lines) expect(line).toMatch(LINE)
      expect(lines.map((l) => LINE.exec(l)![2])).toEqual(["node", "platform", "cpus", "qemu", "qtest", "setpriv", "shm"])
      expect(lines[0]).toMatch(new RegExp(`^ok +node +Node ${process.versions.node.replace(/\./g, "\\.")} \\(engines\\.node >=20\\)$`))
      expect(verdict).toMatch(/^simulator: ready/)
      expect(stdout).not.toContain("\x1b")
    }), 60_000)

  it.effect("--json: one document, each check { name, status, detail, fix? }", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* devscope(["doctor", "--json"])
      expect(code, stderr).toBe(0)
      const doc = JSON.parse(stdout) as Report
      expect(doc).toMatchObject({ version: 1, exitCode: 0, simulator: true })
      expect(typeof doc.qemuBackend).toBe("boolean")
      for (const c of doc.checks) {
        expect(["ok", "missing", "warning"]).toContain(c.status)
        expect(typeof c.detail).toBe("string")
        expect(Object.keys(c).every((k) => ["name", "status", "detail", "fix"].includes(k)), JSON.stringify(c)).toBe(true)
        if (c.status !== "ok") expect(typeof c.fix, c.name).toBe("string")
      }
      expect(doc.checks.find((c) => c.name === "cpus")!.detail).toContain(`--workers up to ${os.availableParallelism()}`)
    }), 60_000)

  it.effect("QEMU missing (DEVSCOPE_QEMU names no binary): reported missing with the fix, exit code 0", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* devscope(["doctor", "--probe"], { env: { DEVSCOPE_QEMU: "/nonexistent/qemu-system-x86_64" } })
      expect(code, stderr).toBe(0)
      expect(stdout).toMatch(/^missing +qemu +DEVSCOPE_QEMU=\/nonexistent\/qemu-system-x86_64 is not an executable file$/m)
      expect(stdout).toMatch(/^ +fix: point DEVSCOPE_QEMU at a qemu-system-x86_64 binary, or unset it and run `pnpm qemu:setup`/m)
      expect(stdout).toMatch(/^missing +probe +not run: /m)
      expect(stdout).toContain("QEMU backend: not available")
    }), 60_000)

  it.effect.skipIf(skipReason !== undefined && !ci)("--probe starts QEMU with the qtest accelerator: ok, within its deadline", () =>
    Effect.gen(function*() {
      const started = performance.now()
      const { code, stderr, stdout } = yield* devscope(["doctor", "--probe", "--json"])
      expect(code, stderr).toBe(0)
      const doc = JSON.parse(stdout) as Report
      const probe = doc.checks.find((c) => c.name === "probe")
      expect(probe, stdout).toMatchObject({ status: "ok" })
      expect(probe!.detail).toMatch(/^QEMU started with -accel qtest and stepped its clock \(\d+ ms\)$/)
      expect(doc.qemuBackend).toBe(true)
      expect(performance.now() - started).toBeLessThan(30_000)
    }), 60_000)
})
