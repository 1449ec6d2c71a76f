/**
 * The bus's per-device record and the device-link graph between records.
 * @internal
 */
import type { DeviceLock } from "./lock.js"
import type { LeakReport } from "../Leak.js"
import type { UnbindReport } from "../Lifecycle.js"
import type { Binding } from "./binding.js"
import type { DeviceImpl } from "./device.js"

export interface Entry {
  readonly device: DeviceImpl
  readonly lock: DeviceLock
  binding: Binding | undefined
  /** Device links: the devices this one consumes, and the devices consuming it. */
  readonly suppliers: Set<Entry>
  readonly consumers: Set<Entry>
}

// A consumer in one of these states may hold resources that depend on its suppliers.
export const isBusy = (entry: Entry): boolean => {
  const { state } = entry.device
  return state === "bound" || state === "probing" || state === "unbinding"
}

// The first supplier that is not bound, if any. Read without the suppliers' locks.
export const unboundSupplier = (entry: Entry): Entry | undefined => {
  for (const supplier of entry.suppliers) {
    if (supplier.device.state !== "bound") return supplier
  }
  return undefined
}

// The chain of links from `from` down to `to` (each consuming the next), if there is one.
export const supplierPath = (from: Entry, to: Entry): Array<Entry> | undefined => {
  const seen = new Set<Entry>()
  const visit = (entry: Entry): Array<Entry> | undefined => {
    if (entry === to) return [entry]
    if (seen.has(entry)) return undefined
    seen.add(entry)
    for (const supplier of entry.suppliers) {
      const path = visit(supplier)
      if (path !== undefined) return [entry, ...path]
    }
    return undefined
  }
  return visit(from)
}

export const addLink = (consumer: Entry, supplier: Entry): void => {
  consumer.suppliers.add(supplier)
  supplier.consumers.add(consumer)
}

export const dropLink = (consumer: Entry, supplier: Entry): void => {
  consumer.suppliers.delete(supplier)
  supplier.consumers.delete(consumer)
}

export const collectLeaks = (report: UnbindReport): Array<LeakReport> => [
  ...report.consumers.flatMap(collectLeaks),
  ...report.leaks
]
