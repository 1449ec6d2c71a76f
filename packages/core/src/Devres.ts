/**
 * Devres: a resource whose lifetime is a binding (the kernel's `devm_*` / `Devres<T>`).
 * It is acquired into the binding scope and released, in reverse order of acquisition,
 * when the binding ends (or earlier with {@link release}).
 *
 * Inside the binding, `devres.access(token)` is a plain synchronous call that returns the
 * value: no Option, no Effect, no allocation. It only checks that the token belongs to
 * the same binding and that nothing was revoked (a single identity compare), and raises the
 * defect `UseAfterUnbind` (or `DeviceMismatch`) otherwise. Code without a token uses
 * `tryAccess`, which returns an Option.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Bound from "./Bound.js"
import type { Device } from "./Device.js"
import type * as Driver from "./Driver.js"
import * as internal from "./internal/devres.js"
import { callSite } from "./internal/site.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.1.0
 * @category models
 */
export interface Devres<out A, in out D extends string> {
  readonly [TypeId]: TypeId
  /** Debug name, used in reports and defects. */
  readonly label: string
  /** Where it was acquired. */
  readonly acquiredAt: string
  readonly device: Device
  readonly isReleased: boolean
  /**
   * The value, given the binding's Bound token. Synchronous and total on a live binding;
   * a stale or foreign token is a defect.
   */
  access(token: Bound.Bound<D>): A
  /** The value if the resource and its binding are still live. */
  tryAccess(): Option.Option<A>
}

/**
 * How a Devres is being released: by the end of its binding (`atUnbind`), or early by the
 * driver (`Devres.release`), with the site of that call.
 * @since 0.1.0
 * @category models
 */
export interface Release {
  readonly atUnbind: boolean
  readonly site: string
}

/**
 * Acquires a resource into the binding of the Bound token found in the context. The
 * acquisition is uninterruptible; `release` runs at unbind (after every binding fiber has
 * stopped), or on probe failure, exactly once.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Devres, Driver } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 *
 * const probe = Effect.gen(function*() {
 *   const irq = yield* Devres.acquireRelease(
 *     Edu,
 *     Effect.sync(() => ({ line: 11 })),
 *     (irq) => Effect.log(`free irq ${irq.line}`),
 *     { label: "irq 11" }
 *   )
 *   const bound = yield* Edu.Bound
 *   return irq.access(bound).line // 11, synchronously
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const acquireRelease = <D extends string, A, E, R>(
  driver: Driver.Brand<D> | Driver.Driver<D, any, any, any>,
  acquire: Effect.Effect<A, E, R>,
  release: (a: A, how: Release) => Effect.Effect<void, unknown>,
  options?: { readonly label?: string | undefined }
): Effect.Effect<Devres<A, D>, E, R | Bound.Bound<D>> =>
  internal.acquire(tagOf(driver), acquire, release, options?.label)

/**
 * Wraps an existing value as a Devres of the current binding, with nothing to release
 * (memory the driver owns). It becomes unreachable through `access` once the binding ends.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Devres, Driver } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const stats = Devres.make(Nic, { rxFrames: 0, txFrames: 0 }, { label: "stats" })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <D extends string, A>(
  driver: Driver.Brand<D> | Driver.Driver<D, any, any, any>,
  value: A,
  options?: { readonly label?: string | undefined }
): Effect.Effect<Devres<A, D>, never, Bound.Bound<D>> =>
  internal.acquire(tagOf(driver), Effect.succeed(value), undefined, options?.label)

/**
 * Releases the resource now (the kernel's `devm_release_action`). Later accesses are the
 * defect `UseAfterUnbind` naming where it was released; the unbind will not release it
 * again. A failing release is a defect of this effect, and is also listed in the unbind
 * report's `releaseFailures` (with `atUnbind: false`). A successful early release is not
 * listed in the report's `released` (which holds the unbind's own releases), only counted in
 * `releasedEarly`; it also drops the resource from the binding, so releasing per request
 * keeps a binding's memory flat.
 *
 * @since 0.1.0
 * @category destructors
 */
export const release = <A, D extends string>(self: Devres<A, D>): Effect.Effect<void> => {
  const site = callSite()
  return Effect.flatMap((self as unknown as internal.DevresImpl<A, D>).releaseEarly(site), Effect.orDie)
}

const tagOf = <D extends string>(driver: Driver.Brand<D> | Driver.Driver<D, any, any, any>): Bound.Tag<D> =>
  "brand" in driver ? driver.brand.Bound : driver.Bound
