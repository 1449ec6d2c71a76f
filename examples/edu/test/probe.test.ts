import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Option } from "effect"
import type { Simulator } from "@devscope/sim"
import { driver, LABELS, LIVENESS_PATTERN, NotEdu, type Probed, UnsupportedVersion } from "../src/index.js"
import { checkReport, edu, plugEdu, RELEASED, traffic, withSim } from "./helpers.js"

/** The probe's register traffic on a fresh device. */
const PROBE_TRAFFIC = [
  "R ID=0x10000ed",
  `W LIVENESS=0x${LIVENESS_PATTERN.toString(16)}`,
  `R LIVENESS=0x${(~LIVENESS_PATTERN >>> 0).toString(16)}`,
  // Idle? (a previous binding may have left work running)
  "R STATUS=0x0",
  "R DMA_CMD=0x0",
  // Stale interrupt bits? None.
  "R IRQ_STATUS=0x0",
  // Factorial-done interrupts on.
  "W STATUS=0x80"
]

/** The typed error of the first failed probe, and its unbind report. */
const probeFailure = (sim: Simulator.Service) =>
  Effect.gen(function*() {
    const history = yield* sim.pci.history
    const failed = history.find((e) => e._tag === "ProbeFailed")
    const error = failed?._tag === "ProbeFailed" ? Option.getOrUndefined(Cause.failureOption(failed.cause)) : undefined
    const unbound = history.find((e) => e._tag === "Unbound")
    return { error, report: unbound?._tag === "Unbound" ? unbound.report : undefined }
  })

describe("edu: probe", () => {
  it.effect("binds to the simulator's edu: ID 1.0, liveness, idle check, IRQ_ON_DONE; only 32-bit accesses; unplug releases in reverse order", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let probed: Probed | undefined
        yield* sim.pci.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const dev = yield* plugEdu(sim)
        expect(dev.device.state).toBe("bound")
        expect(traffic(sim)).toEqual(PROBE_TRAFFIC)
        // Every access was a 32-bit access to a register of the map.
        expect(sim.trace.filter({ kind: ["MmioRead", "MmioWrite"], device: "edu0" }).every((e) => e.width === 32)).toBe(true)
        expect(dev.ctx.regions[0].faultCount()).toBe(0)

        const d = edu(devices)
        expect(d.version).toEqual({ major: 1, minor: 0 })
        expect(d.stats()).toMatchObject({ started: 0, inFlight: 0 })
        // One coherent page, below the device's 28-bit DMA mask.
        const buffer = probed!.buffer.access(probed!.token)
        expect(buffer.size).toBe(4096)
        expect(buffer.iova).toBeLessThan(2 ** 28)
        expect(dev.ctx.dma.windows.map((w) => [w.kind, w.size])).toEqual([["coherent", 4096]])
        expect(log).toEqual([`probe: edu0: edu 1.0, dma buffer at 0x${buffer.iova.toString(16)}`])

        const report = yield* sim.unplug("edu0")
        checkReport(report)
        expect(report!.cause).toBe("hot-unplug")
        expect(log.at(-1)).toBe("remove: edu0: 0 in flight, drained; 0 failed with DeviceGone")
        // remove: ID (gone?), then factorial interrupts off (read-modify-write).
        expect(traffic(sim).slice(PROBE_TRAFFIC.length)).toEqual(["R ID=0x10000ed", "R STATUS=0x80", "W STATUS=0x0"])
        expect(devices.devices()).toEqual([])
        expect(dev.ctx.dma.windows).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("another minor version binds; a wrong major version is refused with UnsupportedVersion before any write", () =>
    withSim((sim, devices) =>
      Effect.gen(function*() {
        // Plug with no driver, then make the device report version 2.0, then 1.3 on another.
        const v2 = yield* plugEdu(sim, {}, "edu0")
        v2.ctx.regions[0].onRead("ID", () => 0x020000ed)
        const v13 = yield* plugEdu(sim, {}, "edu1")
        v13.ctx.regions[0].onRead("ID", () => 0x010300ed)
        yield* sim.pci.registerDriver(driver())

        expect(v2.device.state).toBe("unbound")
        const { error, report } = yield* probeFailure(sim)
        expect(error).toBeInstanceOf(UnsupportedVersion)
        expect(error).toMatchObject({ device: "edu0", id: 0x020000ed, major: 2, minor: 0 })
        expect(String((error as UnsupportedVersion).message)).toContain("edu version 2.0")
        // Nothing but the ID read reached it; BAR0 was released, nothing leaked.
        expect(traffic(sim, "edu0")).toEqual(["R ID=0x20000ed"])
        expect(report?.cause).toBe("probe-failure")
        expect(report?.released).toEqual([LABELS.bar0])
        expect(report?.leaks).toEqual([])

        expect(v13.device.state).toBe("bound")
        expect(edu(devices, "edu1").version).toEqual({ major: 1, minor: 3 })
        const unplugged = yield* sim.unplug("edu1")
        expect(unplugged?.released).toEqual(RELEASED)
      })
    ))

  it.effect("not an edu (no 0xed signature), a device gone before probe (all-ones) and a failed liveness check are refused", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        const other = yield* plugEdu(sim, {}, "edu0")
        other.ctx.regions[0].onRead("ID", () => 0x01000042)
        const gone = yield* plugEdu(sim, {}, "edu1")
        gone.ctx.regions[0].disconnect()
        const dead = yield* plugEdu(sim, {}, "edu2")
        dead.ctx.regions[0].onRead("LIVENESS", () => LIVENESS_PATTERN)
        yield* sim.pci.registerDriver(driver())

        const failures = (yield* sim.pci.history).flatMap((e) =>
          e._tag === "ProbeFailed" ? [[e.device.name, Option.getOrUndefined(Cause.failureOption(e.cause))] as const] : []
        )
        expect(failures.map(([name, error]) => [name, (error as { _tag: string })._tag])).toEqual([
          ["edu0", "NotEdu"],
          ["edu1", "NotEdu"],
          ["edu2", "LivenessFailed"]
        ])
        expect(failures[1]![1]).toBeInstanceOf(NotEdu)
        expect((failures[1]![1] as NotEdu).message).toContain("all-ones")
        expect(failures[2]![1]).toMatchObject({ wrote: LIVENESS_PATTERN, read: LIVENESS_PATTERN })
        const reports = (yield* sim.pci.history).flatMap((e) => (e._tag === "Unbound" ? [e.report] : []))
        expect(reports.map((r) => [r.released, r.leaks])).toEqual([[[LABELS.bar0], []], [[LABELS.bar0], []], [[LABELS.bar0], []]])
        expect([other, gone, dead].map((d) => d.device.state)).toEqual(["unbound", "unbound", "unbound"])
      })
    ))
})
