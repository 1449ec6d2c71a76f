/**
 * The JSDoc `@example`s of a package's sources, split into the ones @effect/docgen type-checks
 * and runs and the ones it does not.
 *
 * docgen (0.5.2) runs the examples of the module comment, of exported interfaces, type aliases,
 * functions (the first overload's comment), variables with an initializer, namespaces (and the
 * interfaces, type aliases and namespaces in them) and class methods. It prints, but does not
 * run, the examples on a class itself and on its properties; the comments on interface and type
 * members are printed inside the signature, examples included, and not run either. Those (and
 * any other `@example` in the sources, e.g. on a second overload) are the `extra` ones: api.ts
 * type-checks and runs them with the same compiler options, so every example is checked once.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

/** One `@example` code block. */
export interface Example {
  /** The source file, relative to the package (`src/Bus.ts`). */
  readonly file: string
  /** 1-based line of the comment's `@example` tag. */
  readonly line: number
  readonly code: string
}

/** What one package holds. */
export interface PackageExamples {
  /** How many examples docgen runs (it reports the number: the two must agree). */
  readonly docgen: number
  /** The examples docgen prints (or not) but does not run. */
  readonly extra: ReadonlyArray<Example>
}

/** A docgen.json `exclude` glob as a regular expression (`**`, `*` and `?`). */
const globToRegExp = (glob: string): RegExp =>
  new RegExp(
    `^${
      glob
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) =>
          part === "**/" || part === "**"
            ? ".*"
            : part === "*"
            ? "[^/]*"
            : part === "?"
            ? "[^/]"
            : part.replace(/[.+^${}()|[\]\\]/g, "\\$&")
        )
        .join("")
    }$`
  )

/** The module files docgen reads: `src/**\/*.ts` but the docgen.json's `exclude`, sorted. */
export const moduleFiles = (pkgDir: string): ReadonlyArray<string> => {
  const config = JSON.parse(fs.readFileSync(path.join(pkgDir, "docgen.json"), "utf8")) as {
    readonly exclude?: ReadonlyArray<string>
  }
  const exclude = (config.exclude ?? []).map(globToRegExp)
  return (fs.readdirSync(path.join(pkgDir, "src"), { recursive: true, encoding: "utf8" }) as Array<string>)
    .map((f) => path.posix.join("src", f.split(path.sep).join("/")))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !exclude.some((re) => re.test(f)))
    .sort()
}

interface Comment {
  readonly pos: number
  readonly text: string
}

/** Every `/** ... *\/` comment of the file, by position. */
const allDocComments = (sf: ts.SourceFile): Map<number, Comment> => {
  const found = new Map<number, Comment>()
  const text = sf.getFullText()
  const visit = (node: ts.Node) => {
    for (const range of ts.getLeadingCommentRanges(text, node.pos) ?? []) {
      const body = text.slice(range.pos, range.end)
      if (range.kind === ts.SyntaxKind.MultiLineCommentTrivia && body.startsWith("/**") && !found.has(range.pos)) {
        found.set(range.pos, { pos: range.pos, text: body })
      }
    }
    for (const child of node.getChildren(sf)) visit(child)
  }
  visit(sf)
  return found
}

const jsDocs = (node: ts.Node): ReadonlyArray<ts.JSDoc> => (node as { readonly jsDoc?: ReadonlyArray<ts.JSDoc> }).jsDoc ?? []

/** docgen reads the last JSDoc comment of a declaration. */
const lastDoc = (node: ts.Node): ts.JSDoc | undefined => jsDocs(node).at(-1)

const docText = (sf: ts.SourceFile, doc: ts.JSDoc | undefined) =>
  doc === undefined ? "" : sf.getFullText().slice(doc.pos, doc.end)

const isIgnored = (text: string) => /^\s*\*?\s*@(internal|ignore)\b/m.test(text)

const hasModifier = (node: ts.Node, kind: ts.SyntaxKind) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind)

const isExported = (node: ts.Node) => hasModifier(node, ts.SyntaxKind.ExportKeyword)

/**
 * The comments whose examples docgen runs, each with how many times (a variable statement
 * declaring two constants is read twice).
 */
const docgenComments = (sf: ts.SourceFile): Map<number, number> => {
  const runs = new Map<number, number>()
  const add = (doc: ts.JSDoc | undefined, times = 1) => {
    if (doc !== undefined) runs.set(doc.pos, (runs.get(doc.pos) ?? 0) + times)
  }
  const documented = (node: ts.Node, doc = lastDoc(node)) => isExported(node) && !isIgnored(docText(sf, doc))

  const first = sf.statements[0]
  if (first !== undefined) {
    const range = (ts.getLeadingCommentRanges(sf.getFullText(), first.getFullStart()) ?? [])[0]
    if (range !== undefined && range.kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      runs.set(range.pos, 1)
    }
  }

  const namespace = (node: ts.ModuleDeclaration) => {
    if (!documented(node)) return
    add(lastDoc(node))
    let body = node.body
    while (body !== undefined && ts.isModuleDeclaration(body)) body = body.body // `namespace A.B`
    if (body === undefined || !ts.isModuleBlock(body)) return
    for (const s of body.statements) {
      if ((ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) && documented(s)) add(lastDoc(s))
      else if (ts.isModuleDeclaration(s)) namespace(s)
    }
  }

  const functions = new Set<string>()
  for (const s of sf.statements) {
    if (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) {
      if (documented(s)) add(lastDoc(s))
    } else if (ts.isFunctionDeclaration(s)) {
      // The first overload's comment stands for the function.
      const name = s.name?.text ?? ""
      if (!functions.has(name) && documented(s)) add(lastDoc(s))
      functions.add(name)
    } else if (ts.isVariableStatement(s)) {
      const initialized = s.declarationList.declarations.filter((d) => d.initializer !== undefined).length
      if (initialized > 0 && documented(s)) add(lastDoc(s), initialized)
    } else if (ts.isModuleDeclaration(s)) {
      namespace(s)
    } else if (ts.isClassDeclaration(s) && documented(s)) {
      const methods = new Set<string>()
      for (const m of s.members) {
        if (!ts.isMethodDeclaration(m)) continue
        const key = `${hasModifier(m, ts.SyntaxKind.StaticKeyword) ? "static " : ""}${m.name.getText(sf)}`
        const doc = lastDoc(m)
        if (!methods.has(key) && !isIgnored(docText(sf, doc))) add(doc)
        methods.add(key)
      }
    }
  }
  return runs
}

/** The code blocks of the comment's `@example` tags (fences stripped), with their lines. */
export const examplesOf = (
  comment: string,
  firstLine: number
): ReadonlyArray<{ readonly line: number; readonly code: string }> => {
  const lines = comment
    .replace(/^\/\*\*/, "")
    .replace(/\*\/$/, "")
    .split("\n")
    .map((l) => l.replace(/^\s*\* ?/, ""))
  const found: Array<{ line: number; code: string }> = []
  let current: { line: number; body: Array<string> } | undefined
  let fenced = false
  const close = () => {
    if (current === undefined) return
    const body = current.body.join("\n").trim()
    const fence = /^(```|~~~)[^\n]*\n([\s\S]*)\n(```|~~~)$/.exec(body)
    found.push({ line: current.line, code: fence === null ? body : fence[2]! })
    current = undefined
  }
  lines.forEach((l, i) => {
    if (/^\s*(```|~~~)/.test(l)) fenced = !fenced
    const tag = fenced ? null : /^\s*@(\w+)/.exec(l)
    if (tag !== null) {
      close()
      if (tag[1] === "example") current = { line: firstLine + i, body: [l.replace(/^\s*@example\s?/, "")] }
    } else {
      current?.body.push(l)
    }
  })
  close()
  return found
}

/** The examples of a package (every module docgen reads: it needs the package's docgen.json). */
export const packageExamples = (pkgDir: string): PackageExamples => {
  let docgen = 0
  const extra: Array<Example> = []
  for (const file of moduleFiles(pkgDir)) {
    const text = fs.readFileSync(path.join(pkgDir, file), "utf8")
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
    const runs = docgenComments(sf)
    for (const comment of allDocComments(sf).values()) {
      const line = sf.getLineAndCharacterOfPosition(comment.pos).line + 1
      const examples = examplesOf(comment.text, line)
      const times = runs.get(comment.pos)
      if (times !== undefined) docgen += times * examples.length
      else for (const e of examples) extra.push({ file, ...e })
    }
  }
  return { docgen, extra }
}
