import { Context, Effect, Layer, Queue, TestClock } from "effect"
import { Bus, Devres, Driver, Lifecycle } from "@devscope/core"

/** A log of acquisitions and releases shared by a test's resources. */
export class Log {
  readonly entries: Array<string> = []
  push = (entry: string) => Effect.sync(() => void this.entries.push(entry))
  count(entry: string) {
    return this.entries.filter((e) => e === entry).length
  }
}

/** A scoped test bus, strict about nothing, under TestClock. */
export const withBus = <A, E, R>(
  f: (bus: Bus.Service) => Effect.Effect<A, E, R>,
  options?: Bus.Options
) => Effect.scoped(Effect.flatMap(Bus.make(options), f))

/** Takes events from a subscription until one with the tag arrives, and returns it. */
export const waitFor = <T extends Lifecycle.LifecycleEvent["_tag"]>(
  queue: Queue.Dequeue<Lifecycle.LifecycleEvent>,
  tag: T
): Effect.Effect<Extract<Lifecycle.LifecycleEvent, { readonly _tag: T }>> =>
  Effect.flatMap(Queue.take(queue), (event) =>
    event._tag === tag
      ? Effect.succeed(event as Extract<Lifecycle.LifecycleEvent, { readonly _tag: T }>)
      : waitFor(queue, tag))

export const tags = (events: ReadonlyArray<Lifecycle.LifecycleEvent>) => events.map((e) => e._tag)

/**
 * A layer that acquires one named Devres for the brand and logs acquire/release.
 */
export const resource = <D extends string>(
  brand: Driver.Brand<D>,
  log: Log,
  name: string,
  options?: { readonly failRelease?: boolean; readonly failAcquire?: boolean }
) =>
  Layer.effectDiscard(
    Devres.acquireRelease(
      brand,
      options?.failAcquire ? Effect.zipRight(log.push(`fail ${name}`), Effect.fail(`acquire ${name} failed`)) : Effect.as(log.push(`acquire ${name}`), name),
      () => options?.failRelease
        ? Effect.zipRight(log.push(`release ${name}`), Effect.fail(`release ${name} failed`))
        : log.push(`release ${name}`),
      { label: name }
    )
  )

export class Held extends Context.Tag("test/Held")<Held, { readonly names: Array<string> }>() {}

/**
 * Moves TestClock forward by `millis` in steps of `step`: a sleep started by a wake-up
 * (a deadline that starts the next one) is registered after a few scheduler turns, which a
 * single large `TestClock.adjust` does not wait for.
 */
export const advance = (millis: number, step = 10) =>
  Effect.forEach(Array.from({ length: Math.ceil(millis / step) }), () => TestClock.adjust(step), { discard: true })
