/**
 * The public modules of every published package (the files directly in `src/`, which the
 * package exports) declare their own types: none is an alias or a re-export of a type of
 * `src/internal/`, and no exported signature names an internal type. Otherwise an editor shows
 * no field docs for it and the published `.d.ts` points into `dist/internal/`.
 *
 * The check reads the sources with the TypeScript parser only (no build, no type checker):
 * every name a public module imports from `./internal/` must stay out of the types of its
 * exports.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "../../..")
const packages = ["core", "sim", "testing", "cli"]

const isInternal = (specifier: string) => specifier.startsWith("./internal/")

const hasExport = (node: ts.Node) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)

const isPrivate = (node: ts.Node) =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.PrivateKeyword) ||
  ((ts.isPropertyDeclaration(node) || ts.isMethodDeclaration(node)) && ts.isPrivateIdentifier(node.name))

/** The leftmost identifier of `a.b.c` (an entity name or a property access). */
const rootOf = (node: ts.Node): ts.Identifier | undefined => {
  if (ts.isIdentifier(node)) return node
  if (ts.isQualifiedName(node)) return rootOf(node.left)
  if (ts.isPropertyAccessExpression(node)) return rootOf(node.expression)
  return undefined
}

/**
 * The exports of one public module that expose a type of `src/internal/`: one line each,
 * `Name: what`.
 */
const internalExposures = (fileName: string, text: string): Array<string> => {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const internalNames = new Map<string, string>()
  const locals = new Map<string, ts.Node>()
  const found: Array<string> = []

  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
      const from = statement.moduleSpecifier.text
      const clause = statement.importClause
      if (!isInternal(from) || clause === undefined) continue
      if (clause.name) internalNames.set(clause.name.text, from)
      const bindings = clause.namedBindings
      if (bindings && ts.isNamespaceImport(bindings)) internalNames.set(bindings.name.text, from)
      if (bindings && ts.isNamedImports(bindings)) for (const e of bindings.elements) internalNames.set(e.name.text, from)
    } else if (
      !hasExport(statement) && (ts.isTypeAliasDeclaration(statement) || ts.isInterfaceDeclaration(statement))
    ) {
      locals.set(statement.name.text, statement)
    }
  }

  /** The internal types a type (or a signature) names, local helper types followed. */
  const visited = new Set<ts.Node>()
  const internalTypesIn = (node: ts.Node | undefined, into: Set<string> = new Set()): Set<string> => {
    // Private members are not part of the public type; bodies and initializers are not types.
    if (node === undefined || isPrivate(node) || ts.isBlock(node)) return into
    const name = ts.isTypeReferenceNode(node)
      ? node.typeName
      : ts.isExpressionWithTypeArguments(node)
      ? node.expression
      : ts.isTypeQueryNode(node)
      ? node.exprName
      : undefined
    if (name !== undefined) {
      const id = rootOf(name)
      if (id !== undefined && internalNames.has(id.text)) into.add(name.getText(source))
      const local = id !== undefined && id === name ? locals.get(id.text) : undefined
      if (local !== undefined && !visited.has(local)) {
        visited.add(local)
        internalTypesIn(local, into)
      }
    }
    if (ts.isImportTypeNode(node)) {
      const argument = node.argument
      if (ts.isLiteralTypeNode(argument) && ts.isStringLiteral(argument.literal) && isInternal(argument.literal.text)) {
        into.add(node.getText(source))
      }
    }
    ts.forEachChild(node, (child) => {
      if ((ts.isPropertyDeclaration(child) || ts.isParameter(child)) && child.initializer !== undefined) {
        internalTypesIn(child.type, into)
        return
      }
      internalTypesIn(child, into)
    })
    return into
  }

  const report = (name: string, what: string, types: Set<string>) => {
    if (types.size > 0) found.push(`${name}: ${what} ${[...types].join(", ")}`)
  }

  /** `ambient`: in a `declare namespace`, where every declaration is exported. */
  const check = (statements: ts.NodeArray<ts.Statement>, prefix: string, ambient: boolean) => {
    for (const statement of statements) {
      if (ts.isExportDeclaration(statement)) {
        const from = statement.moduleSpecifier
        if (from !== undefined && ts.isStringLiteral(from) && isInternal(from.text)) {
          found.push(`${statement.getText(source)}: a re-export of ${from.text}`)
        } else if (from === undefined && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
          for (const e of statement.exportClause.elements) {
            const local = (e.propertyName ?? e.name).text
            if (internalNames.has(local)) found.push(`${prefix}${e.name.text}: a re-export of ${internalNames.get(local)}`)
            const declaration = locals.get(local)
            if (declaration !== undefined) report(`${prefix}${e.name.text}`, "names", internalTypesIn(declaration))
          }
        }
        continue
      }
      if (ts.isExportAssignment(statement)) {
        report(`${prefix}default`, "is", internalTypesIn(statement.expression))
        continue
      }
      if (!ambient && !hasExport(statement)) continue
      if (ts.isImportEqualsDeclaration(statement)) {
        const id = rootOf(statement.moduleReference)
        if (id !== undefined && internalNames.has(id.text)) {
          found.push(`${prefix}${statement.name.text}: an alias of ${statement.moduleReference.getText(source)}`)
        }
      } else if (ts.isTypeAliasDeclaration(statement)) {
        report(`${prefix}${statement.name.text}`, "a type alias naming", internalTypesIn(statement))
      } else if (
        ts.isInterfaceDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isFunctionDeclaration(statement) ||
        ts.isEnumDeclaration(statement)
      ) {
        const name = statement.name?.text ?? "default"
        const types = new Set<string>()
        statement.forEachChild((child) => void internalTypesIn(child, types))
        report(`${prefix}${name}`, "names", types)
      } else if (ts.isModuleDeclaration(statement) && statement.body !== undefined && ts.isModuleBlock(statement.body)) {
        const declared = (ts.getModifiers(statement) ?? []).some((m) => m.kind === ts.SyntaxKind.DeclareKeyword)
        check(statement.body.statements, `${prefix}${statement.name.getText(source)}.`, ambient || declared)
      } else if (ts.isVariableStatement(statement)) {
        for (const declaration of statement.declarationList.declarations) {
          const name = `${prefix}${declaration.name.getText(source)}`
          const init = declaration.initializer
          if (declaration.type !== undefined) {
            report(name, "is declared with", internalTypesIn(declaration.type))
          } else if (init !== undefined && (ts.isArrowFunction(init) || ts.isFunctionExpression(init))) {
            const types = new Set<string>()
            for (const p of init.typeParameters ?? []) internalTypesIn(p, types)
            for (const p of init.parameters) internalTypesIn(p.type, types)
            internalTypesIn(init.type, types)
            report(name, "has a signature naming", types)
            if (init.type === undefined && !ts.isBlock(init.body)) {
              const id = rootOf(ts.isCallExpression(init.body) || ts.isNewExpression(init.body) ? init.body.expression : init.body)
              if (id !== undefined && internalNames.has(id.text)) {
                found.push(`${name}: returns what ${init.body.getText(source).split("(")[0]} returns, with no declared type`)
              }
            }
          } else if (init !== undefined) {
            const id = rootOf(init)
            if (id !== undefined && internalNames.has(id.text)) {
              found.push(`${name}: its type is inferred from ${init.getText(source)} (declare a public type)`)
            }
          }
        }
      }
    }
  }

  check(source.statements, "", false)
  return found
}

describe("public types", () => {
  it("the checker finds aliases, re-exports and signatures of internal types", () => {
    const text = `
      import type * as Effect from "effect/Effect"
      import * as internal from "./internal/explore.js"
      import { type Bused, judge as judgeImpl } from "./internal/oracle.js"
      import type * as ops from "./internal/ops.js"
      export type { Mode } from "./internal/explore.js"
      export * from "./internal/fuzz.js"
      export type Scenario<E = never> = internal.Scenario<E>
      export type Report = ReadonlyArray<import("./internal/explore.js").Report>
      type Local = ops.Ops
      export interface Evidence { readonly lifecycle: ReadonlyArray<Bused>; readonly ops: Local }
      export interface Fine extends internal.Base { readonly name: string }
      export const WrongLock = internal.WrongLock
      export const judge = judgeImpl
      export const run: (s: internal.Scenario) => Effect.Effect<void> = internal.run
      export const make = (n: number) => internal.make(n)
      export function format(v: internal.Violation): string { return "" }
      export declare namespace Op { type Success = internal.Success }
      export { Bused }

      export const good: (s: Scenario) => Effect.Effect<Report> = internal.run
      export const alsoGood = (n: number): number => internal.count(n)
      export interface Good { readonly count: number }
      export class Impl { private readonly state: internal.State = internal.state() }
    `
    expect(internalExposures("Fixture.ts", text)).toEqual([
      `export type { Mode } from "./internal/explore.js": a re-export of ./internal/explore.js`,
      `export * from "./internal/fuzz.js": a re-export of ./internal/fuzz.js`,
      "Scenario: a type alias naming internal.Scenario",
      `Report: a type alias naming import("./internal/explore.js").Report`,
      "Evidence: names Bused, ops.Ops",
      "Fine: names internal.Base",
      "WrongLock: its type is inferred from internal.WrongLock (declare a public type)",
      "judge: its type is inferred from judgeImpl (declare a public type)",
      "run: is declared with internal.Scenario",
      "make: returns what internal.make returns, with no declared type",
      "format: names internal.Violation",
      "Op.Success: a type alias naming internal.Success",
      "Bused: a re-export of ./internal/oracle.js"
    ])
  })

  it.each(packages)("no public module of %s exposes an internal type", (pkg) => {
    const dir = path.join(root, "packages", pkg, "src")
    const modules = fs.readdirSync(dir).filter((f) => f.endsWith(".ts")).sort()
    expect(modules).toContain("index.ts")
    const found = modules.flatMap((file) =>
      internalExposures(file, fs.readFileSync(path.join(dir, file), "utf8")).map((line) => `${pkg}/src/${file}: ${line}`)
    )
    expect(found).toEqual([])
  })
})
