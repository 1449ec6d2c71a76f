/**
 * The machine-readable verdicts of a run: the JSON document of `--json` and the JUnit XML of
 * `--junit` (the formats are documented in Verdict.ts and docs/cli.md).
 * @internal
 */
import type { Guarantee, RunRecord } from "../Runner.js"
import type { GuaranteeResult, RunSource, RunsVerdict, RunVerdict } from "../Verdict.js"
import { passed } from "./record.js"
import * as Summary from "./summary.js"

export const FORMAT_VERSION = 1 as const

/**
 * The exit code of an interrupted run, by its reason (as the command exits: a shell's codes
 * for SIGINT and SIGTERM, timeout(1)'s for a timeout); 130 for any other reason.
 */
export const interruptedExit = (reason: string): 124 | 130 | 143 =>
  reason === "SIGTERM" ? 143 : reason === "timeout" ? 124 : 130

/** What each guarantee promises (docs/contract.md), in the summary's words. */
export const guaranteeTitles: { readonly [G in Guarantee]: string } = {
  G1: "no revoked access returned a value",
  G2: "every resource released once",
  G3: "no fiber outlived its unbind",
  G4: "every operation resolved once",
  G5: "no unreported or faulting DMA"
}

const guarantees = Object.keys(guaranteeTitles) as ReadonlyArray<Guarantee>

/** A word for a POSIX shell: bare when it is safe, else single-quoted. */
export const shellWord = (word: string): string =>
  /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`

/** The command line that replays a run (on QEMU when it ran there). */
export const replayCommand = (source: string, seed: number, backend?: "qemu" | undefined): string =>
  source === "demo"
    ? `devscope demo --seed ${seed}`
    : `devscope run ${shellWord(source)} --seed ${seed}${backend === "qemu" ? " --backend qemu" : ""}`

export const verdictOf = (record: RunRecord): RunVerdict["verdict"] =>
  record.interrupted !== undefined ? "interrupted" : passed(record) ? "passed" : "failed"

const exitCodeOf = (record: RunRecord): RunVerdict["exitCode"] =>
  record.interrupted !== undefined ? interruptedExit(record.interrupted.reason) : passed(record) ? 0 : 1

const guaranteeResults = (record: RunRecord): Array<GuaranteeResult> =>
  guarantees.map((guarantee) => {
    const shown = record.violations.filter((v) => v.guarantee === guarantee).length
    return { guarantee, title: guaranteeTitles[guarantee], held: shown === 0, shown }
  })

export const toJson = (record: RunRecord, source: RunSource): RunVerdict => {
  const verdict = verdictOf(record)
  const { dropped, interrupted } = record
  return {
    version: FORMAT_VERSION,
    verdict,
    exitCode: exitCodeOf(record),
    summary: interrupted === undefined
      ? Summary.verdict(record)
      : `interrupted at ${interrupted.at} ms of virtual time (${interrupted.reason}); ${Summary.verdict(record)}`,
    scenario: {
      name: source.name,
      ...(source.description === undefined ? {} : { description: source.description }),
      duration: source.duration
    },
    seed: record.seed,
    ...(record.backend === undefined ? {} : { backend: record.backend }),
    replay: { seed: record.seed, source: source.source, command: replayCommand(source.source, record.seed, record.backend) },
    endedAt: record.endedAt,
    wallMillis: record.wallMillis,
    guarantees: guaranteeResults(record),
    devices: record.devices,
    violationCount: record.violationCount,
    violations: record.violations,
    failures: record.failures,
    stalls: record.stalls,
    notes: record.notes,
    timeline: record.timeline,
    ...(interrupted === undefined ? {} : { interrupted: { reason: interrupted.reason, at: interrupted.at } }),
    dropped: { trace: dropped.trace }
  }
}

export const toJsonAll = (runs: ReadonlyArray<{ readonly record: RunRecord; readonly source: RunSource }>): RunsVerdict => {
  const verdicts = runs.map(({ record, source }) => toJson(record, source))
  const worst = (["interrupted", "failed"] as const).find((v) => verdicts.some((r) => r.verdict === v)) ?? "passed"
  // The exit code of the first run with the worst verdict (an interrupted run stops the rest).
  const exitCode = verdicts.find((r) => r.verdict === worst)?.exitCode ?? 0
  return { version: FORMAT_VERSION, verdict: worst, exitCode, runs: verdicts }
}

// ---------------------------------------------------------------------------------------
// JUnit XML

/**
 * Characters XML 1.0 cannot carry, even as character references: C0 controls but tab, line
 * feed and carriage return; U+FFFE, U+FFFF; unpaired surrogates. Each is written as visible
 * text (`\u001b`), so a message keeps saying what it contained.
 */
// eslint-disable-next-line no-control-regex
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

const visible = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/** Escapes text for XML element content. */
export const xmlText = (s: string): string =>
  s.replace(NOT_XML, visible).replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"))
    // "]]>" is harmless escaped; a lone "\r" would be read as a line feed.
    .replace(/\r/g, "&#13;")

/** Escapes text for a double-quoted XML attribute (tabs and line breaks kept as references). */
export const xmlAttr = (s: string): string =>
  xmlText(s).replace(/"/g, "&quot;").replace(/'/g, "&apos;").replace(/\n/g, "&#10;").replace(/\t/g, "&#9;")

const MESSAGE = 300

const firstLine = (lines: ReadonlyArray<string>) => {
  const line = lines[0] ?? ""
  return line.length <= MESSAGE ? line : `${line.slice(0, MESSAGE - 1)}…`
}

interface Case {
  readonly classname: string
  readonly name: string
  readonly seconds: number
  /** What broke, one line each; empty when it passed. */
  readonly problems: ReadonlyArray<string>
  /** An error (the run was stopped) rather than a failure. */
  readonly error?: string | undefined
  readonly type: string
}

const cases = (record: RunRecord, source: RunSource): Array<Case> => {
  const replay = replayCommand(source.source, record.seed, record.backend)
  const names = new Set(record.devices.map((d) => d.device))
  const out: Array<Case> = []
  for (const g of guarantees) {
    const mine = record.violations.filter((v) => v.guarantee === g)
    out.push({
      classname: `${source.name}.guarantees`,
      name: `${g} ${guaranteeTitles[g]}`,
      seconds: 0,
      type: g,
      problems: mine.length === 0 ? [] : [
        `${mine.length} violation(s) of ${g} shown (of ${record.violationCount} violation(s) in the run)`,
        ...mine.map((v) => `${v.device}: ${v.message}`)
      ]
    })
  }
  for (const d of record.devices) {
    const violations = record.violations.filter((v) => v.device === d.device)
    const failures = record.failures.filter((f) => f.device === d.device)
    const stalls = record.stalls.filter((s) => s.device === d.device)
    const problems = [
      ...violations.map((v) => `${v.guarantee}: ${v.message}`),
      ...failures.map((f) => `driver failure: ${f.where}: ${f.error} (at ${f.at} ms${f.count > 1 ? `, ${f.count} times` : ""})`),
      ...stalls.map((s) => `${s.outcome} at ${s.at} ms: ${s.what}${s.waitSites.length > 0 ? `; waiting in: ${s.waitSites.join("; ")}` : ""}`)
    ]
    out.push({
      classname: `${source.name}.devices`,
      name: `${d.device} (${d.kind} on ${d.bus})`,
      seconds: d.unbinds.reduce((n, u) => n + u.wallMillis, 0) / 1000,
      type: "device",
      problems: problems.length === 0 ? [] : [
        ...problems,
        `completed ${d.completed}, DeviceGone ${d.failedGone}, lost ${d.lost}, unbinds ${d.unbinds.length}, ` +
        `released ${d.released}, leaks ${d.leaks}, IOMMU faults ${d.iommuFaults}`
      ]
    })
  }
  // The run as a whole: what no device of the scenario is named for (a stall of the whole
  // run, a hung unload of a driver, the scenario's own fiber dying), and an interruption.
  const { interrupted } = record
  const problems = [
    ...record.violations.filter((v) => !names.has(v.device)).map((v) => `${v.guarantee} ${v.device}: ${v.message}`),
    ...record.failures.filter((f) => !names.has(f.device)).map((f) => `driver failure ${f.device}: ${f.where}: ${f.error}`),
    ...record.stalls.filter((s) => !names.has(s.device)).map((s) =>
      `${s.outcome} at ${s.at} ms: ${s.what}${s.waitSites.length > 0 ? `; waiting in: ${s.waitSites.join("; ")}` : ""}`
    )
  ]
  out.push({
    classname: `${source.name}.run`,
    name: "the run ended on its own, with no failure outside the devices",
    seconds: record.wallMillis / 1000,
    type: "run",
    problems,
    error: interrupted === undefined ? undefined : `interrupted at ${interrupted.at} ms of virtual time: ${interrupted.reason}`
  })
  return out.map((c) =>
    c.problems.length === 0 && c.error === undefined ? c : { ...c, problems: [...c.problems, `replay: ${replay}`] }
  )
}

const seconds = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0).toFixed(3)

const testcase = (c: Case) => {
  const open = `    <testcase classname="${xmlAttr(c.classname)}" name="${xmlAttr(c.name)}" time="${seconds(c.seconds)}"`
  if (c.error !== undefined) {
    return `${open}>\n      <error type="interrupted" message="${xmlAttr(c.error)}">${xmlText([c.error, ...c.problems].join("\n"))}</error>\n    </testcase>`
  }
  if (c.problems.length === 0) return `${open}/>`
  return `${open}>\n      <failure type="${xmlAttr(c.type)}" message="${xmlAttr(firstLine(c.problems))}">${
    xmlText(c.problems.join("\n"))
  }</failure>\n    </testcase>`
}

export const junitXml = (runs: ReadonlyArray<{ readonly record: RunRecord; readonly source: RunSource }>): string => {
  let tests = 0
  let failures = 0
  let errors = 0
  let time = 0
  const suites = runs.map(({ record, source }) => {
    const list = cases(record, source)
    const failed = list.filter((c) => c.problems.length > 0 && c.error === undefined).length
    const errored = list.filter((c) => c.error !== undefined).length
    tests += list.length
    failures += failed
    errors += errored
    time += record.wallMillis / 1000
    const properties = [
      ["source", source.source],
      ["seed", String(record.seed)],
      ["replay", replayCommand(source.source, record.seed, record.backend)],
      ["verdict", verdictOf(record)],
      ["violations", String(record.violationCount)],
      ["virtual-ms", String(record.endedAt)]
    ].map(([name, value]) => `      <property name="${xmlAttr(name!)}" value="${xmlAttr(value!)}"/>`)
    return [
      `  <testsuite name="${xmlAttr(source.name)}" tests="${list.length}" failures="${failed}" errors="${errored}" skipped="0" time="${
        seconds(record.wallMillis / 1000)
      }">`,
      "    <properties>",
      ...properties,
      "    </properties>",
      ...list.map(testcase),
      `    <system-out>${xmlText(Summary.summary(record))}</system-out>`,
      "  </testsuite>"
    ].join("\n")
  })
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="devscope" tests="${tests}" failures="${failures}" errors="${errors}" time="${seconds(time)}">`,
    ...suites,
    "</testsuites>",
    ""
  ].join("\n")
}
