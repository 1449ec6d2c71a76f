/**
 * Checks of a scenario beyond its schema: errors (names that refer to nothing, times that do
 * not fit) and warnings (actions that will be refused when they run).
 * @internal
 */
import type { DeviceSpec, DriverSpec, FaultRule, Issue, Kind, Scenario, TimelineEvent } from "../Scenario.js"
import { kinds } from "./kinds.js"

const sortedTimeline = (scenario: Scenario) =>
  (scenario.timeline ?? []).map((event, index) => ({ event, index })).sort((a, b) =>
    a.event.at - b.event.at || a.index - b.index
  )

// Twelve significant digits: enough that a time just past another (50.000001 after 50) does
// not print as equal to it, few enough to hide binary noise (0.30000000000000004).
const ms = (millis: number) => `${Number(millis.toPrecision(12))} ms`

/**
 * The parts of a scenario that decoded: a whole scenario, or, when the schema failed, the
 * elements that decoded on their own (`undefined` where one did not), so the cross-checks
 * still run on them in the same pass.
 * @internal
 */
export interface Parts {
  readonly duration?: number | undefined
  readonly devices: ReadonlyArray<DeviceSpec | undefined>
  readonly drivers: ReadonlyArray<DriverSpec | undefined>
  readonly timeline?: ReadonlyArray<TimelineEvent | undefined> | undefined
  readonly faults?: ReadonlyArray<FaultRule | undefined> | undefined
  /** Device names and driver kinds of elements that did not decode: not reported as unknown. */
  readonly undecodedNames?: ReadonlySet<string> | undefined
}

/**
 * Cross-field checks the schema cannot express: names refer to things that exist, times fit.
 * @internal
 */
export const crossCheck = (scenario: Parts): Array<Issue> => {
  const issues: Array<Issue> = []
  const devices = new Map<string, DeviceSpec>()
  const undecoded = scenario.undecodedNames ?? new Set<string>()
  scenario.devices.forEach((device, i) => {
    if (device === undefined) return
    if (devices.has(device.name)) {
      issues.push({ path: `devices[${i}].name`, message: `duplicate device name "${device.name}"` })
    }
    devices.set(device.name, device)
  })
  const known = () => [...devices.keys()].join(", ")
  const cables = new Map<string, Array<string>>()
  scenario.devices.forEach((device, i) => {
    if (device === undefined || device.kind !== "nic" || device.cable === undefined) return
    const ends = cables.get(device.cable) ?? []
    ends.push(device.name)
    cables.set(device.cable, ends)
    if (ends.length > 2) {
      issues.push({ path: `devices[${i}].cable`, message: `cable "${device.cable}" already has two ends (${ends.slice(0, 2).join(", ")})` })
    }
    if (device.loopback === true) {
      issues.push({ path: `devices[${i}].loopback`, message: "a NIC on a cable cannot also be in loopback" })
    }
  })
  const stores = new Map<string, string>()
  scenario.devices.forEach((device, i) => {
    if (device === undefined || device.kind !== "blk") return
    const store = device.store ?? device.name
    const owner = stores.get(store)
    if (owner !== undefined) {
      issues.push({ path: `devices[${i}].store`, message: `store "${store}" is already the medium of ${owner}` })
    }
    stores.set(store, device.name)
  })
  const driverKinds = new Set<string>()
  scenario.drivers.forEach((driver, i) => {
    if (driver === undefined) return
    if (driverKinds.has(driver.kind)) issues.push({ path: `drivers[${i}].kind`, message: `driver "${driver.kind}" listed twice` })
    driverKinds.add(driver.kind)
  })
  const duration = scenario.duration
  ;(scenario.timeline ?? []).forEach((event, i) => {
    if (event === undefined) return
    if ("device" in event && !devices.has(event.device) && !undecoded.has(event.device)) {
      issues.push({ path: `timeline[${i}].device`, message: `unknown device "${event.device}" (devices: ${known()})` })
    }
    if ("driver" in event && !driverKinds.has(event.driver) && !undecoded.has(event.driver)) {
      issues.push({ path: `timeline[${i}].driver`, message: `driver "${event.driver}" is not in drivers` })
    }
    if (duration !== undefined && event.at > duration) {
      issues.push({
        path: `timeline[${i}].at`,
        message: `${ms(event.at)} is after the end of the scenario (duration ${ms(duration)})`
      })
    }
  })
  ;(scenario.faults ?? []).forEach((fault, i) => {
    if (fault === undefined) return
    const device = fault.device === undefined ? undefined : devices.get(fault.device)
    if (fault.device !== undefined && device === undefined && !undecoded.has(fault.device)) {
      issues.push({ path: `faults[${i}].device`, message: `unknown device "${fault.device}" (devices: ${known()})` })
    }
    if (fault.kind === "irq-storm" && device !== undefined && fault.line >= kinds[device.kind].irqLines) {
      const lines = kinds[device.kind].irqLines
      issues.push({
        path: `faults[${i}].line`,
        message: `${device.name} (${device.kind}) has ${lines} interrupt line${lines === 1 ? "" : "s"} (0${
          lines > 1 ? ` to ${lines - 1}` : ""
        }), not line ${fault.line}`
      })
    }
    if ((fault.kind === "irq-storm" || fault.kind === "all-ones-reads") && fault.at !== undefined && duration !== undefined && fault.at > duration) {
      issues.push({
        path: `faults[${i}].at`,
        message: `${ms(fault.at)} is after the end of the scenario (duration ${ms(duration)})`
      })
    }
  })
  return issues
}

/** @internal */
export const warnings = (scenario: Scenario): Array<Issue> => {
  const out: Array<Issue> = []
  const spec = new Map(scenario.devices.map((d) => [d.name, d]))
  const present = new Map<string, number | undefined>()
  for (const d of scenario.devices) if (d.present !== false) present.set(d.name, undefined)
  const loaded = new Set<Kind>(scenario.drivers.map((d) => d.kind))
  const everLoaded = new Set<Kind>(loaded)
  // Devices unbound by an `unbind` action, and when; a `bind`, a re-plug or a driver load ends it.
  const unbound = new Map<string, number>()
  // A probe can fail at run time when a fault rule makes a request fail.
  const mayFailProbe = (device: string) =>
    (scenario.faults ?? []).some((f) => f.kind === "fail-nth" && (f.device === undefined || f.device === device))
  const since = (at: number | undefined) => at === undefined ? "since the start" : `since ${ms(at)}`
  for (const { event, index } of sortedTimeline(scenario)) {
    const where = `timeline[${index}]`
    const at = ms(event.at)
    if ("driver" in event) {
      if (event.action === "unload") {
        if (!loaded.has(event.driver)) out.push({ path: where, message: `unload of "${event.driver}" at ${at}: it is not loaded then (refused)` })
        loaded.delete(event.driver)
        for (const d of scenario.devices) if (d.kind === event.driver) unbound.delete(d.name)
      } else {
        if (loaded.has(event.driver)) out.push({ path: where, message: `load of "${event.driver}" at ${at}: it is already loaded (refused)` })
        loaded.add(event.driver)
        everLoaded.add(event.driver)
        for (const d of scenario.devices) if (d.kind === event.driver) unbound.delete(d.name)
      }
      continue
    }
    const device = spec.get(event.device)
    if (device === undefined) continue
    const isPresent = present.has(event.device)
    switch (event.action) {
      case "plug":
        if (isPresent) {
          out.push({ path: where, message: `plug of ${event.device} at ${at}: it is already plugged (${since(present.get(event.device))}; refused)` })
        }
        present.set(event.device, event.at)
        unbound.delete(event.device)
        break
      case "unplug":
      case "surprise":
        if (!isPresent) out.push({ path: where, message: `${event.action} of ${event.device} at ${at}: it is not plugged then (refused)` })
        present.delete(event.device)
        unbound.delete(event.device)
        break
      case "unbind":
        if (!isPresent) out.push({ path: where, message: `unbind of ${event.device} at ${at}: it is not plugged then (refused)` })
        else if (!loaded.has(device.kind)) {
          out.push({ path: where, message: `unbind of ${event.device} at ${at}: the ${device.kind} driver is not loaded then, nothing is bound (refused)` })
        } else if (unbound.has(event.device)) {
          out.push({ path: where, message: `unbind of ${event.device} at ${at}: it was already unbound at ${ms(unbound.get(event.device)!)} (refused)` })
        } else unbound.set(event.device, event.at)
        break
      case "bind":
        if (!isPresent) out.push({ path: where, message: `bind of ${event.device} at ${at}: it is not plugged then (refused)` })
        else if (!loaded.has(device.kind)) {
          out.push({ path: where, message: `bind of ${event.device} at ${at}: the ${device.kind} driver is not loaded then (refused)` })
        } else if (!unbound.has(event.device) && !mayFailProbe(event.device)) {
          out.push({ path: where, message: `bind of ${event.device} at ${at}: it is already bound (refused)` })
        }
        unbound.delete(event.device)
        break
    }
  }
  scenario.devices.forEach((device, i) => {
    if (!everLoaded.has(device.kind)) {
      out.push({ path: `devices[${i}]`, message: `no ${device.kind} driver is ever loaded: ${device.name} is never bound (add { "kind": "${device.kind}" } to drivers)` })
    }
  })
  return out
}

