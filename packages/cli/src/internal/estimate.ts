/**
 * An estimate of a run's work before it runs: from the devices, the workload (intervals,
 * windows, workers, readers), the devices' latencies and delayed completions, the interrupt
 * storms and the timeline, the simulator events per virtual second and in all, and the memory
 * the run will hold. A scenario over a limit is refused naming the field that drives it.
 *
 * The estimate is an upper bound: it counts every sender, worker and reader as always busy,
 * one operation per (mean pause + device latency + mean delay), and every NIC frame twice
 * (sent and received).
 * @internal
 */
import type { Estimate, Issue, Limits, Scenario } from "../Scenario.js"
import { DEVICE_LATENCY, EDU_DMA, EDU_FACTORIAL, REMOVE_TIMEOUT, SECTORS, SENSOR_CONVERSION, workloadDefaults } from "./defaults.js"

/**
 * Simulator events (register accesses, DMA, interrupts, completions) per workload operation.
 * Measured with the example scenarios: 4.6 (demo) to 6.8 (nic-bug) trace events per
 * operation; 8 keeps the estimate above them.
 */
export const EVENTS_PER_OPERATION = 8

/** Events of one raised interrupt of a storm (the raise, the handler's reads and acknowledgement). */
export const EVENTS_PER_INTERRUPT = 4

/** Events of one lifecycle action (plug, probe, unbind with its releases), and of a device's boot and end. */
export const EVENTS_PER_ACTION = 200

/** Memory the run holds per simulator event (trace entry, lifecycle and operation accounting; measured ~300-500 B). */
export const BYTES_PER_EVENT = 400

/** Memory of one device's model, driver and load, besides its medium. */
export const BYTES_PER_DEVICE = 256 * 1024

/** The duration a run of ordinary length has (the demo's), to tell a long run from a dense one. */
const ORDINARY_DURATION = 300

/** Devices of one kind an ordinary machine has. */
const ORDINARY_DEVICES = 2

/** @internal */
export const limits: Limits = {
  devices: 256,
  timeline: 10_000,
  faults: 1_000,
  events: 750_000,
  eventsPerSecond: 100_000_000,
  memoryBytes: 320 * 1024 * 1024
}

/** What the estimate adds up: one source of events, with the field that drives it. */
interface Source {
  /** Sustained events per virtual second (while the run goes), or 0. */
  readonly rate: number
  /** Events of a burst (an interrupt storm, the timeline's actions), or 0. */
  readonly burst: number
  /** The field to name when the rate is too high. */
  readonly rateField: string
  /** The field to name when the total is too high, if it is not the duration. */
  readonly totalField: string
  /** How much smaller the total would be with an ordinary value of `totalField`. */
  readonly excess: number
  readonly what: string
  /** Only checked against the rate limit (a storm's rate while it lasts; its events are a burst). */
  readonly rateOnly?: boolean
}

const per = (n: number) => (Number.isFinite(n) ? n : Infinity)

/** The estimate, with its sources (internal: for naming the field over a limit). */
export const estimateWithSources = (scenario: Scenario): Estimate & { readonly sources: ReadonlyArray<Source> } => {
  const config = workloadDefaults(scenario.workload)
  const ordinary = workloadDefaults(undefined)
  const faults = scenario.faults ?? []
  const timeline = scenario.timeline ?? []
  const hangs = scenario.drivers.some((d) => d.bug === "hang-in-remove")
  const virtualMillis = scenario.duration + (hangs ? REMOVE_TIMEOUT : 0)
  const delay = (device: string) =>
    faults.reduce(
      (sum, f) => f.kind === "delay-completions" && (f.device === undefined || f.device === device) ? sum + f.by * (f.probability ?? 1) : sum,
      0
    )
  const sources: Array<Source> = []
  const kindSource = (
    kind: "nic" | "blk" | "sensor" | "edu",
    unitsField: string,
    units: number,
    ordinaryUnits: number,
    interval: number,
    ordinaryInterval: number,
    perDevice: (device: Scenario["devices"][number]) => number
  ) => {
    const devices = scenario.devices.filter((d) => d.kind === kind)
    if (devices.length === 0) return
    const rate = devices.reduce((sum, d) => sum + perDevice(d), 0)
    // Which change would bring the load down most: the pause back to its default, the
    // senders/workers/readers back to theirs, or fewer devices.
    const factors: Array<[string, number]> = [
      [`workload.${kind}.interval`, (ordinaryInterval + DEVICE_LATENCY) / (interval + DEVICE_LATENCY)],
      [`workload.${kind}.${unitsField}`, units / ordinaryUnits],
      ["devices", devices.length / ORDINARY_DEVICES]
    ]
    const [field, excess] = factors.reduce((best, f) => (f[1] > best[1] ? f : best))
    sources.push({ rate, burst: 0, rateField: field, totalField: field, excess, what: `the ${kind} load` })
  }
  const latencyOf = (d: Scenario["devices"][number]) => ("latency" in d && d.latency !== undefined ? d.latency : DEVICE_LATENCY)
  kindSource("nic", "window", config.nic.window, ordinary.nic.window, config.nic.interval, ordinary.nic.interval, (d) =>
    // Each of `window` senders sends a frame per cycle; the peer (or the loopback) receives it.
    per(2 * config.nic.window * 1000 / (config.nic.interval + latencyOf(d) + delay(d.name))) * EVENTS_PER_OPERATION)
  kindSource("blk", "workers", config.blk.workers, ordinary.blk.workers, config.blk.interval, ordinary.blk.interval, (d) =>
    per(config.blk.workers * 1000 / (config.blk.interval + latencyOf(d) + delay(d.name))) * EVENTS_PER_OPERATION)
  kindSource("sensor", "readers", config.sensor.readers, ordinary.sensor.readers, config.sensor.interval, ordinary.sensor.interval, () =>
    (per(config.sensor.readers * 1000 / config.sensor.interval) + 1000 / SENSOR_CONVERSION) * EVENTS_PER_OPERATION)
  // Each edu worker's round: a factorial and two DMA transfers; the device has one DMA engine,
  // so however many workers there are, it completes at most one round per two transfers.
  kindSource("edu", "workers", config.edu.workers, ordinary.edu.workers, config.edu.interval, ordinary.edu.interval, () =>
    3 * Math.min(per(config.edu.workers * 1000 / (config.edu.interval + EDU_FACTORIAL + 2 * EDU_DMA)), 1000 / (2 * EDU_DMA)) *
    EVENTS_PER_OPERATION)

  // Interrupt storms: `count` interrupts from each plug of the device, one per `interval`.
  const plugs = (device: string) => {
    const spec = scenario.devices.find((d) => d.name === device)
    return (spec === undefined || spec.present === false ? 0 : 1) +
      timeline.filter((e) => e.action === "plug" && "device" in e && e.device === device).length
  }
  faults.forEach((fault, i) => {
    if (fault.kind !== "irq-storm") return
    const interval = fault.interval ?? 0.001
    const burst = fault.count * plugs(fault.device) * EVENTS_PER_INTERRUPT
    sources.push({
      rate: 0,
      burst,
      rateField: `faults[${i}].interval`,
      totalField: `faults[${i}].count`,
      excess: fault.count / 1000,
      what: `the interrupt storm of faults[${i}]`
    })
    // While it storms: one interrupt per interval (checked against the rate limit alone).
    sources.push({
      rate: per(1000 / interval) * EVENTS_PER_INTERRUPT,
      burst: 0,
      rateField: `faults[${i}].interval`,
      totalField: `faults[${i}].interval`,
      excess: 0,
      what: `the interrupt storm of faults[${i}]`,
      rateOnly: true
    })
  })
  const devices = scenario.devices.length
  sources.push({
    rate: 0,
    burst: (timeline.length + 2 * devices) * EVENTS_PER_ACTION,
    rateField: "timeline",
    totalField: timeline.length >= 2 * devices ? "timeline" : "devices",
    excess: Math.max(timeline.length / 100, devices / (2 * ORDINARY_DEVICES)),
    what: "the lifecycle actions"
  })

  // The storms' rate lasts only while they storm (their events are the burst).
  const sustained = sources.filter((s) => s.rateOnly !== true)
  const eventsPerSecond = sustained.reduce((sum, s) => sum + s.rate, 0)
  // The loads run for the duration (during a planted hang's wait they are stopped or waiting).
  const events = sustained.reduce((sum, s) => sum + s.rate * scenario.duration / 1000 + s.burst, 0)
  const stores = new Map<string, number>()
  for (const d of scenario.devices) if (d.kind === "blk") stores.set(d.store ?? d.name, (d.sectors ?? SECTORS) * 512)
  const storeBytes = [...stores.values()].reduce((a, b) => a + b, 0)
  const memoryBytes = events * BYTES_PER_EVENT + storeBytes + devices * BYTES_PER_DEVICE
  return { devices, virtualMillis, eventsPerSecond, events, memoryBytes, sources }
}

/** A number in a few significant digits: `3.2e12`, `450000`, `1.5e6`. */
export const approx = (n: number): string => {
  if (!Number.isFinite(n)) return "over 1e308"
  if (n < 1e5) return String(Number(n.toPrecision(2)))
  const [mantissa, exponent] = n.toExponential(1).split("e")
  return `${mantissa!.replace(/\.0$/, "")}e${Number(exponent)}`
}

/** `about 3.2e12`, or `over 1e308` for a number past a double's range. */
const about = (n: number) => (Number.isFinite(n) ? `about ${approx(n)}` : approx(n))

const mib = (bytes: number) => `${approx(bytes / (1024 * 1024))} MiB`

/** The counts over their limits (these need no decoding: the lengths of the arrays). */
export const countIssues = (devices: number, timeline: number, faults: number, max: Limits = limits): Array<Issue> => {
  const issues: Array<Issue> = []
  const count = (path: string, n: number, limit: number, what: string) => {
    if (n > limit) issues.push({ path, message: `${n} ${what}, limit ${limit} (--allow-large to run it anyway)` })
  }
  count("devices", devices, max.devices, "devices")
  count("timeline", timeline, max.timeline, "timeline events")
  count("faults", faults, max.faults, "fault rules")
  return issues
}

/**
 * The limits a scenario is over, each naming the field that drives it and the estimate in
 * words, or none.
 */
export const limitIssues = (scenario: Scenario, max: Limits = limits): Array<Issue> => {
  const issues = countIssues(scenario.devices.length, scenario.timeline?.length ?? 0, scenario.faults?.length ?? 0, max)
  if (issues.length > 0) return issues
  const estimate = estimateWithSources(scenario)
  const hint = "--allow-large to run it anyway"
  // A rate no machine runs: one source alone over the limit per virtual second.
  const dense = estimate.sources.filter((s) => s.rate > max.eventsPerSecond)
  for (const source of dense) {
    issues.push({
      path: source.rateField,
      message: `${source.what} is ${about(source.rate)} simulator events per virtual second, limit ${approx(max.eventsPerSecond)} (${hint})`
    })
  }
  if (dense.length > 0) return issues
  const seconds = scenario.duration / 1000
  if (estimate.events > max.events) {
    const top = estimate.sources.filter((s) => s.rateOnly !== true).reduce((a, b) => (b.rate * seconds + b.burst > a.rate * seconds + a.burst ? b : a))
    // The duration when the run is long rather than dense, else the field of the largest source.
    const durationExcess = scenario.duration / ORDINARY_DURATION
    const path = top.rate > 0 && durationExcess >= top.excess ? "duration" : top.totalField
    const detail = top.rate > 0
      ? `${approx(estimate.eventsPerSecond)} per virtual second for ${approx(seconds)} s of virtual time`
      : `most from ${top.what}`
    issues.push({
      path,
      message: `${about(estimate.events)} simulator events (${detail}), limit ${approx(max.events)} (${hint})`
    })
  }
  if (estimate.memoryBytes > max.memoryBytes) {
    const disks = scenario.devices.map((d, i) => ({ d, i })).filter(({ d }) => d.kind === "blk")
    const biggest = disks.reduce<{ readonly bytes: number; readonly path: string } | undefined>((best, { d, i }) => {
      const bytes = (d.kind === "blk" ? d.sectors ?? SECTORS : 0) * 512
      return best === undefined || bytes > best.bytes ? { bytes, path: `devices[${i}].sectors` } : best
    }, undefined)
    const disksDrive = biggest !== undefined && biggest.bytes * 2 > estimate.memoryBytes
    // Memory that follows from too many events is said by the events' issue already.
    if (disksDrive || issues.length === 0) {
      issues.push({
        path: disksDrive ? biggest.path : "devices",
        message: `${about(estimate.memoryBytes / (1024 * 1024))} MiB of memory, limit ${mib(max.memoryBytes)} (${hint})`
      })
    }
  }
  return issues
}
