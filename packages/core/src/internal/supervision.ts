/**
 * Which fibers belong to a binding: every fiber started by binding code (its probe, its
 * `remove`, a handler, a fiber started with `Bound.fork`, and theirs, daemons included) is
 * tracked by the binding's supervisor, so the unbind can interrupt and await each one.
 *
 * # Invariants
 * - Binding code runs with its binding's supervisor and no other binding's (`Binding.within`
 *   replaces the caller's binding supervisor, keeping the caller's other supervisors): a
 *   child device probed from its parent's probe, or a fiber that one binding starts for
 *   another with `Bound.fork`, belongs to one binding only.
 * - `Binding.fibers` holds every supervised fiber that has started and not ended. A fiber
 *   started after the unbind (from a runtime captured inside the binding) is reported as a
 *   late `FiberLeak` and interrupted at once; it never joins `fibers`.
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Supervisor from "effect/Supervisor"
import type * as Leak from "../Leak.js"
import type { Binding, Phase } from "./binding.js"
import { nextFiberId } from "./fiberIds.js"

/** Where a binding fiber came from, for its leak report. */
export interface FiberInfo {
  readonly startedDuring: Phase
  readonly startedBy: string
  /** Set for a fiber adopted after it escaped supervision (internal/escape.ts): how. */
  readonly escaped?: string | undefined
}

/** @internal */
export class BindingSupervisor extends Supervisor.AbstractSupervisor<void> {
  constructor(readonly binding: Binding) {
    super()
  }
  get value() {
    return Effect.void
  }
  override onStart<A, E, R>(
    _context: Context.Context<R>,
    _effect: Effect.Effect<A, E, R>,
    parent: Option.Option<Fiber.RuntimeFiber<any, any>>,
    fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    const binding = this.binding
    const info: FiberInfo = {
      startedDuring: binding.phase,
      startedBy: Option.isSome(parent) ? `fiber ${FiberId.threadName(parent.value.id())}` : "a root fiber"
    }
    if (binding.phase === "after-unbind") {
      // Started from a runtime captured inside the binding, after the binding ended.
      binding.onLateLeak(fiberLeak(binding, fiber, info))
      fiber.unsafeInterruptAsFork(FiberId.none)
      return
    }
    binding.fibers.set(fiber, info)
  }
  override onEnd<A, E>(_value: Exit.Exit<A, E>, fiber: Fiber.RuntimeFiber<A, E>): void {
    this.binding.fibers.delete(fiber)
  }
  // The fiber id window of each evaluation slice during the probe and `remove`: a root fiber
  // made inside one was started by binding code (internal/escape.ts). A stack, because a
  // fiber started synchronously runs its first slice inside its starter's.
  override onResume<A, E>(_fiber: Fiber.RuntimeFiber<A, E>): void {
    const binding = this.binding
    if (binding.phase === "probe" || binding.phase === "remove") binding.sliceStarts.push(nextFiberId())
  }
  override onSuspend<A, E>(_fiber: Fiber.RuntimeFiber<A, E>): void {
    const start = this.binding.sliceStarts.pop()
    if (start === undefined) return
    const end = nextFiberId()
    if (end > start) this.binding.escapeWindows.push(start, end)
  }
}

/** @internal */
export const fiberLeak = (binding: Binding, fiber: Fiber.RuntimeFiber<any, any>, info: FiberInfo): Leak.LeakReport => ({
  _tag: "FiberLeak",
  device: binding.device.name,
  driver: binding.driver,
  fiber: FiberId.threadName(fiber.id()),
  startedDuring: info.startedDuring,
  startedBy: info.startedBy,
  span: fiber.currentSpan?._tag === "Span" ? fiber.currentSpan.name : undefined
})

interface ZipShape {
  readonly _tag?: unknown
  readonly left?: Supervisor.Supervisor<any>
  readonly right?: Supervisor.Supervisor<any>
}

/** The binding supervisor in `supervisor` (itself, or inside a zip), if any. */
export const bindingSupervisorOf = (supervisor: Supervisor.Supervisor<any>): BindingSupervisor | undefined => {
  if (supervisor instanceof BindingSupervisor) return supervisor
  const zip = supervisor as ZipShape
  if (zip._tag !== "Zip" || zip.left === undefined || zip.right === undefined) return undefined
  return bindingSupervisorOf(zip.right) ?? bindingSupervisorOf(zip.left)
}

/** `supervisor` with any binding supervisor in it replaced by `binding`'s. */
export const withSupervisor = (supervisor: Supervisor.Supervisor<any>, binding: BindingSupervisor): Supervisor.Supervisor<any> => {
  const others = withoutBindings(supervisor)
  return others === Supervisor.none ? binding : others.zip(binding)
}

const withoutBindings = (supervisor: Supervisor.Supervisor<any>): Supervisor.Supervisor<any> => {
  if (supervisor instanceof BindingSupervisor) return Supervisor.none
  const zip = supervisor as ZipShape
  if (zip._tag !== "Zip" || zip.left === undefined || zip.right === undefined) return supervisor
  const left = withoutBindings(zip.left)
  const right = withoutBindings(zip.right)
  if (left === zip.left && right === zip.right) return supervisor
  return left === Supervisor.none ? right : right === Supervisor.none ? left : left.zip(right)
}

/**
 * The binding whose code the current fiber runs (its supervisor is that binding's), if any:
 * how the bus tells that a device is added by a binding (a child device).
 * @internal
 */
export const bindingOfCurrentFiber = (): Binding | undefined => {
  const fiber = Fiber.getCurrentFiber()
  if (Option.isNone(fiber)) return undefined
  return bindingSupervisorOf(fiber.value.getFiberRef(FiberRef.currentSupervisor))?.binding
}
