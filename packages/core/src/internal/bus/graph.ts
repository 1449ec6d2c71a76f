/**
 * The device-link graph between entries (the kernel's managed device links).
 * @internal
 */
import type { Entry } from "./state.js"

/** A consumer in one of these states may hold resources that depend on its suppliers. */
export const isBusy = (entry: Entry): boolean => {
  const { state } = entry.device
  return state === "bound" || state === "probing" || state === "unbinding"
}

/** The first supplier that is not bound, if any. Read without the suppliers' locks. */
export const unboundSupplier = (entry: Entry): Entry | undefined => {
  for (const supplier of entry.suppliers) {
    if (supplier.device.state !== "bound") return supplier
  }
  return undefined
}

/**
 * The chain from `from` down to `to`, each consuming the next, if there is one. A child counts
 * as a consumer of its parent (the parent's unbind takes its children down first, as it takes
 * its consumers), so a link that would make a parent consume its own descendant is a cycle
 * too (it would deadlock the two lock orders). Iterative (a depth-first search with its own
 * stack): chains can be as deep as users make.
 */
export const supplierPath = (from: Entry, to: Entry): Array<Entry> | undefined => {
  const cameFrom = new Map<Entry, Entry | undefined>([[from, undefined]])
  const stack: Array<Entry> = [from]
  while (stack.length > 0) {
    const entry = stack.pop()!
    if (entry === to) {
      const path: Array<Entry> = []
      for (let at: Entry | undefined = entry; at !== undefined; at = cameFrom.get(at)) path.push(at)
      return path.reverse()
    }
    const next = entry.parent === undefined ? entry.suppliers : [...entry.suppliers, entry.parent]
    for (const supplier of next) {
      if (cameFrom.has(supplier)) continue
      cameFrom.set(supplier, entry)
      stack.push(supplier)
    }
  }
  return undefined
}

export const addLink = (consumer: Entry, supplier: Entry): void => {
  consumer.suppliers.add(supplier)
  supplier.consumers.add(consumer)
}

export const dropLink = (consumer: Entry, supplier: Entry): void => {
  consumer.suppliers.delete(supplier)
  supplier.consumers.delete(consumer)
}
