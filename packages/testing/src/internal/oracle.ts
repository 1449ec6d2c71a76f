/**
 * Checks a finished run against the guarantees of DESIGN.md section 5, from what the run
 * recorded: the lifecycle events of both buses, the simulator's trace and IOMMU faults, and
 * the workload's accounting of operations. Each broken guarantee becomes a `Violation` that
 * names the device and says what went wrong, where the evidence allows it.
 */
import { Leak, type Lifecycle } from "@devscope/core"
import type { Iommu, Trace } from "@devscope/sim"
import type { DeviceOps } from "./ops.js"

/** A guarantee of DESIGN.md section 5. */
export type Guarantee = "G1" | "G2" | "G3" | "G4" | "G5"

/** A guarantee found broken, on one device ("-" when the run as a whole broke it). */
export interface Violation {
  readonly guarantee: Guarantee
  readonly device: string
  readonly message: string
}

export type Bused = { readonly bus: "pci" | "platform"; readonly event: Lifecycle.LifecycleEvent }

const MAX_PER_KIND = 5

/** Pushes violations, keeping at most a few of one kind per device so a storm stays readable. */
class Findings {
  readonly list: Array<Violation> = []
  private readonly counts = new Map<string, number>()
  add(violation: Violation): void {
    const key = `${violation.guarantee}/${violation.device}`
    const n = (this.counts.get(key) ?? 0) + 1
    this.counts.set(key, n)
    if (n <= MAX_PER_KIND) this.list.push(violation)
    else if (n === MAX_PER_KIND + 1) {
      this.list.push({ guarantee: violation.guarantee, device: violation.device, message: "(more of the same left out)" })
    }
  }
}

const fault = (f: Iommu.Fault): string => {
  const window = f.window
  const where = window === undefined
    ? "no mapping there"
    : `${window.kind} window 0x${window.iova.toString(16)}+${window.size} mapped at ${window.mappedAt}` +
      (window.unmappedAt !== undefined ? `, freed/unmapped at ${window.unmappedAt}` : "")
  const diagnosis = f.reason === "stale"
    ? "the device accessed DMA memory the driver had already freed or unmapped (memory freed before the device was stopped)"
    : f.reason === "unmapped"
    ? "the device accessed an address with no mapping"
    : `the IOMMU refused the access (${f.reason})`
  return `${diagnosis}: ${f.access} of ${f.length} bytes at iova 0x${f.iova.toString(16)} by ${f.by}; ${where}`
}

export interface Evidence {
  readonly lifecycle: ReadonlyArray<Bused>
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  readonly ops: ReadonlyMap<string, DeviceOps>
  readonly outcome: "Done" | "Stalled" | "TimedOut"
}

export const check = (evidence: Evidence): Array<Violation> => {
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
        message: `${event._tag === "MmioRead" ? "read" : "write"} of ${event.register ?? `offset 0x${event.offset.toString(16)}`} ` +
          `reached the device at ${event.at.toFixed(3)} ms, after its binding ended`
      })
    }
  }

  for (const { event } of evidence.lifecycle) {
    if (event._tag === "Unbound") {
      const device = event.device.name
      // G2: every release ran and succeeded.
      for (const failure of event.report.releaseFailures) {
        findings.add({ guarantee: "G2", device, message: `release of "${failure.resource}" failed at unbind (${event.cause})` })
      }
      for (const gate of event.report.gates) {
        if (gate.stuck > 0) {
          findings.add({ guarantee: "G4", device, message: `${gate.stuck} section(s) of gate "${gate.gate}" never ended` })
        }
      }
      if (event.report.removeFailure !== undefined) {
        findings.add({ guarantee: "G2", device, message: `the driver's remove failed at unbind (${event.cause})` })
      }
    }
    if (event._tag === "LeakDetected") {
      const leak = event.leak
      findings.add({ guarantee: leak._tag === "FiberLeak" ? "G3" : "G2", device: leak.device, message: Leak.format(leak) })
    }
  }

  // G4: every operation resolved, once, with a result or DeviceGone.
  for (const ops of evidence.ops.values()) {
    if (ops.inFlight.size > 0) {
      findings.add({ guarantee: "G4", device: ops.device, message: `${ops.inFlight.size} operation(s) never resolved (lost)` })
    }
    for (const problem of ops.problems) findings.add({ guarantee: "G4", device: ops.device, message: problem })
  }
  if (evidence.outcome !== "Done") {
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
  return findings.list
}
