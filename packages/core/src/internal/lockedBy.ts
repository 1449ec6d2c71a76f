import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as LockedBy from "../LockedBy.js"

/** @internal */
export const TypeId: typeof LockedBy.TypeId = Symbol.for("@devscope/core/LockedBy") as any

/** @internal */
export const LockTypeId: typeof LockedBy.LockTypeId = Symbol.for("@devscope/core/LockedBy/Lock") as any

/** @internal */
export const HeldTypeId: typeof LockedBy.HeldTypeId = Symbol.for("@devscope/core/LockedBy/Held") as any

/** The phantom variance marker every Lock / Held carries at runtime (shared, never read). */
const variance = { _N: (_: never) => _ }

/** @internal */
export class WrongLock extends Data.TaggedError("WrongLock")<Pick<LockedBy.WrongLock, "value" | "expected" | "actual">>
  implements LockedBy.WrongLock
{
  override get message() {
    return `${this.value} is guarded by lock "${this.expected}" but was accessed with a proof of ${this.actual}`
  }
}

/** @internal */
export class LockNotHeld extends Data.TaggedError("LockNotHeld")<Pick<LockedBy.LockNotHeld, "value" | "lock">>
  implements LockedBy.LockNotHeld
{
  override get message() {
    return `${this.value} was accessed with a stale proof of lock "${this.lock}": ` +
      `the \`with\` section that made it has ended`
  }
}

/** @internal */
export class RecursiveLocking extends Data.TaggedError("RecursiveLocking")<Pick<LockedBy.RecursiveLocking, "lock" | "fiber">>
  implements LockedBy.RecursiveLocking
{
  override get message() {
    return `Fiber ${this.fiber} tried to take lock "${this.lock}", which it already holds ` +
      `(a nested \`with\` on the same lock would deadlock)`
  }
}

let nextInstance = 0

/**
 * A proof that a lock is held. Each `with` section makes a fresh one; `live` is for
 * diagnostics, the access path compares with `LockImpl.current` instead.
 * @internal
 */
export class HeldImpl<N extends string> implements LockedBy.Held<N> {
  declare readonly [HeldTypeId]: LockedBy.Held<N>[typeof HeldTypeId]
  live = true
  constructor(readonly lock: LockImpl<N>) {}

  toString() {
    return `Held(${this.lock.label}${this.live ? "" : ", stale"})`
  }
}
;(HeldImpl.prototype as any)[HeldTypeId] = variance

/** @internal */
export class LockImpl<N extends string> implements LockedBy.Lock<N> {
  declare readonly [LockTypeId]: LockedBy.Lock<N>[typeof LockTypeId]
  readonly instance = ++nextInstance
  readonly label: string
  private readonly semaphore = Effect.unsafeMakeSemaphore(1)
  /** The fiber inside `with`, for the recursion check and diagnostics. */
  private holder: FiberId.FiberId | undefined = undefined
  /**
   * The proof of the `with` section in progress, `undefined` between sections. The lock is
   * exclusive, so this is the only live proof: comparing a presented proof with it checks
   * "this lock instance", "still held" and "made by `with`" in one identity compare.
   */
  current: HeldImpl<N> | undefined = undefined

  constructor(readonly name: N) {
    this.label = `${name}#${this.instance}`
  }

  get isHeld(): boolean {
    return this.holder !== undefined
  }

  with<A, E, R>(f: (proof: LockedBy.Held<N>) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.fiberIdWith((fiber) => {
      if (this.holder === fiber) {
        return Effect.die(new RecursiveLocking({ lock: this.label, fiber: FiberId.threadName(fiber) }))
      }
      return Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(
          restore(this.semaphore.take(1)),
          Effect.suspend(() => {
            const proof = new HeldImpl(this)
            this.holder = fiber
            this.current = proof
            return Effect.ensuring(
              // `suspend` so that a throwing `f` still runs the release below.
              restore(Effect.suspend(() => f(proof))),
              Effect.suspend(() => {
                proof.live = false
                this.holder = undefined
                this.current = undefined
                return this.semaphore.release(1)
              })
            )
          })
        )
      )
    })
  }

  toString() {
    return `Lock(${this.label})`
  }
}
;(LockImpl.prototype as any)[LockTypeId] = variance

/** @internal */
export class LockedByImpl<T, N extends string> implements LockedBy.LockedBy<T, N> {
  declare readonly [TypeId]: LockedBy.TypeId
  constructor(readonly lock: LockImpl<N>, private value: T, readonly label: string | undefined) {}

  access(proof: LockedBy.Held<N>): T {
    return proof === this.lock.current ? this.value : this.accessFailed(proof)
  }

  set(proof: LockedBy.Held<N>, value: T): void {
    if (proof === this.lock.current) this.value = value
    else this.accessFailed(proof)
  }

  update(proof: LockedBy.Held<N>, f: (value: T) => T): T {
    if (proof !== this.lock.current) this.accessFailed(proof)
    return this.value = f(this.value)
  }

  /** Cold path, kept out of `access` so that stays small enough to inline. */
  accessFailed(proof: unknown): never {
    const value = this.label === undefined ? `A value locked by "${this.lock.label}"` : `"${this.label}"`
    if (!(proof instanceof HeldImpl)) {
      throw new WrongLock({ value, expected: this.lock.label, actual: `a non-proof (${String(proof)})` })
    }
    if (proof.lock !== this.lock) {
      throw new WrongLock({ value, expected: this.lock.label, actual: `lock "${proof.lock.label}"` })
    }
    throw new LockNotHeld({ value, lock: this.lock.label })
  }

  toString() {
    return `LockedBy(${this.label ?? "value"}, ${this.lock.label})`
  }
}
;(LockedByImpl.prototype as any)[TypeId] = TypeId

/** @internal */
export const unsafeLock = <N extends string>(name: N): LockedBy.Lock<N> => new LockImpl(name)

/** @internal */
export const make = <T, N extends string>(
  lock: LockedBy.Lock<N>,
  value: T,
  label: string | undefined
): LockedBy.LockedBy<T, N> => {
  if (!(lock instanceof LockImpl)) throw new TypeError(`LockedBy.make: ${String(lock)} is not a LockedBy.Lock`)
  return new LockedByImpl(lock as LockImpl<N>, value, label)
}
