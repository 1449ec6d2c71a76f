/**
 * A value that its owner can take away (the kernel's `Revocable<T>`), usable for anything
 * that vanishes: devices, tenants, plugins, GPU contexts.
 *
 * - `tryAccess()` is synchronous and returns `None` once revocation has started. In
 *   JavaScript a synchronous region cannot interleave with a revoke, so the value it returns
 *   stays valid until the current synchronous code yields.
 * - `use(f)` runs `f` inside an access section that may span yields (an SRCU read section).
 * - `revoke` stops new accesses at once, waits for the sections in flight (never interrupts
 *   them), then releases the value. Concurrent revokes all wait for the release; only the
 *   first returns `true`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as internal from "./internal/revocable.js"

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
 * What `use` fails with once revocation has started.
 * @since 0.1.0
 * @category errors
 */
export const Revoked: new(args: Pick<Revoked, "label">) => Revoked = internal.Revoked

/**
 * What `use` fails with once revocation has started.
 * @since 0.1.0
 * @category errors
 */
export interface Revoked extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "Revoked"
  /** The revocable's label (`revocable` unless `make` was given one). */
  readonly label: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Revocable<A> {
  readonly [TypeId]: TypeId
  readonly label: string
  readonly isRevoked: boolean
  /** Access sections in flight. */
  readonly readers: number
  tryAccess(): Option.Option<A>
  use<B, E, R>(f: (a: A) => Effect.Effect<B, E, R>): Effect.Effect<B, E | Revoked, R>
  /** Revokes, waits for sections in flight, releases. `true` for the call that revoked. */
  readonly revoke: Effect.Effect<boolean>
}

/**
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Revocable } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const tenant = yield* Revocable.make({ quota: 10 }, {
 *     label: "tenant-42",
 *     release: () => Effect.log("tenant state dropped")
 *   })
 *   const quota = yield* tenant.use((t) => Effect.succeed(t.quota)) // 10
 *   yield* tenant.revoke
 *   console.log(quota, Option.isNone(tenant.tryAccess())) // 10 true
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(
  value: A,
  options?: { readonly label?: string | undefined; readonly release?: ((a: A) => Effect.Effect<void>) | undefined }
): Effect.Effect<Revocable<A>> => Effect.sync(() => unsafeMake(value, options))

/**
 * Synchronous constructor, for code outside Effect.
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = <A>(
  value: A,
  options?: { readonly label?: string | undefined; readonly release?: ((a: A) => Effect.Effect<void>) | undefined }
): Revocable<A> => new internal.RevocableImpl(value, options?.label ?? "revocable", options?.release)
