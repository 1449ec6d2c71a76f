/**
 * Runs the hostile-input catalogue (`catalogue.ts`): each entry as its own `devscope` process
 * with a 10 s wall deadline (killed after it), its max RSS measured, and its output checked.
 *
 * The command is `packages/cli/src/bin.ts` bundled once with esbuild (tsx's own copy) under the
 * `@devscope/source` condition, so each process starts in about 0.2 s instead of tsx's 2 s; a
 * banner line makes the process print its `process.resourceUsage().maxRSS` on stderr when it
 * exits. A process that dies before exiting normally (killed, a V8 heap limit) prints none,
 * which is a failure in itself.
 *
 * `tsx packages/cli/test/hostile/harness.ts [name-filter]` runs it outside vitest and prints
 * one line per entry.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { catalogue, type Entry } from "./catalogue.js"

/** The wall-time bound of one entry (issue 12): past it the process is killed. */
export const WALL_LIMIT_MS = 10_000
/** The max-RSS bound of one entry (issue 12): 500 MB. */
export const RSS_LIMIT_BYTES = 500 * 1000 * 1000
/** A line longer than this in the output is a flood (an echoed value not cut). */
export const LINE_LIMIT = 1000
/** More output than this in all is a flood. */
export const OUTPUT_LIMIT_BYTES = 4 * 1024 * 1024
/** The marker of the child's RSS line on stderr. */
export const MARK = "@@devscope-hostile-rusage@@ "

const here = path.dirname(fileURLToPath(import.meta.url))
const cliRoot = path.resolve(here, "../..")
const workspaceRoot = path.resolve(cliRoot, "../..")

/** What one process did. */
export interface Outcome {
  /** The exit code, or null when a signal ended it. */
  readonly code: number | null
  readonly signal: string | null
  /** Killed at the wall deadline. */
  readonly killed: boolean
  readonly wallMs: number
  /** From the child's own report at exit; undefined if it did not exit normally. */
  readonly maxRssBytes: number | undefined
  /** User and system CPU time, from the same report: tells a slow machine from a slow command. */
  readonly cpuMs?: number | undefined
  readonly stdout: string
  /** Without the RSS marker line. */
  readonly stderr: string
  readonly outputBytes: number
}

export interface Checked {
  readonly name: string
  readonly entry: Entry
  readonly outcome: Outcome
  /** What went wrong; empty when the entry passed. */
  readonly problems: ReadonlyArray<string>
}

/** The entry's name in reports: the command line as given. */
export const nameOf = (entry: Entry): string =>
  [entry.command, ...(entry.before ?? []), entry.file, ...(entry.flags ?? [])].join(" ")

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Whether the output names `field` as an issue's path (`  devices[1].kind: ...`). */
export const namesField = (output: string, field: string): boolean =>
  new RegExp(`(^|\\s)${escapeRegExp(field)}: `, "m").test(output)

const expectedExits = (entry: Entry): ReadonlyArray<number> => typeof entry.exit === "number" ? [entry.exit] : entry.exit

const firstLines = (text: string, n = 4) => {
  const lines = text.trim().split("\n").slice(0, n).map((l) => l.length > 200 ? `${l.slice(0, 200)}…` : l)
  return lines.length === 0 ? "(no output)" : lines.join(" | ")
}

const crashes: ReadonlyArray<readonly [RegExp, string]> = [
  [/internal error/i, "an internal error"],
  [/\b(RangeError|TypeError|ReferenceError|EvalError)\b/, "a JavaScript error"],
  [/Maximum call stack size exceeded/, "a stack overflow"],
  [/FATAL ERROR|JavaScript heap out of memory|Reached heap limit/, "a V8 fatal error"],
  [/^\s+at .*(\(.*:\d+:\d+\)|:\d+:\d+)$/m, "a stack trace"],
  [/Unhandled|uncaught/i, "an unhandled error"]
]

/** The problems of one outcome against its entry (empty: it passed). */
export const check = (entry: Entry, outcome: Outcome): Array<string> => {
  const problems: Array<string> = []
  const output = `${outcome.stdout}\n${outcome.stderr}`
  if (outcome.killed) problems.push(`did not end within ${WALL_LIMIT_MS / 1000} s of wall time (killed)`)
  else if (outcome.signal !== null) problems.push(`ended by signal ${outcome.signal}`)
  else if (outcome.wallMs > WALL_LIMIT_MS) problems.push(`took ${Math.round(outcome.wallMs)} ms of wall time`)
  if (outcome.maxRssBytes === undefined) {
    if (!outcome.killed) problems.push("no RSS report: the process did not exit normally")
  } else if (outcome.maxRssBytes >= RSS_LIMIT_BYTES) {
    problems.push(`max RSS ${Math.round(outcome.maxRssBytes / 1e6)} MB (the bound is ${RSS_LIMIT_BYTES / 1e6} MB)`)
  }
  const exits = expectedExits(entry)
  if (!outcome.killed && (outcome.code === null || !exits.includes(outcome.code))) {
    problems.push(`exit code ${outcome.code}, expected ${exits.join(" or ")}: ${firstLines(outcome.stderr || outcome.stdout)}`)
  }
  if (outcome.code === 2) {
    for (const field of entry.fields ?? []) {
      if (!namesField(output, field)) problems.push(`the refusal does not name the field ${field}: ${firstLines(outcome.stderr)}`)
    }
    if (entry.anyField !== undefined && !entry.anyField.some((field) => namesField(output, field))) {
      problems.push(`refused without naming any of ${entry.anyField.join(", ")}: ${firstLines(outcome.stderr)}`)
    }
  }
  if (!outcome.killed) {
    for (const text of entry.mentions ?? []) if (!output.includes(text)) problems.push(`the output does not mention ${JSON.stringify(text)}`)
  }
  for (const text of entry.never ?? []) if (output.includes(text)) problems.push(`the output says ${JSON.stringify(text)}`)
  for (const [pattern, what] of crashes) {
    const match = pattern.exec(output)
    if (match !== null) problems.push(`${what} in the output: ${JSON.stringify(match[0].trim().slice(0, 120))}`)
  }
  if (output.includes("\u001b")) problems.push("an ANSI escape (ESC byte) in output that is not a terminal")
  const longest = output.split("\n").reduce((n, line) => Math.max(n, line.length), 0)
  if (longest > LINE_LIMIT) problems.push(`an output line of ${longest.toLocaleString("en-US")} characters (a flood; the bound is ${LINE_LIMIT})`)
  if (outcome.outputBytes > OUTPUT_LIMIT_BYTES) problems.push(`${outcome.outputBytes.toLocaleString("en-US")} bytes of output (a flood)`)
  return problems
}

interface Esbuild {
  readonly build: (options: Record<string, unknown>) => Promise<unknown>
}

/**
 * Bundles `src/bin.ts` into `dir/bin/devscope.mjs` (with `dir/package.json`, which the command
 * reads for `--version`), the RSS report added as a banner. Returns the bundle's path.
 */
export const build = async (dir: string): Promise<string> => {
  // tsx's own esbuild: tsx is a root devDependency; esbuild is its dependency.
  const fromTsx = createRequire(createRequire(path.join(workspaceRoot, "package.json")).resolve("tsx/package.json"))
  const esbuild = fromTsx("esbuild") as Esbuild
  const outfile = path.join(dir, "bin", "devscope.mjs")
  fs.mkdirSync(path.dirname(outfile), { recursive: true })
  fs.copyFileSync(path.join(cliRoot, "package.json"), path.join(dir, "package.json"))
  const report = `process.on("exit", (code) => { try { process.stderr.write("\\n" + ${JSON.stringify(MARK)} + ` +
    `JSON.stringify((({ maxRSS, userCPUTime, systemCPUTime }) => ({ maxRssKb: maxRSS, cpuMicros: userCPUTime + systemCPUTime, code }))(process.resourceUsage())) + "\\n") } catch {} });`
  await esbuild.build({
    entryPoints: [path.join(cliRoot, "src", "bin.ts")],
    absWorkingDir: workspaceRoot,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    conditions: ["@devscope/source"],
    logLevel: "error",
    banner: { js: `import { createRequire as __hostileRequire } from "node:module"; const require = __hostileRequire(import.meta.url); ${report}` }
  })
  return outfile
}

/** Writes, copies or makes each entry's file under `dir/files`. */
export const prepare = (dir: string, entries: ReadonlyArray<Entry>): string => {
  const files = path.join(dir, "files")
  fs.mkdirSync(files, { recursive: true })
  const done = new Set<string>()
  for (const entry of entries) {
    if (done.has(entry.file)) continue
    done.add(entry.file)
    const target = path.join(files, entry.file)
    if (entry.path === "missing") continue
    if (entry.path === "directory") fs.mkdirSync(target, { recursive: true })
    else if (entry.generate !== undefined) fs.writeFileSync(target, entry.generate())
    else fs.copyFileSync(path.join(here, "files", entry.file), target)
  }
  return files
}

/** Runs one entry's command as its own process, killed at the wall deadline. */
export const runOne = (entry: Entry, bundle: string, cwd: string): Promise<Outcome> =>
  new Promise((resolve) => {
    const args = [
      // A guard for the machine, not the measure: a runaway dies at a 1 GB heap (no RSS report: a failure).
      "--max-old-space-size=1024",
      bundle,
      entry.command,
      ...(entry.before ?? []),
      entry.file,
      ...(entry.flags ?? [])
    ]
    const env: Record<string, string | undefined> = { ...process.env }
    delete env.FORCE_COLOR
    const started = performance.now()
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
    const keep = { stdout: [] as Array<Buffer>, stderr: [] as Array<Buffer> }
    let kept = 0
    let outputBytes = 0
    const collect = (which: "stdout" | "stderr") => (chunk: Buffer) => {
      outputBytes += chunk.length
      if (kept < 2 * OUTPUT_LIMIT_BYTES) {
        keep[which].push(chunk)
        kept += chunk.length
      }
    }
    child.stdout.on("data", collect("stdout"))
    child.stderr.on("data", collect("stderr"))
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      child.kill("SIGKILL")
    }, WALL_LIMIT_MS)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - started
      const stdout = Buffer.concat(keep.stdout).toString("utf8")
      const rawStderr = Buffer.concat(keep.stderr).toString("utf8")
      const markAt = rawStderr.lastIndexOf(MARK)
      let maxRssBytes: number | undefined
      let cpuMs: number | undefined
      let stderr = rawStderr
      if (markAt >= 0) {
        const line = rawStderr.slice(markAt + MARK.length).split("\n")[0]!
        try {
          const report = JSON.parse(line) as { readonly maxRssKb: number; readonly cpuMicros: number }
          maxRssBytes = report.maxRssKb * 1024
          cpuMs = report.cpuMicros / 1000
        } catch {
          maxRssBytes = undefined
        }
        stderr = rawStderr.slice(0, markAt).replace(/\n$/, "") + rawStderr.slice(markAt + MARK.length + line.length + 1)
        outputBytes -= MARK.length + line.length + 2
      }
      resolve({ code, signal, killed, wallMs, maxRssBytes, cpuMs, stdout, stderr, outputBytes })
    })
  })

/**
 * Runs the entries, `concurrency` processes at a time, in a temporary directory (removed after).
 * Resolves with each entry checked, in catalogue order.
 */
export const runCatalogue = async (options: {
  readonly entries?: ReadonlyArray<Entry>
  readonly concurrency?: number
  readonly onResult?: (checked: Checked) => void
} = {}): Promise<Array<Checked>> => {
  const entries = options.entries ?? catalogue
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-hostile-"))
  try {
    const bundle = await build(dir)
    const cwd = prepare(dir, entries)
    const results: Array<Checked> = new Array(entries.length)
    let next = 0
    const worker = async () => {
      while (next < entries.length) {
        const index = next++
        const entry = entries[index]!
        const outcome = await runOne(entry, bundle, cwd)
        const checked = { name: nameOf(entry), entry, outcome, problems: check(entry, outcome) }
        results[index] = checked
        options.onResult?.(checked)
      }
    }
    await Promise.all(Array.from({ length: options.concurrency ?? 2 }, worker))
    return results
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** One line for a checked entry: verdict, exit code, wall time, RSS, and the problems. */
export const line = (checked: Checked): string => {
  const { outcome } = checked
  const rss = outcome.maxRssBytes === undefined ? "?" : `${Math.round(outcome.maxRssBytes / 1e6)} MB`
  const head = `${checked.problems.length === 0 ? "ok  " : "FAIL"} ${checked.name}: exit ${outcome.code ?? outcome.signal}, ` +
    `${(outcome.wallMs / 1000).toFixed(2)} s${outcome.cpuMs === undefined ? "" : ` (cpu ${(outcome.cpuMs / 1000).toFixed(2)} s)`}, ${rss}`
  return checked.problems.length === 0 ? head : `${head}\n       - ${checked.problems.join("\n       - ")}`
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const filter = process.argv[2]
  const entries = filter === undefined ? catalogue : catalogue.filter((e) => nameOf(e).includes(filter))
  const started = performance.now()
  const results = await runCatalogue({ entries, onResult: (c) => console.log(line(c)) })
  const failed = results.filter((c) => c.problems.length > 0)
  console.log(
    `\n${results.length - failed.length} of ${results.length} entries passed in ${((performance.now() - started) / 1000).toFixed(1)} s` +
      (failed.length > 0 ? `; failing: ${failed.map((c) => c.name).join(", ")}` : "")
  )
  process.exitCode = failed.length > 0 ? 1 : 0
}
