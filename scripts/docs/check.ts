/**
 * `pnpm docs:check [file or directory ...]`: checks the repository's markdown against the
 * repository itself, and exits 1 on any problem. Without arguments it checks README.md,
 * CHANGELOG.md, docs/**, .changeset/*.md and every package's and example's README.md and
 * CHANGELOG.md; arguments name other files, or directories to search for `*.md`.
 *
 * What it checks (scripts/docs/lib.ts):
 * - every relative link `[x](path)`, `[x](path#anchor)`, `[x](#anchor)` resolves to a file
 *   or directory inside the repository, and every anchor to a heading of that file
 *   (GitHub's slugs); `http(s):` and `mailto:` links are counted, not fetched;
 * - every backticked path that starts with packages/, examples/, docs/, scripts/, .ci/ or
 *   .changeset/, or ends in `.md`, exists; one that starts with src/, test/, dtslint/,
 *   test-browser/ or internal/ (under src/) is looked up in the doc's own package, or else
 *   in the packages the text named before it (`packages/testing/test/oracle.test.ts`
 *   ... `test/oracleFixture.ts`). Sections named in prose ("section 5") are not checked;
 * - every fenced block whose info string is `ts` or `typescript` type-checks (strict, as a
 *   module of its own, against the workspace sources and `effect`). Errors are reported at
 *   their markdown line: `docs/x.md:LINE: TS2304: ...`. A block meant to show a compile error
 *   states it with `// @ts-expect-error` on the line before, so the check proves it.
 *
 * **The `ts fragment` convention.** A block that is not a whole program (a few lines taken
 * out of a larger one, using names defined elsewhere) is marked with the info string
 * `ts fragment`: it is highlighted as TypeScript and skipped by the check (and counted). Use
 * it sparingly: a block a user would copy should compile as it is, with `declare const` for
 * the values it takes as given.
 *
 * Generated API reference under docs/api/ has its links checked, not its code blocks (they
 * are `declare` signatures).
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { check, defaultFiles, expandArguments, formatProblem, summary } from "./lib.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const args = process.argv.slice(2)
const files = args.length === 0 ? defaultFiles(root) : expandArguments(process.cwd(), args)
const result = check({ root, files })
for (const problem of result.problems) console.error(formatProblem(problem))
console.log(summary(result))
process.exitCode = result.problems.length > 0 ? 1 : 0
