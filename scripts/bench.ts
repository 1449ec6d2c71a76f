/**
 * `pnpm bench [b1 b2 ...]`: every benchmark (or the ones named), each measured against its
 * baselines in the same process. A full run rewrites docs/benchmarks.md; a filtered run only
 * prints. The suites are in scripts/bench/.
 */
import * as fs from "node:fs"
import { performance } from "node:perf_hooks"
import * as b1 from "./bench/b1.js"
import * as b2 from "./bench/b2.js"
import * as b3 from "./bench/b3.js"
import * as b4 from "./bench/b4.js"
import * as b5 from "./bench/b5.js"
import * as b6 from "./bench/b6.js"
import * as b7 from "./bench/b7.js"
import { document, printSection, type Section } from "./bench/report.js"
import { sink } from "./bench/harness.js"

const suites = { b1, b2, b3, b4, b5, b6, b7 } as const
type Id = keyof typeof suites

const requested = process.argv.slice(2).map((a) => a.toLowerCase())
const unknown = requested.filter((a) => !(a in suites))
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(suites).join(", ")}`)
  process.exit(2)
}
const selected = (requested.length > 0 ? requested : Object.keys(suites)) as Array<Id>

const started = performance.now()
const sections: Array<Section> = []
for (const id of selected) {
  console.log(`\nrunning ${id}...`)
  const section = await suites[id].run()
  printSection(section)
  sections.push(section)
}
const seconds = (performance.now() - started) / 1000
console.log(`\n(${seconds.toFixed(0)} s; sink ${sink.value !== 0 ? "ok" : "?"})`)
if (requested.length === 0) {
  fs.writeFileSync("docs/benchmarks.md", document(sections, "pnpm bench", seconds))
  console.log("wrote docs/benchmarks.md")
} else {
  console.log("filtered run: docs/benchmarks.md not written")
}
