/**
 * The docs check (`pnpm docs:check`, scripts/docs/check.ts): every relative link, anchor,
 * backticked file reference and TypeScript code block of the repository's markdown is
 * checked against the repository itself. The functions are exported for the tests
 * (scripts/docs/check.test.ts).
 *
 * Conventions the check relies on (documented for writers in check.ts):
 * - a fenced block whose info string is `ts` or `typescript` must type-check (strict, as a
 *   module, against the workspace sources); `ts fragment` marks a partial snippet, skipped
 *   and counted;
 * - files under docs/api/ (generated API reference) have their links checked, not their
 *   code blocks or backticked names (they are `declare` signatures).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

/** One thing the check found wrong, at a line of a markdown file (1-based). */
export interface Problem {
  /** The file, relative to the repository root (with `/`). */
  readonly file: string
  readonly line: number
  readonly message: string
}

export interface Counts {
  files: number
  /** Links to a file, a directory or an anchor inside the repository. */
  relativeLinks: number
  /** Links with a `#fragment` (in this file or another), checked against headings. */
  anchors: number
  /** `http(s):` and `mailto:` links: counted, never fetched. */
  externalLinks: number
  /** Backticked paths checked to exist. */
  fileReferences: number
  /** `ts` / `typescript` blocks type-checked. */
  codeBlocks: number
  /** `ts fragment` blocks, skipped. */
  fragments: number
}

export interface Result {
  readonly counts: Counts
  readonly problems: ReadonlyArray<Problem>
}

export interface Options {
  /** The repository root: paths are resolved and reported relative to it. */
  readonly root: string
  /** The markdown files to check (absolute, or relative to `root`). */
  readonly files: ReadonlyArray<string>
}

const toPosix = (p: string): string => p.split(path.sep).join("/")

// ---------------------------------------------------------------------------------------
// Which files

/** Directories whose code blocks are not type-checked (generated `declare` signatures). */
export const isGeneratedApi = (relative: string): boolean => relative.startsWith("docs/api/")

const listMarkdown = (dir: string): Array<string> => {
  if (!fs.existsSync(dir)) return []
  const out: Array<string> = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules") continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...listMarkdown(full))
    else if (entry.isFile() && entry.name.endsWith(".md")) out.push(full)
  }
  return out.sort()
}

const workspaceDirs = (root: string): Array<string> =>
  ["packages", "examples"].flatMap((top) => {
    const dir = path.join(root, top)
    if (!fs.existsSync(dir)) return []
    return fs.readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => path.join(dir, e.name))
      .sort()
  })

/**
 * The repository's documentation: README.md, CHANGELOG.md, docs/**, .changeset/*.md, and
 * every package's and example's README.md and CHANGELOG.md.
 */
export const defaultFiles = (root: string): Array<string> => {
  const files: Array<string> = []
  const add = (file: string) => {
    if (fs.existsSync(file) && fs.statSync(file).isFile()) files.push(file)
  }
  add(path.join(root, "README.md"))
  add(path.join(root, "CHANGELOG.md"))
  files.push(...listMarkdown(path.join(root, "docs")))
  const changesets = path.join(root, ".changeset")
  if (fs.existsSync(changesets)) {
    for (const name of fs.readdirSync(changesets).sort()) {
      if (name.endsWith(".md")) add(path.join(changesets, name))
    }
  }
  for (const dir of workspaceDirs(root)) {
    add(path.join(dir, "README.md"))
    add(path.join(dir, "CHANGELOG.md"))
  }
  return files
}

/** Files and directories given on a command line: directories are searched for `*.md`. */
export const expandArguments = (base: string, args: ReadonlyArray<string>): Array<string> =>
  args.flatMap((arg) => {
    const full = path.resolve(base, arg)
    if (fs.existsSync(full) && fs.statSync(full).isDirectory()) return listMarkdown(full)
    return [full]
  })

// ---------------------------------------------------------------------------------------
// Markdown, as far as the check needs it

export interface CodeBlock {
  /** The info string, trimmed (`ts`, `ts fragment`, `sh`, ...). */
  readonly info: string
  /** 1-based line of the opening fence. */
  readonly line: number
  /** The content, with the fence's indentation removed. */
  readonly code: string
}

export interface Heading {
  readonly text: string
  readonly line: number
}

export interface Parsed {
  readonly blocks: ReadonlyArray<CodeBlock>
  readonly headings: ReadonlyArray<Heading>
  /** The text outside code blocks, with each block's lines blanked (offsets keep their lines). */
  readonly prose: string
  /** Offset of the start of each line in `prose`. */
  readonly lineStarts: ReadonlyArray<number>
}

const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/

/** Splits a markdown file into fenced code blocks, headings and the rest. */
export const parseMarkdown = (text: string): Parsed => {
  const lines = text.split(/\r?\n/)
  const blocks: Array<CodeBlock> = []
  const headings: Array<Heading> = []
  const prose: Array<string> = []
  let i = 0
  // YAML front matter at the very top is not content.
  if (lines[0] === "---") {
    const end = lines.indexOf("---", 1)
    if (end > 0) {
      for (; i <= end; i++) prose.push("")
    }
  }
  for (; i < lines.length; i++) {
    const line = lines[i]!
    const fence = FENCE.exec(line)
    if (fence !== null && !(fence[2]!.startsWith("`") && fence[3]!.includes("`"))) {
      const indent = fence[1]!.length
      const marker = fence[2]!
      const body: Array<string> = []
      const start = i
      prose.push("")
      for (i++; i < lines.length; i++) {
        const inner = lines[i]!
        const close = /^\s*(`{3,}|~{3,})\s*$/.exec(inner)
        if (close !== null && close[1]![0] === marker[0] && close[1]!.length >= marker.length) break
        prose.push("")
        // Remove up to the fence's indentation.
        let strip = 0
        while (strip < indent && strip < inner.length && inner[strip] === " ") strip++
        body.push(inner.slice(strip))
      }
      if (i < lines.length) prose.push("")
      blocks.push({ info: fence[3]!.trim(), line: start + 1, code: body.join("\n") })
      continue
    }
    const atx = /^ {0,3}#{1,6}(?:\s+(.*?))?\s*$/.exec(line)
    if (atx !== null) {
      const content = (atx[1] ?? "").replace(/\s+#+\s*$/, "").replace(/^#+$/, "")
      headings.push({ text: content, line: i + 1 })
    } else if (
      i > 0 && /^ {0,3}(=+|-+)\s*$/.test(line) && lines[i - 1]!.trim() !== "" && prose[i - 1] !== "" &&
      !/^ {0,3}([-*+]|\d+[.)])\s/.test(lines[i - 1]!) && !/^ {0,3}#/.test(lines[i - 1]!) &&
      !/^\s*\|/.test(lines[i - 1]!)
    ) {
      // A setext heading: the paragraph line above is its text.
      headings.push({ text: lines[i - 1]!.trim(), line: i })
    }
    prose.push(line)
  }
  const joined = prose.join("\n")
  const lineStarts: Array<number> = [0]
  for (let k = 0; k < joined.length; k++) if (joined[k] === "\n") lineStarts.push(k + 1)
  return { blocks, headings, prose: joined, lineStarts }
}

/** The 1-based line of an offset in `parsed.prose`. */
export const lineOf = (parsed: Parsed, offset: number): number => {
  let lo = 0
  let hi = parsed.lineStarts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (parsed.lineStarts[mid]! <= offset) lo = mid
    else hi = mid - 1
  }
  return lo + 1
}

/** The text a heading renders to, as GitHub's slugger sees it (markup removed). */
export const headingText = (markdown: string): string =>
  markdown
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, "$1") // images: their alt text
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1") // links: their text
    .replace(/\[([^\]]*)\]\[[^\]]*\]/g, "$1") // reference links
    .replace(/<[^>]+>/g, "") // HTML tags
    .replace(/`+/g, "") // code spans keep their text
    .replace(/\*+/g, "") // emphasis
    .replace(/(^|\s)(_+)(?=\S)(.*?\S)\2(?=\s|$)/g, "$1$3") // _emphasis_ (not snake_case, not a lone `_tag`)
    .replace(/\\(.)/g, "$1") // escapes

/**
 * GitHub's heading anchors (github-slugger): lower-case, every character that is not a
 * letter, a digit, a space, `-` or `_` removed, spaces turned into `-`; a repeated slug gets
 * `-1`, `-2`, ... in order.
 */
export const slugs = (headings: ReadonlyArray<string>): Array<string> => {
  const seen = new Map<string, number>()
  return headings.map((heading) => {
    const base = headingText(heading)
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-")
    let slug = base
    let n = seen.get(base)
    if (n !== undefined) {
      do {
        n++
        slug = `${base}-${n}`
      } while (seen.has(slug))
      seen.set(base, n)
    }
    seen.set(slug, seen.get(slug) ?? 0)
    return slug
  })
}

/** Anchors of a markdown text: heading slugs, and explicit `<a name>` / `id` attributes. */
export const anchorsOf = (parsed: Parsed): Set<string> => {
  const anchors = new Set(slugs(parsed.headings.map((h) => h.text)))
  for (const match of parsed.prose.matchAll(/<[a-zA-Z][^>]*\s(?:name|id)\s*=\s*["']([^"']+)["'][^>]*>/g)) {
    anchors.add(match[1]!)
  }
  return anchors
}

/** Code spans of the prose: `[start, end)` offsets and their content. */
export const codeSpans = (prose: string): Array<{ start: number; end: number; content: string }> => {
  const spans: Array<{ start: number; end: number; content: string }> = []
  const re = /(`+)([\s\S]*?[^`])\1(?!`)/g
  for (let match = re.exec(prose); match !== null; match = re.exec(prose)) {
    // A code span does not cross a blank line (a paragraph's end).
    if (/\n\s*\n/.test(match[2]!)) {
      re.lastIndex = match.index + match[1]!.length
      continue
    }
    spans.push({ start: match.index, end: match.index + match[0].length, content: match[2]! })
  }
  return spans
}

export interface Link {
  readonly target: string
  readonly offset: number
}

/** Inline links and images `[text](target "title")`, reference definitions, autolinks. */
export const linksOf = (parsed: Parsed): Array<Link> => {
  const spans = codeSpans(parsed.prose)
  const inCode = (offset: number) => spans.some((s) => offset >= s.start && offset < s.end)
  const links: Array<Link> = []
  const text = parsed.prose
  // Link text: anything without brackets, or one level of nested brackets; not across a
  // blank line. Target: `<...>` or a run without spaces, with an optional title.
  const inline = /\[((?:[^[\]\n]|\n(?!\s*\n)|\[[^[\]]*\])*)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g
  for (const match of text.matchAll(inline)) {
    if (inCode(match.index)) continue
    // The link's target starts after `](`.
    let target = match[2]!
    if (target.startsWith("<") && target.endsWith(">")) target = target.slice(1, -1)
    links.push({ target, offset: match.index + match[0].indexOf("](") })
  }
  for (const match of text.matchAll(/^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)/gm)) {
    if (inCode(match.index)) continue
    let target = match[2]!
    if (target.startsWith("<") && target.endsWith(">")) target = target.slice(1, -1)
    links.push({ target, offset: match.index })
  }
  for (const match of text.matchAll(/<((?:https?|mailto):[^>\s]+)>/g)) {
    if (inCode(match.index)) continue
    links.push({ target: match[1]!, offset: match.index })
  }
  return links.sort((a, b) => a.offset - b.offset)
}

// ---------------------------------------------------------------------------------------
// The checks

/** Top-level directories a backticked path may start with. */
export const TOP_LEVEL = ["packages/", "examples/", "docs/", "scripts/", ".ci/", ".changeset/"]
/**
 * Directories of a package a backticked path may start with, relative to that package
 * (`internal/` relative to its `src/`).
 */
export const PACKAGE_LEVEL = ["src/", "test/", "dtslint/", "test-browser/", "internal/"]

const PATH_WORD = /^(?:\.{1,2}\/)?[\w@.-]+(?:\/[\w@.-]+)*\/?$/

/**
 * Whether a word of a code span names a repository file: it starts with a top-level
 * directory, a package directory, `../`, or ends in `.md`. Globs and placeholders are not.
 */
export const looksLikePath = (word: string): boolean => {
  if (!PATH_WORD.test(word) || word.includes("...")) return false
  if (word.startsWith("../")) return true
  if (TOP_LEVEL.some((top) => word.startsWith(top))) return true
  if (PACKAGE_LEVEL.some((dir) => word.startsWith(dir))) return true
  return word.endsWith(".md")
}

/** A package directory (`packages/x`, `examples/x`) a path is in or names, if any. */
const packageOf = (relative: string): string | undefined => {
  const match = /^((?:packages|examples)\/[^/]+)(?:\/|$)/.exec(relative)
  return match?.[1]
}

interface Context {
  readonly root: string
  readonly counts: Counts
  readonly problems: Array<Problem>
  readonly parsedCache: Map<string, Parsed | undefined>
}

const readParsed = (context: Context, file: string): Parsed | undefined => {
  if (!context.parsedCache.has(file)) {
    context.parsedCache.set(file, fs.existsSync(file) ? parseMarkdown(fs.readFileSync(file, "utf8")) : undefined)
  }
  return context.parsedCache.get(file)
}

const inside = (root: string, full: string): boolean => {
  const rel = path.relative(root, full)
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel))
}

const checkLink = (context: Context, file: string, parsed: Parsed, link: Link, report: (message: string) => void) => {
  const { target } = link
  if (/^(https?|mailto):/i.test(target)) {
    context.counts.externalLinks++
    return
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
    report(`link "${target}": only relative links, http(s): and mailto: are allowed`)
    return
  }
  context.counts.relativeLinks++
  const hash = target.indexOf("#")
  const rawPath = hash === -1 ? target : target.slice(0, hash)
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1))
  let resolved = file
  if (rawPath !== "") {
    let decoded: string
    try {
      decoded = decodeURIComponent(rawPath)
    } catch {
      report(`link "${target}": malformed`)
      return
    }
    resolved = decoded.startsWith("/")
      ? path.join(context.root, decoded)
      : path.resolve(path.dirname(file), decoded)
    if (!inside(context.root, resolved)) {
      report(`link "${target}" points outside the repository`)
      return
    }
    if (!fs.existsSync(resolved)) {
      report(`link "${target}": no such file or directory ${toPosix(path.relative(context.root, resolved))}`)
      return
    }
  }
  if (anchor === undefined) return
  context.counts.anchors++
  if (fs.statSync(resolved).isDirectory()) {
    report(`link "${target}": an anchor on a directory`)
    return
  }
  if (resolved.endsWith(".md")) {
    const targetParsed = resolved === file ? parsed : readParsed(context, resolved)
    if (targetParsed === undefined || !anchorsOf(targetParsed).has(anchor)) {
      const where = resolved === file ? "this file" : toPosix(path.relative(context.root, resolved))
      report(`link "${target}": no heading with anchor "#${anchor}" in ${where}`)
    }
    return
  }
  // Another file: GitHub's line anchors.
  const lines = /^L(\d+)(?:-L(\d+))?$/.exec(anchor)
  if (lines === null) {
    report(`link "${target}": "#${anchor}" is not a line anchor (#L10, #L10-L20)`)
    return
  }
  const count = fs.readFileSync(resolved, "utf8").split("\n").length
  if (Number(lines[2] ?? lines[1]) > count) report(`link "${target}": the file has ${count} lines`)
}

const checkFileReferences = (context: Context, file: string, parsed: Parsed) => {
  const relativeFile = toPosix(path.relative(context.root, file))
  const ownPackage = packageOf(relativeFile)
  // Package directories the text names, in order: a package-relative path (`test/x.ts`)
  // belongs to the doc's own package, else to one of those named before it.
  const named: Array<{ offset: number; dir: string }> = []
  for (const match of parsed.prose.matchAll(/(?:^|[^\w/.-])((?:packages|examples)\/[\w.-]+)/g)) {
    named.push({ offset: match.index, dir: match[1]! })
  }
  for (const span of codeSpans(parsed.prose)) {
    for (const raw of span.content.trim().split(/\s+/)) {
      // `file.ts:12:3`, `file.md#anchor`, trailing punctuation of prose inside the span.
      const word = raw.replace(/[,;)]+$/, "").replace(/(:\d+)+$/, "").replace(/#[\w-]*$/, "")
      if (!looksLikePath(word)) continue
      context.counts.fileReferences++
      const line = lineOf(parsed, span.start)
      const candidates: Array<string> = []
      if (TOP_LEVEL.some((top) => word.startsWith(top))) candidates.push(path.join(context.root, word))
      else if (PACKAGE_LEVEL.some((dir) => word.startsWith(dir))) {
        // The doc's own package, else the packages the text named before, the last first.
        const before = named.filter((n) => n.offset < span.start).map((n) => n.dir).reverse()
        for (const pkg of ownPackage !== undefined ? [ownPackage] : before) {
          candidates.push(path.join(context.root, pkg, word.startsWith("internal/") ? "src" : "", word))
        }
        candidates.push(path.resolve(path.dirname(file), word))
      } else {
        candidates.push(path.resolve(path.dirname(file), word), path.join(context.root, word))
      }
      const found = candidates.find((c) => inside(context.root, c) && fs.existsSync(c))
      if (found !== undefined) continue
      if (candidates.every((c) => !inside(context.root, c))) {
        context.problems.push({ file: relativeFile, line, message: `\`${word}\` points outside the repository` })
      } else {
        const tried = candidates.filter((c) => inside(context.root, c)).map((c) => toPosix(path.relative(context.root, c)))
        context.problems.push({
          file: relativeFile,
          line,
          message: `\`${word}\`: no such file (looked for ${Array.from(new Set(tried)).join(", ")})`
        })
      }
    }
  }
}

/** Whether a block's info string asks for a type check, or marks a fragment. */
export const blockKind = (info: string): "typescript" | "fragment" | "other" => {
  const words = info.split(/\s+/)
  const lang = words[0]?.toLowerCase()
  if (lang !== "ts" && lang !== "typescript") return "other"
  return words.slice(1).includes("fragment") ? "fragment" : "typescript"
}

// ---------------------------------------------------------------------------------------
// Type-checking the code blocks

interface VirtualBlock {
  readonly doc: string
  /** Line of the block's first content line in the markdown (1-based). */
  readonly firstLine: number
  readonly fileName: string
  readonly code: string
}

const compilerOptions = (root: string): ts.CompilerOptions => ({
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ["lib.es2022.d.ts"],
  types: ["node"],
  typeRoots: [path.join(root, "node_modules", "@types")],
  strict: true,
  exactOptionalPropertyTypes: true,
  noFallthroughCasesInSwitch: true,
  noImplicitOverride: true,
  skipLibCheck: true,
  noEmit: true,
  // Every block is a module of its own, with or without imports.
  moduleDetection: ts.ModuleDetectionKind.Force,
  customConditions: ["@devscope/source"]
})

/**
 * Type-checks the blocks as one Program of virtual files under `build/docs-check/` (inside
 * the repository, so `node_modules` resolution works; `@devscope/*` resolve to their sources
 * through the `@devscope/source` condition). A bare import that does not resolve from there
 * (a dependency of one package only, such as `@effect/platform`) is resolved as from each
 * workspace package in turn. Returns the problems, at markdown lines.
 */
export const typeCheck = (root: string, blocks: ReadonlyArray<VirtualBlock>): Array<Problem> => {
  if (blocks.length === 0) return []
  const options = compilerOptions(root)
  const virtual = new Map(blocks.map((b) => [b.fileName, b]))
  const host = ts.createCompilerHost(options, true)
  const realFileExists = host.fileExists.bind(host)
  const realReadFile = host.readFile.bind(host)
  const realGetSourceFile = host.getSourceFile.bind(host)
  host.fileExists = (name) => virtual.has(path.resolve(name)) || realFileExists(name)
  host.readFile = (name) => virtual.get(path.resolve(name))?.code ?? realReadFile(name)
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) => {
    const block = virtual.get(path.resolve(name))
    if (block !== undefined) return ts.createSourceFile(name, block.code, languageVersion, true)
    return realGetSourceFile(name, languageVersion, onError, shouldCreate)
  }
  const fallbacks = workspaceDirs(root).filter((dir) => fs.existsSync(path.join(dir, "package.json")))
  const cache = ts.createModuleResolutionCache(root, (s) => s, options)
  host.resolveModuleNameLiterals = (literals, containingFile, redirected, opts, containingSourceFile) =>
    literals.map((literal) => {
      const name = literal.text
      const mode = ts.getModeForUsageLocation(containingSourceFile, literal, opts)
      const first = ts.resolveModuleName(name, containingFile, opts, host, cache, redirected, mode)
      if (first.resolvedModule !== undefined || name.startsWith(".") || !virtual.has(path.resolve(containingFile))) {
        return first
      }
      for (const dir of fallbacks) {
        const from = path.join(dir, "src", "__docs_check__.ts")
        const retry = ts.resolveModuleName(name, from, opts, host, cache, redirected, mode)
        if (retry.resolvedModule !== undefined) return retry
      }
      return first
    })
  const program = ts.createProgram({ rootNames: blocks.map((b) => b.fileName), options, host })
  const problems: Array<Problem> = []
  const message = (d: ts.Diagnostic) => `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n  ")}`
  for (const d of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push({ file: "scripts/docs/lib.ts", line: 0, message: message(d) })
  }
  for (const block of blocks) {
    const source = program.getSourceFile(block.fileName)
    if (source === undefined) continue
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    for (const d of diagnostics) {
      const line = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line
      problems.push({ file: block.doc, line: block.firstLine + line, message: message(d) })
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------

/** Runs every check over `options.files`. */
export const check = (options: Options): Result => {
  const root = path.resolve(options.root)
  const counts: Counts = {
    files: 0,
    relativeLinks: 0,
    anchors: 0,
    externalLinks: 0,
    fileReferences: 0,
    codeBlocks: 0,
    fragments: 0
  }
  const context: Context = { root, counts, problems: [], parsedCache: new Map() }
  const blocks: Array<VirtualBlock> = []
  const scratch = path.join(root, "build", "docs-check")
  for (const given of options.files) {
    const file = path.resolve(root, given)
    const relative = toPosix(path.relative(root, file))
    if (!fs.existsSync(file)) {
      context.problems.push({ file: relative, line: 0, message: "no such file" })
      continue
    }
    counts.files++
    const parsed = readParsed(context, file)!
    for (const link of linksOf(parsed)) {
      const line = lineOf(parsed, link.offset)
      checkLink(context, file, parsed, link, (message) => context.problems.push({ file: relative, line, message }))
    }
    if (isGeneratedApi(relative)) continue
    checkFileReferences(context, file, parsed)
    for (const block of parsed.blocks) {
      const kind = blockKind(block.info)
      if (kind === "fragment") counts.fragments++
      if (kind !== "typescript") continue
      counts.codeBlocks++
      blocks.push({
        doc: relative,
        firstLine: block.line + 1,
        fileName: path.join(scratch, relative.replace(/[^\w.-]/g, "_"), `L${block.line}.ts`),
        code: block.code
      })
    }
  }
  context.problems.push(...typeCheck(root, blocks))
  const problems = context.problems.slice().sort((a, b) =>
    a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1
  )
  return { counts, problems }
}

/** `docs check: 14 files, 212 relative links, ..., 0 problems`. */
export const summary = (result: Result): string => {
  const c = result.counts
  const n = (count: number, one: string, many = `${one}s`) => `${count} ${count === 1 ? one : many}`
  return `docs check: ${n(c.files, "file")}, ${n(c.relativeLinks, "relative link")}, ${n(c.anchors, "anchor")}, ` +
    `${n(c.fileReferences, "file reference")}, ${n(c.codeBlocks, "code block")} type-checked ` +
    `(${n(c.fragments, "fragment")} skipped), ${n(c.externalLinks, "external link")} not fetched, ` +
    `${n(result.problems.length, "problem")}`
}

/** `docs/x.md:LINE: message`. */
export const formatProblem = (problem: Problem): string => `${problem.file}:${problem.line}: ${problem.message}`
