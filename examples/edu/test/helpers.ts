/**
 * Shared test pieces: a simulator with an EduDevices registry, a plugged edu model, and the
 * checks every removal test makes (each call resolved once, the report clean).
 */
import { expect } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import { DeviceError, type Hardware, type Lifecycle } from "@devscope/core"
import { Edu, Simulator } from "@devscope/sim"
import { type EduDevice, EduDevices, type EduDevicesRegistry, LABELS, makeEduDevices, type Probed } from "../src/index.js"

export const withSim = <A, E>(
  f: (sim: Simulator.Service, devices: EduDevicesRegistry) => Effect.Effect<A, E, Hardware.Hardware | EduDevices | Simulator.Simulator>,
  options?: Simulator.Options
) => {
  const devices = makeEduDevices()
  return Effect.flatMap(Simulator.Simulator, (sim) => f(sim, devices)).pipe(
    Effect.provide(Simulator.layer(options)),
    Effect.provideService(EduDevices, devices)
  )
}

export const plugEdu = (sim: Simulator.Service, timing: Edu.Timing = {}, name = "edu0") =>
  sim.plug({ bus: "pci", name, ids: Edu.ids, model: Edu.model(timing) })

export const edu = (devices: EduDevicesRegistry, name = "edu0"): EduDevice => Option.getOrThrow(devices.lookup(name))

/** Every resource the probe acquires, in reverse order of acquisition (what an unbind releases). */
export const RELEASED = [LABELS.registration, LABELS.irq, LABELS.engine, LABELS.buffer, LABELS.bar0]

/** The driver's register traffic on a device: `R ID=0x10000ed`, `W STATUS=0x80`, ... */
export const traffic = (sim: Simulator.Service, device = "edu0") =>
  sim.trace.filter({ kind: ["MmioRead", "MmioWrite"], device }).map((e) =>
    `${e._tag === "MmioRead" ? "R" : "W"} ${e.register}=0x${e.value.toString(16)}`
  )

/** The exit of a finished fiber (a fiber still running fails the test: a call hangs). */
export const exitOf = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.map(Fiber.poll(fiber), (o) => Option.getOrThrowWith(o, () => new Error("a call hangs")))

/** The typed error a call failed with (undefined for a success or a defect). */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** The call ended with `DeviceGone`. */
export const expectGone = <A, E>(exit: Exit.Exit<A, E>) => expect(failureOf(exit)).toBeInstanceOf(DeviceError.DeviceGone)

/** Every started call resolved exactly once; nothing left in flight. */
export const checkEngine = (probed: Probed) => {
  const stats = probed.engine.stats()
  expect(stats.inFlight).toBe(0)
  expect(probed.engine.resolutions).toBe(stats.started)
  expect(stats.completed + stats.failed).toBe(stats.started)
  return stats
}

/** Released exactly once, in reverse order; nothing leaked, nothing failed, no gate section cut. */
export const checkReport = (report: Lifecycle.UnbindReport | undefined) => {
  expect(report).toBeDefined()
  expect(report!.released).toEqual(RELEASED)
  expect(report!.releaseFailures).toEqual([])
  expect(report!.removeFailure).toBeUndefined()
  expect(report!.leaks).toEqual([])
  expect(report!.gates.every((g) => g.interrupted.length === 0 && g.stuck === 0)).toBe(true)
}
