/**
 * Checks a finished run against the guarantees G1-G5 (docs/testing.md), from what the run
 * recorded: the lifecycle events of both buses (with every unbind report, consumers'
 * included), the simulator's trace and IOMMU faults, and the workload's accounting of
 * operations. Each broken guarantee becomes a `Violation` that names the device and says what
 * went wrong, where the evidence allows it.
 *
 * The verdict counts every violation found; the list it carries is a sample (at most
 * `SAMPLE_PER_KIND` per guarantee and device, so that a storm of faults stays readable), and
 * `omitted` says how many of each kind the sample leaves out.
 */
import * as Cause from "effect/Cause"
import { Lifecycle } from "@devscope/core"
import { Leak } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"
import type { BusEvent, Evidence, Guarantee, Omitted, Verdict, Violation } from "../Oracle.js"

export const SAMPLE_PER_KIND = 5

/** Counts every violation; keeps a few of one kind per device so that a storm stays readable. */
class Findings {
  private count = 0
  private readonly list: Array<Violation> = []
  private readonly kinds = new Map<string, { readonly guarantee: Guarantee; readonly device: string; shown: number; omitted: number }>()

  private kind(guarantee: Guarantee, device: string) {
    const key = `${guarantee}/${device}`
    let kind = this.kinds.get(key)
    if (kind === undefined) {
      kind = { guarantee, device, shown: 0, omitted: 0 }
      this.kinds.set(key, kind)
    }
    return kind
  }

  /** One violation, or `weight` violations that one message describes ("3 operations lost"). */
  add(violation: Violation, weight = 1): void {
    if (weight <= 0) return
    this.count += weight
    const kind = this.kind(violation.guarantee, violation.device)
    if (kind.shown < SAMPLE_PER_KIND) {
      kind.shown++
      this.list.push(violation)
    } else {
      kind.omitted += weight
    }
  }

  /** Violations known only by number (their messages were not kept). */
  addUnrecorded(guarantee: Guarantee, device: string, count: number): void {
    if (count <= 0) return
    this.count += count
    this.kind(guarantee, device).omitted += count
  }

  verdict(): Verdict {
    const omitted: Array<Omitted> = []
    for (const kind of this.kinds.values()) {
      if (kind.omitted > 0) omitted.push({ guarantee: kind.guarantee, device: kind.device, count: kind.omitted })
    }
    return { count: this.count, violations: this.list, omitted }
  }
}

const hex = (n: number) => `0x${n.toString(16)}`

const firstLine = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause).split("\n")[0] ?? ""

const fault = (f: Iommu.Fault): string => {
  const window = f.window
  const where = window === undefined
    ? "no mapping there"
    : `${window.kind} window ${hex(window.iova)}+${window.size} mapped at ${window.mappedAt}` +
      (window.unmappedAt !== undefined ? `, freed/unmapped at ${window.unmappedAt}` : "")
  const diagnosis = f.reason === "stale"
    ? "the device accessed DMA memory the driver had already freed or unmapped (memory freed before the device was stopped)"
    : f.reason === "unmapped"
    ? "the device accessed an address with no mapping"
    : `the IOMMU refused the access (${f.reason})`
  return `${diagnosis}: ${f.access} of ${f.length} bytes at iova ${hex(f.iova)} by ${f.by}; ${where}`
}

// ---------------------------------------------------------------------------------------------
// Leaks: the leak check of every unbind (step 6), and leaks found later (LeakDetected)
// ---------------------------------------------------------------------------------------------

const leakKey = (leak: Leak.LeakReport): string =>
  leak._tag === "FiberLeak" || leak._tag === "EscapedFiber"
    ? `fiber|${leak.device}|${leak.driver}|${leak.fiber}`
    : leak._tag === "Detached"
    ? `detached|${leak.device}|${leak.driver}|${leak.phase}|${leak.what}|${leak.site}`
    : `object|${leak.device}|${leak.driver}|${leak.label}|${leak.acquiredAt}`

/**
 * Driver code the unbind stopped waiting for, or a fiber that held the token outside the
 * binding's supervision: driver code that ran past its binding (G3), whatever the cause.
 */
const runawayCode = (leak: Extract<Leak.LeakReport, { _tag: "Detached" | "EscapedFiber" }>, cause: string): Violation => ({
  guarantee: "G3",
  device: leak.device,
  message: `${Leak.format(leak)} (${cause})`
})

const span = (leak: { readonly span: string | undefined }) => (leak.span ? ` in span "${leak.span}"` : "")

/** A leak the leak check of an unbind found (step 6). */
const leakAtUnbind = (leak: Leak.LeakReport, cause: Lifecycle.UnbindCause): Violation =>
  leak._tag === "Detached" || leak._tag === "EscapedFiber"
    ? runawayCode(leak, `found at its unbind, ${cause}`)
    : leak._tag === "FiberLeak"
    ? {
      guarantee: "G3",
      device: leak.device,
      message: `fiber ${leak.fiber} of driver "${leak.driver}" was still running after its unbind (${cause}): ` +
        `it did not stop within the stop timeout; started during ${leak.startedDuring} by ${leak.startedBy}${span(leak)}`
    }
    : leak.label.startsWith("dma mapping")
    ? {
      guarantee: "G2",
      device: leak.device,
      message: `streaming ${leak.label.replace(/^dma mapping/, "DMA mapping")} of driver "${leak.driver}" was still mapped ` +
        `at its unbind (${cause}): the driver never unmapped it (the unbind did); mapped at ${leak.acquiredAt}`
    }
    : {
      guarantee: "G2",
      device: leak.device,
      message: `"${leak.label}" of driver "${leak.driver}" was never released (found by the leak check of its unbind, ` +
        `${cause}); acquired at ${leak.acquiredAt}`
    }

/** A leak published on its own (`LeakDetected`): a fiber started after its binding ended. */
const leakLater = (leak: Leak.LeakReport): Violation =>
  leak._tag === "Detached" || leak._tag === "EscapedFiber"
    ? runawayCode(leak, "found after its unbind")
    : leak._tag === "FiberLeak"
    ? {
      guarantee: "G3",
      device: leak.device,
      message: `fiber ${leak.fiber} of driver "${leak.driver}" was started ${
        leak.startedDuring === "after-unbind" ? "after its binding ended (from a captured runtime)" : `during ${leak.startedDuring}`
      } and outlived the unbind; started by ${leak.startedBy}${span(leak)}`
    }
    : {
      guarantee: "G2",
      device: leak.device,
      message: `"${leak.label}" of driver "${leak.driver}" was never released; acquired at ${leak.acquiredAt}`
    }

/**
 * Every unbind report once: those of `Unbound` events and the children's and consumers'
 * reports nested in them (each also publishes its own `Unbound`, with the same report object).
 */
const unbindReports = (lifecycle: ReadonlyArray<BusEvent>): Array<Lifecycle.UnbindReport> => {
  const seen = new Set<Lifecycle.UnbindReport>()
  const reports: Array<Lifecycle.UnbindReport> = []
  for (const { event } of lifecycle) {
    if (event._tag !== "Unbound") continue
    for (const report of Lifecycle.flatten(event.report)) {
      if (seen.has(report)) continue
      seen.add(report)
      reports.push(report)
    }
  }
  return reports
}

const checkReports = (findings: Findings, lifecycle: ReadonlyArray<BusEvent>) => {
  const reports = unbindReports(lifecycle)
  const reported = new Set<Leak.LeakReport>()
  const reportedKeys = new Map<string, number>()
  for (const report of reports) {
    const device = report.device
    // G2: every release ran and succeeded.
    for (const failure of report.releaseFailures) {
      findings.add({
        guarantee: "G2",
        device,
        message: `release of "${failure.resource}" (driver "${report.driver}") failed ` +
          `${failure.atUnbind ? `at unbind (${report.cause})` : "when the driver released it early"}: ${firstLine(failure.cause)}`
      })
    }
    for (const gate of report.gates) {
      if (gate.stuck > 0) {
        findings.add(
          { guarantee: "G4", device, message: `${gate.stuck} section(s) of gate "${gate.gate}" never ended` },
          gate.stuck
        )
      }
    }
    if (report.removeFailure !== undefined) {
      findings.add({
        guarantee: "G2",
        device,
        message: `the driver's remove failed at unbind (${report.cause}; driver "${report.driver}"): ${firstLine(report.removeFailure)}`
      })
    }
    // Step 6 of the unbind: fibers that outlived it (G3), objects never released (G2).
    for (const leak of report.leaks) {
      if (reported.has(leak)) continue
      reported.add(leak)
      const key = leakKey(leak)
      reportedKeys.set(key, (reportedKeys.get(key) ?? 0) + 1)
      findings.add(leakAtUnbind(leak, report.cause))
    }
  }
  // Leaks published on their own. One that an unbind report holds too is counted once.
  for (const { event } of lifecycle) {
    if (event._tag !== "LeakDetected") continue
    const leak = event.leak
    if (reported.has(leak)) continue
    const key = leakKey(leak)
    const already = reportedKeys.get(key) ?? 0
    if (already > 0) {
      reportedKeys.set(key, already - 1)
      continue
    }
    findings.add(leakLater(leak))
  }
}

// ---------------------------------------------------------------------------------------------
// G2 from the trace: DMA memory of each binding released, and in reverse order
// ---------------------------------------------------------------------------------------------

interface Window {
  readonly iova: number
  readonly size: number
  readonly kind: "coherent" | "streaming"
  readonly direction: Trace.DmaDirection
  /** Order of acquisition in the binding. */
  readonly index: number
  /** Acquired while the driver probed. */
  readonly inProbe: boolean
}

interface OpenBinding {
  readonly driver: string
  phase: "probe" | "bound" | "unbinding"
  readonly live: Map<number, Window>
  next: number
  /** DMA releases (of this binding's windows) before its unbind began: all early ones. */
  releasedBefore: number
  /** Releases of probe windows during the probe (what a failed probe's teardown is judged on). */
  readonly probeReleases: Array<Window>
  /** Probe windows still live when the unbind began, and their releases after that. */
  liveAtUnbind: Set<Window> | undefined
  readonly unbindReleases: Array<Window>
}

interface EndedBinding {
  readonly device: string
  readonly driver: string
  readonly cause: string
  readonly probeFailed: boolean
  readonly releasedBefore: number
  /** Probe windows released in the teardown window, in release order. */
  readonly releases: ReadonlyArray<Window>
}

const describeWindow = (w: Window) => `${w.kind} DMA window ${hex(w.iova)}+${w.size} (${w.direction})`

/**
 * Follows every binding through the trace (`Probing` to `Unbound` of a device) and the DMA
 * memory it allocated and mapped. Memory still allocated or mapped when the binding's
 * `Unbound` is traced was never released (G2). The release order is judged once the unbind
 * reports are matched (see `checkReleaseOrder`).
 */
const followBindings = (findings: Findings, trace: ReadonlyArray<Trace.TraceEvent>): Map<string, Array<EndedBinding | undefined>> => {
  const open = new Map<string, OpenBinding>()
  // Per device, every Unbound in the trace, in order (undefined: its Probing was not traced).
  const ended = new Map<string, Array<EndedBinding | undefined>>()
  for (const event of trace) {
    if (event._tag === "Lifecycle") {
      if (event.event === "Probing") {
        open.set(event.device, {
          driver: event.detail ?? "?",
          phase: "probe",
          live: new Map(),
          next: 0,
          releasedBefore: 0,
          probeReleases: [],
          liveAtUnbind: undefined,
          unbindReleases: []
        })
      } else if (event.event === "Bound") {
        const binding = open.get(event.device)
        if (binding !== undefined) binding.phase = "bound"
      } else if (event.event === "Unbinding") {
        const binding = open.get(event.device)
        if (binding !== undefined) {
          binding.phase = "unbinding"
          binding.liveAtUnbind = new Set(Array.from(binding.live.values()).filter((w) => w.inProbe))
        }
      } else if (event.event === "Unbound") {
        const binding = open.get(event.device)
        open.delete(event.device)
        let list = ended.get(event.device)
        if (list === undefined) ended.set(event.device, list = [])
        if (binding === undefined) {
          list.push(undefined)
          continue
        }
        const cause = (event.detail ?? "").split(";")[0] || "?"
        const probeFailed = binding.phase === "probe"
        for (const w of binding.live.values()) {
          findings.add({
            guarantee: "G2",
            device: event.device,
            message: `${describeWindow(w)} that driver "${binding.driver}" ${w.kind === "coherent" ? "allocated" : "mapped"} ` +
              `during its ${w.inProbe ? "probe" : "binding"} was never ${w.kind === "coherent" ? "freed" : "unmapped"}: ` +
              `still there after the unbind (${cause}) ended`
          })
        }
        list.push({
          device: event.device,
          driver: binding.driver,
          cause,
          probeFailed,
          releasedBefore: probeFailed ? 0 : binding.releasedBefore,
          releases: probeFailed ? binding.probeReleases : binding.unbindReleases
        })
      }
    } else if (event._tag === "Dma") {
      const binding = open.get(event.device)
      if (binding === undefined) continue
      if (event.op === "alloc-coherent" || event.op === "map") {
        binding.live.set(event.iova, {
          iova: event.iova,
          size: event.length,
          kind: event.op === "map" ? "streaming" : "coherent",
          direction: event.direction,
          index: binding.next++,
          inProbe: binding.phase === "probe"
        })
      } else if (event.op === "free-coherent" || event.op === "unmap") {
        const w = binding.live.get(event.iova)
        if (w === undefined) continue
        binding.live.delete(event.iova)
        if (binding.phase === "unbinding") {
          if (binding.liveAtUnbind?.has(w)) binding.unbindReleases.push(w)
        } else {
          binding.releasedBefore++
          if (binding.phase === "probe" && w.inProbe) binding.probeReleases.push(w)
        }
      }
    }
  }
  return ended
}

/**
 * Reverse order of acquisition, for the DMA memory the probe acquired. The teardown (unbind
 * step 4, or a failed probe's clean-up) releases what is still live last-acquired first; the
 * driver may release things earlier, in any order (`Devres.release`, `Dma.unmap`, also in
 * `remove`), and the trace does not say which release was whose. The report does say how
 * many were early (`releasedEarly`, early `releaseFailures`), so all but that many of the
 * releases at the end of the window must be in reverse order of acquisition.
 *
 * Only the probe's memory is judged: acquisitions by concurrent fibers (per-request
 * mappings) can reach the trace in another order than the one their Devres joined the
 * binding in, which is the order the unbind follows.
 */
const checkReleaseOrder = (
  findings: Findings,
  ended: Map<string, Array<EndedBinding | undefined>>,
  lifecycle: ReadonlyArray<BusEvent>
) => {
  const reports = new Map<string, Array<Lifecycle.UnbindReport>>()
  for (const { event } of lifecycle) {
    if (event._tag !== "Unbound") continue
    let list = reports.get(event.device.name)
    if (list === undefined) reports.set(event.device.name, list = [])
    list.push(event.report)
  }
  for (const [device, bindings] of ended) {
    const mine = reports.get(device) ?? []
    // The trace may have dropped its oldest events, never its newest: match from the end.
    for (let i = 1; i <= bindings.length; i++) {
      const binding = bindings[bindings.length - i]
      const report = mine[mine.length - i]
      if (binding === undefined || report === undefined || report.driver !== binding.driver) continue
      const early = report.releasedEarly + report.releaseFailures.filter((f) => !f.atUnbind).length
      const budget = Math.max(0, early - binding.releasedBefore)
      const judged = binding.releases.slice(Math.min(budget, binding.releases.length))
      for (let j = 0; j + 1 < judged.length; j++) {
        const first = judged[j]!, second = judged[j + 1]!
        if (first.index < second.index) {
          findings.add({
            guarantee: "G2",
            device,
            message: `DMA memory released out of order ${binding.probeFailed ? "after the failed probe" : `at unbind (${binding.cause})`} ` +
              `of driver "${binding.driver}": ${describeWindow(first)} was released before ${describeWindow(second)}, ` +
              `which was acquired after it (releases run in reverse order of acquisition)`
          })
          break
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

export const judge = (evidence: Evidence): Verdict => {
  const findings = new Findings()

  // G1: the simulated device saw a driver access while no binding of it existed. (A stale
  // access that is caught dies as a UseAfterUnbind defect instead and never reaches it.)
  const inBinding = new Map<string, boolean>()
  for (const event of evidence.trace) {
    if (event._tag === "Lifecycle") {
      if (event.event === "Probing") inBinding.set(event.device, true)
      else if (event.event === "Unbound" || event.event === "ProbeFailed") inBinding.set(event.device, false)
    } else if ((event._tag === "MmioRead" || event._tag === "MmioWrite") && inBinding.get(event.device) === false) {
      findings.add({
        guarantee: "G1",
        device: event.device,
        message: `${event._tag === "MmioRead" ? "read" : "write"} of ${event.register ?? `offset ${hex(event.offset)}`} ` +
          `reached the device at ${event.at.toFixed(3)} ms, after its binding ended`
      })
    }
  }

  // G2, G3 (and stuck gates, G4) from every unbind report and leak event.
  checkReports(findings, evidence.lifecycle)

  // G2 from the trace: each binding's DMA memory released, in reverse order of acquisition.
  checkReleaseOrder(findings, followBindings(findings, evidence.trace), evidence.lifecycle)

  // G4: every operation resolved, once, with a result or DeviceGone.
  for (const ops of evidence.ops.values()) {
    if (ops.inFlight.size > 0) {
      findings.add(
        { guarantee: "G4", device: ops.device, message: `${ops.inFlight.size} operation(s) never resolved (lost)` },
        ops.inFlight.size
      )
    }
    for (const problem of ops.problems) findings.add({ guarantee: "G4", device: ops.device, message: problem })
    findings.addUnrecorded("G4", ops.device, ops.problemCount - ops.problems.length)
  }
  if (evidence.outcome === "Stalled" || evidence.outcome === "TimedOut") {
    findings.add({
      guarantee: "G4",
      device: "-",
      message: evidence.outcome === "Stalled"
        ? "the run stalled: every fiber waited on something that could never happen"
        : "the run did not finish in time: something kept running after the end"
    })
  }

  // G5: a device DMA into memory that was not (or no longer) mapped for it. The simulator
  // refused and reported it, so the guarantee's letter holds; the driver that let its device
  // do this is buggy, and a run with such a fault fails.
  for (const f of evidence.iommuFaults) findings.add({ guarantee: "G5", device: f.device, message: fault(f) })
  return findings.verdict()
}

/** The sample of violations (see `judge`); empty when every guarantee held. */
export const check = (evidence: Evidence): Array<Violation> => judge(evidence).violations.slice()

const line = (v: Violation) => `${v.guarantee} ${v.device}: ${v.message}`

/** One line per violation shown, then one per kind of which some were left out. */
export const format = (violations: ReadonlyArray<Violation> | Verdict): string => {
  if (!("count" in violations)) return violations.map(line).join("\n")
  return [
    ...violations.violations.map(line),
    ...violations.omitted.map((o) => `${o.guarantee} ${o.device}: (${o.count} more of the same left out)`)
  ].join("\n")
}
