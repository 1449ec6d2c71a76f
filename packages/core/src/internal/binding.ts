import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import type * as Bound from "../Bound.js"
import type * as Core from "../Core.js"
import { CoreNotHeld, DeviceMismatch, UseAfterUnbind } from "../DeviceError.js"
import type * as Leak from "../Leak.js"
import type { GateReport, ReleaseFailure, UnbindCause } from "../Lifecycle.js"
import type { DeviceImpl } from "./device.js"
import { callSite, type Site } from "./site.js"

/** @internal */
export const BoundTypeId: typeof Bound.TypeId = Symbol.for("@devscope/core/Bound") as any
/** @internal */
export const CoreTypeId: typeof Core.TypeId = Symbol.for("@devscope/core/Core") as any

const variance = { _D: (_: any) => _ }

/**
 * A revoked token's key: it equals no binding, so the single identity compare on the
 * access path also catches revocation.
 * @internal
 */
export const REVOKED: object = Object.freeze({ revoked: true })

/** @internal */
export type Phase = "probe" | "binding" | "remove" | "unbind" | "after-unbind"

/** @internal */
export interface Revocation {
  readonly cause: UnbindCause
  readonly site: Site
}

/** @internal */
export class BoundImpl<D extends string> implements Bound.Bound<D> {
  readonly [BoundTypeId] = variance
  /** The live binding, or REVOKED. The only field the access path reads. */
  key: object
  constructor(readonly binding: Binding) {
    this.key = binding
  }
  get device() {
    return this.binding.device
  }
  get driver(): D {
    return this.binding.driver as D
  }
  toString() {
    return `Bound(${this.binding.driver}, ${this.binding.device.name}${this.key === REVOKED ? ", revoked" : ""})`
  }
}

/** @internal */
export class CoreImpl<D extends string> implements Core.Core<D> {
  readonly [CoreTypeId] = variance
  held = false
  constructor(readonly binding: Binding) {}
  get device() {
    return this.binding.device
  }
  get driver(): D {
    return this.binding.driver as D
  }
}

interface FiberInfo {
  readonly startedDuring: Phase
  readonly startedBy: string
}

class BindingSupervisor extends Supervisor.AbstractSupervisor<void> {
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
}

const fiberLeak = (binding: Binding, fiber: Fiber.RuntimeFiber<any, any>, info: FiberInfo): Leak.LeakReport => ({
  _tag: "FiberLeak",
  device: binding.device.name,
  driver: binding.driver,
  fiber: FiberId.threadName(fiber.id()),
  startedDuring: info.startedDuring,
  startedBy: info.startedBy,
  span: fiber.currentSpan?._tag === "Span" ? fiber.currentSpan.name : undefined
})

/**
 * What the leak check (step 6) reports: anything still in `Binding.tracked` at that point.
 * `label` and `acquiredAt` are only read then, so they may be getters that format late.
 * @internal
 */
export interface TrackedEntry {
  readonly label: string
  readonly acquiredAt: string
}

/**
 * A leak-check entry that comes and goes per request (a streaming mapping): kept in an
 * intrusive list of its binding, so listing and unlisting it is a few pointer writes, with no
 * hashing and no allocation. Listed entries are reported after `tracked`, in listing order.
 * @internal
 */
export interface ListedEntry extends TrackedEntry {
  listPrev: ListedEntry | undefined
  listNext: ListedEntry | undefined
  listed: boolean
}

/** @internal */
export class TrackedImpl implements Leak.Tracked {
  constructor(
    readonly binding: Binding,
    readonly label: string,
    readonly site: Site
  ) {}
  get acquiredAt(): string {
    return String(this.site)
  }
  release(): void {
    this.binding.tracked.delete(this)
  }
}

/**
 * A hook run at a fixed step of the unbind sequence (device links at step 1, gates at
 * step 2). Later modules register them; the core only runs them in order.
 * @internal
 */
export interface UnbindHook {
  readonly step: 1 | 2
  readonly name: string
  readonly run: (binding: Binding) => Effect.Effect<void>
}

/** @internal */
export interface BindingOptions {
  readonly fiberStopTimeout: Duration.DurationInput
  /** Which Devres acquisitions capture their call site (the bus's `captureSites`). */
  readonly captureSites: "always" | "unlabelled" | "never"
  readonly onLateLeak: (leak: Leak.LeakReport) => void
}

/**
 * The runtime side of one binding: its scope, tokens, fibers and bookkeeping.
 * @internal
 */
export class Binding {
  readonly bound: BoundImpl<string>
  readonly core: CoreImpl<string>
  readonly supervisor: BindingSupervisor
  readonly fibers = new Map<Fiber.RuntimeFiber<any, any>, FiberInfo>()
  readonly tracked = new Set<TrackedEntry>()
  private listHead: ListedEntry | undefined = undefined
  private listTail: ListedEntry | undefined = undefined
  readonly hooks: Array<UnbindHook> = []
  readonly gateReports: Array<GateReport> = []
  /** Releases done by the unbind (or a failed probe's clean-up), in order. */
  readonly released: Array<string> = []
  /** Successful early releases (the driver's, during the binding's life): only counted. */
  releasedEarly = 0
  readonly releaseFailures: Array<ReleaseFailure> = []
  phase: Phase = "probe"
  /** Everything the binding's code runs with: environment, tokens, probe layer output. */
  context: Context.Context<any> | undefined = undefined
  /**
   * The environment the driver was registered with (its `Hardware`, among others), for calls
   * made with a token alone (`Dma.map(token, ...)`). Set at bind, before the probe runs.
   */
  environment: Context.Context<never> | undefined = undefined
  /** The device's DMA port, looked up in `environment` on first use (internal/dma.ts). */
  dmaPort: unknown = undefined
  /** Streaming-mapping call counts and sampled sites (internal/dma.ts), made on first use. */
  dmaSites: unknown = undefined
  revocation: Revocation | undefined = undefined
  /** The driver's `remove` hook, run at step 3. */
  removeHook: ((device: DeviceImpl) => Effect.Effect<void, unknown, any>) | undefined = undefined

  constructor(
    readonly device: DeviceImpl,
    readonly driver: string,
    readonly scope: Scope.CloseableScope,
    readonly options: BindingOptions
  ) {
    this.bound = new BoundImpl(this)
    this.core = new CoreImpl(this)
    this.supervisor = new BindingSupervisor(this)
  }

  get live(): boolean {
    return this.bound.key === this
  }

  private readonly hooksRun = new Set<UnbindHook>()

  /** Adds `entry` to the leak check (see {@link ListedEntry}). */
  list(entry: ListedEntry): void {
    if (entry.listed) return
    entry.listed = true
    entry.listNext = undefined
    entry.listPrev = this.listTail
    if (this.listTail === undefined) this.listHead = entry
    else this.listTail.listNext = entry
    this.listTail = entry
  }

  /** Takes `entry` out of the leak check. Idempotent. */
  unlist(entry: ListedEntry): void {
    if (!entry.listed) return
    entry.listed = false
    const { listNext: next, listPrev: prev } = entry
    if (prev === undefined) this.listHead = next
    else prev.listNext = next
    if (next === undefined) this.listTail = prev
    else next.listPrev = prev
    entry.listPrev = entry.listNext = undefined
  }

  /** Runs the hooks of one unbind step that have not run yet, in registration order. */
  runHooks(step: 1 | 2): Effect.Effect<void> {
    // Most bindings have no gate or link hook: no effect to run.
    if (this.hooks.length === 0) return Effect.void
    return Effect.suspend(() => {
      const pending = this.hooks.filter((hook) => hook.step === step && !this.hooksRun.has(hook))
      for (const hook of pending) this.hooksRun.add(hook)
      return Effect.forEach(pending, (hook) => hook.run(this), { discard: true })
    })
  }

  onLateLeak(leak: Leak.LeakReport) {
    this.options.onLateLeak(leak)
  }

  useAfterUnbind(resource: string): UseAfterUnbind {
    const revocation = this.revocation
    return new UseAfterUnbind({
      device: this.device.name,
      driver: this.driver,
      resource,
      unbindCause: revocation?.cause ?? "manual",
      revokedAt: revocation === undefined ? "unknown" : String(revocation.site)
    })
  }

  /**
   * Records a Devres release. Only releases done by the teardown (`atUnbind`) are listed in
   * `released`; early ones are counted, so a driver that releases per request does not grow
   * the binding. Failures are always listed (an early one also dies in its caller).
   */
  recordRelease(resource: string, exit: Exit.Exit<unknown, unknown>, atUnbind: boolean) {
    if (Exit.isFailure(exit)) this.releaseFailures.push({ resource, cause: exit.cause, atUnbind })
    else if (atUnbind) this.released.push(resource)
    else this.releasedEarly++
  }

  /** Runs `effect` as binding code: supervised, so the fibers it starts belong to the binding. */
  supervised<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.supervised(effect, this.supervisor)
  }

  /**
   * Runs `effect` as binding code with exactly `context` (what `Effect.provide` of a Context
   * does) and supervised by the binding: both FiberRefs set and restored around it in one
   * step. `Effect.supervised(Effect.provide(...))` does the same with two `locally` regions,
   * about fifty run-loop steps of a bind's budget of a few hundred (B2).
   */
  within<A, E>(effect: Effect.Effect<A, E, any>, context: Context.Context<never>): Effect.Effect<A, E> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<A, E>((fiber) => {
        const outerContext = fiber.getFiberRef(FiberRef.currentContext)
        const outerSupervisor = fiber.getFiberRef(FiberRef.currentSupervisor)
        const reset = Effect.zipRight(
          FiberRef.set(FiberRef.currentContext, outerContext),
          FiberRef.set(FiberRef.currentSupervisor, outerSupervisor)
        )
        const body = Effect.matchCauseEffect(restore(effect as Effect.Effect<A, E>), {
          onFailure: (cause) => Effect.zipRight(reset, Effect.failCause(cause)),
          onSuccess: (value) => Effect.as(reset, value)
        })
        const enter = FiberRef.set(FiberRef.currentContext, context)
        return supervises(outerSupervisor, this.supervisor)
          ? Effect.zipRight(enter, body)
          : Effect.zipRight(Effect.zipRight(enter, FiberRef.set(FiberRef.currentSupervisor, outerSupervisor.zip(this.supervisor))), body)
      })
    )
  }

  /**
   * Step 4a: interrupt every fiber of the binding and wait for it, up to the stop
   * timeout. Returns how many were interrupted and the ones that did not stop.
   */
  stopFibers(): Effect.Effect<{ readonly interrupted: number; readonly survivors: Array<Leak.LeakReport> }> {
    return Effect.withFiberRuntime((self) => {
      const selfId = self.id()
      const interrupted = new Set<Fiber.RuntimeFiber<any, any>>()
      // Interrupts every fiber of the binding but this one; returns them.
      const interruptAll = (): Array<Fiber.RuntimeFiber<any, any>> => {
        const fibers = Array.from(this.fibers.keys()).filter((f) => f !== self)
        for (const fiber of fibers) {
          if (interrupted.has(fiber)) continue
          interrupted.add(fiber)
          fiber.unsafeInterruptAsFork(selfId)
        }
        return fibers
      }
      const round: Effect.Effect<void> = Effect.suspend(() => {
        const fibers = interruptAll()
        if (fibers.length === 0) return Effect.void
        // Finalizers of interrupted fibers may start new ones: go again until none is left.
        return Effect.zipRight(Effect.interruptible(Fiber.awaitAll(fibers)), round)
      })
      // Fast path: interrupt every fiber and let them run. Fibers that are merely suspended
      // (the usual case) end within a turn or a few of the scheduler (a few, with thousands
      // of fibers), and then no bounded wait (a daemon fiber and a timer) is needed. The
      // turns go on while fibers keep ending; if a turn ends none (one is busy in an
      // uninterruptible region) or they started new ones, the bounded wait below.
      const remaining = (): number => this.fibers.size - (this.fibers.has(self) ? 1 : 0)
      const settle = (before: number): Effect.Effect<void> =>
        Effect.flatMap(Effect.yieldNow(), () => {
          const now = remaining()
          return now > 0 && now < before ? settle(now) : Effect.void
        })
      const first: Effect.Effect<boolean> = Effect.suspend(() => {
        const fibers = interruptAll()
        return fibers.length === 0 ? Effect.succeed(true) : Effect.as(settle(fibers.length + 1), false)
      })
      const wait = Effect.flatMap(first, (none) =>
        none || remaining() === 0 ? Effect.void : waitAtMost(round, this.options.fiberStopTimeout))
      return wait.pipe(
        Effect.map(() => ({
          interrupted: interrupted.size,
          survivors: Array.from(this.fibers)
            .filter(([fiber]) => fiber !== self)
            .map(([fiber, info]) => fiberLeak(this, fiber, info))
        }))
      )
    })
  }

  /**
   * Steps 4 to 6 of the unbind contract; must run uninterruptibly. Returns the leaks.
   */
  teardown(exit: Exit.Exit<unknown, unknown>, revocation: Revocation): Effect.Effect<{
    readonly fibersInterrupted: number
    readonly leaks: Array<Leak.LeakReport>
  }> {
    return Effect.gen(this, function*() {
      // A failed probe may have opened gates: close them before anything is released.
      yield* this.runHooks(1)
      yield* this.runHooks(2)
      this.phase = "unbind"
      this.core.held = false
      const stopped = yield* this.stopFibers()
      const closed = yield* Effect.exit(Scope.close(this.scope, exit))
      if (Exit.isFailure(closed)) {
        // Devres releases never fail the scope; this is a layer finalizer that did.
        this.releaseFailures.push({ resource: "layer finalizer", cause: closed.cause, atUnbind: true })
      }
      // Step 5: revoke.
      this.revocation = revocation
      this.bound.key = REVOKED
      this.phase = "after-unbind"
      // Step 6: leak checks.
      const leaks: Array<Leak.LeakReport> = [...stopped.survivors]
      const objectLeak = (tracked: TrackedEntry): Leak.LeakReport => ({
        _tag: "ObjectLeak",
        device: this.device.name,
        driver: this.driver,
        label: tracked.label,
        acquiredAt: tracked.acquiredAt
      })
      for (const tracked of this.tracked) leaks.push(objectLeak(tracked))
      this.tracked.clear()
      while (this.listHead !== undefined) {
        leaks.push(objectLeak(this.listHead))
        this.unlist(this.listHead)
      }
      // A binding fiber that unbound its own device must not outlive it either: it is
      // interrupted as soon as it leaves the (uninterruptible) unbind.
      yield* Effect.withFiberRuntime<void>((self) => {
        if (this.fibers.has(self)) self.unsafeInterruptAsFork(self.id())
        return Effect.void
      })
      return { fibersInterrupted: stopped.interrupted, leaks }
    })
  }
}

/**
 * Waits for `effect` for at most `deadline`, without ever becoming interruptible: the wait
 * runs (interruptibly, so the deadline can cut it) in an unsupervised daemon fiber, and the
 * caller joins it uninterruptibly. Teardown code uses it for every bounded wait, so that an
 * interrupt of the fiber running an unbind cannot stop the unbind halfway.
 * @internal
 */
export const waitAtMost = <A>(effect: Effect.Effect<A>, deadline: Duration.DurationInput): Effect.Effect<Option.Option<A>> =>
  Effect.uninterruptible(
    Effect.flatMap(Effect.forkDaemon(Effect.timeoutOption(Effect.interruptible(effect), deadline)), Fiber.join)
  ).pipe(Effect.locally(FiberRef.currentSupervisor, Supervisor.none))

/** @internal */
export const bindingOf = (token: Bound.Bound<any>): Binding => (token as unknown as BoundImpl<any>).binding

/** @internal */
export const isLive = (token: Bound.Bound<any>): boolean => {
  const impl = token as unknown as BoundImpl<any>
  return impl.binding !== undefined && impl.key === impl.binding
}

/**
 * The live binding of a token, or a defect saying why there is none.
 * @internal
 */
export const liveBinding = (token: Bound.Bound<any>, resource: string): Binding => {
  const impl = token as unknown as BoundImpl<any>
  if (!(impl instanceof BoundImpl)) {
    throw new DeviceMismatch({ resource, expected: "a token made by devscope", actual: String(token) })
  }
  if (impl.key !== impl.binding) throw impl.binding.useAfterUnbind(resource)
  return impl.binding
}

/**
 * Whether `supervisor` is `target` or a zip of supervisors that includes it (what
 * `Effect.supervised` installs). An unknown shape answers false, which only costs a
 * redundant supervision.
 */
const supervises = (supervisor: Supervisor.Supervisor<any>, target: Supervisor.Supervisor<any>): boolean => {
  if (supervisor === target) return true
  const zip = supervisor as { readonly _tag?: unknown; readonly left?: Supervisor.Supervisor<any>; readonly right?: Supervisor.Supervisor<any> }
  return zip._tag === "Zip" && zip.left !== undefined && zip.right !== undefined &&
    (supervises(zip.right, target) || supervises(zip.left, target))
}

/** @internal */
export const forkIn = <A, E, R>(
  token: Bound.Bound<any>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> =>
  Effect.withFiberRuntime((fiber) => {
    const binding = liveBinding(token, "Bound.fork")
    // Interruptible even when forked from an uninterruptible region (a Devres acquire):
    // the unbind must be able to stop it.
    const fork = Effect.forkIn(Effect.interruptible(effect), binding.scope)
    // Binding code (a probe, a handler) is supervised already; other callers are not.
    return supervises(fiber.getFiberRef(FiberRef.currentSupervisor), binding.supervisor)
      ? fork
      : binding.supervised(fork)
  })

/** @internal */
export const track = (token: Bound.Bound<any>, label: string): Leak.Tracked => {
  const binding = liveBinding(token, `tracked object "${label}"`)
  const tracked = new TrackedImpl(binding, label, callSite())
  binding.tracked.add(tracked)
  return tracked
}

/** @internal */
export const coreHeld = (token: Core.Core<any>): boolean => (token as unknown as CoreImpl<any>).held === true

/** @internal */
export const assertCoreHeld = (token: Core.Core<any>): void => {
  if (!coreHeld(token)) throw new CoreNotHeld({ device: token.device.name, driver: token.driver })
}
