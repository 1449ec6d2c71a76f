import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import type * as Bound from "../Bound.js"
import type * as Devres from "../Devres.js"
import { DeviceMismatch, UseAfterUnbind } from "../DeviceError.js"
import { type Binding, BoundImpl, describeForeign, liveBinding, REVOKED } from "./binding.js"
import { LABELLED_SITE, LazySite, type Site, UNCAPTURED } from "./site.js"

/** @internal */
export const TypeId: typeof Devres.TypeId = Symbol.for("@devscope/core/Devres") as any

/** How a release at unbind is told it runs at unbind. */
const AT_UNBIND: Devres.Release = Object.freeze({ atUnbind: true, site: "unbind" })

/** The owner of a released Devres: equals no token key, live or revoked. */
const RELEASED: object = Object.freeze({ released: true })

/**
 * A synchronous release (`register`): `site` is where the release was asked for ("unbind"
 * at unbind), formatted only if someone reads it.
 * @internal
 */
export type SyncRelease<A> = (a: A, atUnbind: boolean, site: Site) => void

interface Meta<A> {
  readonly binding: Binding
  /** The label given, if any: the default one names the site, formatted only when read. */
  readonly label: string | undefined
  readonly acquiredAt: Site
  readonly release: ((a: A, how: Devres.Release) => Effect.Effect<void, unknown>) | undefined
  /** Set instead of `release` for Devres made by `register`. */
  readonly releaseSync: SyncRelease<A> | undefined
  releasedAt: Site | undefined
}

/**
 * Only the two fields the access path reads live in the object, so a Devres is as small as
 * a plain holder and dense arrays of them stay cache-friendly; the rest is in `meta`.
 * @internal
 */
export class DevresImpl<A, D extends string> implements Devres.Devres<A, D> {
  declare readonly [TypeId]: Devres.TypeId
  /**
   * The binding's token while live, RELEASED after. Every Devres of a binding is released
   * (step 4) before its token is revoked (step 5), so comparing the presented token with the
   * owner checks "same binding" and "not revoked" at once, with no load through the token.
   */
  owner: object
  value: A | undefined
  readonly meta: Meta<A>

  constructor(
    binding: Binding,
    value: A,
    label: string | undefined,
    acquiredAt: Site,
    release: ((a: A, how: Devres.Release) => Effect.Effect<void, unknown>) | undefined,
    releaseSync?: SyncRelease<A>
  ) {
    this.owner = binding.bound
    this.value = value
    this.meta = { binding, label, acquiredAt, release, releaseSync, releasedAt: undefined }
  }

  get label(): string {
    return this.meta.label ?? `resource acquired at ${this.meta.acquiredAt}`
  }

  get acquiredAt(): string {
    return String(this.meta.acquiredAt)
  }

  get device() {
    return this.meta.binding.device
  }

  get isReleased(): boolean {
    return this.owner === RELEASED
  }

  access(token: Bound.Bound<D>): A {
    return token === this.owner ? this.value as A : this.accessFailed(token)
  }

  tryAccess(): Option.Option<A> {
    return this.owner !== RELEASED && this.meta.binding.live ? Option.some(this.value as A) : Option.none()
  }

  /** Cold path, kept out of `access` so that stays small enough to inline. */
  accessFailed(token: Bound.Bound<D>): never {
    const { binding } = this.meta
    const resource = `Devres "${this.label}"`
    if (this.owner === RELEASED) {
      if (binding.revocation !== undefined) throw binding.useAfterUnbind(resource)
      throw new UseAfterUnbind({
        device: binding.device.name,
        driver: binding.driver,
        resource,
        unbindCause: "released",
        revokedAt: this.meta.releasedAt === undefined ? "unknown" : String(this.meta.releasedAt)
      })
    }
    const impl = token as unknown as BoundImpl<D>
    if (impl instanceof BoundImpl && impl.key === REVOKED) throw impl.binding.useAfterUnbind(resource)
    throw new DeviceMismatch({
      resource,
      expected: binding.device.name,
      actual: impl instanceof BoundImpl ? impl.binding.device.name : describeForeign(token)
    })
  }

  /**
   * An early release (`Devres.release`, `Dma.unmap`), if not yet released. Never fails:
   * failures are recorded on the binding. (The unbind's own release is `releaseAtUnbind`.)
   */
  releaseEarly(site: Site): Effect.Effect<Exit.Exit<void, unknown>> {
    // Uninterruptible: once marked released, the release must run to its end, or it is lost.
    return Effect.uninterruptible(Effect.suspend(() => {
      const { meta } = this
      if (meta.releaseSync !== undefined) return Effect.succeed(this.releaseSync(site, false))
      if (this.owner === RELEASED) return Effect.succeed(Exit.void)
      // The unbind is releasing (a leaked fiber releasing early): the unbind releases this one
      // itself, in its order.
      if (!meta.binding.scope.isOpen) return Effect.succeed(Exit.void)
      if (meta.release === undefined) {
        this.markReleased(site, false)
        meta.binding.recordRelease(this.label, Exit.void, false)
        return Effect.succeed(Exit.void)
      }
      const value = this.markReleased(site, true)
      const record = (exit: Exit.Exit<void, unknown>) => meta.binding.recordRelease(this.label, exit, false)
      let release: Effect.Effect<void, unknown>
      try {
        release = meta.release(value, { atUnbind: false, site: String(site) })
      } catch (defect) {
        const exit = Exit.die(defect)
        meta.binding.scope.delete(this)
        record(exit)
        return Effect.succeed(exit)
      }
      if (Exit.isExit(release)) {
        const exit = release as Exit.Exit<void, unknown>
        meta.binding.scope.delete(this)
        record(exit)
        return Effect.succeed(exit)
      }
      // Still running when the unbind starts? The unbind waits for it in its place (LIFO):
      // the entry keeps its position and joins this release, with the release deadline.
      const done = Deferred.unsafeMake<void>(FiberId.none)
      meta.binding.scope.set(this, {
        label: this.label,
        site: meta.acquiredAt,
        run: () => Deferred.await(done),
        joinsEarlyRelease: true
      })
      return Effect.exit(release).pipe(
        Effect.tap((exit) => {
          record(exit)
          meta.binding.scope.delete(this)
          Deferred.unsafeDone(done, Exit.void)
        })
      )
    }))
  }

  /**
   * The binding scope's finalizer: the unbind's release (step 4), already uninterruptible
   * there, so it does in plain code what `releaseEarly` wraps in effects. A release that throws
   * instead of returning an effect is a failure of its own, not of the scope's close.
   */
  releaseAtUnbind(): Effect.Effect<void> {
    const { meta } = this
    if (meta.releaseSync !== undefined) {
      this.releaseSync("unbind", true)
      return Effect.void
    }
    if (this.owner === RELEASED) return Effect.void
    const value = this.markReleased("unbind", true)
    if (meta.release === undefined) {
      meta.binding.recordRelease(this.label, Exit.void, true)
      return Effect.void
    }
    let release: Effect.Effect<void, unknown>
    try {
      release = meta.release(value, AT_UNBIND)
    } catch (defect) {
      meta.binding.recordRelease(this.label, Exit.die(defect), true)
      return Effect.void
    }
    // Done already (`Effect.void`, a plain value): recorded now, no effect to run.
    if (Exit.isExit(release)) {
      meta.binding.recordRelease(this.label, release as Exit.Exit<void, unknown>, true)
      return Effect.void
    }
    return Effect.matchCause(release, {
      onFailure: (cause) => meta.binding.recordRelease(this.label, Exit.failCause(cause), true),
      onSuccess: () => meta.binding.recordRelease(this.label, Exit.void, true)
    })
  }

  /**
   * `releaseEarly` for a Devres made by `register` (its release is synchronous), as a plain
   * call: for per-request paths. Idempotent; returns how the release went (a failure is
   * recorded on the binding, as `releaseEarly` does).
   */
  releaseSync(site: Site, atUnbind: boolean): Exit.Exit<void, unknown> {
    if (this.owner === RELEASED) return Exit.void
    const { meta } = this
    // Early, while the unbind is releasing: the unbind releases it, in its order.
    if (!atUnbind && !meta.binding.scope.isOpen) return Exit.void
    const value = this.markReleased(site, atUnbind)
    try {
      meta.releaseSync!(value, atUnbind, site)
    } catch (defect) {
      const exit = Exit.die(defect)
      meta.binding.recordRelease(this.label, exit, atUnbind)
      return exit
    }
    if (atUnbind) meta.binding.recordRelease(this.label, Exit.void, atUnbind)
    else meta.binding.releasedEarly++
    return Exit.void
  }

  /**
   * Marks the Devres released and takes its value. An early release drops its entry from the
   * binding scope (O(1)), so a driver that acquires and releases per request does not grow
   * the binding; `keepEntry` leaves it for the caller to replace.
   */
  private markReleased(site: Site, keepEntry: boolean): A {
    const { meta } = this
    this.owner = RELEASED
    meta.releasedAt = site
    if (!keepEntry) meta.binding.scope.delete(this)
    const value = this.value as A
    this.value = undefined
    return value
  }

  // As a ReleaseEntry of the binding scope (internal/bindingScope.ts): no entry object of its
  // own per Devres.
  get site(): Site {
    return this.meta.acquiredAt
  }

  run(): Effect.Effect<void> {
    return this.releaseAtUnbind()
  }

  toString() {
    return `Devres(${this.label}, ${this.device.name}${this.isReleased ? ", released" : ""})`
  }
}

Object.defineProperty(DevresImpl.prototype, TypeId, { value: TypeId })

/**
 * The live token of `tag` in the context of the fiber running now, if any: for calls that
 * must decide something about their binding when the effect is made (the call site is the
 * caller's stack, which is only there now), before the effect reads its context.
 * @internal
 */
export const tokenInFiber = (tag: Bound.Tag<any>): BoundImpl<any> | undefined => {
  const fiber = Fiber.getCurrentFiber()
  if (fiber._tag === "None") return undefined
  const token = Context.getOption(fiber.value.getFiberRef(FiberRef.currentContext), tag)
  return token._tag === "Some" && token.value instanceof BoundImpl ? token.value : undefined
}

/**
 * The call site of an acquisition, captured now if the bus wants it (the site is the
 * caller's stack, which is only there now). The mode is the bus's `captureSites` of the live
 * token in the current fiber's context; outside any fiber (a Layer made at module load) or
 * with no token in context, the default.
 */
const siteOf = (tag: Bound.Tag<any>, labelled: boolean): LazySite => {
  const mode = tokenInFiber(tag)?.binding.options.captureSites ?? "unlabelled"
  if (mode === "never") return UNCAPTURED
  if (labelled && mode === "unlabelled") return LABELLED_SITE
  return new LazySite(acquire)
}

/** @internal */
export const acquire = <A, E, R, D extends string>(
  tag: Bound.Tag<D>,
  effect: Effect.Effect<A, E, R>,
  release: ((a: A, how: Devres.Release) => Effect.Effect<void, unknown>) | undefined,
  label: string | undefined
): Effect.Effect<Devres.Devres<A, D>, E, R | Bound.Bound<D>> => {
  const site = siteOf(tag, label !== undefined)
  // One step for the token and the checks (a probe acquires many of these: B2).
  return Effect.uninterruptible(Effect.withFiberRuntime<Devres.Devres<A, D>, E, R>((fiber) => {
    const token = Context.unsafeGet(fiber.getFiberRef(FiberRef.currentContext), tag)
    const impl = token as unknown as BoundImpl<D>
    // The resource name is only built for the defect, so that a default label (which
    // names the site) is not formatted on the live path.
    const binding = impl instanceof BoundImpl && impl.key === impl.binding
      ? impl.binding
      : liveBinding(token, `Devres "${label ?? `resource acquired at ${site}`}"`)
    return Effect.flatMap(effect, (value) => {
      const devres = new DevresImpl<A, D>(binding, value, label, site, release)
      // Keyed by the Devres, so an early release can delete it in O(1).
      if (binding.scope.set(devres, devres)) return Effect.succeed(devres)
      // A closed scope releases at once, as `Scope.addFinalizer` does.
      return Effect.as(Effect.suspend(() => devres.releaseAtUnbind()), devres)
    })
  }))
}

/**
 * Registers `value`, already acquired, as a Devres of `binding` (which must be live), in one
 * synchronous step: for resources made per request (streaming mappings), where `acquire`'s
 * effects would cost more than the resource itself. `release` must be synchronous; it runs
 * once, at the early release (`releaseSync`, `releaseEarly`) or at unbind, in the same LIFO
 * order as every other Devres. On a scope that is already closed, it runs at once, as
 * `Scope.addFinalizer` would run the finalizer.
 * @internal
 */
export const register = <A, D extends string>(
  binding: Binding,
  value: A,
  label: string | undefined,
  site: Site,
  release: SyncRelease<A>
): DevresImpl<A, D> => {
  const devres = new DevresImpl<A, D>(binding, value, label, site, undefined, release)
  // A closed scope releases at once (synchronously: the release is), as `Scope.addFinalizer` does.
  if (!binding.scope.set(devres, devres)) devres.releaseSync("unbind", true)
  return devres
}
