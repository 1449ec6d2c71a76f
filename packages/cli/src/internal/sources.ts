/**
 * Reading scenario files: the size checked before reading (for stdin, while reading), then the
 * bytes decoded.
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import * as Scenario from "../Scenario.js"
import { MAX_BYTES, sizeIssue } from "./input.js"

const refused = (source: string, message: string) => new Scenario.InvalidScenario({ source, issues: [{ path: "(file)", message }] })

export const readScenario = (path: string, options: Scenario.DecodeOptions = {}) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const cannotRead = (e: PlatformError) =>
      e._tag === "SystemError" && e.reason === "NotFound"
        ? refused(path, "no such file")
        : refused(path, e._tag === "SystemError" ? `cannot read it (${e.reason}: ${e.description ?? e.message})` : e.message)
    // The size is checked before anything is read: a hostile file costs nothing.
    const info = yield* Effect.mapError(fs.stat(path), cannotRead)
    if (info.type === "Directory") return yield* refused(path, "is a directory, not a scenario file")
    const tooLarge = sizeIssue(Number(info.size))
    if (tooLarge !== undefined) return yield* new Scenario.InvalidScenario({ source: path, issues: [tooLarge] })
    const bytes = yield* Effect.mapError(fs.readFile(path), cannotRead)
    return yield* Scenario.parseBytes(bytes, path, options)
  })

/** What a scenario read from standard input is called in messages. */
export const STDIN = "(stdin)"

/**
 * The bytes of a stream, at most `MAX_BYTES`: reading stops as soon as more arrive (the
 * stream is destroyed), so a endless or huge input costs at most 1 MiB of memory.
 */
export const readLimited = (stream: NodeJS.ReadableStream & { destroy?: () => void }, source: string) =>
  Effect.async<Uint8Array, Scenario.InvalidScenario>((resume) => {
    const chunks: Array<Uint8Array> = []
    let size = 0
    const done = () => {
      stream.removeListener("data", onData)
      stream.removeListener("end", onEnd)
      stream.removeListener("error", onError)
    }
    const onData = (chunk: Uint8Array | string) => {
      const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk
      size += bytes.length
      if (size > MAX_BYTES) {
        done()
        stream.pause()
        stream.destroy?.()
        resume(Effect.fail(refused(source, `has more than ${MAX_BYTES.toLocaleString("en-US")} bytes; a scenario may have at most 1 MiB (reading stopped there)`)))
        return
      }
      chunks.push(bytes)
    }
    const onEnd = () => {
      done()
      const all = new Uint8Array(size)
      let at = 0
      for (const c of chunks) {
        all.set(c, at)
        at += c.length
      }
      resume(Effect.succeed(all))
    }
    const onError = (e: Error) => {
      done()
      resume(Effect.fail(refused(source, `cannot read it (${e.message})`)))
    }
    stream.on("data", onData)
    stream.on("end", onEnd)
    stream.on("error", onError)
    stream.resume()
    return Effect.sync(done)
  })

/** A scenario from standard input (`-`), with the same limits as a file. */
export const readStdin = (options: Scenario.DecodeOptions = {}) =>
  Effect.flatMap(readLimited(process.stdin, STDIN), (bytes) => Scenario.parseBytes(bytes, STDIN, options))
