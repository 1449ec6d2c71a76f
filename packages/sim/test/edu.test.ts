import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import { type Hardware, Leak } from "@devscope/core"
import { Edu, Iommu, Simulator } from "@devscope/sim"
import { driver, type Probed } from "./eduDriver.js"

const withSim = <A, E>(f: (sim: Simulator.Service) => Effect.Effect<A, E, Hardware.Hardware>, options?: Simulator.Options) =>
  Effect.flatMap(Simulator.Simulator, f).pipe(Effect.provide(Simulator.layer(options)))

const plugEdu = (sim: Simulator.Service, name = "edu0") => sim.plug({ bus: "pci", name, ids: Edu.ids, model: Edu.model() })

describe("edu driver on the simulator", () => {
  it.effect("a correct driver moves data through DMA and interrupts, with no IOMMU fault and nothing leaked", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const results: Array<string> = []
        yield* sim.pci.registerDriver(driver({ transfers: 3, results }))
        const edu = yield* plugEdu(sim)
        yield* TestClock.adjust("20 millis")
        expect(results).toEqual(["round 0: ok", "round 1: ok", "round 2: ok"])
        expect(sim.iommuFaults()).toEqual([])
        expect(edu.ctx.dma.windows).toHaveLength(1)
        const report = yield* sim.unplug("edu0")
        expect(report?.leaks).toEqual([])
        expect(report?.released).toEqual(["irq 0", "dma page", "BAR0"])
        expect(edu.ctx.dma.windows).toEqual([])
        expect(sim.trace.filter({ kind: "Irq", device: "edu0" }).filter((e) => e.kind === "raise")).toHaveLength(6)
      })
    ))

  it.effect("a driver that frees DMA memory while the device runs gets an IOMMU fault naming the allocation and free sites", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const results: Array<string> = []
        yield* sim.pci.registerDriver(driver({ transfers: 1, results, bug: "free-while-running" }))
        yield* plugEdu(sim)
        yield* TestClock.adjust("5 millis")
        expect(results).toEqual(["freed early"])
        const faults = sim.iommuFaults()
        expect(faults).toHaveLength(1)
        const fault = faults[0]!
        expect(fault).toMatchObject({ device: "edu0", access: "read", reason: "stale", by: "edu dma engine (RAM to buffer)" })
        // Both sites point into the driver: where it allocated, and where it freed.
        expect(fault.window?.mappedAt).toMatch(/eduDriver\.ts:\d+/)
        expect(fault.window?.unmappedAt).toMatch(/eduDriver\.ts:\d+/)
        expect(fault.window?.mappedAt).not.toEqual(fault.window?.unmappedAt)
        const text = Iommu.format(fault)
        expect(text).toContain(fault.window!.mappedAt)
        expect(text).toContain(`freed at ${fault.window!.unmappedAt}`)
        expect(sim.trace.filter({ kind: "IommuFault", device: "edu0" })).toHaveLength(1)
        yield* sim.unplug("edu0")
      })
    ))

  it.effect("surprise removal during an in-flight DMA: aborted, all-ones reads, unbind completes, nothing leaked", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const results: Array<string> = []
        yield* sim.pci.registerDriver(driver({ transfers: 5, results }))
        const edu = yield* plugEdu(sim)
        // The first transfer was started at t=0 and completes at t=1 ms: remove the device at 0.5 ms.
        yield* TestClock.adjust("500 micros")
        const report = yield* sim.surpriseRemove("edu0")
        expect(report?.cause).toBe("surprise")
        expect(report?.leaks).toEqual([])
        expect(report?.releaseFailures).toEqual([])
        expect(report?.released).toEqual(["irq 0", "dma page", "BAR0"])
        expect(report!.fibersInterrupted).toBeGreaterThanOrEqual(2) // the worker and the irq handler
        expect(results).toEqual(["remove: device gone"])
        expect(edu.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
        const events = sim.trace.events().filter((e) => e.device === "edu0").map((e) =>
          e._tag === "Lifecycle" ? e.event : e._tag === "MmioWrite" ? `write ${e.register}` : e._tag === "Fault" ? `fault ${e.fault}` : e._tag
        )
        const order = ["write DMA_CMD", "surprise-removal", "disconnect", "aborted", "Unbinding", "fault disconnected-access", "Unbound", "removed"]
        const positions = order.map((what) => events.indexOf(what))
        expect(positions.every((p) => p >= 0)).toBe(true)
        expect([...positions].sort((a, b) => a - b)).toEqual(positions)
        // Nothing happens after: no interrupt, no DMA, no more device activity.
        yield* TestClock.adjust("100 millis")
        expect(results).toEqual(["remove: device gone"])
      })
    ))

  describe("fail-N-th injection at every allocation site of the probe leaves nothing acquired", () => {
    for (const request of ["dma-alloc", "irq"] as const) {
      it.effect(`${request} #1 refused`, () =>
        withSim((sim) =>
          Effect.gen(function*() {
            const results: Array<string> = []
            yield* sim.pci.registerDriver(driver({ transfers: 1, results }))
            const edu = yield* plugEdu(sim)
            expect(edu.device.state).toBe("unbound")
            expect(edu.ctx.dma.windows).toEqual([])
            const unbound = (yield* sim.pci.history).find((e) => e._tag === "Unbound")
            expect(unbound?._tag === "Unbound" && unbound.cause).toBe("probe-failure")
            expect(unbound?._tag === "Unbound" && unbound.report.leaks).toEqual([])
            const released = unbound?._tag === "Unbound" ? unbound.report.released : []
            expect(released).toEqual(request === "irq" ? ["dma page", "BAR0"] : ["BAR0"])
            // The line has no listener left: an interrupt now is spurious.
            edu.ctx.raise(0)
            expect(sim.trace.filter({ kind: "Irq", device: "edu0" }).map((e) => e.kind)).toEqual(["raise", "spurious"])
            expect(results).toEqual([])
            // The next attempt (the fault was the first request only) binds and works.
            yield* sim.pci.bind(edu.device)
            yield* TestClock.adjust("5 millis")
            expect(results).toEqual(["round 0: ok"])
            yield* sim.unplug("edu0")
          }), { faults: [{ kind: "fail-nth", request, n: 1, device: "edu0" }] }))
    }
  })

  it.effect("a streaming mapping leaked by the driver is unmapped at unbind and reported", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const results: Array<string> = []
        yield* sim.pci.registerDriver(driver({ transfers: 0, results, bug: "leak-mapping" }))
        const edu = yield* plugEdu(sim)
        expect(edu.ctx.dma.windows.map((w) => w.kind).sort()).toEqual(["coherent", "streaming"])
        const report = yield* sim.unplug("edu0")
        expect(edu.ctx.dma.windows).toEqual([])
        expect(report?.leaks).toHaveLength(1)
        const leak = report!.leaks[0]!
        expect(leak._tag).toBe("ObjectLeak")
        expect(Leak.format(leak)).toMatch(/dma mapping 0x[0-9a-f]+ \(to-device\) "forgotten buffer"/)
        expect(leak._tag === "ObjectLeak" && leak.acquiredAt).toMatch(/eduDriver\.ts:\d+/)
      })
    ))

  it.effect("an interrupt storm disables the line after the threshold, and the count says so", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(
          driver({ transfers: 0, results: [], stormThreshold: 100, onProbe: (p) => (probed = p) })
        )
        yield* plugEdu(sim)
        yield* TestClock.adjust("2 millis")
        const irq = probed!.irq
        expect(irq.stats.unhandled).toBe(100)
        expect(irq.stats.storms).toBe(1)
        expect(irq.disabled).toBe(true)
        yield* sim.unplug("edu0")
      }), { faults: [{ kind: "irq-storm", device: "edu0", line: 0, count: 150, at: "1 millis", interval: "1 micros" }] }))

  it.effect("re-plug and rebind after a surprise removal works", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const results: Array<string> = []
        yield* sim.pci.registerDriver(driver({ transfers: 1, results }))
        yield* plugEdu(sim)
        yield* sim.surpriseRemove("edu0")
        yield* plugEdu(sim)
        yield* TestClock.adjust("5 millis")
        expect(results).toEqual(["remove: device gone", "round 0: ok"])
        expect(Option.isSome(sim.device("edu0"))).toBe(true)
        yield* sim.unplug("edu0")
      })
    ))
})
