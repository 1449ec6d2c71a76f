/**
 * Reading scenario files: the size checked before reading, then the bytes decoded.
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import * as Scenario from "../Scenario.js"
import { sizeIssue } from "./input.js"

export const readScenario = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const cannotRead = (e: PlatformError) =>
      new Scenario.InvalidScenario({
        source: path,
        issues: [{ path: "(file)", message: e._tag === "SystemError" ? `cannot read it (${e.reason}: ${e.description ?? e.message})` : e.message }]
      })
    // The size is checked before anything is read: a hostile file costs nothing.
    const info = yield* Effect.mapError(fs.stat(path), cannotRead)
    const tooLarge = sizeIssue(Number(info.size))
    if (tooLarge !== undefined) return yield* new Scenario.InvalidScenario({ source: path, issues: [tooLarge] })
    const bytes = yield* Effect.mapError(fs.readFile(path), cannotRead)
    return yield* Scenario.parseBytes(bytes, path)
  })

