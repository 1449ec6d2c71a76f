import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cacheDir, locate, locateCached, MODULE, parseVersion, probe, readStamp, type Env } from "../src/internal/install.js"
import { qemu, skipReason } from "./qemuAvailable.js"

const stampA = `qemu_stamp_${"a".repeat(40)}`
const stampB = `qemu_stamp_${"b".repeat(40)}`

/**
 * A fake `qemu-system-x86_64`: a shell script that answers `--version` like Debian's and holds a
 * stamp in its bytes (in a comment, which is all `locate` reads), with an `env` that finds it
 * and a private cache directory.
 */
const fake = (binaryStamp: string | undefined, moduleStamp: string | undefined) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-qemu-install-"))
  const bin = path.join(dir, "bin")
  fs.mkdirSync(bin)
  const binary = path.join(bin, "qemu-system-x86_64")
  fs.writeFileSync(
    binary,
    `#!/bin/sh\n# ${binaryStamp ?? "no stamp"}\necho "QEMU emulator version 7.2.22 (Debian 1:7.2+fake-1+b1)"\n`,
    { mode: 0o755 }
  )
  const env: Env = { PATH: `${bin}:/usr/bin:/bin`, HOME: dir, XDG_CACHE_HOME: path.join(dir, "cache") }
  if (moduleStamp !== undefined) {
    const modules = cacheDir("1:7.2+fake-1+b1", env)
    fs.mkdirSync(modules, { recursive: true })
    // A stand-in for the ELF: padding around the symbol name, as in a real module.
    fs.writeFileSync(path.join(modules, MODULE), Buffer.concat([Buffer.alloc(4096, 0x7f), Buffer.from(`\0${moduleStamp}\0`), Buffer.alloc(100)]))
  }
  return { dir, binary, env, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

describe("install: locate", () => {
  it("parses Debian's --version line", () => {
    expect(parseVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ...")).toEqual({
      line: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
      qemu: "7.2.22",
      pkgversion: "Debian 1:7.2+dfsg-7+deb12u18+b3",
      version: "1:7.2+dfsg-7+deb12u18+b3"
    })
    expect(parseVersion("QEMU emulator version 9.0.0\n")?.version).toBe("9.0.0")
    expect(parseVersion("not qemu")).toBeUndefined()
  })

  it("finds a stamp across a read-chunk boundary", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-qemu-stamp-"))
    try {
      const file = path.join(dir, "big")
      // The 1 MiB chunk boundary falls inside the stamp.
      fs.writeFileSync(file, Buffer.concat([Buffer.alloc((1 << 20) - 20), Buffer.from(stampA), Buffer.alloc(10)]))
      expect(readStamp(file)).toBe(stampA)
      fs.writeFileSync(file, Buffer.from("qemu_stamp_ but no hash, qemu_stamp_xyz"))
      expect(readStamp(file)).toBeUndefined()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a module in the cache with the binary's stamp is accepted", () => {
    const f = fake(stampA, stampA)
    try {
      const a = locate(f.env)
      expect(a).toMatchObject({ available: true, binary: f.binary, version: "1:7.2+fake-1+b1", stamp: stampA, moduleDir: cacheDir("1:7.2+fake-1+b1", f.env) })
    } finally {
      f.cleanup()
    }
  })

  it("a module whose stamp differs from the binary's is reported stale, with a hint naming pnpm qemu:setup", () => {
    const f = fake(stampA, stampB)
    try {
      const a = locate(f.env)
      expect(a.available).toBe(false)
      if (a.available) return
      expect(a.reason).toContain("stale")
      expect(a.reason).toContain(stampA)
      expect(a.reason).toContain(stampB)
      expect(a.hint).toContain("pnpm qemu:setup")
      expect(a.module).toBe(path.join(cacheDir("1:7.2+fake-1+b1", f.env), MODULE))
    } finally {
      f.cleanup()
    }
  })

  it("locateCached: remembered while the binary and the module are the same files; a change or a missing module is looked at again", () => {
    const f = fake(stampA, stampA)
    try {
      const first = locateCached(f.env)
      expect(first.available).toBe(true)
      expect(locateCached(f.env)).toBe(first)
      // The module rebuilt (other bytes): located again, and now stale.
      const module = path.join(cacheDir("1:7.2+fake-1+b1", f.env), MODULE)
      fs.writeFileSync(module, Buffer.concat([Buffer.alloc(5000, 0x7f), Buffer.from(`\0${stampB}\0`)]))
      const stale = locateCached(f.env)
      expect(stale.available).toBe(false)
      // Not available: never remembered (a setup run meanwhile is seen at once).
      fs.writeFileSync(module, Buffer.concat([Buffer.alloc(6000, 0x7f), Buffer.from(`\0${stampA}\0`)]))
      const again = locateCached(f.env)
      expect(again.available).toBe(true)
      expect(again).not.toBe(first)
      // The binary replaced: located again.
      fs.writeFileSync(f.binary, fs.readFileSync(f.binary, "utf8") + "# upgraded\n")
      const upgraded = locateCached(f.env)
      expect(upgraded.available).toBe(true)
      expect(upgraded).not.toBe(again)
    } finally {
      f.cleanup()
    }
  })

  it("a missing module is reported, with the directories looked in and the hint", () => {
    const f = fake(stampA, undefined)
    try {
      const a = locate(f.env)
      expect(a).toMatchObject({ available: false, binary: f.binary, stamp: stampA })
      if (a.available) return
      expect(a.reason).toContain(MODULE)
      expect(a.reason).toContain(cacheDir("1:7.2+fake-1+b1", f.env))
      expect(a.hint).toContain("pnpm qemu:setup")
    } finally {
      f.cleanup()
    }
  })

  it("a missing binary gives a reason (PATH without QEMU; DEVSCOPE_QEMU naming nothing)", () => {
    const f = fake(stampA, stampA)
    try {
      const empty = path.join(f.dir, "empty")
      fs.mkdirSync(empty)
      const a = locate({ ...f.env, PATH: empty })
      expect(a).toMatchObject({ available: false, reason: expect.stringContaining("qemu-system-x86_64 is not on PATH") })
      if (!a.available) expect(a.hint).toContain("pnpm qemu:setup")
      const b = locate({ ...f.env, PATH: empty, DEVSCOPE_QEMU: path.join(f.dir, "nope") })
      expect(b).toMatchObject({ available: false, reason: expect.stringContaining("DEVSCOPE_QEMU=") })
      // DEVSCOPE_QEMU wins over PATH.
      expect(locate({ ...f.env, PATH: empty, DEVSCOPE_QEMU: f.binary })).toMatchObject({ available: true, binary: f.binary })
    } finally {
      f.cleanup()
    }
  })
})

describe("install: this machine's QEMU", () => {
  // skipReason was printed by ./qemuAvailable.js (and under CI it threw instead).
  it.skipIf(skipReason !== undefined)("locate() finds the binary and a module with matching stamps, in well under 50 ms", () => {
    if (!qemu.available) throw new Error(skipReason)
    expect(qemu.stamp).toMatch(/^qemu_stamp_[0-9a-f]{40}$/)
    expect(readStamp(qemu.binary)).toBe(qemu.stamp)
    expect(readStamp(path.join(qemu.moduleDir, MODULE))).toBe(qemu.stamp)
    expect(qemu.setpriv).toBeDefined()
    // Warm: the first call pays for reading the 18 MB binary from disk.
    locate()
    const t = performance.now()
    locate()
    expect(performance.now() - t).toBeLessThan(200) // 35 ms measured; slack for a loaded CI machine
  })

  it.skipIf(skipReason !== undefined)("probe() starts QEMU with -accel qtest and it answers clock_step", () => {
    if (!qemu.available) throw new Error(skipReason)
    expect(probe(qemu)).toBeUndefined()
    // The same binary without the module: the problem is named, not hidden.
    expect(probe({ ...qemu, moduleDir: os.tmpdir() })).toContain("invalid accelerator qtest")
  })
})
