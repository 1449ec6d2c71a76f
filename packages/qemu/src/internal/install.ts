/**
 * Where the QEMU backend finds QEMU, and what is missing when it cannot.
 *
 * Debian's `qemu-system-x86` deletes the qtest accelerator module (`accel-qtest-x86_64.so`),
 * without which `clock_step` answers `FAIL` and virtual time does not move. `pnpm qemu:setup`
 * (scripts/qemu/setup.ts) rebuilds it from the Debian source of the installed version into a
 * per-version cache directory; this module finds it there and checks that QEMU would accept it.
 *
 * Plain synchronous code on purpose: it runs at test-collection time and in the setup script,
 * where an Effect runtime would add nothing. `locate` only reads files and runs `--version`
 * (a few tens of milliseconds); `probe` starts QEMU once for the callers that want proof.
 *
 * @internal
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** The binary the backend drives. @internal */
export const BINARY = "qemu-system-x86_64"

/** The qtest accelerator module's file name for the x86_64 system emulator. @internal */
export const MODULE = "accel-qtest-x86_64.so"

/** The command that installs what is missing; every hint names it. @internal */
export const SETUP_COMMAND = "pnpm qemu:setup"

/**
 * What `locate` found: everything the backend needs to start QEMU with `-accel qtest`, or why
 * it cannot and what to do about it. `setpriv` (util-linux) is reported either way: the backend
 * starts QEMU under `setpriv --pdeathsig SIGKILL` so that it dies with the test process.
 *
 * @internal
 */
export type Availability =
  | {
    readonly available: true
    /** Absolute path of `qemu-system-x86_64`. */
    readonly binary: string
    /** The binary's version: Debian's package version when QEMU reports one (`1:7.2+dfsg-7+deb12u18+b3`), else QEMU's own (`7.2.22`). */
    readonly version: string
    /** The first line of `--version`, as printed. */
    readonly versionLine: string
    /** The directory holding an accepted `accel-qtest-x86_64.so`: the value for `QEMU_MODULE_DIR`. */
    readonly moduleDir: string
    /** The binary's and the module's `qemu_stamp_<sha1>` symbol; `""` for a binary built without modules (qtest is then built in). */
    readonly stamp: string
    /** Absolute path of `setpriv`, or undefined when util-linux's is not on PATH. */
    readonly setpriv: string | undefined
  }
  | {
    readonly available: false
    /** What is missing or wrong, with the paths looked at. */
    readonly reason: string
    /** What to do about it (usually: run `pnpm qemu:setup`). */
    readonly hint: string
    readonly setpriv: string | undefined
    /** As far as they were found, for the setup script and for messages. */
    readonly binary?: string
    readonly version?: string
    readonly stamp?: string
    /** The module that was found but rejected (stale stamp). */
    readonly module?: string
  }

/** What `locate` reads instead of `process.env` (tests point it at fake binaries). @internal */
export type Env = Readonly<Record<string, string | undefined>>

/**
 * Our cache directory for one QEMU binary version: `${XDG_CACHE_HOME:-$HOME/.cache}/devscope/qemu/<version>/`.
 * The setup script puts the rebuilt module there; one directory per version so that a Debian
 * upgrade does not overwrite the module an older binary (another checkout, CI cache) accepts.
 *
 * @internal
 */
export const cacheDir = (version: string, env: Env = process.env): string => path.join(cacheRoot(env), safeName(version))

/** `${XDG_CACHE_HOME:-$HOME/.cache}/devscope/qemu`. @internal */
export const cacheRoot = (env: Env = process.env): string => {
  // XDG: a relative XDG_CACHE_HOME is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME ?? os.homedir(), ".cache")
  return path.join(base, "devscope", "qemu")
}

// Debian versions are safe path segments (digits, letters, `.+-~:`); anything else a custom
// build might print is replaced, so that a version can never climb out of the cache root.
const safeName = (version: string) => version.replace(/[^A-Za-z0-9.+~:_-]/g, "_").replace(/^\.+/, "_")

/** Looks a command up on PATH as `execvp` would; undefined when absent. @internal */
export const which = (command: string, env: Env = process.env): string | undefined => {
  if (command.includes("/")) return isExecutable(command) ? path.resolve(command) : undefined
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue
    const candidate = path.join(dir, command)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

const isExecutable = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

const STAMP = Buffer.from("qemu_stamp_")
const HEX = /^[0-9a-f]{40}$/

/**
 * The `qemu_stamp_<sha1>` name in a file's bytes: the binary holds it as the symbol name it
 * looks up in every module, a module as the symbol it defines; QEMU refuses a module whose
 * stamp differs ("module is not a valid QEMU module" / version mismatch). Read in Node so that
 * `strings` (binutils) is not needed. Undefined when the file has none (a non-modular build).
 *
 * @internal
 */
export const readStamp = (file: string): string | undefined => {
  // Chunked, stopping at the first hit: the binary is 18 MB and its stamp sits at ~11 MB, so
  // this keeps `locate` fast without holding the whole file in memory. Consecutive chunks
  // overlap by the stamp's length so that a stamp across a boundary is still seen.
  const span = STAMP.length + 40
  const chunk = Buffer.allocUnsafe(CHUNK)
  const fd = fs.openSync(file, "r")
  try {
    for (let position = 0;;) {
      const n = fs.readSync(fd, chunk, 0, CHUNK, position)
      if (n === 0) return undefined
      const bytes = chunk.subarray(0, n)
      for (let at = bytes.indexOf(STAMP); at >= 0; at = bytes.indexOf(STAMP, at + 1)) {
        if (at + span > n && n === CHUNK) break // cut off: the next chunk sees it whole
        const hex = bytes.subarray(at + STAMP.length, at + span).toString("latin1")
        if (HEX.test(hex)) return `qemu_stamp_${hex}`
      }
      if (n < CHUNK) return undefined
      position += n - span
    }
  } finally {
    fs.closeSync(fd)
  }
}

const CHUNK = 1 << 20

/** The parts of `qemu-system-x86_64 --version`. @internal */
export interface Version {
  /** The first line, as printed. */
  readonly line: string
  /** QEMU's own version (`7.2.22`). */
  readonly qemu: string
  /** The `--with-pkgversion` string in parentheses (`Debian 1:7.2+dfsg-7+deb12u18+b3`), or `""`. */
  readonly pkgversion: string
  /** The package version when there is one (the pkgversion's last word), else `qemu`. */
  readonly version: string
}

/** Parses the first line of `--version`; undefined when it is not QEMU's. @internal */
export const parseVersion = (output: string): Version | undefined => {
  const line = output.split("\n", 1)[0]!.trim()
  const match = /^QEMU emulator version (\S+)(?: \((.*)\))?$/.exec(line)
  if (match === null) return undefined
  const qemu = match[1]!
  const pkgversion = match[2] ?? ""
  const words = pkgversion.split(/\s+/).filter((w) => w !== "")
  return { line, qemu, pkgversion, version: words.length > 0 ? words[words.length - 1]! : qemu }
}

/** Runs `<binary> --version` (5 s at most). @internal */
export const binaryVersion = (binary: string): Version | { readonly error: string } => {
  const run = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 5_000, stdio: ["ignore", "pipe", "pipe"] })
  if (run.error !== undefined) return { error: `\`${binary} --version\` failed: ${run.error.message}` }
  if (run.status !== 0) return { error: `\`${binary} --version\` exited with ${run.status ?? run.signal}: ${run.stderr.trim()}` }
  return parseVersion(run.stdout) ?? { error: `\`${binary} --version\` printed no QEMU version: ${JSON.stringify(run.stdout.slice(0, 200))}` }
}

/**
 * The module directories a binary searches by itself (QEMU 7.2's util/module.c: the configured
 * `CONFIG_QEMU_MODDIR`, relocated next to the binary, then the binary's own directory). Debian's
 * is `/usr/lib/x86_64-linux-gnu/qemu`; the others cover `--prefix` builds.
 *
 * @internal
 */
export const ownModuleDirs = (binary: string): ReadonlyArray<string> => {
  const bin = path.dirname(binary)
  const prefix = path.dirname(bin)
  return [
    path.join(prefix, "lib", "x86_64-linux-gnu", "qemu"),
    path.join(prefix, "lib64", "qemu"),
    path.join(prefix, "lib", "qemu"),
    bin
  ]
}

const hint = (version: string | undefined, env: Env) =>
  `run \`${SETUP_COMMAND}\`: it installs Debian's qemu-system-x86 if needed and builds the qtest accelerator` +
  (version === undefined ? "" : ` for ${version} into ${cacheDir(version, env)}`)

/**
 * Finds `qemu-system-x86_64` (`$DEVSCOPE_QEMU`, else PATH) and a qtest accelerator module it
 * accepts: first in the binary's own module directories, else in `cacheDir(version)`. A module
 * whose `qemu_stamp_` differs from the binary's is reported stale rather than used, since QEMU
 * would refuse it with a less helpful "invalid accelerator qtest". Does not start QEMU beyond
 * `--version` (see `probe`).
 *
 * @internal
 */
export const locate = (env: Env = process.env): Availability => {
  const setpriv = which("setpriv", env)
  const fail = (reason: string, hintText: string, found: Partial<Record<"binary" | "version" | "stamp" | "module", string>> = {}): Availability => ({
    available: false,
    reason,
    hint: hintText,
    setpriv,
    ...found
  })

  const override = env.DEVSCOPE_QEMU
  let binary: string | undefined
  if (override !== undefined && override !== "") {
    binary = which(override, env)
    if (binary === undefined) {
      return fail(`DEVSCOPE_QEMU=${override} is not an executable file`, `point DEVSCOPE_QEMU at a qemu-system-x86_64 binary, or unset it and ${hint(undefined, env)}`)
    }
  } else {
    binary = which(BINARY, env)
    if (binary === undefined) {
      return fail(`${BINARY} is not on PATH (nor is DEVSCOPE_QEMU set)`, hint(undefined, env))
    }
  }

  const version = binaryVersion(binary)
  if ("error" in version) {
    const what = override !== undefined && override !== "" ? "point DEVSCOPE_QEMU at a qemu-system-x86_64 binary, or unset it" : `check ${binary}`
    return fail(version.error, `${what}; ${hint(undefined, env)}`, { binary })
  }

  let stamp: string | undefined
  try {
    stamp = readStamp(binary)
  } catch (e) {
    return fail(`cannot read ${binary}: ${(e as Error).message}`, hint(version.version, env), { binary, version: version.version })
  }
  const found = { binary, version: version.version }
  const ok = (moduleDir: string, s: string): Availability => ({
    available: true,
    binary,
    version: version.version,
    versionLine: version.line,
    moduleDir,
    stamp: s,
    setpriv
  })
  // A binary built without --enable-modules has no stamp to check and the qtest accelerator
  // compiled in; QEMU_MODULE_DIR is then irrelevant.
  if (stamp === undefined) return ok(path.dirname(binary), "")

  const cache = cacheDir(version.version, env)
  let stale: { module: string; stamp: string | undefined } | undefined
  for (const dir of [...ownModuleDirs(binary), cache]) {
    const module = path.join(dir, MODULE)
    let moduleStamp: string | undefined
    try {
      moduleStamp = readStamp(module)
    } catch {
      continue // absent or unreadable: look further
    }
    if (moduleStamp === stamp) return ok(dir, stamp)
    stale ??= { module, stamp: moduleStamp }
  }
  if (stale !== undefined) {
    return fail(
      `${stale.module} is stale: its stamp ${stale.stamp ?? "(none)"} does not match ${binary}'s ${stamp} ` +
        `(built for another QEMU release: ${version.line}), so QEMU would refuse it`,
      hint(version.version, env),
      { ...found, stamp, module: stale.module }
    )
  }
  return fail(
    `no qtest accelerator module (${MODULE}) for ${version.line}: Debian's package deletes it, and it is in none of ` +
      [...ownModuleDirs(binary), cache].join(", "),
    hint(version.version, env),
    { ...found, stamp }
  )
}

/** A file's identity for the cache below: path, inode, size and modification time (`undefined`: absent). */
const identity = (file: string): string | undefined => {
  try {
    const st = fs.statSync(file)
    return `${file}:${st.ino}:${st.size}:${st.mtimeMs}`
  } catch {
    return undefined
  }
}

/** What `locate` found available, by binary and environment (see {@link locateCached}). */
const located = new Map<string, { readonly found: Extract<Availability, { available: true }>; readonly module: string | undefined }>()

/**
 * `locate`, remembered for the process while the binary and the module it accepted are the same
 * files (inode, size and mtime): `locate` runs `--version` and reads both binaries' stamps
 * (about 25 ms), which every machine started would otherwise pay. Only an available result is
 * kept, so a setup run meanwhile is seen at the next call.
 *
 * @internal
 */
export const locateCached = (env: Env = process.env): Availability => {
  const override = env.DEVSCOPE_QEMU
  const binary = override !== undefined && override !== "" ? which(override, env) : which(BINARY, env)
  const binaryId = binary === undefined ? undefined : identity(binary)
  const key = [binaryId, cacheRoot(env), env.PATH].join("\u0000")
  const hit = binaryId === undefined ? undefined : located.get(key)
  if (hit !== undefined && (hit.module === undefined || identity(path.join(hit.found.moduleDir, MODULE)) === hit.module)) return hit.found
  const found = locate(env)
  if (found.available && binaryId !== undefined) {
    located.set(key, { found, module: found.stamp === "" ? undefined : identity(path.join(found.moduleDir, MODULE)) })
  }
  return found
}

/**
 * Starts QEMU once with `-accel qtest -qtest stdio` (QEMU_MODULE_DIR set, 10 s at most) and
 * sends `clock_step 1000`: the accelerator loaded if the answer is `OK` (`clock_step` is the
 * command that fails without it, so a successful start alone would prove nothing). Returns what
 * went wrong, or undefined when QEMU answered `OK`.
 *
 * QEMU does not exit when the qtest client closes its input (measured: it then idles until
 * killed), so the probe ends it the way a guest would: `outb 0xcf9 0x6` asks q35's reset
 * control register for a hard reset, which `-no-reboot` turns into a clean exit (~60 ms
 * in all, instead of waiting for the timeout).
 *
 * @internal
 */
export const probe = (a: Extract<Availability, { readonly available: true }>): string | undefined => {
  const args = [
    "-machine", "q35", "-accel", "qtest", "-qtest", "stdio", "-qtest-log", "/dev/null",
    "-display", "none", "-nodefaults", "-m", "16M", "-no-reboot"
  ]
  const run = spawnSync(a.binary, args, {
    input: "clock_step 1000\noutb 0xcf9 0x6\n",
    encoding: "utf8",
    timeout: 10_000,
    killSignal: "SIGKILL",
    env: { ...process.env, QEMU_MODULE_DIR: a.moduleDir },
    stdio: ["pipe", "pipe", "pipe"]
  })
  const command = `QEMU_MODULE_DIR=${a.moduleDir} ${a.binary} ${args.join(" ")}`
  const err = run.stderr?.trim() ?? ""
  if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code !== "ETIMEDOUT") {
    return `${command}: ${run.error.message}`
  }
  const answered = (run.stdout ?? "").split("\n").some((line) => line === "OK" || line.startsWith("OK "))
  if (answered) return undefined
  if (run.error !== undefined) return `${command}: no OK to \`clock_step 1000\` within 10 s${err === "" ? "" : `; stderr: ${err}`}`
  return `${command}: exited with ${run.status ?? run.signal} without answering OK to \`clock_step 1000\`` +
    (err === "" ? "" : `; stderr: ${err}`) + ((run.stdout ?? "").trim() === "" ? "" : `; stdout: ${run.stdout.trim()}`)
}
