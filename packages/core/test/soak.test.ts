// The CI-sized soak (the full 100,000 cycles run in `pnpm bench`, B5): repeated bind/unbind
// leaves nothing behind. Deterministic checks only: counts, bounded history, and that every
// binding's token and gate become garbage (WeakRefs after a full GC), no heap sizes.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Bound, Bus, Devres, Driver, Gate } from "@devscope/core"

const CYCLES = 3000
const Soak = Driver.brand("soak")

const fullGc = (): void => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed !== undefined) return exposed()
  v8.setFlagsFromString("--expose-gc")
  ;(vm.runInNewContext("gc") as () => void)()
}

describe("soak", () => {
  it.live(`${CYCLES.toLocaleString("en-US")} bind/unbind cycles (10 Devres, 2 fibers, a gate) leave nothing behind`, () =>
    Effect.scoped(Effect.gen(function*() {
      const bus = yield* Bus.make({ autoBind: false, historySize: 100 })
      const alive: Array<WeakRef<object>> = []
      let acquired = 0
      let releasedCount = 0
      yield* bus.registerDriver(Driver.make(Soak, {
        match: [{ vendor: 6 }],
        probe: () =>
          Layer.effectDiscard(Effect.gen(function*() {
            for (let i = 0; i < 10; i++) {
              yield* Devres.acquireRelease(
                Soak,
                Effect.sync(() => ({ n: acquired++ })),
                () => Effect.sync(() => void releasedCount++),
                { label: `r${i}` }
              )
            }
            const token = yield* Soak.Bound
            for (let i = 0; i < 2; i++) yield* Bound.fork(token, Effect.never)
            const gate = yield* Gate.make(Soak)
            yield* gate.enter(() => Effect.void)
            alive.push(new WeakRef(token), new WeakRef(gate))
          }))
      }))
      yield* bus.addDevice({ name: "soak0", ids: { vendor: 6 } })
      let interrupted = 0
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        yield* bus.bind("soak0")
        const report = yield* bus.unbind("soak0")
        interrupted += report.fibersInterrupted
        expect(report.released.length).toBe(10)
      }
      expect(acquired).toBe(10 * CYCLES)
      expect(releasedCount).toBe(10 * CYCLES)
      expect(interrupted).toBe(2 * CYCLES)
      expect(yield* bus.leaks).toEqual([])
      // The event history is bounded (100 kept, trimmed in batches of at most 16 more).
      const history = yield* bus.history
      expect(history.length).toBeLessThanOrEqual(100)
      expect((yield* bus.devices).map((d) => d.state)).toEqual(["unbound"])
      // Nothing keeps an ended binding reachable: not the bus, its event history, the
      // device or the scope. (WeakRefs are only cleared after the current job.)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
      fullGc()
      const survivors = alive.filter((ref) => ref.deref() !== undefined).length
      expect(alive.length).toBe(2 * CYCLES)
      expect(survivors).toBe(0)
    })), 120_000)
})
