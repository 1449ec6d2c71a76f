/**
 * The docs check can fail: small markdown fixtures with one problem of each kind, and a
 * clean one that passes. Fixtures are written under build/ (inside the repository, so their
 * code blocks resolve `@devscope/*` and `effect` as the real docs do).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { check, formatProblem, type Result, slugs, summary } from "./lib.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const dir = path.join(root, "build", `docs-check-test-${process.pid}`)
const rel = (name: string) => path.relative(root, path.join(dir, name)).split(path.sep).join("/")
const fence = "```"

const fixtures: Record<string, string> = {
  "clean.md": [
    "# Clean",
    "",
    "## Setup",
    "",
    "See [setup](#setup), [the second setup](#setup-1), [other](other.md#section-two),",
    "[a directory](sub), [a wrapped",
    "link](other.md) and [the site](https://effect.website).",
    "The bus is in `packages/core/src/Bus.ts`, and `other.md` says more (`ignored/not-a-path`).",
    "",
    "## Setup",
    "",
    `${fence}ts`,
    "import { Effect } from \"effect\"",
    "import { Driver } from \"@devscope/core\"",
    "",
    "const Edu = Driver.brand(\"edu\")",
    "export const name: string = Edu.name",
    "declare const n: number",
    "// @ts-expect-error: a number is not a string",
    "const s: string = n",
    "export const program = Effect.succeed(s)",
    fence,
    "",
    `${fence}ts fragment`,
    "bar.read(\"ID\") // uses names from elsewhere: skipped",
    fence,
    "",
    `${fence}sh`,
    "echo not checked",
    fence,
    ""
  ].join("\n"),
  "other.md": "# Other\n\n## Section two\n\nBack to [clean](clean.md#clean).\n",
  "sub/README.md": "# Sub\n",
  "broken.md": [
    "# Broken", // 1
    "",
    "A [missing file](missing.md).", // 3
    "A [bad anchor](other.md#section-three).", // 4
    "A [bad local anchor](#nowhere).", // 5
    "An [outside link](../../../outside.md).", // 6
    "A missing `docs/no-such-page.md` and `packages/core/src/NoSuch.ts`.", // 7
    "",
    `${fence}ts`, // 9
    "import { Effect } from \"effect\"", // 10
    "", // 11
    "export const n: number = Effect.succeed(1)", // 12: a type error
    fence,
    "",
    `${fence}typescript`, // 15
    "export const x = notDefinedAnywhere", // 16
    fence,
    ""
  ].join("\n"),
  "nocode-clean.md": "# Fine\n\nSee [fine](#fine) and `packages/core/src/Bus.ts`.\n",
  "nocode-broken.md": "# Broken\n\nSee [nothing](#nothing).\n"
}

let result: Result

beforeAll(() => {
  for (const [name, text] of Object.entries(fixtures)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    fs.writeFileSync(path.join(dir, name), text)
  }
  result = check({ root, files: ["clean.md", "other.md", "broken.md"].map((f) => path.join(dir, f)) })
}, 120_000)

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const problemsOf = (name: string) => result.problems.filter((p) => p.file === rel(name)).map(formatProblem)

describe("docs check", () => {
  it("GitHub's heading slugs, with duplicates numbered", () => {
    expect(slugs(["5. The unbind sequence", "The invariant oracle (`Oracle`)", "Setup", "Setup", "Setup-1", "A_b c"]))
      .toEqual(["5-the-unbind-sequence", "the-invariant-oracle-oracle", "setup", "setup-1", "setup-1-1", "a_b-c"])
    // Underscores are emphasis only in pairs: docgen's `### _tag (property)` keeps its `_`.
    expect(slugs(["_tag (property)", "An _emphasised_ __word__"])).toEqual(["_tag-property", "an-emphasised-word"])
  })

  it("passes a clean file, and counts what it checked", () => {
    expect(problemsOf("clean.md")).toEqual([])
    expect(problemsOf("other.md")).toEqual([])
    expect(result.counts).toMatchObject({
      files: 3,
      externalLinks: 1,
      codeBlocks: 3,
      fragments: 1
    })
    // clean.md: 5 relative links (3 with anchors); other.md: 1 (1); broken.md: 4 (2).
    expect(result.counts.relativeLinks).toBe(10)
    expect(result.counts.anchors).toBe(6)
    // clean.md: Bus.ts and other.md; broken.md: two.
    expect(result.counts.fileReferences).toBe(4)
  })

  it("reports each problem at its line", () => {
    const file = rel("broken.md")
    const found = problemsOf("broken.md")
    expect(found).toEqual([
      expect.stringMatching(new RegExp(`^${file}:3: link "missing.md": no such file`)),
      expect.stringMatching(new RegExp(`^${file}:4: link "other.md#section-three": no heading with anchor "#section-three"`)),
      expect.stringMatching(new RegExp(`^${file}:5: link "#nowhere": no heading with anchor "#nowhere" in this file`)),
      `${file}:6: link "../../../outside.md" points outside the repository`,
      expect.stringMatching(new RegExp(`^${file}:7: \`docs/no-such-page.md\`: no such file`)),
      expect.stringMatching(new RegExp(`^${file}:7: \`packages/core/src/NoSuch.ts\`: no such file`)),
      expect.stringMatching(new RegExp(`^${file}:12: TS2322: `)),
      expect.stringMatching(new RegExp(`^${file}:16: TS2304: Cannot find name 'notDefinedAnywhere'`))
    ])
    expect(summary(result)).toMatch(/^docs check: 3 files, .*, 8 problems$/)
  })

  it("exits 1 on a problem and 0 without, from the command line", () => {
    const tsx = path.join(root, "node_modules", ".bin", "tsx")
    const run = (name: string) =>
      spawnSync(tsx, ["--conditions=@devscope/source", "scripts/docs/check.ts", path.join(dir, name)], {
        cwd: root,
        encoding: "utf8"
      })
    const broken = run("nocode-broken.md")
    expect(broken.status).toBe(1)
    expect(broken.stderr).toContain(`${rel("nocode-broken.md")}:3: link "#nothing"`)
    expect(broken.stdout).toContain("docs check: 1 file, 1 relative link, 1 anchor, 0 file references")
    const clean = run("nocode-clean.md")
    expect(clean.status).toBe(0)
    expect(clean.stdout.trim()).toBe(
      "docs check: 1 file, 1 relative link, 1 anchor, 1 file reference, 0 code blocks type-checked " +
        "(0 fragments skipped), 0 external links not fetched, 0 problems"
    )
  }, 60_000)
})
