import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Option } from "effect"
import type { Hardware } from "@devscope/core"
import { PciTestdev, Simulator } from "@devscope/sim"
import { RustDriverPci } from "../src/index.js"

const withSim = <A, E>(f: (sim: Simulator.Service) => Effect.Effect<A, E, Hardware.Hardware>, options?: Simulator.Options) =>
  Effect.flatMap(Simulator.Simulator, f).pipe(Effect.provide(Simulator.layer(options)))

const plugTestdev = (sim: Simulator.Service, name = "testdev0") =>
  sim.plug({ bus: "pci", name, ids: PciTestdev.ids, model: PciTestdev.model() })

type Line = readonly [level: RustDriverPci.Level, line: string]

/** What upstream logs (level and text) at a successful probe: `dev_dbg!`, then two `dev_info!`. */
const probeLog = (count: number): ReadonlyArray<Line> => [
  ["debug", "Probe Rust PCI driver sample (PCI ID: 0x1b36, 0x5)."],
  ["info", `pci-testdev data-match count: ${count}`],
  ["info", "pci-testdev config space read16 vendor ID: 1b36"]
]
/** What upstream logs when the driver data is dropped, after `unbind`. */
const REMOVE: Line = ["debug", "Remove Rust PCI driver sample."]

/** A recorder of the driver's log lines, each with the last trace `seq` at the time. */
const recorder = (sim: Simulator.Service) => {
  const lines: Array<Line> = []
  const seqs: Array<number> = []
  const log = (line: string, level: RustDriverPci.Level) => {
    lines.push([level, line])
    seqs.push(sim.trace.events().at(-1)?.seq ?? -1)
  }
  return { lines, seqs, log }
}

/** The driver's register traffic on a device: `W TEST=0x0`, `R OFFSET=0x20`, ... */
const traffic = (sim: Simulator.Service, device = "testdev0") =>
  sim.trace.filter({ kind: ["MmioRead", "MmioWrite"], device }).map((e) =>
    `${e._tag === "MmioRead" ? "R" : "W"} ${e.register}=0x${e.value.toString(16)}`
  )

/** Upstream's `testdev(NO_EVENTFD)` on the model: select, read OFFSET and DATA (u8), write, read COUNT. */
const PROBE_TRAFFIC = ["W TEST=0x0", "R OFFSET=0x20", "R DATA=0x0", "W TEST0=0x0", "R COUNT=0x1"]
/** Upstream's `unbind`: reset pci-testdev by writing the test index again. */
const UNBIND_TRAFFIC = ["W TEST=0x0"]

const lifecycleSeq = (sim: Simulator.Service, event: string, device = "testdev0") =>
  sim.trace.filter({ kind: "Lifecycle", device }).filter((e) => e.event === event).map((e) => e.seq)

describe("rust_driver_pci sample", () => {
  it.effect("probe runs the no-eventfd test, logs the count and the vendor id; unbind resets the device; rebinding counts 1 again", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        const log = recorder(sim)
        yield* sim.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n), log: log.log }))
        const dev = yield* plugTestdev(sim)
        expect(dev.device.state).toBe("bound")
        expect(counts).toEqual([1])
        expect(log.lines).toEqual(probeLog(1))
        expect(traffic(sim)).toEqual(PROBE_TRAFFIC)

        const first = yield* sim.pci.unbind(dev.device)
        expect(first.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(first.leaks).toEqual([])
        expect(first.removeFailure).toBeUndefined()
        expect(log.lines).toEqual([...probeLog(1), REMOVE])
        expect(traffic(sim)).toEqual([...PROBE_TRAFFIC, ...UNBIND_TRAFFIC])
        // The reset took effect: selecting the test again zeroed its count (QEMU's pci_testdev_start).
        expect(dev.ctx.regions[0].get("COUNT")).toBe(0)
        // Order, as upstream: `unbind` (the reset write), then `Drop` (the debug line), then the
        // BAR goes (before the binding is reported unbound).
        const [reset] = sim.trace.filter({ kind: "MmioWrite", device: "testdev0" }).slice(-1)
        expect(reset!.seq).toBeGreaterThan(lifecycleSeq(sim, "Unbinding")[0]!)
        expect(log.seqs.at(-1)).toBeGreaterThanOrEqual(reset!.seq)
        expect(reset!.seq).toBeLessThan(lifecycleSeq(sim, "Unbound")[0]!)

        yield* sim.pci.bind(dev.device)
        // Upstream on QEMU logs a count of 1 at every probe: selecting the test zeroes it.
        expect(counts).toEqual([1, 1])
        expect(log.lines).toEqual([...probeLog(1), REMOVE, ...probeLog(1)])
        // TEST selects the test, TEST0 (at the OFFSET the device gave) is the data-match write,
        // the unbind's TEST is the reset.
        const writes = sim.trace.filter({ kind: "MmioWrite", device: "testdev0" }).map((e) => e.register)
        expect(writes).toEqual(["TEST", "TEST0", "TEST", "TEST", "TEST0"])
        // Every access matched a register of the map at its width (DATA is read as a u8).
        expect(dev.ctx.regions[0].faultCount()).toBe(0)

        const report = yield* sim.unplug("testdev0")
        expect(report?.cause).toBe("hot-unplug")
        expect(report?.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(report?.leaks).toEqual([])
        expect(report?.removeFailure).toBeUndefined()
        expect(log.lines.at(-1)).toEqual(REMOVE)
        expect(traffic(sim)).toEqual([...PROBE_TRAFFIC, ...UNBIND_TRAFFIC, ...PROBE_TRAFFIC, ...UNBIND_TRAFFIC])
        expect(dev.ctx.regions[0].faultCount()).toBe(0)
        expect(sim.iommuFaults()).toEqual([])

        // Rebind after unplug: a new device of the same name probes afresh.
        const again = yield* plugTestdev(sim)
        expect(again.device.state).toBe("bound")
        expect(counts).toEqual([1, 1, 1])
        expect(log.lines.slice(-3)).toEqual(probeLog(1))
        yield* sim.unplug("testdev0")
      })
    ))

  it.effect("the id table's driver data picks the test; unbind resets with the same index", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        // Test 2 is datamatch-eventfd: TEST2 at 0x28 with 0x5a.
        yield* sim.pci.registerDriver(RustDriverPci.driver({ index: 2, onProbe: (n) => counts.push(n) }))
        const dev = yield* plugTestdev(sim)
        expect(counts).toEqual([1])
        yield* sim.pci.unbind(dev.device)
        expect(traffic(sim)).toEqual(["W TEST=0x2", "R OFFSET=0x28", "R DATA=0x5a", "W TEST2=0x5a", "R COUNT=0x1", "W TEST=0x2"])
        expect(dev.ctx.regions[0].faultCount()).toBe(0)
        yield* sim.unplug("testdev0")
      })
    ))

  it.effect("surprise removal: remove still writes the reset (dropped by the gone device), logs, releases BAR0; a re-plug probes afresh", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const counts: Array<number> = []
        const log = recorder(sim)
        yield* sim.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n), log: log.log }))
        const dev = yield* plugTestdev(sim)
        expect(counts).toEqual([1])

        const report = yield* sim.surpriseRemove("testdev0")
        expect(report?.cause).toBe("surprise")
        expect(report?.removeFailure).toBeUndefined()
        expect(report?.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(report?.leaks).toEqual([])
        expect(dev.device.state).toBe("removed")
        // Upstream writes the reset regardless; remove reads nothing, so no all-ones value is
        // ever used. The write is traced and dropped as a disconnected access, after the disconnect.
        expect(traffic(sim)).toEqual([...PROBE_TRAFFIC, ...UNBIND_TRAFFIC])
        const faults = sim.trace.filter({ kind: "Fault", device: "testdev0" })
        expect(faults.map((f) => [f.fault, f.register])).toEqual([["disconnected-access", "TEST"]])
        expect(faults[0]!.seq).toBeGreaterThan(lifecycleSeq(sim, "disconnect")[0]!)
        expect(log.lines).toEqual([...probeLog(1), REMOVE])
        expect(sim.iommuFaults()).toEqual([])

        // Re-plug and rebind: a fresh device, the same probe.
        const again = yield* plugTestdev(sim)
        expect(again.device.state).toBe("bound")
        expect(counts).toEqual([1, 1])
        expect(log.lines).toEqual([...probeLog(1), REMOVE, ...probeLog(1)])
        expect(again.ctx.regions[0].faultCount()).toBe(0)
        const last = yield* sim.unplug("testdev0")
        expect(last?.leaks).toEqual([])
        expect(last?.released).toEqual([RustDriverPci.BAR0_LABEL])
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
        const log = recorder(sim)
        yield* sim.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n), log: log.log }))
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
        // Upstream's driver data never existed: no `unbind`, no `Drop`, only the probe's debug line.
        expect(log.lines).toEqual(probeLog(0).slice(0, 1))
        yield* sim.unplug("testdev0")
      })
    ))

  it.effect("a device gone before probe reads all-ones: OFFSET 0xffffffff fails tryWrite8, probe fails, nothing leaks", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const dev = yield* plugTestdev(sim)
        dev.ctx.regions[0].disconnect()
        const log = recorder(sim)
        yield* sim.pci.registerDriver(RustDriverPci.driver({ log: log.log }))
        expect(dev.device.state).toBe("unbound")
        // The select is dropped, OFFSET and DATA read all-ones (at their widths), nothing else.
        expect(traffic(sim)).toEqual(["W TEST=0x0", "R OFFSET=0xffffffff", "R DATA=0xff"])
        const failed = (yield* sim.pci.history).find((e) => e._tag === "ProbeFailed")
        const error = failed?._tag === "ProbeFailed" ? Option.getOrUndefined(Cause.failureOption(failed.cause)) : undefined
        expect(error).toMatchObject({ _tag: "TestdevAccessFailed", offset: 0xffffffff, cause: { reason: "out of range" } })
        const unbound = (yield* sim.pci.history).find((e) => e._tag === "Unbound")
        if (unbound?._tag !== "Unbound") return expect.unreachable()
        expect(unbound.report.leaks).toEqual([])
        expect(unbound.report.released).toEqual([RustDriverPci.BAR0_LABEL])
        expect(log.lines).toEqual(probeLog(0).slice(0, 1))
        yield* sim.unplug("testdev0")
      })
    ))
})
