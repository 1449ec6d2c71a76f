import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Logger, LogLevel, Option } from "effect"
import { LogBook } from "../src/internal/logbook.js"

/** Runs `effect` with the run's logger, unhandled fiber failures logged at Error. */
const logged = <A>(effect: Effect.Effect<A>) => {
  const lines: Array<string> = []
  const book = new LogBook((line) => void lines.push(line))
  return Effect.as(
    effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, book.logger)),
      Effect.withUnhandledErrorLogLevel(Option.some(LogLevel.Error))
    ),
    { book, lines }
  )
}

// What a driver's binding fibers have in their context: its Bound token (identity only here).
const Bound = Context.GenericTag<{ readonly device: { readonly name: string } }>("@devscope/core/Bound/fixture")

describe("driver failures captured from the logs", () => {
  it.effect("a binding fiber that dies, an interrupt handler's caught defect: one entry each, named by device, counted", () =>
    Effect.gen(function*() {
      const { book, lines } = yield* logged(Effect.gen(function*() {
        // As core's IRQ dispatcher reports a handler that died (twice).
        for (let i = 0; i < 2; i++) {
          yield* Effect.logError("irq 0 of device \"disk0\": handler failed", yield* Effect.cause(Effect.die(new Error("boom"))))
        }
        // A fiber forked by binding code (the Bound token in the forking context, as in a
        // probe layer's Bound.fork) that dies with a defect.
        const fiber = yield* Effect.provideService(Effect.fork(Effect.dieMessage("ring index out of range")), Bound, { device: { name: "eth7" } })
        yield* Fiber.await(fiber)
        // A fiber failing with a typed error is control flow, not a driver failure.
        yield* Fiber.await(yield* Effect.fork(Effect.fail("DeviceGone")))
        yield* Effect.logWarning("irq 0 of device \"temp0\": nobody cared (1000 unhandled in a row), disabling")
      }))
      const failures = [...book.failures.values()]
      expect(failures).toEqual([
        { device: "disk0", where: "irq 0 handler failed", error: "Error: boom", defect: true, at: expect.any(Number), count: 2 },
        { device: "eth7", where: "a binding fiber died", error: "RuntimeException: ring index out of range", defect: true, at: expect.any(Number), count: 1 }
      ])
      expect([...book.notes.values()]).toEqual([
        { device: "temp0", message: "irq 0 of device \"temp0\": nobody cared (1000 unhandled in a row), disabling", at: expect.any(Number), count: 1 }
      ])
      // Each new one is one line, no stack.
      expect(lines).toHaveLength(3)
      for (const line of lines) expect(line).not.toContain("\n")
    }))
})
