import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"

interface Waiter {
  /** The lock was handed to this waiter (it owns it from then on). */
  granted: boolean
  resume: ((effect: Effect.Effect<void>) => void) | undefined
}

/**
 * A device lock: a FIFO mutex whose uncontended path is a flag and one continuation. Bind,
 * unbind and remove of one device hold it (docs/concepts.md section 5); `Semaphore.withPermits(1)`
 * did the same in about thirty run-loop steps per call, a tenth of a bind (B2).
 * @internal
 */
export class DeviceLock {
  private held = false
  private readonly queue: Array<Waiter> = []
  private readonly exits = {
    onFailure: (cause: Cause.Cause<unknown>) => {
      this.unlock()
      return Effect.failCause(cause)
    },
    onSuccess: (value: unknown) => {
      this.unlock()
      return Effect.succeed(value)
    }
  }

  /**
   * Runs `effect` holding the lock. Waiting is interruptible (an interrupted waiter leaves
   * the queue, or passes the lock on if it was just handed it); the release is not.
   */
  withLock<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) => {
      const locked = Effect.matchCauseEffect(restore(effect), this.exits) as Effect.Effect<A, E, R>
      if (!this.held) {
        this.held = true
        return locked
      }
      const waiter: Waiter = { granted: false, resume: undefined }
      this.queue.push(waiter)
      const wait = Effect.async<void>((resume) => {
        // Handed over before this fiber got here (it may have yielded in between).
        if (waiter.granted) resume(Effect.void)
        else waiter.resume = resume
      })
      return Effect.zipRight(
        Effect.onInterrupt(restore(wait), () => Effect.sync(() => this.cancel(waiter))),
        locked
      )
    })
  }

  private unlock(): void {
    const next = this.queue.shift()
    if (next === undefined) {
      this.held = false
      return
    }
    next.granted = true
    next.resume?.(Effect.void)
  }

  private cancel(waiter: Waiter): void {
    if (waiter.granted) return this.unlock()
    const at = this.queue.indexOf(waiter)
    if (at >= 0) this.queue.splice(at, 1)
  }
}
