import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Revocable from "../Revocable.js"

/** @internal */
export const TypeId: typeof Revocable.TypeId = Symbol.for("@devscope/core/Revocable") as any

/** @internal */
export class Revoked extends Data.TaggedError("Revoked")<Pick<Revocable.Revoked, "label">> implements Revocable.Revoked {
  override get message() {
    return `"${this.label}" has been revoked`
  }
}

/** @internal */
export class RevocableImpl<A> implements Revocable.Revocable<A> {
  readonly [TypeId]: Revocable.TypeId = TypeId
  private value: A | undefined
  private revoked = false
  private active = 0
  private drained: Deferred.Deferred<void> | undefined = undefined
  private readonly done: Deferred.Deferred<void> = Deferred.unsafeMake(FiberId.none)

  constructor(
    value: A,
    readonly label: string,
    private readonly release: ((a: A) => Effect.Effect<void>) | undefined
  ) {
    this.value = value
  }

  get isRevoked() {
    return this.revoked
  }

  get readers() {
    return this.active
  }

  tryAccess(): Option.Option<A> {
    return this.revoked ? Option.none() : Option.some(this.value as A)
  }

  use<B, E, R>(f: (a: A) => Effect.Effect<B, E, R>): Effect.Effect<B, E | Revoked, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<B, E | Revoked, R> => {
        if (this.revoked) return Effect.fail(new Revoked({ label: this.label }))
        this.active++
        return Effect.ensuring(restore(Effect.suspend(() => f(this.value as A))), Effect.sync(() => this.exitSection()))
      })
    )
  }

  private exitSection() {
    this.active--
    if (this.active === 0 && this.drained !== undefined) Deferred.unsafeDone(this.drained, Exit.void)
  }

  readonly revoke: Effect.Effect<boolean> = Effect.uninterruptible(Effect.suspend(() => {
    if (this.revoked) return Effect.as(Deferred.await(this.done), false)
    this.revoked = true
    const wait = this.active === 0
      ? Effect.void
      : Deferred.await(this.drained = Deferred.unsafeMake<void>(FiberId.none))
    return wait.pipe(
      Effect.zipRight(Effect.suspend(() => {
        const value = this.value as A
        this.value = undefined
        return this.release === undefined ? Effect.void : this.release(value)
      })),
      Effect.ensuring(Deferred.done(this.done, Exit.void)),
      Effect.as(true)
    )
  }))
}
