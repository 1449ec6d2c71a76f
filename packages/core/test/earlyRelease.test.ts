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

describe("early releases drop their finalizer", () => {
  // The entries of the binding's scope (internal/bindingScope.ts): what the unbind releases.
  const finalizerCount = (token: Bound.Bound<any>): number =>
    (token as unknown as { binding: { scope: { size: number } } }).binding.scope.size

  it.effect("10,000 Devres acquired and released early keep the binding bounded; unbind order is still LIFO", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const N = 10_000
        let token: Bound.Bound<"edu"> | undefined
        let pool: Pool | undefined
        let peak = 0
        const tracked = (name: string) =>
          Devres.acquireRelease(Edu, Effect.as(log.push(`acquire ${name}`), name), () => log.push(`release ${name}`), {
            label: name
          })
        // A Devres layer, a Layer.scoped resource (a plain Effect finalizer, with a scoped
        // fiber) and another Devres layer, built in sequence, with per-request Devres acquired
        // and released in between. (A probe layer's own Effect finalizers join the binding
        // scope when the layer that holds them completes, as Effect's Layer memoizes it: so
        // `first` and `scoped` are one unit that completes before `last` starts.)
        const requests = (from: number) =>
          Effect.gen(function*() {
            for (let i = from; i < from + N / 2; i++) {
              const buffer = yield* Devres.acquireRelease(Edu, Effect.succeed(i), () => Effect.void, { label: "buffer" })
              peak = Math.max(peak, finalizerCount(token!))
              yield* Devres.release(buffer)
            }
          })
        const first = Layer.effectDiscard(Effect.gen(function*() {
          token = yield* Edu.Bound
          yield* tracked("a")
          yield* requests(0)
        }))
        const scoped = Layer.scopedDiscard(Effect.gen(function*() {
          yield* Effect.acquireRelease(log.push("acquire b"), () => log.push("release b"))
          yield* Effect.forkScoped(Effect.never)
        }))
        const last = Layer.effectDiscard(Effect.gen(function*() {
          yield* tracked("c")
          const context = yield* Effect.context<Bound.Bound<"edu">>()
          pool = {
            acquire: (label) =>
              Devres.acquireRelease(Edu, Effect.succeed(label), () => Effect.void, { label }).pipe(Effect.provide(context))
          }
        }))
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => last.pipe(Layer.provideMerge(scoped.pipe(Layer.provideMerge(first))))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const afterProbe = finalizerCount(token!)
        // After the probe, from binding code: the same again.
        yield* requests(N / 2).pipe(Effect.provideService(Edu.Bound, token!))
        for (let i = 0; i < 10; i++) yield* Effect.flatMap(pool!.acquire(`late ${i}`), Devres.release)
        yield* tracked("d").pipe(Effect.provideService(Edu.Bound, token!))

        // Bounded: the scope holds the long-lived resources only, whatever N is.
        expect(peak).toBeLessThan(20)
        expect(finalizerCount(token!)).toBe(afterProbe + 1)
        expect(finalizerCount(token!)).toBeLessThan(20)

        const report = yield* bus.unbind("edu0")
        expect(report.releasedEarly).toBe(N + 10)
        expect(report.released).toEqual(["d", "c", "a"])
        expect(report.fibersInterrupted).toBe(1)
        // Every release in exact reverse order of acquisition, Devres and Effect finalizers alike.
        const acquired = log.entries.filter((e) => e.startsWith("acquire ")).map((e) => e.slice(8))
        const released = log.entries.filter((e) => e.startsWith("release ")).map((e) => e.slice(8))
        expect(acquired).toEqual(["a", "b", "c", "d"])
        expect(released).toEqual([...acquired].reverse())
      })
    ))
})
