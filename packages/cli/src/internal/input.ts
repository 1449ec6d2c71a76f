/**
 * What a scenario file's bytes must be before they are parsed: small enough, UTF-8 (a BOM is
 * fine), and not nested deeper than any scenario is. Each check is linear in the input and
 * allocates nothing per byte, so a hostile file costs bounded time and memory.
 * @internal
 */
import type { Issue } from "../Scenario.js"

/** The largest scenario file read (1 MiB): the biggest real scenario is a few kilobytes. */
export const MAX_BYTES = 1024 * 1024

/** The deepest nesting of arrays and objects accepted; a scenario needs four levels. */
export const MAX_DEPTH = 32

/** At most this many characters of a value are echoed back in an error message. */
export const MAX_ECHO = 120

const plural = (n: number, what: string) => `${n.toLocaleString("en-US")} ${what}${n === 1 ? "" : "s"}`

/**
 * The size issue of a file of `size` bytes (or of a text of `size` characters, each at least
 * one byte), if it is too large; checked before the file is read or the text parsed.
 */
export const sizeIssue = (size: number, unit: "byte" | "character" = "byte"): Issue | undefined =>
  size > MAX_BYTES
    ? { path: "(file)", message: `is ${plural(size, unit)}; a scenario file may have at most ${plural(MAX_BYTES, "byte")} (1 MiB)` }
    : undefined

const lineOf = (bytes: Uint8Array, offset: number): number => {
  let line = 1
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++
  return line
}

/** The offset of the first byte that is not part of well-formed UTF-8, or -1. */
const firstInvalidUtf8 = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1
    if (need < 0) return i
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]
      if (c === undefined || (c & 0xc0) !== 0x80) return i
    }
    // Overlong three- and four-byte forms, surrogates and code points past U+10FFFF.
    const c1 = bytes[i + 1] ?? 0
    if ((b === 0xe0 && c1 < 0xa0) || (b === 0xed && c1 > 0x9f) || (b === 0xf0 && c1 < 0x90) || (b === 0xf4 && c1 > 0x8f)) return i
    i += need + 1
  }
  return -1
}

/**
 * The text of a scenario file, or why its bytes are not one: over the size limit, UTF-16 or
 * UTF-32 (named, with a hint), or not UTF-8 (the first bad byte, its offset and line). A UTF-8
 * byte-order mark is dropped.
 */
export const decodeText = (bytes: Uint8Array): { readonly text: string } | { readonly issue: Issue } => {
  const size = sizeIssue(bytes.length)
  if (size !== undefined) return { issue: size }
  const hint = "save the file as UTF-8"
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { issue: { path: "(file)", message: `is UTF-16 (it starts with a UTF-16 byte-order mark); scenario files are UTF-8: ${hint}` } }
  }
  // JSON text starts with an ASCII character: a zero byte next to it is UTF-16 or UTF-32 without a mark.
  if (bytes.length >= 2 && (bytes[0] === 0 || bytes[1] === 0)) {
    return { issue: { path: "(file)", message: `looks like UTF-16 or UTF-32 (it has zero bytes); scenario files are UTF-8: ${hint}` } }
  }
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
  const body = bytes.subarray(start)
  const bad = firstInvalidUtf8(body)
  if (bad >= 0) {
    const byte = body[bad]!.toString(16).toUpperCase().padStart(2, "0")
    return {
      issue: {
        path: "(file)",
        message: `is not UTF-8: byte 0x${byte} at offset ${bad + start} (line ${lineOf(body, bad)}) is not valid UTF-8 ` +
          `(Latin-1 or Windows-1252 text?); ${hint}`
      }
    }
  }
  return { text: new TextDecoder("utf-8").decode(body) }
}

/**
 * The nesting issue of JSON text, if arrays and objects nest deeper than `MAX_DEPTH` (a scan
 * of the text that skips strings; run before `JSON.parse` so nothing recursive sees it).
 */
export const depthIssue = (text: string): Issue | undefined => {
  let depth = 0
  let line = 1
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x0a) line++
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) {
        return { path: "(root)", message: `nests arrays and objects deeper than ${MAX_DEPTH} levels (line ${line}); no scenario needs more than 4` }
      }
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return undefined
}

/** A value as JSON for an error message, cut to `MAX_ECHO` characters. */
export const echo = (value: unknown): string => {
  let text: string
  if (typeof value === "number" && !Number.isFinite(value)) {
    text = `${value} (a number too large for a double)`
  } else {
    try {
      text = JSON.stringify(value) ?? String(value)
    } catch {
      text = String(value)
    }
  }
  return text.length <= MAX_ECHO ? text : `${text.slice(0, MAX_ECHO)}… (${plural(text.length, "character")} in all)`
}

// Control characters (C0, DEL, C1) would reach the terminal as escape sequences: each is shown
// as its JSON escape instead.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g
const visible = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/**
 * A text for a one-line echo (a scenario's description in the run header): its first line,
 * blanks collapsed, cut to `max` characters (default `MAX_ECHO`). Reads only the start of
 * a long text.
 */
export const oneLine = (text: string, max: number = MAX_ECHO): string => {
  const head = text.slice(0, 4 * max)
  const nl = head.search(/[\r\n]/)
  const first = (nl < 0 ? head : head.slice(0, nl)).replace(/\s+/g, " ").trim().replace(CONTROL, visible)
  const more = text.length > head.length || (nl >= 0 && head.slice(nl).trim() !== "")
  if (first.length > max) return `${first.slice(0, max - 1)}…`
  if (!more) return first
  return `${first.length > max - 1 ? first.slice(0, max - 1) : first}…`
}
