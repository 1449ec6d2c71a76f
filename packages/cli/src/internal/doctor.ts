/**
 * `devscope doctor`: what this machine can do, for a user deciding whether `--backend qemu`,
 * `--workers N` and the QEMU tests will work. One check per line (ok / missing / warning),
 * each missing piece with its one-line fix; `--json` the same as one document; `--probe`
 * starts QEMU once with the qtest accelerator (10 s at most, then SIGKILL).
 *
 * Split in three so that tests can inject a machine: `gather` reads the real one (`Facts`),
 * `diagnose` turns facts into checks (pure), `render` prints them.
 *
 * Exit code: 0 when the simulator can run (Node new enough), even with QEMU missing (QEMU is
 * optional: reported missing, with the fix); 1 when Node is older than `engines.node`.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Install from "@devscope/qemu/Install"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { MachineUnfit } from "../Errors.js"
import { ansiAllowed } from "./ansi.js"

/** What a check found: `ok`, `missing` (something needed is absent: see `fix`), `warning` (works, with a caveat). */
export type Status = "ok" | "missing" | "warning"

/** One line of the report. */
export interface Check {
  /** `node`, `platform`, `cpus`, `qemu`, `qtest`, `setpriv`, `shm`, `probe`. */
  readonly name: string
  readonly status: Status
  readonly detail: string
  /** What to do about it, when it is not ok. */
  readonly fix?: string
}

/** `devscope doctor --json`. */
export interface Report {
  /** The format of this document. */
  readonly version: 1
  /** The exit code: 0 the simulator can run (whatever QEMU's state), 1 it cannot (Node too old). */
  readonly exitCode: 0 | 1
  /** The simulator can run here (`demo`, `run`, `explore`, `fuzz`). */
  readonly simulator: boolean
  /** Everything the QEMU backend (`--backend qemu`, the QEMU tests) needs is here (and, with `--probe`, QEMU ran). */
  readonly qemuBackend: boolean
  readonly checks: ReadonlyArray<Check>
}

/** What `diagnose` judges: the real machine's from `gather`, or a test's. */
export interface Facts {
  /** `process.versions.node`. */
  readonly node: string
  /** The package's `engines.node` (`>=20`). */
  readonly engines: string
  readonly platform: string
  readonly arch: string
  /** `os.availableParallelism()`. */
  readonly cpus: number
  /** `Install.locate()`. */
  readonly qemu: Install.Availability
  /** Whether a file could be created in /dev/shm, and the space left there. */
  readonly shm: { readonly writable: true; readonly freeBytes: number | undefined } | { readonly writable: false; readonly error: string }
  /** With `--probe`: what `Install.probe` said (`problem` undefined: QEMU answered) and how long it took; `"not-run"` when QEMU was not found. */
  readonly probe?: { readonly problem: string | undefined; readonly millis: number } | "not-run" | undefined
  /** The devscope checkout this command runs from (where `pnpm qemu:setup` works), or undefined when installed from the registry. */
  readonly repository: string | undefined
}

/** The guest RAM of one QEMU machine by default (`@devscope/qemu`'s `memoryMiB`): a file in /dev/shm. */
const GUEST_RAM_MIB = 64

const here = (relative: string) => fileURLToPath(new URL(relative, import.meta.url))

/** The package's `engines.node` (src/internal and dist/internal both sit two levels below package.json). */
const engines = (): string => {
  try {
    const manifest = JSON.parse(fs.readFileSync(here("../../package.json"), "utf8")) as { readonly engines?: { readonly node?: string } }
    return manifest.engines?.node ?? ">=20"
  } catch {
    return ">=20"
  }
}

/** The checkout's root when this file runs from one (its scripts/qemu/setup.ts is there). */
const repository = (): string | undefined => {
  const root = here("../../../../")
  return fs.existsSync(path.join(root, "scripts", "qemu", "setup.ts")) ? path.resolve(root) : undefined
}

const shm = (): Facts["shm"] => {
  const file = path.join("/dev/shm", `devscope-doctor-${process.pid}-${Math.random().toString(36).slice(2)}`)
  try {
    fs.writeFileSync(file, "", { flag: "wx" })
    fs.unlinkSync(file)
  } catch (e) {
    return { writable: false, error: (e as Error).message }
  }
  let freeBytes: number | undefined
  try {
    const s = fs.statfsSync("/dev/shm")
    freeBytes = s.bavail * s.bsize
  } catch {
    freeBytes = undefined
  }
  return { writable: true, freeBytes }
}

/** Reads this machine. Bounded: `locate` runs `--version` (5 s at most), `probe` QEMU (10 s at most, then SIGKILL). */
export const gather = (options: { readonly probe: boolean; readonly env?: Install.Env }): Facts => {
  const qemu = Install.locate(options.env ?? process.env)
  let probe: Facts["probe"]
  if (options.probe) {
    if (qemu.available) {
      const started = performance.now()
      const problem = Install.probe(qemu)
      probe = { problem, millis: Math.round(performance.now() - started) }
    } else {
      probe = "not-run"
    }
  }
  return {
    node: process.versions.node,
    engines: engines(),
    platform: process.platform,
    arch: process.arch,
    cpus: typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length,
    qemu,
    shm: shm(),
    probe,
    repository: repository()
  }
}

const parts = (version: string) => version.replace(/^v/, "").split(".").map((n) => Number.parseInt(n, 10))

/** `node` against `>=N[.M[.P]]`: true, false, or undefined when the range has another form. */
const satisfies = (node: string, range: string): boolean | undefined => {
  const match = /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(range.trim())
  if (match === null) return undefined
  const want = parts(match[1]!)
  const have = parts(node)
  for (let i = 0; i < 3; i++) {
    const a = have[i] ?? 0
    const b = want[i] ?? 0
    if (a !== b) return a > b
  }
  return true
}

/**
 * The fix for a missing QEMU piece: `locate`'s hint inside the repository (`pnpm qemu:setup`
 * there), the same steps by hand outside it.
 */
const qemuFix = (qemu: Extract<Install.Availability, { readonly available: false }>, repo: string | undefined, env: Install.Env): string => {
  if (repo !== undefined) return `${qemu.hint} (in ${repo})`
  const override = env.DEVSCOPE_QEMU !== undefined && env.DEVSCOPE_QEMU !== ""
    ? "point DEVSCOPE_QEMU at a qemu-system-x86_64 binary, or unset it; then "
    : ""
  const target = qemu.version === undefined
    ? `for the installed version into ${Install.cacheDir("<version>", env)}/`
    : `for ${qemu.version} into ${Install.cacheDir(qemu.version, env)}/`
  return `${override}install Debian's qemu-system-x86 (\`apt-get install --no-install-recommends qemu-system-x86\`) and build ` +
    `the qtest accelerator (${Install.MODULE}) from the Debian source of exactly that version ${target} ` +
    `(\`${Install.SETUP_COMMAND}\` in a devscope checkout does both; see docs/qemu.md, Setup)`
}

/** The checks, in order, from the facts. */
export const diagnose = (facts: Facts, env: Install.Env = process.env): Report => {
  const checks: Array<Check> = []
  const add = (name: string, status: Status, detail: string, fix?: string) =>
    checks.push(fix === undefined || status === "ok" ? { name, status, detail } : { name, status, detail, fix })

  // Node: the one thing the simulator itself needs.
  const nodeOk = satisfies(facts.node, facts.engines)
  if (nodeOk === true) add("node", "ok", `Node ${facts.node} (engines.node ${facts.engines})`)
  else if (nodeOk === false) {
    add("node", "missing", `Node ${facts.node} is older than engines.node ${facts.engines}: devscope does not run on it`, `install Node ${facts.engines.replace(/^>=\s*/, "")} or later`)
  } else add("node", "warning", `Node ${facts.node}; engines.node is ${facts.engines}, which this check cannot compare`)

  const linux = facts.platform === "linux"
  if (linux) add("platform", "ok", `${facts.platform} ${facts.arch}`)
  else {
    add("platform", "warning", `${facts.platform} ${facts.arch}: the simulator runs here; the QEMU backend needs Linux (FIFOs, /dev/shm, setpriv)`, "use Linux (a VM or container) for --backend qemu")
  }

  if (facts.cpus > 1) add("cpus", "ok", `${facts.cpus} CPUs available (os.availableParallelism): explore and fuzz --workers up to ${facts.cpus} run in parallel`)
  else add("cpus", "warning", `${facts.cpus} CPU available (os.availableParallelism): --workers above 1 does not run faster here`)

  // QEMU: optional, for --backend qemu and the QEMU tests.
  const q = facts.qemu
  if (q.available) {
    add("qemu", "ok", `${q.binary}: ${q.versionLine}`)
    add("qtest", "ok", q.stamp === "" ? `built into ${q.binary} (a build without modules)` : `${Install.MODULE} for ${q.version} in ${q.moduleDir}`)
  } else {
    const fix = qemuFix(q, facts.repository, env)
    if (q.binary !== undefined && q.version !== undefined) {
      add("qemu", "ok", `${q.binary} (version ${q.version})`)
      add("qtest", "missing", q.reason, fix)
    } else {
      add("qemu", "missing", q.reason, fix)
      add("qtest", "missing", "not looked for: no usable qemu-system-x86_64", fix)
    }
  }

  if (q.setpriv !== undefined) add("setpriv", "ok", `${q.setpriv}: QEMU runs under --pdeathsig SIGKILL and dies with Node`)
  else {
    add("setpriv", "warning", "setpriv is not on PATH: QEMU then runs without --pdeathsig SIGKILL and can outlive a Node process that is killed", "install util-linux (`apt-get install util-linux`), which provides setpriv")
  }

  const s = facts.shm
  if (!s.writable) {
    add("shm", "missing", `cannot create a file in /dev/shm (${s.error}): QEMU's guest RAM is a shared file there`, "mount a writable tmpfs at /dev/shm (`mount -t tmpfs -o size=1g tmpfs /dev/shm`; in Docker, `--shm-size=1g`)")
  } else if (s.freeBytes !== undefined && s.freeBytes < GUEST_RAM_MIB * 1024 * 1024) {
    add("shm", "warning", `/dev/shm is writable but has ${Math.floor(s.freeBytes / 1048576)} MiB free: one QEMU machine's guest RAM (${GUEST_RAM_MIB} MiB by default) is a file there`, "make /dev/shm larger (in Docker, `--shm-size=1g`)")
  } else {
    add("shm", "ok", `/dev/shm writable${s.freeBytes === undefined ? "" : `, ${Math.floor(s.freeBytes / 1048576)} MiB free`} (guest RAM, ${GUEST_RAM_MIB} MiB per QEMU machine by default, is a shared file there)`)
  }

  const p = facts.probe
  if (p === "not-run") add("probe", "missing", "not run: no QEMU with its qtest accelerator (see qemu and qtest above)")
  else if (p !== undefined) {
    if (p.problem === undefined) add("probe", "ok", `QEMU started with -accel qtest and stepped its clock (${p.millis} ms)`)
    else {
      const dir = q.available ? q.moduleDir : "the module directory"
      add("probe", "missing", p.problem, `a stale or foreign module in ${dir} can be deleted and rebuilt with \`${Install.SETUP_COMMAND}\``)
    }
  }

  const simulator = checks[0]!.status !== "missing"
  const qemuBackend = linux && checks.every((c) => !["qemu", "qtest", "shm", "probe"].includes(c.name) || c.status !== "missing")
  return { version: 1, exitCode: simulator ? 0 : 1, simulator, qemuBackend, checks }
}

const COLOURS: Record<Status, string> = { ok: "\x1b[32m", missing: "\x1b[31m", warning: "\x1b[33m" }

/** The report as text, one line per check (and its fix under it), then a verdict. Colour only when `ansi`. */
export const render = (report: Report, options: { readonly ansi: boolean }): string => {
  const width = Math.max(...report.checks.map((c) => c.name.length))
  const lines: Array<string> = []
  for (const c of report.checks) {
    const status = c.status.padEnd(7)
    const shown = options.ansi ? `${COLOURS[c.status]}${status}\x1b[0m` : status
    lines.push(`${shown}  ${c.name.padEnd(width)}  ${c.detail}`)
    if (c.fix !== undefined) lines.push(`${" ".repeat(7)}  ${" ".repeat(width)}  fix: ${c.fix}`)
  }
  lines.push("")
  lines.push(report.simulator ? "simulator: ready (demo, run, validate, explore, fuzz)" : "simulator: cannot run here (see node above)")
  const missing = report.checks.filter((c) => c.status === "missing" && c.name !== "node").map((c) => c.name)
  lines.push(
    report.qemuBackend
      ? `QEMU backend: ready (--backend qemu, the QEMU tests)${report.checks.some((c) => c.name === "probe") ? "" : "; --probe starts QEMU once to prove it"}`
      : `QEMU backend: not available (optional; ${missing.length > 0 ? `missing: ${missing.join(", ")}` : "needs Linux"}); the simulator does not need it`
  )
  return lines.join("\n")
}

/** Prints the report of `facts` and fails (exit code 1) when the simulator cannot run. */
export const report = (facts: Facts, flags: { readonly json: boolean }): Effect.Effect<Report, MachineUnfit> =>
  Effect.gen(function*() {
    const r = diagnose(facts)
    yield* Console.log(flags.json ? JSON.stringify(r, null, 2) : render(r, { ansi: ansiAllowed(process.stdout) }))
    if (r.exitCode !== 0) {
      const node = r.checks[0]!
      return yield* new MachineUnfit({ reason: `${node.detail}; ${node.fix ?? ""}` })
    }
    return r
  })

/** `devscope doctor [--json] [--probe]`. */
export const doctorCommand = Command.make(
  "doctor",
  {
    json: Options.boolean("json").pipe(Options.withDescription("Print the checks as one JSON document: { version, exitCode, simulator, qemuBackend, checks: [{ name, status, detail, fix? }] }")),
    probe: Options.boolean("probe").pipe(
      Options.withDescription("Also start QEMU once with the qtest accelerator and step its clock, to prove it works (10 s at most)")
    )
  },
  (flags) => Effect.flatMap(Effect.sync(() => gather({ probe: flags.probe })), (facts) => report(facts, flags))
).pipe(
  Command.withDescription(
    "Say what this machine can do: Node version, platform, CPUs for the workers of explore and fuzz; for the QEMU backend (optional) QEMU, its qtest " +
      "accelerator, setpriv and /dev/shm, each missing piece with its fix. Exit code 0 when the simulator can run (even without QEMU), " +
      "1 when Node is too old"
  )
)
