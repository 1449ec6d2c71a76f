import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Fiber, Option, TestClock } from "effect"
import { Bound, DeviceError, type Hardware, type Lifecycle } from "@devscope/core"
import { Simulator } from "@devscope/sim"
import { driver, Hwmon, type HwmonRegistry, makeHwmon, type Probed, SensorModel } from "../src/index.js"

const withSim = <A, E>(
  f: (sim: Simulator.Service, hwmon: HwmonRegistry) => Effect.Effect<A, E, Hardware.Hardware | Hwmon>,
  options?: Simulator.Options
) => {
  const hwmon = makeHwmon()
  return Effect.flatMap(Simulator.Simulator, (sim) => f(sim, hwmon)).pipe(
    Effect.provide(Simulator.layer(options)),
    Effect.provideService(Hwmon, hwmon)
  )
}

const plugSensor = (sim: Simulator.Service, name = "sensor0") =>
  sim.plug({ bus: "platform", name, ids: SensorModel.ids, model: SensorModel.model() })

/** Every resource the probe acquires, in reverse order of acquisition. */
const RELEASED = ["hwmon registration", "irq 0", "samples", "BAR0"]

const inRange = (v: number) => v >= SensorModel.TEMP_MIN && v < SensorModel.TEMP_MAX + SensorModel.NOISE

type Outcome = { readonly _tag: "value"; readonly value: number; readonly releasedYet: boolean } | {
  readonly _tag: "gone"
  readonly error: unknown
}

/**
 * A reader calling readTemperature in a loop until the device is gone. Each call's outcome is
 * recorded once, with whether the samples ring had been released when the value arrived.
 */
const reader = (probed: Probed, outcomes: Array<Outcome>, started: { n: number }) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100_000; i++) {
      started.n++
      const result = yield* Effect.either(probed.handle.readTemperature())
      if (Either.isRight(result)) {
        outcomes.push({ _tag: "value", value: result.right, releasedYet: probed.samples.isReleased })
      } else {
        outcomes.push({ _tag: "gone", error: result.left })
        return
      }
      yield* Effect.yieldNow()
    }
  })

/** G2-G4 checks shared by the orderly and the surprise removal tests. */
const checkUnderLoad = (
  report: Lifecycle.UnbindReport | undefined,
  outcomesPerReader: ReadonlyArray<ReadonlyArray<Outcome>>,
  started: number
) => {
  // G2: every resource released exactly once, in reverse order.
  expect(report?.released).toEqual(RELEASED)
  expect(report?.releaseFailures).toEqual([])
  // G3: no fiber survives (the sampler and the irq handler were stopped).
  expect(report?.leaks).toEqual([])
  expect(report!.fibersInterrupted).toBeGreaterThanOrEqual(1)
  // G4: every call resolved exactly once: values, then exactly one DeviceGone, none after release.
  // The gate closed with readers inside: they were awaited, not cut off.
  expect(report?.gates).toHaveLength(1)
  expect(report!.gates[0]!.awaited).toBeGreaterThanOrEqual(1)
  expect(report!.gates[0]!.interrupted).toEqual([])
  const all = outcomesPerReader.flat()
  expect(all).toHaveLength(started)
  for (const outcomes of outcomesPerReader) {
    expect(outcomes.length).toBeGreaterThanOrEqual(2)
    const last = outcomes[outcomes.length - 1]!
    expect(last._tag).toBe("gone")
    if (last._tag === "gone") expect(last.error).toBeInstanceOf(DeviceError.DeviceGone)
    for (const o of outcomes.slice(0, -1)) {
      expect(o._tag).toBe("value")
      if (o._tag === "value") {
        expect(inRange(o.value)).toBe(true)
        expect(o.releasedYet).toBe(false)
      }
    }
  }
}

describe("sensor example driver", () => {
  it.effect("normal operation: samples arrive, the threshold interrupt is counted, readTemperature works", () =>
    withSim((sim, hwmon) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.platform.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        const plugged = yield* plugSensor(sim)
        expect(plugged.device.state).toBe("bound")
        const handle = Option.getOrThrow(hwmon.lookup("sensor0"))
        expect(handle).toBe(probed!.handle)

        yield* TestClock.adjust("250 millis")
        const temp = yield* handle.readTemperature()
        expect(inRange(temp)).toBe(true)
        expect(handle.attribute("temp1_input")).toEqual(Option.some(temp))
        expect(Option.getOrThrow(handle.attribute("samples"))).toBeGreaterThanOrEqual(20)
        expect(handle.attribute("temp1_max")).toEqual(Option.some(35_000))
        // The waveform crosses 35 °C upwards once per 100 ms period.
        const alerts = Option.getOrThrow(handle.attribute("temp1_alarms"))
        expect(alerts).toBeGreaterThanOrEqual(2)
        const irq = probed!.irq.access(probed!.token)
        expect(irq.stats.handled).toBe(alerts)
        expect(irq.stats.unhandled).toBe(0)
        expect(sim.trace.filter({ kind: "Irq", device: "sensor0" }).filter((e) => e.kind === "raise")).toHaveLength(
          alerts
        )
        // Every alert was acked: STATUS reads clear.
        expect(plugged.ctx.regions[0].get("STATUS")).toBe(0)

        const report = yield* sim.unplug("sensor0")
        expect(report?.released).toEqual(RELEASED)
        expect(report?.leaks).toEqual([])
        expect(log).toEqual(["remove: device disabled"])
        expect(hwmon.devices()).toEqual([])
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("orderly unbind under load: every read resolves once, with a value or DeviceGone; nothing leaks", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.platform.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        yield* plugSensor(sim)
        yield* TestClock.adjust("50 millis")

        const started = { n: 0 }
        const outcomes = [[], [], [], []] as Array<Array<Outcome>>
        const readers = yield* Effect.forEach(outcomes, (o) => Effect.fork(reader(probed!, o, started)))
        yield* Effect.repeatN(Effect.yieldNow(), 20) // let the readers get going
        const report = yield* sim.platform.unbind("sensor0")
        yield* Fiber.joinAll(readers)

        expect(report.cause).toBe("manual")
        checkUnderLoad(report, outcomes, started.n)
        expect(log).toEqual(["remove: device disabled"])
        // The device was quiesced by remove: no more conversions, no more interrupts.
        const raises = sim.trace.filter({ kind: "Irq", device: "sensor0" }).length
        yield* TestClock.adjust("200 millis")
        expect(sim.trace.filter({ kind: "Irq", device: "sensor0" }).length).toBe(raises)
        expect(sim.iommuFaults()).toEqual([])
        yield* sim.unplug("sensor0")
      })
    ))

  it.effect("surprise removal under load: remove sees all-ones and skips; reads resolve once; nothing leaks", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        const log: Array<string> = []
        yield* sim.platform.registerDriver(driver({ log: (l) => log.push(l), onProbe: (p) => (probed = p) }))
        yield* plugSensor(sim)
        yield* TestClock.adjust("50 millis")

        const started = { n: 0 }
        const outcomes = [[], [], [], []] as Array<Array<Outcome>>
        const readers = yield* Effect.forEach(outcomes, (o) => Effect.fork(reader(probed!, o, started)))
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        const report = yield* sim.surpriseRemove("sensor0")
        yield* Fiber.joinAll(readers)

        expect(report?.cause).toBe("surprise")
        checkUnderLoad(report, outcomes, started.n)
        expect(log).toEqual(["remove: device gone, skipping disable"])
        const events = sim.trace.events().filter((e) => e.device === "sensor0" && e._tag === "Lifecycle").map((e) =>
          e._tag === "Lifecycle" ? e.event : ""
        )
        const order = ["surprise-removal", "disconnect", "Unbinding", "Unbound", "removed"]
        const positions = order.map((what) => events.indexOf(what))
        expect(positions.every((p) => p >= 0)).toBe(true)
        expect([...positions].sort((a, b) => a - b)).toEqual(positions)
        expect(sim.iommuFaults()).toEqual([])
      })
    ))

  it.effect("rebind after unplug: plugging again under the same name binds a fresh, working instance", () =>
    withSim((sim, hwmon) =>
      Effect.gen(function*() {
        yield* sim.platform.registerDriver(driver())
        yield* plugSensor(sim)
        yield* TestClock.adjust("30 millis")
        const old = Option.getOrThrow(hwmon.lookup("sensor0"))
        yield* sim.surpriseRemove("sensor0")
        expect(hwmon.lookup("sensor0")).toEqual(Option.none())

        const again = yield* plugSensor(sim)
        expect(again.device.state).toBe("bound")
        yield* TestClock.adjust("30 millis")
        const fresh = Option.getOrThrow(hwmon.lookup("sensor0"))
        expect(fresh).not.toBe(old)
        expect(inRange(yield* fresh.readTemperature())).toBe(true)
        expect(Option.isSome(fresh.attribute("temp1_input"))).toBe(true)
        // The old handle stays dead.
        const stale = yield* Effect.either(old.readTemperature())
        expect(Either.isLeft(stale) && stale.left).toBeInstanceOf(DeviceError.DeviceGone)
        expect(old.attribute("temp1_input")).toEqual(Option.none())

        const report = yield* sim.unplug("sensor0")
        expect(report?.released).toEqual(RELEASED)
        expect(report?.leaks).toEqual([])
      })
    ))

  it.effect("G1: a stale token, Mmio or Devres used after unbind dies with UseAfterUnbind; attribute() is None", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.platform.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        yield* plugSensor(sim)
        yield* TestClock.adjust("30 millis")
        const { bar, handle, samples, token } = probed!
        const mmio = bar.access(token) // an Mmio captured while bound
        expect(Option.isSome(handle.attribute("temp1_input"))).toBe(true)
        expect(Option.isSome(samples.tryAccess())).toBe(true)

        yield* sim.unplug("sensor0")
        expect(Bound.isLive(token)).toBe(false)

        const dies = (f: () => unknown) =>
          Effect.gen(function*() {
            const exit = yield* Effect.exit(Effect.sync(f))
            expect(Exit.isFailure(exit)).toBe(true)
            if (Exit.isFailure(exit)) {
              const defect = Cause.dieOption(exit.cause)
              expect(Option.getOrThrow(defect)).toBeInstanceOf(DeviceError.UseAfterUnbind)
            }
          })
        yield* dies(() => mmio.read("TEMP"))
        yield* dies(() => mmio.write("CTRL", 1))
        yield* dies(() => samples.access(token))
        yield* dies(() => bar.access(token))

        expect(samples.tryAccess()).toEqual(Option.none())
        expect(bar.tryAccess()).toEqual(Option.none())
        for (const name of ["temp1_input", "temp1_max", "temp1_alarms", "samples"] as const) {
          expect(handle.attribute(name)).toEqual(Option.none())
        }
        const read = yield* Effect.either(handle.readTemperature())
        expect(Either.isLeft(read) && read.left).toBeInstanceOf(DeviceError.DeviceGone)
      })
    ))

  it.effect("G5: no IOMMU faults, and after removal no device activity reaches the driver", () =>
    withSim((sim) =>
      Effect.gen(function*() {
        let probed: Probed | undefined
        yield* sim.platform.registerDriver(driver({ onProbe: (p) => (probed = p) }))
        yield* plugSensor(sim)
        yield* TestClock.adjust("120 millis")
        yield* sim.surpriseRemove("sensor0")
        const traced = sim.trace.events().length
        yield* TestClock.adjust("100 millis")
        expect(sim.iommuFaults()).toEqual([])
        expect(sim.trace.filter({ kind: "IommuFault" })).toEqual([])
        // Nothing more happened for the removed device.
        expect(sim.trace.events().slice(traced).filter((e) => e.device === "sensor0")).toEqual([])
        expect(probed!.samples.isReleased).toBe(true)
      })
    ))
})
