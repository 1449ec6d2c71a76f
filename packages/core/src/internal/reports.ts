/**
 * Walking unbind reports. A report nests the reports of the children and linked consumers
 * unbound before it, to any depth a user's device tree or link chain has: every walk here is
 * iterative, so a 10,000-deep chain costs memory, not stack.
 * @internal
 */
import type { LeakReport } from "../Leak.js"
import type { UnbindReport } from "../Lifecycle.js"

/**
 * Every report in the tree under `report`, in the order the devices were unbound: each
 * device's children, then its consumers (each with everything under it), then the device.
 */
export const flatten = (report: UnbindReport): Array<UnbindReport> => {
  const out: Array<UnbindReport> = []
  // Each frame: a report and how many of its nested reports have been pushed already.
  const stack: Array<{ readonly report: UnbindReport; next: number }> = [{ report, next: 0 }]
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!
    const { children, consumers } = frame.report
    const nested = children.length + consumers.length
    if (frame.next < nested) {
      const i = frame.next++
      stack.push({ report: i < children.length ? children[i]! : consumers[i - children.length]!, next: 0 })
    } else {
      stack.pop()
      out.push(frame.report)
    }
  }
  return out
}

/** Every leak in the tree under `report`, nested ones first. */
export const collectLeaks = (report: UnbindReport): Array<LeakReport> => {
  const out: Array<LeakReport> = []
  for (const r of flatten(report)) for (const leak of r.leaks) out.push(leak)
  return out
}
