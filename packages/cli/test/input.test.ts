import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"

const root = path.resolve(__dirname, "../../..")
const demoText = readFileSync(path.join(root, "examples/scenarios/demo.json"), "utf8")
const utf8 = (text: string) => new TextEncoder().encode(text)

/** The issues a file's bytes are refused with ([] when it decodes). */
const issuesOf = (bytes: Uint8Array) =>
  Effect.map(Effect.either(Scenario.parseBytes(bytes, "x.json")), (r) => Either.isLeft(r) ? r.left.issues : [])

describe("scenario files: hostile bytes are refused before parsing, each with a clear issue", () => {
  it.effect("a UTF-8 byte-order mark is fine", () =>
    Effect.gen(function*() {
      const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(demoText)])
      expect(yield* issuesOf(bom)).toEqual([])
    }))

  it.effect("UTF-16, with or without a byte-order mark, is refused with a hint", () =>
    Effect.gen(function*() {
      const le = new Uint8Array([0xff, 0xfe, ...Array.from(utf8("{}")).flatMap((b) => [b, 0])])
      const [withMark] = yield* issuesOf(le)
      expect(withMark).toEqual({ path: "(file)", message: expect.stringContaining("is UTF-16") })
      expect(withMark!.message).toContain("save the file as UTF-8")
      const [withoutMark] = yield* issuesOf(le.subarray(2))
      expect(withoutMark!.message).toContain("looks like UTF-16 or UTF-32")
    }))

  it.effect("Latin-1 bytes are refused, naming the byte, its offset and line (not silently replaced)", () =>
    Effect.gen(function*() {
      const [issue] = yield* issuesOf(new Uint8Array([...utf8('{\n"name": "caf'), 0xe9, ...utf8('"}')]))
      expect(issue!.message).toBe(
        "is not UTF-8: byte 0xE9 at offset 14 (line 2) is not valid UTF-8 (Latin-1 or Windows-1252 text?); save the file as UTF-8"
      )
      // Overlong forms and surrogates are not UTF-8 either.
      expect((yield* issuesOf(new Uint8Array([0x22, 0xc0, 0xaf, 0x22]))).length).toBe(1)
      expect((yield* issuesOf(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]))).length).toBe(1)
    }))

  it.effect("deep nesting is refused by a scan of the text, not a stack overflow", () =>
    Effect.gen(function*() {
      const deep = "[".repeat(200_000) + "]".repeat(200_000)
      const [issue] = yield* issuesOf(utf8(`{"name": ${deep}}`))
      expect(issue).toEqual({ path: "(root)", message: expect.stringContaining(`deeper than ${Scenario.MAX_DEPTH} levels`) })
      // Brackets inside strings do not count.
      const inString = JSON.stringify({ ...JSON.parse(demoText), description: "[".repeat(1000) })
      expect(yield* issuesOf(utf8(inString))).toEqual([])
    }))

  it.effect("a top-level array, number or null is one short issue, not a dump of the schema", () =>
    Effect.gen(function*() {
      for (const [text, got] of [["[1, 2]", "an array"], ["42", "number 42"], ["null", "null"], ['"x"', 'string "x"']] as const) {
        const issues = yield* issuesOf(utf8(text))
        expect(issues).toEqual([{ path: "(root)", message: `expected a JSON object (a scenario), got ${got}` }])
      }
    }))

  it.effect("a huge bad value is echoed cut short; a number past the double range is not 'null'", () =>
    Effect.gen(function*() {
      const scenario = JSON.parse(demoText)
      scenario.devices[0].name = "-".repeat(1_000_000)
      const issues = yield* issuesOf(utf8(JSON.stringify(scenario)))
      const issue = issues.find((i) => i.path === "devices[0].name")!
      expect(issue.message.length).toBeLessThan(400)
      expect(issue.message).toContain("(1,000,002 characters in all)")
      const [infinite] = yield* issuesOf(utf8(demoText.replace(/"seed":\s*\d+/, '"seed": 1e309')))
      expect(infinite!.message).not.toContain("null")
      expect(infinite!.message).toContain("Infinity")
    }))

  it.effect("a workload interval of 0 (virtual time would never move) is refused", () =>
    Effect.gen(function*() {
      for (const kind of ["nic", "blk", "sensor"]) {
        const scenario = JSON.parse(demoText)
        scenario.workload = { ...scenario.workload, [kind]: { ...scenario.workload?.[kind], interval: 0 } }
        const issues = yield* issuesOf(utf8(JSON.stringify(scenario)))
        expect(issues, kind).toEqual([{ path: `workload.${kind}.interval`, message: "expected a mean interval of at least 1 µs (0.001 ms), got 0 ms" }])
      }
    }))

  it.effect("a text over the size limit is refused before it is parsed", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(Scenario.parse(" ".repeat(Scenario.MAX_FILE_BYTES + 1), "x.json"))
      expect(Either.isLeft(result) && result.left.issues).toEqual([
        { path: "(file)", message: "is 1,048,577 characters; a scenario file may have at most 1,048,576 bytes (1 MiB)" }
      ])
    }))

  it.effect("a file over the size limit is refused from its size, before it is read", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(path.join(os.tmpdir(), "devscope-input-"))
      const file = path.join(dir, "big.json")
      writeFileSync(file, " ".repeat(Scenario.MAX_FILE_BYTES + 1))
      const result = yield* Effect.async<{ code: number; stdout: string }>((resume) => {
        execFile(path.join(root, "node_modules/.bin/tsx"), ["--conditions=@devscope/source", path.join(root, "packages/cli/src/bin.ts"), "validate", file], { timeout: 60_000 }, (error, stdout, stderr) => {
          resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout: stdout + stderr }))
        })
      })
      expect(result.code).toBe(2)
      expect(result.stdout).toContain("(file): is 1,048,577 bytes; a scenario file may have at most 1,048,576 bytes (1 MiB)")
    }), 60_000)
})
