/**
 * The Rust sample ports through a whole lifecycle (bind, surprise removal, re-plug and rebind,
 * orderly removal, manual unbind and rebind, unload), judged by the oracle (G1-G5), and
 * explored: removed at every suspension point of their probe-to-unbind life.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Hardware } from "@devscope/core"
import { RustDma, RustDriverPci } from "@devscope/example-rust-samples"
import { PciTestdev, Simulator, VirtualTime } from "@devscope/sim"
import { Explore, Oracle } from "@devscope/testing"

const plug = (sim: Simulator.Service) => sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })

const drivers = {
  rust_driver_pci: () => RustDriverPci.driver(),
  rust_dma: () => RustDma.driver()
}

describe("the Rust sample ports under the oracle", () => {
  for (const [name, make] of Object.entries(drivers)) {
    it.effect(`${name}: bind, surprise, rebind, unplug, unbind, unload break no guarantee`, () =>
      Effect.gen(function*() {
        const oracle = Oracle.make()
        const outcome = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
          const sim = yield* Simulator.make({ seed: 1, onLifecycle: oracle.onLifecycle })
          yield* Effect.provideService(sim.pci.registerDriver(make()), Hardware.Hardware, sim.hardware)
          yield* plug(sim)
          yield* sim.surpriseRemove("testdev0")
          yield* plug(sim)
          yield* sim.unplug("testdev0")
          yield* plug(sim)
          yield* sim.pci.unbind("testdev0")
          yield* sim.pci.bind("testdev0")
          yield* sim.pci.unregisterDriver(name)
          const unbound = oracle.lifecycle.filter((e) => e.event._tag === "Unbound").map((e) => e.event._tag === "Unbound" && e.event.cause)
          return { unbound, violations: oracle.check(sim) }
        })))
        expect(outcome._tag).toBe("Done")
        const result = Exit.getOrElse(outcome.exit!, () => undefined)!
        expect(result.unbound).toEqual(["surprise", "hot-unplug", "manual", "unload"])
        expect(result.violations).toEqual([])
      }))

    it.effect(`${name}: removal at every suspension point breaks no guarantee`, () =>
      Effect.gen(function*() {
        const scenario: Explore.Scenario = {
          name,
          device: "testdev0",
          run: ({ sim }) =>
            Effect.gen(function*() {
              yield* Effect.provideService(sim.pci.registerDriver(make()), Hardware.Hardware, sim.hardware)
              yield* plug(sim)
              yield* Effect.sleep("1 millis")
            }).pipe(Effect.orDie)
        }
        const report = yield* Explore.explore(scenario)
        expect(report.failures.map(Explore.describe)).toEqual([])
        expect(report.cases).toBeGreaterThan(1)
      }))
  }
})
