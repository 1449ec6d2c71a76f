/**
 * Issue 12's acceptance catalogue of hostile input: every entry of `hostile/catalogue.ts` runs
 * as its own `devscope` process (two at a time) and must end within 10 s of wall time with its
 * verdict (refused naming its field, or run), max RSS under 500 MB, and no internal error. Each
 * entry is one test, named by its command line; a failure says what went wrong.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { catalogue, type Entry } from "./hostile/catalogue.js"
import {
  check,
  type Checked,
  line,
  nameOf,
  namesField,
  type Outcome,
  RSS_LIMIT_BYTES,
  runCatalogue,
  WALL_LIMIT_MS
} from "./hostile/harness.js"

const filesDir = path.join(__dirname, "hostile", "files")

describe("the hostile-input catalogue", () => {
  const results = new Map<string, Checked>()

  beforeAll(async () => {
    for (const checked of await runCatalogue({ concurrency: 2 })) results.set(checked.name, checked)
  }, 300_000)

  it.effect("has at least 45 files, each checked-in file listed and each listed file there", () =>
    Effect.sync(() => {
      const files = new Set(catalogue.map((e) => e.file))
      expect(files.size).toBeGreaterThanOrEqual(45)
      const listed = new Set(catalogue.filter((e) => e.generate === undefined && e.path === undefined).map((e) => e.file))
      const present = new Set(fs.readdirSync(filesDir))
      expect([...listed].filter((f) => !present.has(f)), "listed but not in files/").toEqual([])
      expect([...present].filter((f) => !listed.has(f)), "in files/ but not listed").toEqual([])
      const names = catalogue.map(nameOf)
      expect(names.filter((n, i) => names.indexOf(n) !== i), "entries with the same command line").toEqual([])
      // A refusal that may be either verdict still has to say which field it refused.
      for (const entry of catalogue) {
        const exits = typeof entry.exit === "number" ? [entry.exit] : entry.exit
        if (exits.includes(2) && entry.mentions === undefined && entry.path === undefined) {
          expect((entry.fields?.length ?? 0) + (entry.anyField?.length ?? 0), nameOf(entry)).toBeGreaterThan(0)
        }
      }
    }))

  for (const entry of catalogue) {
    const name = nameOf(entry)
    it.effect(name, () =>
      Effect.sync(() => {
        const checked = results.get(name)
        expect(checked, "the harness ran it").toBeDefined()
        expect(checked!.problems, `${line(checked!)}\n  (${entry.why})`).toEqual([])
      }))
  }
})

describe("the catalogue's checks", () => {
  const entry: Entry = { file: "x.json", command: "validate", exit: 2, fields: ["devices[1].kind"], why: "a test" }
  const outcome = (over: Partial<Outcome>): Outcome => ({
    code: 2,
    signal: null,
    killed: false,
    wallMs: 300,
    maxRssBytes: 80e6,
    stdout: "",
    stderr: "devscope: invalid scenario x.json:\n  devices[1].kind: expected one of \"nic\", \"blk\", \"sensor\", got \"gpu\"",
    outputBytes: 100,
    ...over
  })

  it.effect("pass a refusal that names its field within the bounds", () =>
    Effect.sync(() => {
      expect(check(entry, outcome({}))).toEqual([])
    }))

  it.effect("fail a process killed at the deadline, one over the RSS bound, or one without an RSS report", () =>
    Effect.sync(() => {
      expect(check(entry, outcome({ killed: true, code: null, signal: "SIGKILL", maxRssBytes: undefined }))).toEqual([
        `did not end within ${WALL_LIMIT_MS / 1000} s of wall time (killed)`
      ])
      expect(check(entry, outcome({ maxRssBytes: RSS_LIMIT_BYTES }))[0]).toMatch(/^max RSS 500 MB/)
      expect(check(entry, outcome({ maxRssBytes: undefined, code: 134 }))).toContain("no RSS report: the process did not exit normally")
      expect(check(entry, outcome({ wallMs: WALL_LIMIT_MS + 1 }))[0]).toMatch(/^took 10001 ms/)
    }))

  it.effect("fail a wrong exit code, a refusal naming another field, and a crash", () =>
    Effect.sync(() => {
      expect(check(entry, outcome({ code: 0 }))[0]).toMatch(/^exit code 0, expected 2/)
      expect(check(entry, outcome({ stderr: "devscope: invalid scenario x.json:\n  devices[0].kind: bad" }))[0]).toMatch(
        /does not name the field devices\[1\]\.kind/
      )
      const crash = check(entry, outcome({
        stderr: "  devices[1].kind: x\ndevscope: internal error (please report it):\nRangeError: Maximum call stack size exceeded\n    at f (file.js:1:2)"
      }))
      expect(crash).toEqual([
        "an internal error in the output: \"internal error\"",
        "a JavaScript error in the output: \"RangeError\"",
        "a stack overflow in the output: \"Maximum call stack size exceeded\"",
        "a stack trace in the output: \"at f (file.js:1:2)\""
      ])
    }))

  it.effect("fail an ANSI escape and a flooded line", () =>
    Effect.sync(() => {
      const run: Entry = { file: "x.json", command: "run", exit: 0, why: "a test" }
      expect(check(run, outcome({ code: 0, stderr: "", stdout: "\u001b[31mred\u001b[0m" }))).toEqual([
        "an ANSI escape (ESC byte) in output that is not a terminal"
      ])
      expect(check(run, outcome({ code: 0, stderr: "", stdout: `  ${"d".repeat(5000)}` }))[0]).toMatch(/an output line of 5,002 characters/)
    }))

  it.effect("find a field only as an issue's path", () =>
    Effect.sync(() => {
      expect(namesField("  (file): is UTF-16", "(file)")).toBe(true)
      expect(namesField("  timeline[3].device: unknown", "timeline[3].device")).toBe(true)
      expect(namesField("unknown device (devices: eth0)", "devices")).toBe(false)
      expect(namesField("  timeline[3].device: unknown", "timeline[3]")).toBe(false)
    }))
})
