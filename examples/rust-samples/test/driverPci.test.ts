import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Option } from "effect"
import type { Hardware } from "@devscope/core"
import { PciTestdev, Simulator } from "@devscope/sim"
import { RustDriverPci } from "../src/index.js"

const withSim = <A, E>(f: (sim: Simulator.Service) => Effect.Effect<A, E, Hardware.Hardware>, options?: Simulator.Options) =>
  Effect.flatMap(Simulator.Simulator, f).pipe(Effect.provide(Simulator.layer(options)))

const plugTestdev = (sim: Simulator.Service, name = "testdev0") =>
  sim.plug({ bus: "pci", name, ids: PciTestdev.ids, model: PciTestdev.model() })

describe("rust_driver_pci sample", () => {
  it.effect("probe runs the no-eventfd test and reports the data-match count; rebinding counts again", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        const log: Array<string> = []
        yield* sim.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n), log: (l) => log.push(l) }))
        const dev = yield* plugTestdev(sim)
        expect(dev.device.state).toBe("bound")
        expect(counts).toEqual([1])
        expect(log).toEqual(["pci-testdev data-match count: 1"])

        // The device counts every data-match write: a second binding sees 2.
        const first = yield* sim.pci.unbind(dev.device)
        expect(first.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(first.leaks).toEqual([])
        yield* sim.pci.bind(dev.device)
        expect(counts).toEqual([1, 2])
        expect(log).toEqual([
          "pci-testdev data-match count: 1",
          "Remove Rust PCI driver sample.",
          "pci-testdev data-match count: 2"
        ])
        // TEST selects the test, TEST0 (at the OFFSET the device gave) is the data-match write.
        const writes = sim.trace.filter({ kind: "MmioWrite", device: "testdev0" }).map((e) => e.register)
        expect(writes).toEqual(["TEST", "TEST0", "TEST", "TEST0"])
        // Every access matched a register of the map at its width.
        expect(dev.ctx.regions[0].faultCount()).toBe(0)

        const report = yield* sim.unplug("testdev0")
        expect(report?.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(report?.leaks).toEqual([])
        expect(report?.removeFailure).toBeUndefined()
        expect(log[log.length - 1]).toBe("Remove Rust PCI driver sample.")
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("an OFFSET outside BAR0 makes tryWrite8 fail: probe fails with TestdevAccessFailed, nothing leaks", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        // Plug first, with no driver yet, then make the device report an OFFSET past BAR0's end.
        const dev = yield* plugTestdev(sim)
        expect(dev.device.state).toBe("unbound")
        dev.ctx.regions[0].onRead("OFFSET", () => 0x1000)

        const counts: Array<number> = []
        yield* sim.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n) }))
        expect(dev.device.state).toBe("unbound")
        expect(counts).toEqual([])

        const unbound = (yield* sim.pci.history).find((e) => e._tag === "Unbound")
        expect(unbound?._tag === "Unbound" && unbound.cause).toBe("probe-failure")
        if (unbound?._tag !== "Unbound") return expect.unreachable()
        expect(unbound.report.leaks).toEqual([])
        expect(unbound.report.released).toEqual([RustDriverPci.BAR0_LABEL])

        // The probe failed with the typed error, naming the offset the device gave.
        const failed = (yield* sim.pci.history).find((e) => e._tag === "ProbeFailed")
        const error = failed?._tag === "ProbeFailed" ? Option.getOrUndefined(Cause.failureOption(failed.cause)) : undefined
        expect(error).toBeInstanceOf(RustDriverPci.TestdevAccessFailed)
        expect(error).toMatchObject({ offset: 0x1000, cause: { _tag: "InvalidAccess", reason: "out of range", width: 8 } })
        // No write reached the device past TEST.
        const writes = sim.trace.filter({ kind: "MmioWrite", device: "testdev0" }).map((e) => e.register)
        expect(writes).toEqual(["TEST"])
        yield* sim.unplug("testdev0")
      })
    ))
})
