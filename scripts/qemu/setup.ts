/**
 * `pnpm qemu:setup`: makes QEMU with its qtest accelerator available for `@devscope/qemu`.
 *
 * 1. Installs Debian's `qemu-system-x86` (apt-get, `--no-install-recommends`; sudo only when
 *    not root) when `qemu-system-x86_64` is missing.
 * 2. Debian's package deletes the qtest accelerator module (`accel-qtest-x86_64.so`), so when
 *    it is missing or stale (its `qemu_stamp_` differs from the binary's) this rebuilds it from
 *    the Debian source of exactly the installed version: `apt-get source qemu=<source version>`
 *    with the machine's own apt sources turned into deb-src entries in a private apt directory
 *    under the cache (/etc/apt and the system's package lists stay untouched), the few build
 *    dependencies, QEMU's configure with the flags that reproduce Debian's stamp, then
 *    `ninja accel-qtest-x86_64.so` alone. The module goes into
 *    `${XDG_CACHE_HOME:-$HOME/.cache}/devscope/qemu/<binary version>/`.
 * 3. Verifies by starting QEMU once with `-accel qtest` and stepping its clock.
 *
 * Idempotent: with everything in place it prints one line and exits 0 (well under a second).
 * Every external command has a timeout; their output goes to `<cache>/setup.log`, whose tail
 * is printed when one fails. Exits non-zero with what to do when it cannot (no apt-get, no
 * root and no sudo, no network, a source the archive no longer has).
 *
 * Run: `pnpm qemu:setup`.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  type Availability,
  binaryVersion,
  BINARY,
  cacheDir,
  cacheRoot,
  locate,
  MODULE,
  probe,
  readStamp,
  which
} from "../../packages/qemu/src/internal/install.js"

/** What the build needs beyond QEMU's source (qemu.md's list, plus the toolchain and `dpkg-source`, which may be absent on a slim machine). */
const BUILD_DEPS = [
  "meson",
  "ninja-build",
  "pkg-config",
  "libglib2.0-dev",
  "libpixman-1-dev",
  "libfdt-dev",
  "zlib1g-dev",
  "gcc",
  "libc6-dev",
  "python3",
  "dpkg-dev",
  "xz-utils"
]

const MINUTE = 60_000

class SetupError extends Error {
  constructor(message: string, readonly hint: string) {
    super(message)
  }
}

const started = performance.now()
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`
const say = (line: string) => console.log(`qemu:setup: ${line}`)

const root = cacheRoot()
const logFile = path.join(root, "setup.log")

/** Runs one step, printing its duration. */
const step = <A>(name: string, body: () => A): A => {
  const t = performance.now()
  say(`${name} ...`)
  const result = body()
  say(`${name}: done in ${seconds(t)}`)
  return result
}

interface RunOptions {
  readonly timeout: number
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  /** Prefix with sudo when not root (apt-get install). */
  readonly privileged?: boolean
  /** Capture stdout (small outputs: dpkg-query, apt-config) instead of logging it. */
  readonly capture?: boolean
}

let sudo: ReadonlyArray<string> | undefined

/** `[]` as root, `["sudo", "-n"]` when passwordless sudo works, else an error saying what to run. */
const privilege = (what: string): ReadonlyArray<string> => {
  if (sudo !== undefined) return sudo
  if (process.getuid?.() === 0) return (sudo = [])
  if (which("sudo") !== undefined && spawnSync("sudo", ["-n", "true"], { stdio: "ignore", timeout: 10_000 }).status === 0) {
    return (sudo = ["sudo", "-n"])
  }
  throw new SetupError(
    `${what} needs root, and this is neither root nor allowed passwordless sudo`,
    `run \`sudo apt-get install -y --no-install-recommends ${what.replace(/^installing /, "")}\` yourself (or run this as root), then \`pnpm qemu:setup\` again`
  )
}

/** Runs a command with a timeout; output goes to the log (or is returned with `capture`); throws on failure. */
const run = (command: string, args: ReadonlyArray<string>, options: RunOptions): string => {
  const argv = options.privileged === true ? [...privilege(`${command} ${args.join(" ")}`), command, ...args] : [command, ...args]
  const shown = argv.join(" ")
  fs.appendFileSync(logFile, `\n$ ${shown}${options.cwd === undefined ? "" : `   (in ${options.cwd})`}\n`)
  const out = options.capture === true ? "pipe" : fs.openSync(logFile, "a")
  try {
    const result = spawnSync(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", out, options.capture === true ? "pipe" : out],
      encoding: "utf8",
      timeout: options.timeout,
      killSignal: "SIGKILL",
      maxBuffer: 64 * 1024 * 1024
    })
    if (options.capture === true) fs.appendFileSync(logFile, `${result.stdout ?? ""}${result.stderr ?? ""}`)
    if (result.error !== undefined) {
      const timedOut = (result.error as NodeJS.ErrnoException).code === "ETIMEDOUT"
      throw new SetupError(
        timedOut ? `\`${shown}\` did not finish within ${options.timeout / 1000} s${tail()}` : `\`${shown}\`: ${result.error.message}`,
        timedOut ? "check the network and the machine's load, then run `pnpm qemu:setup` again" : `install ${command}, then run \`pnpm qemu:setup\` again`
      )
    }
    if (result.status !== 0) {
      throw new SetupError(`\`${shown}\` exited with ${result.status ?? result.signal}${tail(options.capture === true ? result.stderr : undefined)}`, "")
    }
    return options.capture === true ? result.stdout : ""
  } finally {
    if (typeof out === "number") fs.closeSync(out)
  }
}

/** The last lines of the log (or of a captured stderr), indented, for an error message. */
const tail = (text?: string) => {
  const lines = (text ?? fs.readFileSync(logFile, "utf8")).trimEnd().split("\n").slice(-25)
  return `; last lines${text === undefined ? ` of ${logFile}` : ""}:\n    ${lines.join("\n    ")}`
}

const aptEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
// Wait for another apt/dpkg (unattended upgrades, a colleague's install) instead of failing at once.
const aptLock = ["-o", "DPkg::Lock::Timeout=300"]

const requireApt = () => {
  if (which("apt-get") === undefined || which("dpkg-query") === undefined) {
    throw new SetupError(
      "this machine has no apt-get/dpkg (not Debian or a derivative), so QEMU cannot be installed or its module rebuilt from Debian's source",
      "install QEMU 7.2 or newer with the qtest accelerator yourself (a non-modular build has it built in; a modular one needs accel-qtest-x86_64.so next to it) and point DEVSCOPE_QEMU at qemu-system-x86_64"
    )
  }
}

let systemListsFresh = false

/** `apt-get update` of the system's own lists (once per run; a fresh machine has none). */
const aptUpdate = () => {
  if (systemListsFresh) return
  step("apt-get update", () => {
    try {
      run("apt-get", ["update", "-q", "--error-on=any", ...aptLock], { timeout: 5 * MINUTE, env: aptEnv, privileged: true })
    } catch (e) {
      throw withHint(e, "apt-get could not fetch the package lists: check the network (and the sources in /etc/apt), then run `pnpm qemu:setup` again")
    }
  })
  systemListsFresh = true
}

const withHint = (e: unknown, hint: string) => e instanceof SetupError && e.hint === "" ? new SetupError(e.message, hint) : e

const aptInstall = (packages: ReadonlyArray<string>) => {
  privilege(`installing ${packages.join(" ")}`)
  aptUpdate()
  step(`apt-get install ${packages.join(" ")}`, () => {
    try {
      run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...aptLock, ...packages], { timeout: 15 * MINUTE, env: aptEnv, privileged: true })
    } catch (e) {
      throw withHint(e, `install them yourself (\`apt-get install --no-install-recommends ${packages.join(" ")}\`), then run \`pnpm qemu:setup\` again`)
    }
  })
}

/** The packages of `names` that dpkg does not have installed. */
const missingPackages = (names: ReadonlyArray<string>) => {
  const result = spawnSync("dpkg-query", ["-W", "-f", "${Package} ${db:Status-Status}\n", ...names], { encoding: "utf8", timeout: 30_000 })
  const installed = new Set(
    (result.stdout ?? "").split("\n").filter((l) => l.endsWith(" installed")).map((l) => l.split(" ")[0]!.split(":")[0]!)
  )
  return names.filter((n) => !installed.has(n))
}

/** The Debian package that owns the binary, with its binary and source versions. */
const debianPackage = (binary: string) => {
  const real = fs.realpathSync(binary)
  const owner = spawnSync("dpkg-query", ["-S", real], { encoding: "utf8", timeout: 30_000 })
  const pkg = owner.status === 0 ? owner.stdout.split(":")[0]!.trim() : undefined
  if (pkg === undefined || pkg === "") {
    throw new SetupError(
      `${binary} belongs to no Debian package, so there is no Debian source to rebuild its qtest accelerator from`,
      `build QEMU yourself with the accelerator (e.g. without --enable-modules) and point DEVSCOPE_QEMU at it, or unset DEVSCOPE_QEMU to use Debian's qemu-system-x86`
    )
  }
  const [binaryVersion, sourcePackage, sourceVersion] = run("dpkg-query", ["-W", "-f", "${Version}\t${source:Package}\t${source:Version}", pkg], {
    timeout: 30_000,
    capture: true
  }).split("\t")
  return { pkg, binaryVersion: binaryVersion!, sourcePackage: sourcePackage!, sourceVersion: sourceVersion! }
}

/**
 * A private apt configuration whose only sources are deb-src twins of the machine's own
 * sources, and whose lists and caches live under `dir`. Only the source-list and state
 * options are redirected, not the whole of Dir::Etc: apt.conf.d (proxies, this machine's
 * Check-Valid-Until) and the trusted keys must stay in force.
 */
const privateApt = (dir: string): ReadonlyArray<string> => {
  const parts = path.join(dir, "sources.list.d")
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(parts, { recursive: true })
  fs.mkdirSync(path.join(dir, "lists", "partial"), { recursive: true })
  fs.mkdirSync(path.join(dir, "cache", "archives", "partial"), { recursive: true })

  const config = run("apt-config", ["shell", "LIST", "Dir::Etc::SourceList/f", "PARTS", "Dir::Etc::SourceParts/d"], { timeout: 30_000, capture: true })
  const value = (key: string) => /'([^']*)'/.exec(config.split("\n").find((l) => l.startsWith(`${key}=`)) ?? "")?.[1]
  const files: Array<string> = []
  const list = value("LIST") ?? "/etc/apt/sources.list"
  if (fs.existsSync(list)) files.push(list)
  const partsDir = value("PARTS") ?? "/etc/apt/sources.list.d/"
  if (fs.existsSync(partsDir)) {
    for (const f of fs.readdirSync(partsDir).sort()) {
      if (f.endsWith(".list") || f.endsWith(".sources")) files.push(path.join(partsDir, f))
    }
  }
  let entries = 0
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8")
    const converted = file.endsWith(".sources") ? debSrcStanzas(text) : debSrcLines(text)
    if (converted.count === 0) continue
    entries += converted.count
    fs.writeFileSync(path.join(parts, `${path.basename(file).replace(/\.(list|sources)$/, "")}-src${path.extname(file)}`), converted.text)
  }
  if (entries === 0) {
    throw new SetupError(`no enabled deb sources in ${files.join(", ") || "/etc/apt"} to derive deb-src entries from`, "check the machine's apt sources")
  }
  fs.writeFileSync(path.join(dir, "sources.list"), "")
  const options = [
    "-o", `Dir::Etc::SourceList=${path.join(dir, "sources.list")}`,
    "-o", `Dir::Etc::SourceParts=${parts}`,
    "-o", `Dir::State::Lists=${path.join(dir, "lists")}`,
    "-o", `Dir::Cache=${path.join(dir, "cache")}`
  ]
  // As root apt downloads as the `_apt` user, which cannot enter /root/.cache: say so outright
  // instead of letting apt warn and fall back.
  return process.getuid?.() === 0 ? [...options, "-o", "APT::Sandbox::User=root"] : options
}

/** deb822 `.sources`: every enabled stanza of type deb, as type deb-src. */
const debSrcStanzas = (text: string) => {
  const out: Array<string> = []
  for (const stanza of text.split(/\n\s*\n/)) {
    const lines = stanza.split("\n").filter((l) => !l.startsWith("#") && l.trim() !== "")
    const types = lines.find((l) => /^Types:/i.test(l))
    if (types === undefined || !/\bdeb\b/.test(types.replace(/^Types:/i, ""))) continue
    if (lines.some((l) => /^Enabled:\s*no/i.test(l))) continue
    out.push(lines.map((l) => (l === types ? "Types: deb-src" : l)).join("\n"))
  }
  return { text: out.join("\n\n") + "\n", count: out.length }
}

/** One-line `.list`: every `deb` line as a `deb-src` line. */
const debSrcLines = (text: string) => {
  const out = text.split("\n").map((l) => l.trim()).filter((l) => /^deb\s/.test(l)).map((l) => l.replace(/^deb\s/, "deb-src "))
  return { text: out.join("\n") + "\n", count: out.length }
}

/** Deletes the work trees of earlier runs that failed (or were killed), unless that run is still going. */
const removeAbandonedBuilds = () => {
  for (const entry of fs.readdirSync(root)) {
    const pid = /^build-(\d+)$/.exec(entry)?.[1]
    if (pid === undefined) continue
    try {
      process.kill(Number(pid), 0)
      continue // still running: a concurrent setup
    } catch {
      fs.rmSync(path.join(root, entry), { recursive: true, force: true })
    }
  }
}

/** Fetches, configures and builds the module for `binary`; returns the built file. */
const buildModule = (binary: string, stamp: string, version: string, pkgversion: string): string => {
  requireApt()
  const deb = debianPackage(binary)
  say(`${binary} is ${deb.pkg} ${deb.binaryVersion} (source ${deb.sourcePackage} ${deb.sourceVersion}), stamp ${stamp}`)
  if (pkgversion !== `Debian ${deb.binaryVersion}`) {
    // The stamp hashes QEMU's version and pkgversion: the binary's own pkgversion is what
    // reproduces it, whatever dpkg says; but a mismatch means the binary was replaced by hand.
    say(`warning: the binary reports pkgversion "${pkgversion}", dpkg says ${deb.binaryVersion}; building with the binary's`)
  }

  const missing = missingPackages(BUILD_DEPS)
  if (missing.length > 0) aptInstall(missing)

  removeAbandonedBuilds()
  const work = path.join(root, `build-${process.pid}`)
  fs.rmSync(work, { recursive: true, force: true })
  fs.mkdirSync(work, { recursive: true })
  const apt = privateApt(path.join(work, "apt"))
  step(`apt-get update (deb-src, private lists in ${path.join(work, "apt")})`, () => {
    try {
      run("apt-get", [...apt, "update", "-q", "--error-on=any"], { timeout: 5 * MINUTE, env: aptEnv })
    } catch (e) {
      throw withHint(e, "apt-get could not fetch the source indices: check the network, then run `pnpm qemu:setup` again")
    }
  })
  step(`apt-get source ${deb.sourcePackage}=${deb.sourceVersion}`, () => {
    try {
      run("apt-get", [...apt, "source", "-q", "--only-source", `${deb.sourcePackage}=${deb.sourceVersion}`], { timeout: 15 * MINUTE, cwd: work, env: aptEnv })
    } catch (e) {
      throw withHint(
        e,
        `the archive may no longer carry source ${deb.sourceVersion} (a newer Debian update replaced it): ` +
          `upgrade QEMU (\`apt-get install --only-upgrade ${deb.pkg}\`) and run \`pnpm qemu:setup\` again`
      )
    }
  })
  const source = fs.readdirSync(work).map((f) => path.join(work, f)).find((f) => fs.existsSync(path.join(f, "configure")))
  if (source === undefined) throw new SetupError(`apt-get source left no unpacked source tree with a configure script in ${work}`, `see ${logFile}`)

  const build = path.join(source, "build-devscope")
  fs.mkdirSync(build, { recursive: true })
  // Debian's own toolchain first: a pyenv or Homebrew python3 ahead on PATH must not be the
  // one QEMU's configure and meson run under.
  const buildEnv = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ""}` }
  step("configure (x86_64-softmmu, modules)", () =>
    run(
      path.join(source, "configure"),
      [
        "--target-list=x86_64-softmmu",
        "--enable-modules",
        `--with-pkgversion=${pkgversion}`,
        "--prefix=/usr",
        "--libdir=lib/x86_64-linux-gnu",
        "--disable-docs",
        "--disable-tools"
      ],
      { timeout: 10 * MINUTE, cwd: build, env: buildEnv }
    ))
  step(`ninja ${MODULE}`, () => run("ninja", ["-j", String(Math.max(1, os.availableParallelism())), MODULE], { timeout: 30 * MINUTE, cwd: build, env: buildEnv }))

  const built = path.join(build, MODULE)
  const builtStamp = readStamp(built)
  if (builtStamp !== stamp) {
    throw new SetupError(
      `the module built from ${deb.sourcePackage} ${deb.sourceVersion} has stamp ${builtStamp ?? "(none)"}, but ${binary} has ${stamp}: QEMU would refuse it (tree kept in ${work})`,
      "the pkgversion or the source does not reproduce Debian's build; report it with the log"
    )
  }
  const target = cacheDir(version)
  fs.mkdirSync(target, { recursive: true })
  // Copy then rename, so that a concurrent `locate` never sees a half-written module.
  const partial = path.join(target, `.${MODULE}.${process.pid}`)
  fs.copyFileSync(built, partial)
  fs.renameSync(partial, path.join(target, MODULE))
  fs.rmSync(work, { recursive: true, force: true })
  return path.join(target, MODULE)
}

const verify = (a: Extract<Availability, { readonly available: true }>) => {
  const problem = probe(a)
  if (problem !== undefined) {
    throw new SetupError(`QEMU does not run with the qtest accelerator: ${problem}`, `see ${logFile}; a stale or foreign module in ${a.moduleDir} can be deleted and rebuilt with \`pnpm qemu:setup\``)
  }
}

const ready = (a: Extract<Availability, { readonly available: true }>, detail: string) =>
  `ready: ${a.binary} (${a.versionLine}), qtest accelerator in ${a.moduleDir} (${a.stamp || "built in"}), ` +
  `setpriv ${a.setpriv ?? "MISSING (install util-linux)"}; ${detail}`

const main = () => {
  let a = locate()
  if (a.available) {
    // The common case, kept to one line: everything is there; prove it by stepping the clock.
    const t = performance.now()
    verify(a)
    console.log(`qemu:setup: ${ready(a, `verified in ${Math.round(performance.now() - t)} ms`)}`)
    return
  }
  // A binary that is there but unusable (not QEMU, DEVSCOPE_QEMU wrong): installing or
  // building cannot help.
  if (a.binary !== undefined && a.version === undefined) throw new SetupError(a.reason, a.hint)
  fs.mkdirSync(root, { recursive: true })
  fs.appendFileSync(logFile, `\n=== qemu:setup ${new Date().toISOString()} ===\n`)
  say(a.reason)

  if (a.binary === undefined) {
    if (process.env.DEVSCOPE_QEMU !== undefined && process.env.DEVSCOPE_QEMU !== "") throw new SetupError(a.reason, a.hint)
    requireApt()
    aptInstall(["qemu-system-x86"])
    a = locate()
    if (a.available) {
      verify(a)
      say(ready(a, `total ${seconds(started)}`))
      return
    }
    if (a.binary === undefined) throw new SetupError(`qemu-system-x86 is installed but ${BINARY} is still not found: ${a.reason}`, "check PATH")
  }
  if (a.stamp === undefined) throw new SetupError(a.reason, a.hint)

  const version = binaryVersion(a.binary)
  if ("error" in version) throw new SetupError(version.error, a.hint)
  const module = buildModule(a.binary, a.stamp, version.version, version.pkgversion)
  say(`built ${module} (${fs.statSync(module).size} bytes, ${a.stamp})`)

  const found = locate()
  if (!found.available) throw new SetupError(`the module was installed but is still not found: ${found.reason}`, found.hint)
  step("probe (-accel qtest, clock_step)", () => verify(found))
  say(ready(found, `total ${seconds(started)}`))
}

try {
  main()
} catch (e) {
  if (e instanceof SetupError) {
    console.error(`qemu:setup: FAILED after ${seconds(started)}: ${e.message}`)
    if (e.hint !== "") console.error(`qemu:setup: what to do: ${e.hint}`)
  } else {
    console.error(`qemu:setup: FAILED after ${seconds(started)}:`, e)
  }
  process.exitCode = 1
}
