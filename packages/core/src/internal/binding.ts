import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as Bound from "../Bound.js"
import type * as Core from "../Core.js"
import type * as Device from "../Device.js"
import { CoreNotHeld, DeviceMismatch, UseAfterUnbind } from "../DeviceError.js"
import type * as Leak from "../Leak.js"
import type { GateReport, ReleaseFailure, UnbindCause } from "../Lifecycle.js"
import { BindingScope } from "./bindingScope.js"
import type { DeviceImpl } from "./device.js"
import { BindingSupervisor, bindingSupervisorOf, type FiberInfo, withSupervisor } from "./supervision.js"
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
  /** Each release's deadline at unbind (internal/teardown.ts). */
  readonly releaseTimeout: Duration.Duration
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
  /**
   * The Core token of the probe or `remove` call running now (or of the last one): a fresh
   * one per call, held only during it (`beginCall`), so a fiber that kept one sees it not
   * held later, even while another call of the same binding runs.
   */
  core: CoreImpl<string>
  readonly supervisor: BindingSupervisor
  /** Everything the unbind releases (step 4), in acquisition order. */
  readonly scope = new BindingScope()
  readonly fibers = new Map<Fiber.RuntimeFiber<any, any>, FiberInfo>()
  /** Fiber id windows of the probe's and `remove`'s slices, as pairs (internal/escape.ts). */
  readonly escapeWindows: Array<number> = []
  /** Starts of the slices in progress (nested when a fiber starts synchronously). */
  readonly sliceStarts: Array<number> = []
  /** Driver code the binding stopped waiting for (`Detached`), reported at step 6. */
  readonly abandoned: Array<Leak.LeakReport> = []
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
  /** The tag the driver's Core token goes under in the binding's context. */
  coreTag: Context.Tag<any, any> | undefined = undefined
  /** Adds a child device of this binding's device to its bus (`Auxiliary.register`). */
  addChild:
    | ((spec: Device.Spec, onCreated: (device: Device.Device) => void) => Effect.Effect<Device.Device, unknown>)
    | undefined = undefined
  /** The registration of the driver this binding belongs to (an unload unbinds its own). */
  registered: unknown = undefined
  /**
   * The fiber running the probe, while it runs: its own with the bus's `probeTimeout` (a
   * shutdown cancels it), else its binder's.
   */
  prober: Fiber.RuntimeFiber<any, any> | undefined = undefined
  /** The driver's `remove` hook, run at step 3. */
  removeHook: ((device: DeviceImpl) => Effect.Effect<void, unknown, any>) | undefined = undefined

  constructor(
    readonly device: DeviceImpl,
    readonly driver: string,
    readonly options: BindingOptions
  ) {
    this.bound = new BoundImpl(this)
    this.core = new CoreImpl(this)
    this.supervisor = new BindingSupervisor(this)
    this.scope.onLateFailure = (resource, exit) => {
      if (Exit.isFailure(exit)) this.releaseFailures.push({ resource, cause: exit.cause, atUnbind: true })
    }
  }

  /** A fresh Core token, held until the call ends (`core.held = false`). */
  beginCall(): CoreImpl<string> {
    const core = new CoreImpl<string>(this)
    core.held = true
    this.core = core
    return core
  }

  /** Hands every listed entry to `f` and empties the list (step 6). */
  drainListed(f: (entry: ListedEntry) => void): void {
    while (this.listHead !== undefined) {
      const entry = this.listHead
      this.unlist(entry)
      f(entry)
    }
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
    return Effect.withFiberRuntime((fiber) => {
      const outer = fiber.getFiberRef(FiberRef.currentSupervisor)
      return bindingSupervisorOf(outer) === this.supervisor
        ? effect
        : Effect.locally(effect, FiberRef.currentSupervisor, withSupervisor(outer, this.supervisor))
    })
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
        // This binding's supervisor instead of any other binding's (a parent binding probing
        // its child device), with the caller's own supervisors kept: see the invariants of
        // internal/supervision.ts.
        const inner = bindingSupervisorOf(outerSupervisor) === this.supervisor
          ? outerSupervisor
          : withSupervisor(outerSupervisor, this.supervisor)
        return inner === outerSupervisor
          ? Effect.zipRight(enter, body)
          : Effect.zipRight(Effect.zipRight(enter, FiberRef.set(FiberRef.currentSupervisor, inner)), body)
      })
    )
  }

}

/** @internal */
export const bindingOf = (token: Bound.Bound<any>): Binding => (token as unknown as BoundImpl<any>).binding

/** @internal */
export const isLive = (token: Bound.Bound<any>): boolean => {
  const impl = token as unknown as BoundImpl<any>
  return impl.binding !== undefined && impl.key === impl.binding
}

/**
 * Names a token this copy of the package did not make. A token of another copy of
 * `@devscope/core` carries the same (global) type id but is not an instance of this copy's
 * class: say so, since that mistake is otherwise invisible.
 * @internal
 */
export const describeForeign = (token: unknown): string =>
  typeof token === "object" && token !== null && BoundTypeId in token
    ? `a token from another copy of @devscope/core (two copies are loaded: \`npm ls @devscope/core\` shows them; ` +
      `make every package use one): ${String(token)}`
    : String(token)

/**
 * The binding of a live token, or the defect that says why there is none.
 * @internal
 */
export const liveBinding = (token: Bound.Bound<any>, resource: string): Binding => {
  const impl = token as unknown as BoundImpl<any>
  if (!(impl instanceof BoundImpl)) {
    throw new DeviceMismatch({ resource, expected: "a token made by this copy of @devscope/core", actual: describeForeign(token) })
  }
  if (impl.key !== impl.binding) throw impl.binding.useAfterUnbind(resource)
  return impl.binding
}

/**
 * `Bound.fork`: a binding fiber, started as a daemon (it outlives its caller, not the
 * binding) and supervised by the binding alone, so the unbind interrupts and awaits it with
 * a deadline (step 4a). Interruptible even when forked from an uninterruptible region (a
 * Devres acquire): the unbind must be able to stop it.
 * @internal
 */
export const forkIn = <A, E, R>(
  token: Bound.Bound<any>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Fiber.RuntimeFiber<A, E>, never, R> =>
  Effect.suspend(() => liveBinding(token, "Bound.fork").supervised(Effect.forkDaemon(Effect.interruptible(effect))))

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
