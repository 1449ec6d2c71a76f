/**
 * `pnpm run docs [--check]`: the API reference in docs/api/, generated from the sources of
 * every published package by @effect/docgen, with every JSDoc `@example` type-checked and run.
 * (`pnpm docs` without `run` is pnpm's own command that opens a package's homepage.)
 *
 * 1. Runs docgen in each package (two at a time) with the package's docgen.json: it reads
 *    `src/` (not `src/internal/`), requires `@since` on every export, type-checks the examples
 *    with scripts/docs/tsconfig.docgen.json (strict, `exactOptionalPropertyTypes`, the
 *    workspace's "@devscope/source" condition) and runs them with tsx. Its scratch output goes
 *    to the package's git-ignored `.docgen/`. `tsc` and `tsx` come from the workspace, and
 *    `NODE_OPTIONS=--conditions=@devscope/source` makes `@devscope/*` imports in the examples
 *    run from source as they type-check.
 * 2. The examples docgen prints but does not run (on classes, class properties and interface
 *    members: see examples.ts) are type-checked and run the same way, from `.docgen/extra/`.
 * 3. The module pages go to docs/api/<package>/<Module>.ts.md without the Jekyll scaffolding
 *    (front matter, `_config.yml` and its link to the homepage, `index.md` stubs); `{@link}`s
 *    become links within the reference and mentions of docs/*.md links to them. Nothing in
 *    the output may point outside the repository. docs/api/README.md indexes the packages and
 *    their modules.
 *
 * `--check` regenerates into a temporary directory and fails if docs/api differs (a stale
 * reference). `--keep` leaves the scratch directories.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { type Example, packageExamples } from "./examples.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const bin = (name: string) => path.join(root, "node_modules/.bin", name)

/** The documented packages, in the order of the index. */
const packageDirs = [
  "packages/core",
  "packages/sim",
  "packages/qemu",
  "packages/testing",
  "packages/cli",
  "examples/sensor",
  "examples/nic",
  "examples/blk"
]

const args = process.argv.slice(2)
const unknownArgs = args.filter((a) => a !== "--check" && a !== "--keep")
if (unknownArgs.length > 0) {
  console.error(`unknown argument(s): ${unknownArgs.join(" ")}; usage: pnpm run docs [--check] [--keep]`)
  process.exit(2)
}
const check = args.includes("--check")
const keep = args.includes("--keep")

interface Package {
  readonly dir: string
  readonly name: string
  /** The directory under docs/api/: the name without `@devscope/`. */
  readonly slug: string
  readonly description: string
}

const packages: ReadonlyArray<Package> = packageDirs.map((dir) => {
  const json = JSON.parse(fs.readFileSync(path.join(root, dir, "package.json"), "utf8")) as {
    name: string
    description?: string
  }
  if (!fs.existsSync(path.join(root, dir, "docgen.json"))) throw new Error(`${dir} has no docgen.json`)
  return { dir, name: json.name, slug: json.name.replace(/^@devscope\//, ""), description: json.description ?? "" }
})

// --- running things --------------------------------------------------------------------------

const env = {
  ...process.env,
  PATH: `${path.join(root, "node_modules/.bin")}${path.delimiter}${process.env.PATH ?? ""}`,
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --conditions=@devscope/source`.trim(),
  NO_COLOR: "1",
  FORCE_COLOR: "0"
}

class Failed extends Error {}

/** No single process may take longer (an example that never ends would hang the run). */
const TIMEOUT_MS = 5 * 60_000

const run = (command: string, argv: ReadonlyArray<string>, cwd: string): Promise<string> =>
  new Promise((resolve, reject) => {
    // A process group of its own, so a timeout also ends what it started (docgen's tsc and tsx).
    const child = spawn(command, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let output = ""
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
    }, TIMEOUT_MS)
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code) => {
      clearTimeout(timer)
      if (code === 0 && !timedOut) return resolve(output)
      const where = path.relative(root, cwd) || "."
      const what = timedOut
        ? `did not end within ${TIMEOUT_MS / 1000} s (an example that never finishes? a fiber that never ends keeps Node alive)`
        : `exited with ${code}`
      reject(new Failed(`${path.basename(command)} ${argv.join(" ")} (in ${where}) ${what}:\n${output}`))
    })
  })

/**
 * Runs the jobs, at most `limit` at a time. After a failure no new job starts; the first
 * failure is reported once the running ones ended.
 */
const pool = async <A>(limit: number, jobs: ReadonlyArray<() => Promise<A>>): Promise<Array<A>> => {
  const results: Array<A> = new Array(jobs.length)
  const errors: Array<unknown> = []
  let next = 0
  const worker = async () => {
    while (next < jobs.length && errors.length === 0) {
      const i = next++
      try {
        results[i] = await jobs[i]!()
      } catch (e) {
        errors.push(e)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker))
  if (errors.length > 0) throw errors[0]
  return results
}

// --- docgen ----------------------------------------------------------------------------------

const scratch = (pkg: Package) => path.join(root, pkg.dir, ".docgen")

interface DocgenRun {
  readonly modules: number
  readonly examples: number
}

const docgen = async (pkg: Package): Promise<DocgenRun> => {
  // Not the whole .docgen/: the extra examples (its extra/) may be running.
  fs.rmSync(path.join(scratch(pkg), "modules"), { recursive: true, force: true })
  const output = await run(bin("docgen"), [], path.join(root, pkg.dir))
  const modules = /(\d+) module\(s\) found/.exec(output)
  const examples = /(\d+) example\(s\) found/.exec(output)
  if (modules === null || (examples === null && !/No examples found/.test(output))) {
    throw new Failed(`docgen in ${pkg.dir}: could not read its counts from its output:\n${output}`)
  }
  return { modules: Number(modules[1]), examples: examples === null ? 0 : Number(examples[1]) }
}

// --- the examples docgen does not run --------------------------------------------------------

const extraDir = path.join(root, ".docgen/extra")

/** Type-checks (one tsc) and runs (one tsx) the extra examples of every package. */
const runExtra = async (extra: ReadonlyArray<{ readonly pkg: Package; readonly example: Example }>) => {
  fs.rmSync(extraDir, { recursive: true, force: true })
  for (const pkg of packages) fs.rmSync(path.join(scratch(pkg), "extra"), { recursive: true, force: true })
  if (extra.length === 0) return
  fs.mkdirSync(extraDir, { recursive: true })
  // Each example sits in its package (so `@devscope/<package>` resolves to the package itself)
  // and is a module of its own.
  const files = extra.map(({ example, pkg }) => {
    const dir = path.join(scratch(pkg), "extra")
    fs.mkdirSync(dir, { recursive: true })
    const file = path.join(dir, `${example.file.replace(/\//g, "-")}-line${example.line}.ts`)
    const assert = example.code.includes("assert.") ? `import * as assert from "node:assert"\n` : ""
    fs.writeFileSync(file, `// ${pkg.dir}/${example.file}:${example.line}\n${assert}${example.code}\n\nexport {}\n`)
    return path.relative(extraDir, file).split(path.sep).join("/")
  })
  const tsconfig = path.join(extraDir, "tsconfig.json")
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({ extends: "../../scripts/docs/tsconfig.docgen.json", files }, null, 2) + "\n"
  )
  fs.writeFileSync(path.join(extraDir, "index.ts"), files.map((f) => `import "${f}"\n`).join(""))
  await run(bin("tsc"), ["--noEmit", "--project", tsconfig], extraDir)
  await run(bin("tsx"), ["--tsconfig", tsconfig, path.join(extraDir, "index.ts")], extraDir)
}

// --- the pages -------------------------------------------------------------------------------

/** `@devscope/core` → the GitHub anchor of its heading (`devscopecore`). */
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-")

interface Page {
  /** Relative to the package's directory under docs/api (`Bus.ts.md`). */
  readonly path: string
  /** The module's file name (`Bus.ts`). */
  readonly module: string
  readonly markdown: string
  /** Entry name (`Service`, `make`) → its anchor, from the table of contents. */
  readonly entries: ReadonlyMap<string, string>
}

const readPages = (pkg: Package): ReadonlyArray<Page> => {
  const dir = path.join(scratch(pkg), "modules")
  return (fs.readdirSync(dir, { recursive: true, encoding: "utf8" }) as Array<string>)
    .map((f) => f.split(path.sep).join("/"))
    .filter((f) => f.endsWith(".ts.md"))
    .sort()
    .map((f) => {
      const markdown = fs.readFileSync(path.join(dir, f), "utf8")
      const entries = new Map<string, string>()
      for (const m of markdown.matchAll(/^\s*- \[([^\]]+)\]\(#([^)]+)\)$/gm)) {
        const name = m[1]!.replace(/ \([a-z ]+\)$/, "")
        if (!entries.has(name)) entries.set(name, `#${m[2]}`)
      }
      return { path: f, module: path.posix.basename(f, ".md"), markdown, entries }
    })
}

/** The module's overview, first sentence, on one line (empty if it has none). */
const overview = (page: Page): string => {
  const section = /^## .* overview\n\n([\s\S]*?)\n\n/m.exec(page.markdown)
  const text = section?.[1]
  if (text === undefined || text.startsWith("Added in")) return ""
  const paragraph = text.replace(/\s*\n\s*/g, " ").trim()
  // The first full stop that ends a sentence (not "e.g." or "i.e.").
  const end = /(?<!\be\.g|\bi\.e|\betc)\.(?=\s|$)/.exec(paragraph)
  return (end === null ? paragraph : paragraph.slice(0, end.index + 1)).replace(/:$/, ".")
}

/** Rewrites the text of a page outside code (fenced or inline). */
const outsideCode = (markdown: string, rewrite: (text: string) => string): string => {
  let fence: string | undefined
  return markdown
    .split("\n")
    .map((line) => {
      const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1]
      if (fence !== undefined) {
        if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined
        return line
      }
      if (marker !== undefined) {
        fence = marker
        return line
      }
      return line
        .split(/(`[^`]*`)/)
        .map((part, i) => (i % 2 === 1 ? part : rewrite(part)))
        .join("")
    })
    .join("\n")
}

/**
 * Prose: `{@link X}` becomes code, linked when `resolve` knows where `X` is documented, and a
 * mention of docs/<guide>.md a link to it (`up` leads from the page to docs/api).
 */
const prose = (text: string, up: string, resolve: (name: string) => string | undefined = () => undefined) =>
  text
    .replace(/\{@link\s+([^}\s|]+)(?:\s*\|\s*|\s+)?([^}]*)\}/g, (_, name: string, label: string) => {
      const shown = `\`${label.trim() === "" ? name : label.trim()}\``
      const target = resolve(name)
      return target === undefined ? shown : `[${shown}](${target})`
    })
    .replace(/(?<![[/\w])docs\/([\w-]+\.md)\b/g, (mention, file: string) =>
      fs.existsSync(path.join(root, "docs", file)) ? `[${mention}](${up}../${file})` : mention
    )

const render = (pkg: Package, page: Page, pages: ReadonlyArray<Page>): string => {
  const depth = page.path.split("/").length // docs/api/<slug>/<path>
  const up = "../".repeat(depth)
  const toIndex = `${up}README.md`
  const bySibling = new Map(pages.map((p) => [p.module.replace(/\.ts$/, ""), p]))
  const link = (target: Page, entry: string | undefined) => {
    const file = path.posix.relative(path.posix.dirname(page.path), target.path)
    return `${target === page ? "" : file}${entry ?? ""}`
  }
  const resolveLink = (name: string): string | undefined => {
    const [head, ...rest] = name.split(".")
    const own = page.entries.get(head!)
    if (own !== undefined) return link(page, own)
    const other = bySibling.get(head!)
    if (other !== undefined) {
      const entry = rest.length > 0 ? other.entries.get(rest[0]!) : undefined
      return rest.length === 0 || entry !== undefined ? link(other, entry) : undefined
    }
    return undefined
  }
  const body = page.markdown
    // The Jekyll front matter (prettier turned its opening `---` into `***`).
    .replace(/^(?:\*\*\*|---)\n[\s\S]*?\n---\n+/, "")
    .replace(/^<h2 class="text-delta">Table of contents<\/h2>$/m, "## Table of contents")
  const rewritten = outsideCode(body, (text) => prose(text, up, resolveLink))
  const header = `[API reference](${toIndex}) / [${pkg.name}](${toIndex}#${anchor(pkg.name)})\n\n# ${page.module}\n\n`
  return `${header}${rewritten.trimEnd()}\n`
}

interface Generated {
  readonly pkg: Package
  readonly pages: ReadonlyArray<Page>
  readonly docgen: DocgenRun
  readonly extra: number
}

const write = (out: string, generated: ReadonlyArray<Generated>) => {
  fs.rmSync(out, { recursive: true, force: true })
  const index: Array<string> = [
    "# API reference",
    "",
    "Generated from the sources of the published packages by `pnpm run docs` (@effect/docgen,",
    "through [scripts/docs/api.ts](../../scripts/docs/api.ts)): do not edit, regenerate. Every",
    "`@example` in these pages is type-checked (strict, `exactOptionalPropertyTypes`) and run;",
    "`pnpm run docs --check` fails when they are stale. The guides are in [docs/](../).",
    ""
  ]
  for (const { pkg, pages } of generated) {
    index.push(`## ${pkg.name}`, "", `${pkg.description} ([package](../../${pkg.dir})).`, "")
    if (!pages.some((p) => p.path === "index.ts.md")) index.push(importNote(pkg), "")
    for (const page of pages) {
      const file = path.join(out, pkg.slug, page.path)
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, render(pkg, page, pages))
      const summary = prose(overview(page), "") ||
        (page.path === "index.ts.md" ? `The entry point: what \`${pkg.name}\` exports.` : "")
      index.push(`- [${page.module}](${pkg.slug}/${page.path})${summary === "" ? "" : `: ${summary}`}`)
    }
    index.push("")
  }
  fs.writeFileSync(path.join(out, "README.md"), `${index.join("\n").trimEnd()}\n`)
}

/**
 * For a package whose index is not documented (it only re-exports): everything is imported
 * from the package, and which modules are namespaces there.
 */
const importNote = (pkg: Package): string => {
  const index = fs.readFileSync(path.join(root, pkg.dir, "src/index.ts"), "utf8")
  const namespaces = [...index.matchAll(/^export \* as (\w+) from "\.\/([\w/]+)\.js"/gm)].map(
    ([, name, module]) => `${module}.ts is \`${name}\``
  )
  return `Everything is imported from \`${pkg.name}\`` +
    (namespaces.length > 0 ? `, where ${namespaces.join(", ")}.` : ".")
}

/** Every file under `dir`, relative, sorted. */
const listFiles = (dir: string): Array<string> =>
  fs.existsSync(dir)
    ? (fs.readdirSync(dir, { recursive: true, encoding: "utf8" }) as Array<string>)
        .filter((f) => fs.statSync(path.join(dir, f)).isFile())
        .map((f) => f.split(path.sep).join("/"))
        .sort()
    : []

/**
 * Anything that points outside the repository: absolute URLs and paths, relative links that
 * leave it or name a file that does not exist. `out` holds the pages that will be `target`.
 */
const badLinks = (out: string, target: string): Array<string> =>
  listFiles(out).flatMap((f) =>
    fs
      .readFileSync(path.join(out, f), "utf8")
      .split("\n")
      .flatMap((line, i) => {
        const where = `docs/api/${f}:${i + 1}`
        if (/\b(?:https?|file):\/\//.test(line)) return [`${where}: ${line.trim()}`]
        return [...line.matchAll(/\]\(([^)#\s]*)(?:#[^)]*)?\)/g)].flatMap(([, link]) => {
          if (link === undefined || link === "") return []
          if (link.startsWith("/")) return [`${where}: ${link}`]
          const inOut = path.resolve(path.dirname(path.join(out, f)), link)
          if (inOut === out || inOut.startsWith(out + path.sep)) return fs.existsSync(inOut) ? [] : [`${where}: ${link}`]
          const resolved = path.resolve(path.dirname(path.join(target, f)), link)
          const inside = resolved === root || resolved.startsWith(root + path.sep)
          return inside && fs.existsSync(resolved) ? [] : [`${where}: ${link}`]
        })
      })
  )

// --- main ------------------------------------------------------------------------------------

const started = performance.now()
const target = path.join(root, "docs/api")
const out = check ? fs.mkdtempSync(path.join(os.tmpdir(), "devscope-api-")) : target

const cleanup = () => {
  if (keep) return
  for (const pkg of packages) fs.rmSync(scratch(pkg), { recursive: true, force: true })
  fs.rmSync(path.join(root, ".docgen"), { recursive: true, force: true })
  if (check) fs.rmSync(out, { recursive: true, force: true })
}

try {
  const found = packages.map((pkg) => ({ pkg, ...packageExamples(path.join(root, pkg.dir)) }))
  const extra = found.flatMap(({ extra, pkg }) => extra.map((example) => ({ pkg, example })))
  // The extra examples first: one tsc and one tsx, quick to fail.
  const jobs: Array<() => Promise<DocgenRun | undefined>> = [
    () => runExtra(extra).then(() => undefined),
    ...packages.map((pkg) => () => docgen(pkg))
  ]
  const runs = (await pool(2, jobs)).slice(1) as Array<DocgenRun>
  const generated: Array<Generated> = packages.map((pkg, i) => ({
    pkg,
    pages: readPages(pkg),
    docgen: runs[i]!,
    extra: found[i]!.extra.length
  }))
  for (const [i, g] of generated.entries()) {
    // Our idea of which examples docgen runs must be docgen's, or some would be run twice or never.
    if (g.docgen.examples !== found[i]!.docgen) {
      throw new Failed(
        `${g.pkg.dir}: docgen ran ${g.docgen.examples} examples, scripts/docs/examples.ts expected ` +
          `${found[i]!.docgen}: its model of docgen is out of date`
      )
    }
    if (g.pages.length !== g.docgen.modules) {
      throw new Failed(`${g.pkg.dir}: docgen found ${g.docgen.modules} modules but wrote ${g.pages.length} pages`)
    }
  }
  write(out, generated)
  const bad = badLinks(out, target)
  if (bad.length > 0) throw new Failed(`links that point outside the repository or nowhere:\n${bad.join("\n")}`)

  for (const g of generated) {
    const total = g.docgen.examples + g.extra
    console.log(
      `  ${g.pkg.name}: ${g.pages.length} modules, ${total} examples` +
        (g.extra > 0 ? ` (${g.docgen.examples} by docgen, ${g.extra} not run by docgen)` : "")
    )
  }
  const modules = generated.reduce((n, g) => n + g.pages.length, 0)
  const examples = generated.reduce((n, g) => n + g.docgen.examples + g.extra, 0)
  console.log(
    `api docs: ${modules} modules, ${examples} examples type-checked and run, across ${generated.length} packages` +
      ` (${((performance.now() - started) / 1000).toFixed(1)} s)`
  )

  if (check) {
    const want = listFiles(out)
    const have = listFiles(target)
    const differ = [...new Set([...want, ...have])]
      .sort()
      .filter(
        (f) =>
          !want.includes(f) ||
          !have.includes(f) ||
          fs.readFileSync(path.join(out, f), "utf8") !== fs.readFileSync(path.join(target, f), "utf8")
      )
    if (differ.length > 0) {
      throw new Failed(`docs/api is stale (run \`pnpm run docs\`); differing:\n${differ.map((f) => `  docs/api/${f}`).join("\n")}`)
    }
    console.log("docs/api is up to date")
  } else {
    console.log(`wrote ${path.relative(root, out)}/`)
  }
  cleanup()
} catch (e) {
  console.error(e instanceof Failed ? e.message : e)
  console.error("(docgen's scratch output is left in the packages' .docgen/ directories; the next run removes it)")
  if (check) fs.rmSync(out, { recursive: true, force: true })
  process.exitCode = 1
}
