/**
 * Early releases (`Devres.release`, `Dma.unmap`) during a binding's life: the unbind report
 * lists only what the unbind released, counts the early ones, and still reports early
 * failures.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer } from "effect"
import { type Bound, Devres, Driver } from "@devscope/core"
import { Log, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

interface Pool {
  readonly acquire: (label: string, fail?: boolean) => Effect.Effect<Devres.Devres<string, "edu">>
}

describe("early releases and the unbind report", () => {
  // A probe acquiring "regs", and handing out a way to acquire more into the binding later.
  const driver = (log: Log, onProbe: (pool: Pool) => void) =>
    Driver.make(Edu, {
      match: [{ vendor: 1 }],
      probe: () =>
        Layer.effectDiscard(Effect.gen(function*() {
          yield* Devres.acquireRelease(Edu, Effect.succeed("regs"), () => log.push("release regs"), { label: "regs" })
          const context = yield* Effect.context<Bound.Bound<"edu">>()
          onProbe({
            acquire: (label, fail) =>
              Devres.acquireRelease(
                Edu,
                Effect.succeed(label),
                () => fail ? Effect.fail(`release ${label} failed`) : log.push(`release ${label}`),
                { label }
              ).pipe(Effect.provide(context))
          })
        }))
    })

  it.effect("released lists only the unbind's releases; early ones are counted; early failures are reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let pool: Pool | undefined
        yield* bus.registerDriver(driver(log, (p) => (pool = p)))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        // A request path: map, complete, unmap; 100 times.
        for (let i = 0; i < 100; i++) {
          const buffer = yield* pool!.acquire("buffer")
          yield* Devres.release(buffer)
        }
        const kept = yield* pool!.acquire("kept")
        const broken = yield* pool!.acquire("broken", true)
        const early = yield* Effect.exit(Devres.release(broken))
        // The early release that failed dies in its caller...
        expect(Exit.isFailure(early) && Cause.isDie(early.cause)).toBe(true)
        const report = yield* bus.unbind("edu0")
        expect(report.released).toEqual(["kept", "regs"])
        expect(report.releasedEarly).toBe(100)
        // ...and is in the report too, marked as early.
        expect(report.releaseFailures.map((f) => [f.resource, f.atUnbind])).toEqual([["broken", false]])
        expect(log.count("release buffer")).toBe(100)
        expect(log.entries.slice(-2)).toEqual(["release kept", "release regs"])
        expect(kept.isReleased).toBe(true)
      })
    ))
})
