/**
 * Fibers that escaped the binding's supervision while holding its token: adopted, so the
 * unbind stops them (step 4a), and reported as `EscapedFiber` leaks.
 *
 * Two ways out are watched, both by fiber ids (Effect numbers fibers from one process-wide
 * counter, so a fiber made while some code runs has an id at least the counter's value when
 * that code started):
 * - a root fiber started from the probe or `remove` (`Effect.runFork`, a captured
 *   `Runtime`): the binding's supervisor records the id window of every evaluation slice of
 *   its fibers during those calls; at the unbind, live root fibers with ids in a window,
 *   supervised by no binding, are adopted;
 * - a child fiber forked inside a Gate section by a caller that is not binding code: at the
 *   section's end, the caller's live children with ids from the section are adopted.
 *
 * # Invariants
 * - An adopted fiber is in `Binding.fibers` (removed when it ends) with `escaped` set; it
 *   never is a fiber of devscope's own (`ownFibers`) or one some binding supervises.
 * - JavaScript runs one slice at a time: only code called from the slice can make a fiber
 *   inside its window, so another device's or the caller's fibers are never adopted.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type { Binding } from "./binding.js"
import { ownFibers } from "./deadline.js"
import { bindingSupervisorOf } from "./supervision.js"

/** Adopts `fiber` into `binding` (see the invariants above); false if it is not an escapee. */
export const adopt = (binding: Binding, fiber: Fiber.RuntimeFiber<any, any>, how: string): boolean => {
  if (binding.fibers.has(fiber) || ownFibers.has(fiber) || fiber.unsafePoll() !== null) return false
  if (bindingSupervisorOf(fiber.getFiberRef(FiberRef.currentSupervisor)) !== undefined) return false
  binding.fibers.set(fiber, { startedDuring: binding.phase, startedBy: how, escaped: how })
  fiber.addObserver(() => binding.fibers.delete(fiber))
  return true
}

/** At a Gate section's end: adopts the caller's live children made since id `since`. */
export const adoptChildrenSince = (binding: Binding, caller: Fiber.RuntimeFiber<any, any>, since: number, gate: string): void => {
  const children = (caller as unknown as { readonly _children?: Set<Fiber.RuntimeFiber<any, any>> | null })._children
  if (children === undefined || children === null || children.size === 0) return
  for (const child of children) {
    if (child.id().id >= since) adopt(binding, child, `forked inside a section of gate "${gate}" by code outside the binding`)
  }
}

/** At the unbind: adopts live root fibers made in the windows recorded during probe and remove. */
export const adoptRoots = (binding: Binding): Effect.Effect<void> => {
  const windows = binding.escapeWindows
  if (windows.length === 0) return Effect.void
  return Effect.map(Fiber.roots, (roots) => {
    for (const fiber of roots) {
      const id = fiber.id().id
      for (let i = 0; i < windows.length; i += 2) {
        if (id >= windows[i]! && id < windows[i + 1]!) {
          adopt(binding, fiber, "a root fiber started by binding code (Effect.runFork or a captured Runtime), outside its supervision")
          break
        }
      }
    }
    windows.length = 0
  })
}
