/**
 * The consumer test: the published packages as a program outside the workspace gets them.
 *
 * 1. Builds every package (`tsc -b tsconfig.build.json`) and packs each with `pnpm pack`
 *    (which applies `publishConfig` and turns `workspace:` ranges into versions); checks that
 *    each tarball holds only `dist/`, README, LICENSE, CHANGELOG and package.json, and that its
 *    package.json names no source file and no workspace range.
 * 2. Installs the tarballs with npm into a new project under the system's temporary directory,
 *    next to `effect` and `@effect/platform-node` (and the test tools: typescript, vitest,
 *    `@effect/vitest`, `@types/node`).
 * 3. With each Node given (`--node <path>`, repeatable; default: the Node running this):
 *    (a) `node main.mjs`: a plain ESM program binds a driver on the simulator,
 *        surprise-removes the device and prints the unbind report; runs the edu and
 *        rust_driver_pci example drivers on the simulator; imports `Qemu` from
 *        `@devscope/qemu` and has its Layer refuse a machine without devices (a check made
 *        before QEMU is looked for) and `Install.locate` find nothing on an empty PATH (no
 *        QEMU is needed);
 *    (b) `tsc` over a consumer .ts file, strict, `skipLibCheck: false`, under
 *        `moduleResolution` NodeNext and Bundler, with a `@ts-expect-error` on a token of the
 *        wrong driver (the Bound brand survives publishing) and a program on
 *        `Qemu.layer({ devices: [{ name: "edu0", model: "edu" }] })` (type-checked only);
 *    (c) `npx devscope demo` from the installed cli;
 *    (e) `npx devscope explore --workers 2`: worker threads start from the installed `dist/`;
 *    (d) the project's own vitest runs a test that uses `@devscope/testing` (the oracle and an
 *        exploration of a small driver).
 *
 * 4. A strict install (`--legacy-peer-deps`: only what the packages declare) still runs the bin.
 *
 * `--exports-to-src` points `@devscope/core`'s packed `exports` back at `src/` (not shipped):
 * the test must then fail, which shows it checks what it claims. `--keep` leaves the project.
 *
 * Run: `pnpm test:consumer [--node /path/to/node]...`. Needs the npm registry.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const fixture = path.join(root, "scripts/consumer/fixture")

/** The packages published, in dependency order. */
export const published = [
  "packages/core",
  "packages/sim",
  "packages/qemu",
  "examples/sensor",
  "examples/nic",
  "examples/blk",
  "examples/edu",
  "examples/rust-samples",
  "packages/testing",
  "packages/cli"
] as const

/** What a tarball may hold (npm prefixes every entry with `package/`). */
const allowed = /^package\/(dist\/.+|README\.md|LICENSE|CHANGELOG\.md|package\.json)$/
/** What must never be in one, whatever `files` says. */
const forbidden = /(^|\/)(test|dtslint|build|src|node_modules)\/|\.tsbuildinfo$|\.test(-d)?\.(ts|js)$/

interface Args {
  readonly nodes: ReadonlyArray<string>
  readonly exportsToSrc: boolean
  readonly keep: boolean
}

const parseArgs = (argv: ReadonlyArray<string>): Args => {
  const nodes: Array<string> = []
  let exportsToSrc = false
  let keep = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--node") {
      const value = argv[++i]
      if (value === undefined) throw new Error("--node needs a path to a node executable")
      nodes.push(path.resolve(value))
    } else if (arg === "--exports-to-src") exportsToSrc = true
    else if (arg === "--keep") keep = true
    else throw new Error(`unknown argument ${JSON.stringify(arg)} (expected --node PATH, --exports-to-src, --keep)`)
  }
  return { nodes: nodes.length > 0 ? nodes : [process.execPath], exportsToSrc, keep }
}

interface Step {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  readonly millis: number
}

const steps: Array<Step> = []

/** Runs a command with a deadline; records the step; returns its output (stdout + stderr). */
const run = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs: number; readonly expect?: (out: string) => string | undefined }
): boolean => {
  const started = Date.now()
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    encoding: "utf8",
    timeout: options.timeoutMs,
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024
  })
  const out = `${result.stdout ?? ""}${result.stderr ?? ""}`
  const millis = Date.now() - started
  let problem: string | undefined
  if (result.error !== undefined) {
    problem = (result.error as NodeJS.ErrnoException).code === "ETIMEDOUT"
      ? `did not finish within ${options.timeoutMs / 1000} s`
      : result.error.message
  } else if (result.status !== 0) problem = `exited with ${result.status ?? result.signal}`
  else problem = options.expect?.(out)
  const ok = problem === undefined
  steps.push({ name, ok, detail: problem ?? "", millis })
  console.log(`${ok ? "ok  " : "FAIL"} ${name} (${(millis / 1000).toFixed(1)} s)${ok ? "" : `: ${problem}`}`)
  if (!ok) console.log(indent(tail(out, 60)))
  return ok
}

const tail = (text: string, lines: number) => text.trimEnd().split("\n").slice(-lines).join("\n")
const indent = (text: string) => text.split("\n").map((line) => `     | ${line}`).join("\n")
const check = (name: string, problem: string | undefined) => {
  steps.push({ name, ok: problem === undefined, detail: problem ?? "", millis: 0 })
  console.log(`${problem === undefined ? "ok  " : "FAIL"} ${name}${problem === undefined ? "" : `: ${problem}`}`)
}

const pnpm = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("npx", ["-y", "pnpm@10.34.9", ...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })

/** Packs one package; checks the tarball's file list and package.json; returns its path. */
const pack = (dir: string, into: string): string => {
  const before = new Set(fs.readdirSync(into))
  pnpm(["pack", "--pack-destination", into], path.join(root, dir))
  const made = fs.readdirSync(into).filter((f) => f.endsWith(".tgz") && !before.has(f))
  if (made.length !== 1) throw new Error(`pnpm pack in ${dir} made ${made.length} tarballs`)
  const tarball = path.join(into, made[0]!)
  const entries = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter((e) => e !== "" && !e.endsWith("/"))
  const stray = entries.filter((e) => !allowed.test(e) || forbidden.test(e.slice("package/".length)))
  const manifest = JSON.parse(execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" })) as Record<string, unknown>
  const text = JSON.stringify(manifest)
  // `npm pack` (which ignores publishConfig) must ship the same files: `files` decides both.
  const npmList = (JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--loglevel=error"], { cwd: path.join(root, dir), encoding: "utf8" })) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => `package/${f.path}`)
  const npmStray = npmList.filter((e) => !allowed.test(e) || forbidden.test(e.slice("package/".length)))
  const problems = [
    ...stray.map((e) => `ships ${e}`),
    ...npmStray.map((e) => `npm pack --dry-run lists ${e}`),
    ...(entries.some((e) => e === "package/dist/index.js") ? [] : ["has no dist/index.js"]),
    ...(entries.some((e) => e === "package/dist/index.d.ts") ? [] : ["has no dist/index.d.ts"]),
    ...(text.includes("workspace:") ? ["package.json keeps a workspace: range"] : []),
    ...(text.includes("@devscope/source") || text.includes("./src/") ? ["package.json points at src"] : [])
  ]
  check(`pack ${dir}: ${entries.length} files (npm pack --dry-run: ${npmList.length})`, problems.length === 0 ? undefined : problems.join("; "))
  return tarball
}

/** Rewrites the tarball's package.json so its exports name `src/` (for `--exports-to-src`). */
const pointExportsAtSrc = (tarball: string) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-sabotage-"))
  execFileSync("tar", ["-xzf", tarball, "-C", work])
  const file = path.join(work, "package/package.json")
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"))
  manifest.exports = {
    ".": { types: "./src/index.ts", default: "./src/index.ts" },
    "./*": { types: "./src/*.ts", default: "./src/*.ts" }
  }
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2))
  execFileSync("tar", ["-czf", tarball, "-C", work, "package"])
  fs.rmSync(work, { recursive: true, force: true })
  console.log(`sabotage: ${path.basename(tarball)} now exports src/ (the test must fail)`)
}

const main = () => {
  const args = parseArgs(process.argv.slice(2))
  const started = Date.now()
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-consumer-"))
  const tarballs = path.join(work, "tarballs")
  const project = path.join(work, "project")
  fs.mkdirSync(tarballs)
  console.log(`consumer test in ${work}`)

  console.log("building the packages (tsc -b tsconfig.build.json)")
  pnpm(["build"], root)
  const packed = published.map((dir) => pack(dir, tarballs))
  if (args.exportsToSrc) pointExportsAtSrc(packed[0]!)

  fs.cpSync(fixture, project, { recursive: true })
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "devscope-consumer", private: true, type: "module" }, null, 2))
  fs.copyFileSync(path.join(root, "examples/scenarios/demo.json"), path.join(project, "demo.json"))
  const installed = run("npm install the tarballs, effect, @effect/platform-node", "npm", [
    "install", "--no-audit", "--no-fund", "--loglevel=error",
    ...packed,
    "effect@^3.22.4",
    "@effect/platform-node@^0.108.0"
  ], { cwd: project, timeoutMs: 10 * 60_000 })
  const tools = installed && run("npm install -D typescript vitest @effect/vitest @types/node", "npm", [
    "install", "--no-audit", "--no-fund", "--loglevel=error", "-D",
    "typescript@~5.9.3", "vitest@^3.2.4", "@effect/vitest@^0.30.0", "@types/node@^20.19.0"
  ], { cwd: project, timeoutMs: 10 * 60_000 })

  if (tools) {
    for (const node of args.nodes) {
      const version = execFileSync(node, ["--version"], { encoding: "utf8" }).trim()
      // The Node under test first on PATH: `npx` and the bin's `#!/usr/bin/env node` use it.
      const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}`, NO_COLOR: "1" }
      const opts = (timeoutMs: number, expect?: (out: string) => string | undefined) => ({ cwd: project, env, timeoutMs, ...(expect ? { expect } : {}) })
      console.log(`\nNode ${version} (${node})`)
      run(`[${version}] (a) node main.mjs: bind, surprise removal, unbind report; edu and rust_driver_pci; @devscope/qemu`, node, ["main.mjs"], opts(60_000, (out) =>
        out.includes("unbind testdev0 (consumer-sample): cause surprise, released [BAR0]") && out.includes("remove: COUNT reads 0xffffffff") &&
          out.includes("edu on the simulator: 5! = 120") &&
          out.includes("rust_driver_pci on the simulator: pci-testdev data-match count: 1") &&
          out.includes("qemu: MachineInvalid (no devices)") &&
          out.includes("qemu: Install.locate: qemu-system-x86_64 is not on PATH")
          ? undefined
          : `unexpected output:\n${out}`))
      for (const resolution of ["nodenext", "bundler"]) {
        run(`[${version}] (b) tsc -p tsconfig.${resolution}.json (strict, skipLibCheck false, @ts-expect-error on the brand, Qemu.layer)`, node, [
          "node_modules/typescript/bin/tsc", "-p", `tsconfig.${resolution}.json`
        ], opts(180_000))
      }
      run(`[${version}] (c) npx devscope demo`, "npx", ["--no-install", "devscope", "demo"], opts(300_000, (out) =>
        out.includes("All guarantees held") ? undefined : `no "All guarantees held" in:\n${tail(out, 30)}`))
      // Worker threads load the installed dist/ worker module (the workspace's tests load src/).
      run(`[${version}] (e) npx devscope explore demo.json --workers 2`, "npx", ["--no-install", "devscope", "explore", "demo.json", "--workers", "2", "--points", "1"], opts(300_000, (out) =>
        out.includes("passed: 20 case(s), no guarantee broken") && out.includes("2 workers") ? undefined : `unexpected output:\n${tail(out, 30)}`))
      run(`[${version}] (d) vitest run (oracle and exploration from @devscope/testing)`, node, [
        "node_modules/vitest/vitest.mjs", "run", "--reporter=verbose"
      ], opts(300_000, (out) => /Tests\s+2 passed/.test(out) ? undefined : "expected 2 passing tests"))
    }
  }

  // A strict install, as pnpm without auto-installed peers or yarn does it: only what the
  // packages declare, nothing npm would add for peers. The bin must still start.
  const strict = path.join(work, "strict")
  fs.mkdirSync(strict)
  fs.writeFileSync(path.join(strict, "package.json"), JSON.stringify({ name: "devscope-strict", private: true, type: "module" }, null, 2))
  fs.copyFileSync(path.join(root, "examples/scenarios/demo.json"), path.join(strict, "demo.json"))
  if (run("npm install --legacy-peer-deps (no peers added) the tarballs and the cli's declared peers", "npm", [
    "install", "--no-audit", "--no-fund", "--loglevel=error", "--legacy-peer-deps",
    ...packed,
    "effect@^3.22.4",
    "@effect/platform@^0.97.2",
    "@effect/platform-node@^0.108.0"
  ], { cwd: strict, timeoutMs: 10 * 60_000 })) {
    run("strict install: npx devscope validate demo.json", "npx", ["--no-install", "devscope", "validate", "demo.json"], {
      cwd: strict,
      timeoutMs: 60_000,
      expect: (out) => out.includes("valid scenario") ? undefined : `unexpected output:\n${out}`
    })
  }

  const failed = steps.filter((s) => !s.ok)
  console.log(`\nconsumer test: ${steps.length - failed.length} of ${steps.length} checks passed on ${args.nodes.length} Node version(s) in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  if (args.keep || failed.length > 0) console.log(`the project is left in ${project}`)
  else fs.rmSync(work, { recursive: true, force: true })
  process.exitCode = failed.length === 0 ? 0 : 1
}

main()
