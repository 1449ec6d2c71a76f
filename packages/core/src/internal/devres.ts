import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as Bound from "../Bound.js"
import type * as Devres from "../Devres.js"
import { DeviceMismatch, UseAfterUnbind } from "../DeviceError.js"
import { type Binding, BoundImpl, liveBinding, REVOKED } from "./binding.js"
import { callSite } from "./site.js"

/** @internal */
export const TypeId: typeof Devres.TypeId = Symbol.for("@devscope/core/Devres") as any

/** The owner of a released Devres: equals no token key, live or revoked. */
const RELEASED: object = Object.freeze({ released: true })

/** @internal */
export class DevresImpl<A, D extends string> implements Devres.Devres<A, D> {
  readonly [TypeId]: Devres.TypeId = TypeId
  /**
   * The live binding, or RELEASED. A live token's key is its binding, so one identity
   * compare checks both "same binding" and "nothing revoked".
   */
  owner: object
  value: A | undefined
  releasedAt: string | undefined = undefined

  constructor(
    readonly binding: Binding,
    value: A,
    readonly label: string,
    readonly acquiredAt: string,
    readonly release: ((a: A) => Effect.Effect<void, unknown>) | undefined
  ) {
    this.owner = binding
    this.value = value
  }

  get device() {
    return this.binding.device
  }

  get isReleased(): boolean {
    return this.owner === RELEASED
  }

  access(token: Bound.Bound<D>): A {
    return (token as unknown as BoundImpl<D>).key === this.owner ? this.value as A : this.accessFailed(token)
  }

  tryAccess(): Option.Option<A> {
    return this.owner === this.binding && this.binding.live ? Option.some(this.value as A) : Option.none()
  }

  /** Cold path, kept out of `access` so that stays small enough to inline. */
  accessFailed(token: Bound.Bound<D>): never {
    const resource = `Devres "${this.label}"`
    if (this.owner === RELEASED) {
      if (this.binding.revocation !== undefined) throw this.binding.useAfterUnbind(resource)
      throw new UseAfterUnbind({
        device: this.binding.device.name,
        driver: this.binding.driver,
        resource,
        unbindCause: "released",
        revokedAt: this.releasedAt ?? "unknown"
      })
    }
    const impl = token as unknown as BoundImpl<D>
    if (impl instanceof BoundImpl && impl.key === REVOKED) throw impl.binding.useAfterUnbind(resource)
    throw new DeviceMismatch({
      resource,
      expected: this.binding.device.name,
      actual: impl instanceof BoundImpl ? impl.binding.device.name : String(token)
    })
  }

  /** Releases now if not yet released. Never fails: failures are recorded on the binding. */
  releaseNow(site: string): Effect.Effect<Exit.Exit<void, unknown>> {
    return Effect.suspend(() => {
      if (this.owner === RELEASED) return Effect.succeed(Exit.void)
      this.owner = RELEASED
      this.releasedAt = site
      const value = this.value as A
      this.value = undefined
      if (this.release === undefined) {
        this.binding.recordRelease(this.label, Exit.void)
        return Effect.succeed(Exit.void)
      }
      return Effect.tap(Effect.exit(this.release(value)), (exit) => this.binding.recordRelease(this.label, exit))
    })
  }

  toString() {
    return `Devres(${this.label}, ${this.binding.device.name}${this.isReleased ? ", released" : ""})`
  }
}

/** @internal */
export const acquire = <A, E, R, D extends string>(
  tag: Bound.Tag<D>,
  acquire: Effect.Effect<A, E, R>,
  release: ((a: A) => Effect.Effect<void, unknown>) | undefined,
  label: string | undefined
): Effect.Effect<Devres.Devres<A, D>, E, R | Bound.Bound<D>> => {
  const site = callSite()
  return Effect.flatMap(tag, (token) =>
    Effect.uninterruptible(Effect.suspend(() => {
      const name = label ?? `resource acquired at ${site}`
      const binding = liveBinding(token, `Devres "${name}"`)
      return Effect.flatMap(acquire, (value) => {
        const devres = new DevresImpl<A, D>(binding, value, name, site, release)
        return Effect.as(Scope.addFinalizer(binding.scope, devres.releaseNow("unbind")), devres)
      })
    })))
}
