import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { LifecycleEvent } from "../Lifecycle.js"

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * A bus's lifecycle events: numbered, stamped with Clock time, handed synchronously to
 * `onEvent`, kept in a bounded history and published to subscribers.
 * @internal
 */
export class EventLog {
  /**
   * Whether a throwing `onEvent` is isolated (reported as `ObserverFailed`). Only the
   * hostile-driver fuzzer's planted-regression test turns it off, to show the fuzzer finds
   * the break.
   */
  static isolateObservers = true
  private readonly history: Array<LifecycleEvent> = []
  private seq = 0

  constructor(
    private readonly pubsub: PubSub.PubSub<LifecycleEvent>,
    private readonly clock: Clock.Clock,
    private readonly historySize: number,
    private readonly onEvent: ((event: LifecycleEvent) => void) | undefined
  ) {}

  static make(clock: Clock.Clock, historySize: number, onEvent: ((event: LifecycleEvent) => void) | undefined) {
    return Effect.map(PubSub.unbounded<LifecycleEvent>(), (pubsub) => new EventLog(pubsub, clock, historySize, onEvent))
  }

  /**
   * Takes `event` over (every caller passes a fresh object literal) and stamps it in place:
   * an object spread cost about 5 µs here, more than the rest of a publish (B2).
   */
  publish(event: DistributiveOmit<LifecycleEvent, "seq" | "at">): void {
    const full = event as { seq: number; at: number } & typeof event
    full.seq = this.seq++
    full.at = this.clock.unsafeCurrentTimeMillis()
    if (this.onEvent !== undefined) {
      if (!EventLog.isolateObservers) this.onEvent(full as LifecycleEvent)
      else {
        try {
          this.onEvent(full as LifecycleEvent)
        } catch (defect) {
          // An observer is never part of a sequence: its failure is an event of its own
          // (after the one it threw on, and not handed to the observer again).
          this.record(full as LifecycleEvent)
          this.record({ _tag: "ObserverFailed", seq: this.seq++, at: full.at, event: full._tag, cause: Cause.die(defect) })
          return
        }
      }
    }
    this.record(full as LifecycleEvent)
  }

  private record(full: LifecycleEvent): void {
    this.history.push(full as LifecycleEvent)
    // Trim in batches, so a long run does not pay a full array move per event.
    if (this.history.length >= this.historySize + Math.max(16, this.historySize >> 3)) {
      this.history.splice(0, this.history.length - this.historySize)
    }
    this.pubsub.unsafeOffer(full as LifecycleEvent)
  }

  get events(): Stream.Stream<LifecycleEvent> {
    return Stream.fromPubSub(this.pubsub)
  }

  get subscribe(): Effect.Effect<Queue.Dequeue<LifecycleEvent>, never, Scope.Scope> {
    return PubSub.subscribe(this.pubsub)
  }

  get recent(): Effect.Effect<ReadonlyArray<LifecycleEvent>> {
    return Effect.sync(() => this.history.slice(-this.historySize))
  }
}
