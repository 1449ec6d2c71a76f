/**
 * Runs on QEMU's device models (`run --backend qemu`): the scenario's devices become the
 * machine's (each kind's QEMU model behind its own root port; a device not present at the
 * start waits in a powered-off slot), made outside the run's virtual world, QEMU's clock
 * driven from inside it.
 * @internal
 */
import * as Effect from "effect/Effect"
import { Qemu } from "@devscope/qemu"
import { BackendUnavailable } from "../Errors.js"
import * as Scenario from "../Scenario.js"
import * as Machine from "./machine.js"
import type { Start } from "./runner.js"

/** What keeps a scenario off QEMU, each with its field (empty: it can run there). */
export const issues = (scenario: Scenario.Scenario): ReadonlyArray<Scenario.Issue> => {
  const found: Array<Scenario.Issue> = []
  scenario.devices.forEach((device, i) => {
    if (Scenario.kinds[device.kind].qemu === undefined) {
      const have = Object.entries(Scenario.kinds).filter(([, k]) => k.qemu !== undefined).map(([kind]) => kind)
      found.push({ path: `devices[${i}].kind`, message: `QEMU has no ${device.kind} device (it has: ${have.join(", ")})` })
    }
  })
  if (scenario.devices.length > Qemu.MAX_DEVICES) {
    found.push({ path: "devices", message: `${scenario.devices.length} devices; a QEMU machine has at most ${Qemu.MAX_DEVICES} (one root port each)` })
  }
  // A driver QEMU has no device for would have no bus to register on.
  scenario.drivers.forEach((driver, i) => {
    if (Scenario.kinds[driver.kind].qemu === undefined) found.push({ path: `drivers[${i}].kind`, message: `QEMU has no ${driver.kind} device for this driver` })
  })
  for (const [i, event] of (scenario.timeline ?? []).entries()) {
    if ("driver" in event && Scenario.kinds[event.driver].qemu === undefined) {
      found.push({ path: `timeline[${i}].driver`, message: `QEMU has no ${event.driver} device for this driver` })
    }
  }
  if ((scenario.faults ?? []).length > 0) {
    found.push({ path: "faults", message: "fault rules are the simulator's; QEMU's devices do not take them" })
  }
  return found
}

/** The machine description of a scenario that can run on QEMU. */
export const machineOf = (scenario: Scenario.Scenario): ReadonlyArray<Qemu.DeviceSpec> =>
  scenario.devices.map((device) => ({ name: device.name, model: Scenario.kinds[device.kind].qemu!, present: device.present !== false }))

/** The QEMU host of a run: fails with `BackendUnavailable` if the scenario cannot run there or QEMU cannot start. */
export const start = (scenario: Scenario.Scenario): Start<BackendUnavailable> => ({
  _tag: "outside",
  make: (onLifecycle, traceLimit) =>
    Effect.gen(function*() {
      const problems = issues(scenario)
      if (problems.length > 0) {
        return yield* new BackendUnavailable({ backend: "qemu", reason: problems.map((p) => `${p.path}: ${p.message}`).join("; ") })
      }
      const qemu = yield* Qemu.make({ devices: machineOf(scenario), clock: "manual", onLifecycle, traceLimit }).pipe(
        Effect.mapError((error) => new BackendUnavailable({ backend: "qemu", reason: error.message }))
      )
      return { host: Machine.onQemu(qemu), inWorld: qemu.runClock }
    })
})
