/**
 * The edu example driver, written against the simulator's model, on QEMU's own edu device:
 * the same source file, only the Layer differs. Factorials, interrupts, DMA both ways, and
 * removal (orderly and by surprise) with a DMA in flight.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { DeviceError, Hardware } from "@devscope/core"
import { driver, type EduDevice, EduDevices, makeEduDevices, type Probed } from "@devscope/example-edu"
import { Explore } from "@devscope/testing"
import { Qemu } from "@devscope/qemu"
import { skipReason } from "./qemuAvailable.js"

// Without QEMU (outside CI) these are skipped, with the reason printed by qemuAvailable.ts.
const skip = skipReason !== undefined

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff)

/** A QEMU machine with one edu (interrupting by INTx or MSI), the driver registered, the device plugged. */
const withEdu = <A, E>(f: (q: Qemu.Service, probed: () => Probed) => Effect.Effect<A, E, EduDevices>, interrupts: "intx" | "msi" = "intx") =>
  Effect.scoped(Effect.gen(function*() {
    const q = yield* Qemu.make({ devices: [{ name: "edu0", model: "edu", interrupts }] })
    const devices = makeEduDevices()
    let probed: Probed | undefined
    yield* q.pci.registerDriver(driver({ onProbe: (p) => (probed = p) })).pipe(
      Effect.provideService(Hardware.Hardware, q.hardware),
      Effect.provideService(EduDevices, devices)
    )
    const device = yield* q.plug("edu0")
    expect(device.state).toBe("bound")
    const edu = Option.getOrThrow(devices.lookup("edu0"))
    expect(edu.version).toEqual({ major: 1, minor: 0 })
    return yield* Effect.provideService(f(q, () => probed!), EduDevices, devices)
  }))

const edu = Effect.map(EduDevices, (d) => Option.getOrThrow(d.lookup("edu0")))

describe.skipIf(skip).each(["intx", "msi"] as const)("the edu driver on QEMU's edu, interrupting by %s", (interrupts) => {
  it.live("factorials, raised interrupts, DMA both ways (QEMU's 100 ms transfers)", () =>
    withEdu((q) =>
      Effect.gen(function*() {
        const d = yield* edu
        expect(yield* d.factorial(5)).toBe(120)
        expect(yield* d.factorial(13)).toBe(1932053504)
        yield* d.raise(0x40)
        const data = pattern(256, 3)
        yield* d.dmaToDevice(data, { offset: 64 })
        const back = yield* d.dmaFromDevice(256, { offset: 64 })
        expect([...back]).toEqual([...data])
        expect(d.stats().interrupts).toBeGreaterThan(0)
        expect(q.dmaFaults()).toEqual([])
        expect(q.problems()).toEqual([])
      }), interrupts), 60_000)

  it.live("orderly unplug with a DMA in flight: the transfer ends before its buffer is freed; later calls get DeviceGone", () =>
    withEdu((q, probed) =>
      Effect.gen(function*() {
        const d = yield* edu
        const inFlight = yield* Effect.fork(d.dmaToDevice(pattern(512, 1)))
        yield* Effect.sleep("30 millis")
        const report = yield* q.unplug("edu0")
        expect(report?.cause).toBe("hot-unplug")
        expect(report?.leaks).toEqual([])
        expect(yield* Fiber.await(inFlight)).toEqual(Exit.void)
        const after = yield* Effect.exit(d.factorial(3))
        expect(Exit.isFailure(after) && after.cause._tag === "Fail" && after.cause.error instanceof DeviceError.DeviceGone).toBe(true)
        const stats = probed().engine.stats()
        expect(stats.inFlight).toBe(0)
        expect(probed().engine.resolutions).toBe(stats.started)
        expect(q.dmaFaults()).toEqual([])
        // Plugged again: a new binding works.
        yield* q.plug("edu0")
        expect(yield* (yield* edu).factorial(4)).toBe(24)
      }), interrupts), 60_000)

  it.live("surprise removal with a DMA in flight: every call resolves once with DeviceGone, the unbind is clean", () =>
    withEdu((q, probed) =>
      Effect.gen(function*() {
        const d = yield* edu
        const inFlight = yield* Effect.fork(d.dmaFromDevice(1024))
        const queued = yield* Effect.fork(d.dmaToDevice(pattern(64, 9)))
        yield* Effect.sleep("20 millis")
        const report = yield* q.surpriseRemove("edu0")
        expect(report?.cause).toBe("surprise")
        expect(report?.leaks).toEqual([])
        const gone = (exit: Exit.Exit<unknown, unknown>) =>
          Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof DeviceError.DeviceGone
        expect(gone(yield* Fiber.await(inFlight))).toBe(true)
        expect(gone(yield* Fiber.await(queued))).toBe(true)
        const stats = probed().engine.stats()
        expect(stats.inFlight).toBe(0)
        expect(probed().engine.resolutions).toBe(stats.started)
        expect(q.problems()).toEqual([])
      }), interrupts), 60_000)
})

describe.skipIf(skip)("Explore on QEMU's edu", () => {
  it.live("the edu driver under load: surprise and orderly removal at points spread over the run, every operation resolved once", () =>
    Effect.gen(function*() {
      const report = yield* Explore.exploreOn({
        name: "edu-on-qemu",
        device: "edu0",
        platform: Qemu.platform({ devices: [{ name: "edu0", model: "edu" }] }),
        run: ({ platform, oracle }) =>
          Effect.gen(function*() {
            const devices = makeEduDevices()
            yield* platform.pci.registerDriver(driver()).pipe(
              Effect.provideService(Hardware.Hardware, platform.hardware),
              Effect.provideService(EduDevices, devices),
              Effect.orDie
            )
            yield* Effect.orDie(platform.plug("edu0"))
            const ops: ReadonlyArray<readonly [string, (d: EduDevice) => Effect.Effect<unknown, unknown>]> = [
              ["factorial", (d) => d.factorial(7)],
              ["dma to device", (d) => d.dmaToDevice(pattern(128, 5))],
              ["dma from device", (d) => d.dmaFromDevice(128)]
            ]
            for (const [what, op] of ops) {
              const d = Option.getOrUndefined(devices.lookup("edu0"))
              if (d !== undefined) yield* oracle.track("edu0", what, op(d))
            }
            yield* Effect.ignore(platform.unplug("edu0"))
          })
      }, { maxPoints: 4 })
      expect(report.failures).toEqual([])
      expect(report.modes[0]!.injected).toBeGreaterThan(0)
      expect(report.modes[1]!.injected).toBeGreaterThan(0)
    }), 180_000)
})
