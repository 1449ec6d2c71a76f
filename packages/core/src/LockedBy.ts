/**
 * LockedBy: data reachable only with proof that an outer lock is held (the kernel's
 * `LockedBy<T, U>`, rust/kernel/sync/locked_by.rs).
 *
 * One lock protects a big data structure; its nodes are `LockedBy` values that do not
 * wrap a lock of their own. `lock.with(f)` takes the lock and hands `f` a proof, `Held<N>`;
 * with it, `node.access(proof)` is a plain synchronous call that returns the value, with
 * no per-node locking and no Effect.
 *
 * - The lock's name is part of the types (`Lock<"tree">`, `Held<"tree">`), so a proof of
 *   another lock does not type-check.
 * - A proof of another lock instance with the same name is the defect `WrongLock` (the
 *   kernel panics on "mismatched owners"), and a proof used after its `with` ended is the
 *   defect `LockNotHeld`. The check is one identity compare (with the proof of the
 *   section in progress); diagnostics are built in a separate cold function.
 * - The lock is not reentrant: a nested `with` on the same lock from the fiber that holds it
 *   dies with `RecursiveLocking` instead of deadlocking.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Types from "effect/Types"
import * as internal from "./internal/lockedBy.js"

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
 * @category type ids
 */
export const LockTypeId: unique symbol = internal.LockTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type LockTypeId = typeof LockTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export const HeldTypeId: unique symbol = internal.HeldTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type HeldTypeId = typeof HeldTypeId

/**
 * A mutual-exclusion lock branded by its name `N` (a string literal).
 * @since 0.1.0
 * @category models
 */
export interface Lock<in out N extends string> {
  readonly [LockTypeId]: { readonly _N: Types.Invariant<N> }
  readonly name: N
  /** Instance number, distinguishing locks of the same name. */
  readonly instance: number
  /** `name#instance`, used in defects. */
  readonly label: string
  /** Whether some fiber is inside `with`. */
  readonly isHeld: boolean
  /**
   * Takes the lock, runs `f` with a proof that it is held, and releases the lock when `f`
   * ends (by success, failure, defect or interruption). The proof is only valid while `f`
   * runs. A nested `with` on this lock from the fiber holding it dies with `RecursiveLocking`.
   */
  with<A, E, R>(f: (proof: Held<N>) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R>
}

/**
 * Proof that lock `N` is held: given to the body of `lock.with`, valid while it runs.
 * Only `with` makes proofs.
 * @since 0.1.0
 * @category models
 */
export interface Held<in out N extends string> {
  readonly [HeldTypeId]: { readonly _N: Types.Invariant<N> }
  /** The lock this proves held. */
  readonly lock: Lock<N>
  /** `false` once the `with` that made it has ended. */
  readonly live: boolean
}

/**
 * A value of type `T` guarded by a lock named `N` that does not wrap it.
 * @since 0.1.0
 * @category models
 */
export interface LockedBy<in out T, in out N extends string> {
  readonly [TypeId]: TypeId
  /** The lock guarding the value. */
  readonly lock: Lock<N>
  /** Debug name, used in defects. */
  readonly label: string | undefined
  /**
   * The value, given a live proof of its lock. Synchronous and allocation-free; a proof of
   * another lock instance is the defect `WrongLock`, a stale proof the defect `LockNotHeld`.
   */
  access(proof: Held<N>): T
  /** Replaces the value, under the same conditions as `access`. */
  set(proof: Held<N>, value: T): void
  /** Replaces the value with `f(value)` and returns it, under the same conditions as `access`. */
  update(proof: Held<N>, f: (value: T) => T): T
}

/**
 * Defect: a value was accessed with a proof of a different lock instance (same name, other
 * lock), or with something that is not a proof. Names both locks as `name#instance`.
 *
 * @example
 * ```ts
 * import { Cause, Effect, Exit } from "effect"
 * import { LockedBy } from "@devscope/core"
 *
 * const a = LockedBy.unsafeLock("tree")
 * const b = LockedBy.unsafeLock("tree")
 * const node = LockedBy.make(a, 1)
 * const exit = Effect.runSyncExit(b.with((held) => Effect.sync(() => node.access(held))))
 * // Exit.isFailure(exit) && Cause.dieOption(exit.cause): Some(WrongLock { expected: "tree#1", ... })
 * ```
 * @since 0.1.0
 * @category defects
 */
export const WrongLock: new(args: Pick<WrongLock, "value" | "expected" | "actual">) => WrongLock = internal.WrongLock

/**
 * Defect: a value was accessed with a proof of a different lock instance, or with something
 * that is not a proof.
 * @since 0.1.0
 * @category defects
 */
export interface WrongLock extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "WrongLock"
  /** The value's description: its label, quoted, or `A value locked by "name#instance"`. */
  readonly value: string
  /** The lock that guards the value (`name#instance`). */
  readonly expected: string
  /** The lock whose proof was presented (`name#instance`), or what was presented instead. */
  readonly actual: string
}

/**
 * Defect: a proof was used after the `with` section that made it had ended.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LockedBy } from "@devscope/core"
 *
 * const lock = LockedBy.unsafeLock("tree")
 * const node = LockedBy.make(lock, 1)
 * const leaked = Effect.runSync(lock.with((held) => Effect.succeed(held)))
 * const exit = Effect.runSyncExit(Effect.sync(() => node.access(leaked)))
 * // Exit.isFailure(exit): the defect LockNotHeld, the proof's section has ended
 * ```
 * @since 0.1.0
 * @category defects
 */
export const LockNotHeld: new(args: Pick<LockNotHeld, "value" | "lock">) => LockNotHeld = internal.LockNotHeld

/**
 * Defect: a proof was used after the `with` section that made it had ended.
 * @since 0.1.0
 * @category defects
 */
export interface LockNotHeld extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "LockNotHeld"
  /** The value's description: its label, quoted, or `A value locked by "name#instance"`. */
  readonly value: string
  /** The lock of the stale proof (`name#instance`). */
  readonly lock: string
}

/**
 * Defect: the fiber holding a lock called `with` on it again (it would deadlock).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LockedBy } from "@devscope/core"
 *
 * const lock = LockedBy.unsafeLock("tree")
 * // Dies with RecursiveLocking instead of hanging:
 * const nested = lock.with(() => lock.with(() => Effect.void))
 * ```
 * @since 0.1.0
 * @category defects
 */
export const RecursiveLocking: new(args: Pick<RecursiveLocking, "lock" | "fiber">) => RecursiveLocking = internal.RecursiveLocking

/**
 * Defect: the fiber holding a lock called `with` on it again (it would deadlock).
 * @since 0.1.0
 * @category defects
 */
export interface RecursiveLocking extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "RecursiveLocking"
  /** The lock (`name#instance`). */
  readonly lock: string
  /** The fiber that already holds it and asked for it again (its id, `#42`). */
  readonly fiber: string
}

/**
 * Makes a lock. The name must be a string literal: it becomes the type of the lock's
 * proofs, so that `LockedBy` values of one lock cannot be reached with a proof of another.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LockedBy } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const tree = yield* LockedBy.lock("tree") // Lock<"tree">
 *   const size = LockedBy.make(tree, 0)
 *   return yield* tree.with((held) => Effect.sync(() => size.update(held, (n) => n + 1))) // 1
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const lock = <const N extends string>(name: string extends N ? never : N): Effect.Effect<Lock<N>> =>
  Effect.sync(() => internal.unsafeLock<N>(name))

/**
 * Synchronous `lock`, for code outside Effect (module-level locks).
 *
 * @example
 * ```ts
 * import { LockedBy } from "@devscope/core"
 *
 * export const Registry = LockedBy.unsafeLock("registry") // Lock<"registry">
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const unsafeLock = <const N extends string>(name: string extends N ? never : N): Lock<N> =>
  internal.unsafeLock<N>(name)

/**
 * Puts `value` under `lock`: from now on it is reached with `access(proof)` inside
 * `lock.with`. Many values share one lock (the nodes of the structure the lock protects).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LockedBy } from "@devscope/core"
 *
 * const dir = LockedBy.unsafeLock("dir")
 * const files = [LockedBy.make(dir, { bytes: 10 }, { label: "a.txt" }), LockedBy.make(dir, { bytes: 32 })]
 * const total = dir.with((held) => Effect.sync(() => files.reduce((n, f) => n + f.access(held).bytes, 0))) // 42
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const make = <T, N extends string>(
  lock: Lock<N>,
  value: T,
  options?: { readonly label?: string | undefined }
): LockedBy<T, N> => internal.make(lock, value, options?.label)
