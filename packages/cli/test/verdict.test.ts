/**
 * The machine-readable verdicts: the JSON document of `--json` (Verdict.toJson) and the JUnit
 * XML of `--junit` (Verdict.junitXml), checked against a real run record.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Runner, Verdict } from "@devscope/cli"
import { HOSTILE, makeRecord } from "./recordFixture.js"

const source: Verdict.RunSource = { source: "examples/scenarios/fixture.json", name: "fixture", duration: 200 }

const passing = (record: Runner.RunRecord): Runner.RunRecord => ({ ...record, violations: [], violationCount: 0, failures: [] })

// ---------------------------------------------------------------------------------------
// A small XML reader, strict enough to catch what a CI system's parser would refuse.

interface Element {
  readonly name: string
  readonly attributes: Record<string, string>
  readonly children: Array<Element>
  text: string
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: "\"", apos: "'" }

const unescape = (s: string, where: string) =>
  s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (whole, name: string | undefined) => {
    if (name === undefined) throw new Error(`a bare & in ${where}`)
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16))
    if (name.startsWith("#")) return String.fromCodePoint(Number(name.slice(1)))
    const value = ENTITIES[name]
    if (value === undefined) throw new Error(`unknown entity ${whole}`)
    return value
  })

/** Parses a document; throws on anything not well-formed XML 1.0 (for what this writer emits). */
const parseXml = (xml: string): Element => {
  // eslint-disable-next-line no-control-regex
  const illegal = xml.match(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/)
  if (illegal !== null) throw new Error(`a character XML cannot carry: U+${illegal[0].charCodeAt(0).toString(16)}`)
  if (!xml.startsWith(`<?xml version="1.0" encoding="UTF-8"?>\n`)) throw new Error("no XML declaration")
  const body = xml.slice(xml.indexOf("?>") + 2)
  const stack: Array<Element> = [{ name: "(document)", attributes: {}, children: [], text: "" }]
  const token = /<(\/?)([A-Za-z][\w.-]*)((?:\s+[A-Za-z][\w.-]*="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g
  let m: RegExpExecArray | null
  while ((m = token.exec(body)) !== null) {
    const [, close, name, attrs, selfClose, text, stray] = m
    const top = stack[stack.length - 1]!
    if (stray !== undefined) throw new Error(`a < that starts no tag at ${m.index}: ${body.slice(m.index, m.index + 40)}`)
    if (text !== undefined) {
      if (text.includes(">") && text.includes("]]>")) throw new Error("]]> in text")
      top.text += unescape(text, `<${top.name}>`)
      continue
    }
    if (close === "/") {
      if (top.name !== name) throw new Error(`</${name}> closes <${top.name}>`)
      stack.pop()
      continue
    }
    const attributes: Record<string, string> = {}
    for (const a of attrs!.matchAll(/([A-Za-z][\w.-]*)="([^"]*)"/g)) {
      if (a[1]! in attributes) throw new Error(`attribute ${a[1]} twice`)
      attributes[a[1]!] = unescape(a[2]!, `${name}@${a[1]}`)
    }
    const element: Element = { name: name!, attributes, children: [], text: "" }
    top.children.push(element)
    if (selfClose !== "/") stack.push(element)
  }
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1]!.name}> is not closed`)
  const roots = stack[0]!.children
  if (roots.length !== 1) throw new Error(`${roots.length} root elements`)
  return roots[0]!
}

const all = (e: Element, name: string): Array<Element> => [
  ...(e.name === name ? [e] : []),
  ...e.children.flatMap((c) => all(c, name))
]

// ---------------------------------------------------------------------------------------

describe("the test's XML reader", () => {
  it("refuses what is not well-formed", () => {
    const doc = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`
    expect(parseXml(doc(`<a x="1 &amp; 2">t &lt; u<b/></a>`)).attributes.x).toBe("1 & 2")
    for (const bad of [`<a>&</a>`, `<a><b></a>`, `<a>`, `<a>\u001b</a>`, `<a>1 < 2</a>`, `<a x="1"><b y=2/></a>`, `<a/><b/>`, `<a>&nbsp;</a>`]) {
      expect(() => parseXml(doc(bad)), bad).toThrow()
    }
  })
})

describe("Verdict.toJson (--json)", () => {
  it.effect("a failed run: version 1, verdict, exit code, the record's tables, guarantees, replay command", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const v = Verdict.toJson(record, { ...source, description: "a fixture" })
      expect(v.version).toBe(1)
      expect(Verdict.FORMAT_VERSION).toBe(1)
      expect(v.verdict).toBe("failed")
      expect(v.exitCode).toBe(1)
      expect(v.summary).toBe(`${record.violationCount} guarantee violation(s)`)
      expect(v.scenario).toEqual({ name: "fixture", description: "a fixture", duration: 200 })
      expect(v.seed).toBe(7)
      expect(v.replay).toEqual({ seed: 7, source: source.source, command: "devscope run examples/scenarios/fixture.json --seed 7" })
      expect(v.endedAt).toBe(record.endedAt)
      expect(v.wallMillis).toBe(12.5)
      expect(v.devices).toEqual(record.devices)
      expect(v.violations).toEqual(record.violations)
      expect(v.violationCount).toBe(record.violationCount)
      expect(v.failures).toEqual(record.failures)
      expect(v.stalls).toEqual(record.stalls)
      expect(v.timeline).toEqual(record.timeline)
      expect(v.guarantees.map((g) => [g.guarantee, g.held])).toEqual([["G1", true], ["G2", true], ["G3", true], ["G4", true], ["G5", false]])
      expect(v.guarantees[4]!.shown).toBe(record.violations.length)
      expect("interrupted" in v).toBe(false)
      expect(v.dropped).toEqual({ trace: 0 })
      // Plain JSON: nothing lost in a round trip (no undefined, no function, no class).
      expect(JSON.parse(JSON.stringify(v))).toEqual(v)
      // Every device row carries its unbinds' start and end.
      for (const d of JSON.parse(JSON.stringify(v)).devices) {
        for (const u of d.unbinds) expect(Object.keys(u)).toEqual(expect.arrayContaining(["cause", "startedAt", "at", "wallMillis"]))
      }
    }))

  it.effect("a passing run exits 0; an interrupted one (with what it dropped) is 'interrupted', exit 130/143/124 by its reason; several runs", () =>
    Effect.gen(function*() {
      const record = passing(yield* makeRecord())
      const ok = Verdict.toJson(record, source)
      expect([ok.verdict, ok.exitCode, ok.summary]).toEqual(["passed", 0, "all guarantees held"])
      expect(ok.guarantees.every((g) => g.held)).toBe(true)
      const stopped = { ...record, interrupted: { reason: "SIGINT", at: 41.5 }, dropped: { trace: 12 } }
      const v = Verdict.toJson(stopped, source)
      expect([v.verdict, v.exitCode]).toEqual(["interrupted", 130])
      expect(v.interrupted).toEqual({ reason: "SIGINT", at: 41.5 })
      expect(v.dropped).toEqual({ trace: 12 })
      expect(v.summary).toContain("interrupted at 41.5 ms of virtual time (SIGINT)")
      const byReason = (reason: string) => Verdict.toJson({ ...stopped, interrupted: { reason, at: 1 } }, source).exitCode
      expect([byReason("SIGTERM"), byReason("timeout"), byReason("aborted")]).toEqual([143, 124, 130])
      // Several runs: the worst verdict, and the exit code of the first run with it.
      const all = Verdict.toJsonAll([{ record, source }, { record: { ...record, violations: [{ guarantee: "G2", device: "x", message: "m" }], violationCount: 1 }, source }])
      expect([all.version, all.verdict, all.exitCode, all.runs.length]).toEqual([1, "failed", 1, 2])
      const stop = Verdict.toJsonAll([{ record, source }, { record: { ...stopped, interrupted: { reason: "SIGTERM", at: 2 } }, source }])
      expect([stop.verdict, stop.exitCode]).toEqual(["interrupted", 143])
      expect(stop.runs.map((r) => r.verdict)).toEqual(["passed", "interrupted"])
    }))

  it.effect("the replay command quotes a path for a POSIX shell; the built-in demo replays as devscope demo", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const command = (file: string) => Verdict.toJson(record, { ...source, source: file }).replay.command
      expect(command("demo")).toBe("devscope demo --seed 7")
      expect(command("my scenarios/it's.json")).toBe(`devscope run 'my scenarios/it'\\''s.json' --seed 7`)
      expect(command("$(rm -rf ~).json")).toBe(`devscope run '$(rm -rf ~).json' --seed 7`)
      expect(command("a/b-c_d.json")).toBe("devscope run a/b-c_d.json --seed 7")
    }))
})

describe("Verdict.junitXml (--junit)", () => {
  it.effect("one testsuite per run: a testcase per guarantee, per device and for the run; what broke fails with its message", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const doc = parseXml(Verdict.junitXml([{ record, source }]))
      expect(doc.name).toBe("testsuites")
      const [suite, ...more] = all(doc, "testsuite")
      expect(more).toHaveLength(0)
      expect(suite!.attributes.name).toBe("fixture")
      const cases = all(suite!, "testcase")
      expect(cases.map((c) => c.attributes.name!.slice(0, 2))).toEqual(
        ["G1", "G2", "G3", "G4", "G5", ...record.devices.map((d) => d.device.slice(0, 2)), "th"]
      )
      expect(cases).toHaveLength(5 + record.devices.length + 1)
      expect(suite!.attributes.tests).toBe(String(cases.length))
      const failed = cases.filter((c) => c.children.some((x) => x.name === "failure"))
      expect(suite!.attributes.failures).toBe(String(failed.length))
      expect(doc.attributes.failures).toBe(String(failed.length))
      expect(suite!.attributes.errors).toBe("0")
      // G5 broke, on the device the IOMMU fault was on; the other guarantees and devices pass.
      const faulting = new Set(record.violations.map((v) => v.device))
      expect(failed.map((c) => c.attributes.name)).toEqual([
        "G5 no unreported or faulting DMA",
        ...record.devices.filter((d) => faulting.has(d.device)).map((d) => `${d.device} (${d.kind} on ${d.bus})`)
      ])
      const g5 = failed[0]!.children[0]!
      expect(g5.attributes.type).toBe("G5")
      expect(g5.attributes.message).toContain("violation(s) of G5")
      for (const v of record.violations) expect(g5.text).toContain(v.message)
      expect(g5.text).toContain("replay: devscope run examples/scenarios/fixture.json --seed 7")
      expect(cases[0]!.attributes.classname).toBe("fixture.guarantees")
      expect(cases[5]!.attributes.classname).toBe("fixture.devices")
      const properties = Object.fromEntries(all(suite!, "property").map((p) => [p.attributes.name, p.attributes.value]))
      expect(properties).toMatchObject({ seed: "7", verdict: "failed", replay: "devscope run examples/scenarios/fixture.json --seed 7" })
      expect(all(suite!, "system-out")[0]!.text).toContain(`scenario "fixture", seed 7`)
      // A passing run has no failure at all.
      const ok = parseXml(Verdict.junitXml([{ record: passing(record), source }]))
      expect(all(ok, "failure")).toHaveLength(0)
      expect(ok.attributes.failures).toBe("0")
    }))

  it.effect("driver failures, stalls and an interruption: the device's case fails, the run's case errs", () =>
    Effect.gen(function*() {
      const record = passing(yield* makeRecord())
      const device = record.devices[0]!.device
      const broken: Runner.RunRecord = {
        ...record,
        failures: [{ device, where: "irq 0: handler failed", error: "UseAfterUnbind: x", defect: true, at: 3, count: 2 }],
        stalls: [{ outcome: "Stalled", device: "-", at: 9, what: "nothing could run any more", waitSites: ["a < b"] }],
        interrupted: { reason: "SIGTERM", at: 10 }
      }
      const doc = parseXml(Verdict.junitXml([{ record: broken, source }]))
      const cases = all(doc, "testcase")
      const mine = cases.find((c) => c.attributes.name!.startsWith(`${device} `))!
      expect(mine.children[0]!.name).toBe("failure")
      expect(mine.children[0]!.text).toContain("driver failure: irq 0: handler failed: UseAfterUnbind: x (at 3 ms, 2 times)")
      const run = cases[cases.length - 1]!
      expect(run.attributes.classname).toBe("fixture.run")
      expect(run.children[0]!.name).toBe("error")
      expect(run.children[0]!.attributes.message).toBe("interrupted at 10 ms of virtual time: SIGTERM")
      expect(run.children[0]!.text).toContain("Stalled at 9 ms: nothing could run any more; waiting in: a < b")
      expect(doc.attributes.errors).toBe("1")
      expect(all(doc, "testsuite")[0]!.attributes.errors).toBe("1")
    }))

  it.effect("every text is escaped: markup, quotes, ampersands, line breaks in attributes, control characters, lone surrogates", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const nasty = `${HOSTILE} ]]> <!-- \u001b[31mred\u0000 tab\there\r\nline "q" 'a' \uD800 \uFFFF é 😀`
      const hostile: Runner.RunRecord = {
        ...record,
        scenario: nasty,
        violations: [{ guarantee: "G1", device: nasty, message: nasty }],
        violationCount: 1
      }
      const xml = Verdict.junitXml([{ record: hostile, source: { ...source, name: nasty, source: nasty } }])
      const doc = parseXml(xml)
      // What XML cannot carry is written as visible text; everything else comes back as it was.
      const expected = nasty.replace("\u001b", "\\u001b").replace("\u0000", "\\u0000").replace("\uD800", "\\ud800")
        .replace("\uFFFF", "\\uffff")
      const suite = all(doc, "testsuite")[0]!
      expect(suite.attributes.name).toBe(expected)
      const g1 = all(doc, "failure")[0]!
      expect(g1.text).toContain(`${expected}: ${expected}`)
      expect(g1.attributes.message).toBe("1 violation(s) of G1 shown (of 1 violation(s) in the run)")
      const run = all(doc, "testcase").find((c) => c.attributes.classname === `${expected}.run`)!
      expect(run.children[0]!.text).toContain(`G1 ${expected}: ${expected}`)
      expect(all(doc, "property").find((p) => p.attributes.name === "source")!.attributes.value).toBe(expected)
      expect(xml).not.toContain("<script")
      expect(xml).not.toContain("<!--")
    }))

  it.effect("several runs: one testsuite each, the totals summed", () =>
    Effect.gen(function*() {
      const record = yield* makeRecord()
      const doc = parseXml(Verdict.junitXml([
        { record, source },
        { record: passing({ ...record, scenario: "second" }), source: { ...source, name: "second" } }
      ]))
      const suites = all(doc, "testsuite")
      expect(suites.map((s) => s.attributes.name)).toEqual(["fixture", "second"])
      expect(doc.attributes.tests).toBe(String(suites.reduce((n, s) => n + Number(s.attributes.tests), 0)))
      expect(doc.attributes.failures).toBe(suites[0]!.attributes.failures)
      expect(Number(doc.attributes.failures)).toBeGreaterThan(0)
    }))
})
