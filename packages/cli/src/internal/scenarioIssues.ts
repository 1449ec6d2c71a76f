/**
 * Schema errors of a scenario file, one line per problem, each naming its field.
 * @internal
 */
import * as ParseResult from "effect/ParseResult"
import * as AST from "effect/SchemaAST"
import type { Issue } from "../Scenario.js"
import { show } from "./kinds.js"

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "(root)"

// ---------------------------------------------------------------------------------------
// Schema errors, one line per problem.

/** `"a" | "b" | "c"` (Effect's rendering of a union of literals) as `one of "a", "b", "c"`. */
const alternatives = (expected: string): string => {
  const parts = expected.split(" | ")
  return parts.length > 1 && parts.every((p) => /^(".*"|-?\d[\d.e+-]*|true|false|null)$/.test(p))
    ? `one of ${parts.join(", ")}`
    : parts.join(" or ")
}

/** Effect's leaf messages (`Expected X, actual Y`, `is missing`, ...) in the CLI's words. */
const reword = (message: string): string => {
  const expected = /^Expected ([\s\S]*), actual ([\s\S]*)$/.exec(message)
  if (expected !== null) return `expected ${alternatives(expected[1]!)}, got ${expected[2]}`
  if (message === "is missing") return "missing (required)"
  const unexpected = /^is unexpected, expected: ([\s\S]*)$/.exec(message)
  if (unexpected !== null) return `unknown field (allowed here: ${unexpected[1]!.split(" | ").join(", ")})`
  return message
}

const leafMessage = (issue: ParseResult.ParseIssue): string =>
  ParseResult.ArrayFormatter.formatIssueSync(issue).map((i) => reword(i.message))[0] ?? "invalid"

/** The expected part of a leaf `Type` issue in a union, when the member failed on its own value. */
const expectedOf = (issue: ParseResult.ParseIssue): string | undefined => {
  if (issue._tag !== "Type") return undefined
  const message = ParseResult.ArrayFormatter.formatIssueSync(issue)[0]?.message ?? ""
  return /^Expected ([\s\S]*), actual /.exec(message)?.[1]
}

/**
 * Walks a parse error: one `Issue` per problem, with its field path. A union whose members
 * all failed on the value itself (`"nic" | "blk" | "sensor"`) is one problem, not one per
 * member.
 */
const collect = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>, out: Array<Issue>): void => {
  switch (issue._tag) {
    case "Pointer":
      return collect(issue.issue, [...path, ...(Array.isArray(issue.path) ? issue.path : [issue.path])], out)
    case "Composite": {
      const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
      if (AST.isUnion(issue.ast) && issues.length > 1) {
        const expected = issues.map(expectedOf)
        if (expected.every((e): e is string => e !== undefined)) {
          out.push({
            path: formatPath(path),
            message: `expected ${alternatives(expected.join(" | "))}, got ${show(issue.actual)}`
          })
          return
        }
      }
      for (const inner of issues) collect(inner, path, out)
      return
    }
    case "Refinement":
      // A refinement's message annotation speaks for its whole chain.
      if (issue.kind === "From" && AST.getMessageAnnotation(issue.ast)._tag === "None") return collect(issue.issue, path, out)
      // A filter that named a field (`{ path: ["bug"], message }`).
      if (issue.kind === "Predicate" && issue.issue._tag === "Pointer") return collect(issue.issue, path, out)
      out.push({ path: formatPath(path), message: leafMessage(issue) })
      return
    case "Transformation":
      if (issue.kind === "Transformation") {
        out.push({ path: formatPath(path), message: leafMessage(issue.issue) })
        return
      }
      return collect(issue.issue, path, out)
    default:
      out.push({ path: formatPath(path), message: leafMessage(issue) })
  }
}

/** @internal */
export const issuesOf = (error: ParseResult.ParseError): Array<Issue> => {
  const out: Array<Issue> = []
  collect(error.issue, [], out)
  // The same problem reached twice (a union tried twice) is shown once.
  const seen = new Set<string>()
  return out.filter((i) => {
    const key = `${i.path}\u0000${i.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

