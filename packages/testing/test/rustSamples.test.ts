/**
 * The Rust sample ports through a whole lifecycle (bind, surprise removal, re-plug and rebind,
 * orderly removal, manual unbind and rebind, unload), judged by the oracle (G1-G5), and
 * explored: removed at every suspension point of their probe-to-unbind life.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { DeviceError, type Devres, type Dma, Hardware } from "@devscope/core"
import { RustDma, RustDriverPci } from "@devscope/example-rust-samples"
import { PciTestdev, Simulator, VirtualTime } from "@devscope/sim"
import { Explore, Oracle } from "@devscope/testing"

const plug = (sim: Simulator.Service) => sim.plug({ bus: "pci", name: "testdev0", ids: PciTestdev.ids, model: PciTestdev.model() })

const drivers = {
  rust_driver_pci: () => RustDriverPci.driver(),
  rust_dma: () => RustDma.driver()
}

/**
 * The device bound, used and rebound: each round a reader goes through the handles that
 * escape the binding (for rust_dma, the coherent allocation's `tryAccess`: the values the
 * probe wrote, or None once the binding is gone), then a manual unbind and bind (each probe
 * runs the sample's test again). The explorer removes the device at every point of it.
 */
const scenario = (name: keyof typeof drivers): Explore.Scenario => ({
  name,
  device: "testdev0",
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      let ca: Devres.Devres<Dma.Coherent<typeof RustDma.Values>, "rust_dma"> | undefined
      const driver = name === "rust_dma" ? RustDma.driver({ onProbe: (probed) => void (ca = probed.ca) }) : drivers[name]()
      yield* Effect.provideService(sim.pci.registerDriver(driver), Hardware.Hardware, sim.hardware)
      yield* plug(sim)
      const gone = new DeviceError.DeviceGone({ device: "testdev0", driver: name, gate: "tryAccess" })
      const read = Effect.suspend(() =>
        Option.match(ca === undefined ? Option.none() : ca.tryAccess(), {
          onNone: () => Effect.fail(gone),
          onSome: (coherent) =>
            Effect.sync(() => {
              RustDma.TEST_VALUES.forEach(([h, b], i) => {
                if (coherent.view.get(i, "h") !== h || coherent.view.get(i, "b") !== b) {
                  oracle.ops.problem("testdev0", `entry ${i} of the coherent allocation does not hold what the probe wrote`)
                }
              })
            })
        })
      )
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 3; i++) {
          if (name === "rust_dma") yield* oracle.track("testdev0", `read ${round}/${i}`, read)
          yield* Effect.sleep("20 micros")
        }
        // Refusals (the device removed meanwhile) are part of the game.
        yield* Effect.ignore(sim.pci.unbind("testdev0"))
        yield* Effect.ignore(sim.pci.bind("testdev0"))
      }
    }).pipe(Effect.orDie)
})

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
        const report = yield* Explore.explore(scenario(name as keyof typeof drivers))
        expect(report.failures.map(Explore.describe)).toEqual([])
        expect(report.cases).toBeGreaterThan(1)
        // Every mode explored, every point injected: the bound device at each of its points
        // (removal before, between and after the reads and rebinds), and the middle unplug's
        // unbind at each of its own (the samples' bindings have no fiber or gate and their
        // remove only logs: their unbind never suspends, so it has no point at all, and
        // nothing can interleave with it).
        expect(report.points.bound).toBeGreaterThanOrEqual(30)
        expect(report.modes.map((m) => m.mode)).toEqual(["surprise", "unplug", "surprise-in-remove"])
        for (const mode of report.modes) {
          if (mode.mode === "surprise-in-remove") expect(mode.points, mode.mode).toBe(0)
          else expect(mode.points, mode.mode).toBeGreaterThanOrEqual(30)
          expect(mode.cases, mode.mode).toBe(mode.points)
          expect(mode.injected, mode.mode).toBe(mode.cases)
        }
      }), 120_000)
  }
})
