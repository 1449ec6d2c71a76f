import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scheduler from "effect/Scheduler"
import type * as Tracer from "effect/Tracer"
import type { Control, Outcome, RunOptions, Waiting } from "../VirtualTime.js"

interface Sleeper {
  readonly at: number
  readonly seq: number
  wake: (() => void) | undefined
}

/** A min-heap of sleepers ordered by (at, seq), so equal deadlines wake in the order they slept. */
class SleeperHeap {
  private readonly items: Array<Sleeper> = []
  get size(): number {
    return this.items.length
  }
  peek(): Sleeper | undefined {
    return this.items[0]
  }
  push(item: Sleeper): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }
  pop(): Sleeper | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length > 0 && last !== undefined) {
      items[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let smallest = i
        if (l < items.length && before(items[l]!, items[smallest]!)) smallest = l
        if (r < items.length && before(items[r]!, items[smallest]!)) smallest = r
        if (smallest === i) break
        ;[items[i], items[smallest]] = [items[smallest]!, items[i]!]
        i = smallest
      }
    }
    return top
  }
}

const before = (a: Sleeper, b: Sleeper) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

/** Effect's Clock over virtual milliseconds: `sleep` parks the fiber until the world advances. */
export class VirtualClock implements Clock.Clock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  now = 0
  private seq = 0
  /** Sleepers still waiting (cancelled ones are skipped when popped). */
  private pending = 0
  readonly sleepers = new SleeperHeap()

  unsafeCurrentTimeMillis(): number {
    return this.now
  }
  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.round(this.now * 1_000_000))
  }
  get currentTimeMillis(): Effect.Effect<number> {
    return Effect.sync(() => this.now)
  }
  get currentTimeNanos(): Effect.Effect<bigint> {
    return Effect.sync(() => this.unsafeCurrentTimeNanos())
  }
  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const sleeper: Sleeper = {
        at: this.now + Math.max(0, Duration.toMillis(duration)),
        seq: this.seq++,
        wake: () => resume(Effect.void)
      }
      this.sleepers.push(sleeper)
      this.pending++
      return Effect.sync(() => {
        if (sleeper.wake !== undefined) {
          sleeper.wake = undefined
          this.pending--
        }
      })
    })
  }
  get waiting(): number {
    return this.pending
  }
  /** The next deadline, skipping cancelled sleepers. */
  next(): number | undefined {
    for (;;) {
      const top = this.sleepers.peek()
      if (top === undefined) return undefined
      if (top.wake !== undefined) return top.at
      this.sleepers.pop()
    }
  }
  /** Moves time to the next deadline and wakes every sleeper due then. False when none sleeps. */
  advance(limit: number): boolean {
    const at = this.next()
    if (at === undefined || at > limit) return false
    this.now = Math.max(this.now, at)
    for (;;) {
      const top = this.sleepers.peek()
      if (top === undefined || top.at > this.now) break
      this.sleepers.pop()
      const wake = top.wake
      if (wake !== undefined) {
        top.wake = undefined
        this.pending--
        wake()
      }
    }
    return true
  }
}

/** Tasks run between two looks at the wall clock in `drain`. */
const CHECK_EVERY = 256

/** A scheduler that only queues: the world runs tasks when it chooses, synchronously. */
export class QueueScheduler implements Scheduler.Scheduler {
  private queue: Array<Scheduler.Task> = []
  /** Fibers that ran in this world and may still be alive (pruned as they end). */
  readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  private scheduled = 0
  /** Called before each task runs: a suspension point of some fiber is about to resume. */
  onTask: (() => void) | undefined = undefined
  scheduleTask(task: Scheduler.Task, _priority: number, fiber?: Fiber.RuntimeFiber<unknown, unknown>): void {
    this.queue.push(task)
    if (fiber !== undefined) {
      this.fibers.add(fiber)
      if (++this.scheduled % 4096 === 0) this.prune()
    }
  }
  prune(): void {
    for (const fiber of this.fibers) if (fiber.unsafePoll() !== null) this.fibers.delete(fiber)
  }
  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    // Yield every 2,048 operations, as Effect's default scheduler does, so long synchronous
    // loops interleave with other fibers.
    return fiber.currentOpCount > 2048 ? 0 : false
  }
  get idle(): boolean {
    return this.queue.length === 0
  }
  /**
   * Runs queued tasks until none is left (tasks may queue more), or until wall time passes
   * `deadline` (checked every `CHECK_EVERY` tasks): then the tasks not run yet stay queued,
   * in order, for the next call. True when the queue is empty.
   */
  drain(deadline = Infinity): boolean {
    let ran = 0
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      const onTask = this.onTask
      for (let i = 0; i < batch.length; i++) {
        if (onTask !== undefined) onTask()
        batch[i]!()
        if (++ran % CHECK_EVERY === 0 && deadline !== Infinity && performance.now() > deadline) {
          if (i + 1 < batch.length) this.queue = batch.slice(i + 1).concat(this.queue)
          return this.queue.length === 0
        }
      }
    }
    return true
  }
}

const describeSpans = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Array<string> => {
  const spans: Array<string> = []
  let span = fiber.currentSpan as Tracer.AnySpan | undefined
  while (span !== undefined && spans.length < 8) {
    if (span._tag === "Span") {
      const attributes = [...span.attributes].map(([k, v]) => `${k}=${String(v)}`).join(", ")
      spans.push(attributes === "" ? span.name : `${span.name} (${attributes})`)
      span = Option.getOrUndefined(span.parent)
    } else {
      spans.push(`external ${span.spanId}`)
      span = undefined
    }
  }
  return spans
}

/** The world's fibers still alive, the ones inside spans first. */
export const waiting = (scheduler: QueueScheduler): Array<Waiting> => {
  scheduler.prune()
  const list: Array<Waiting> = []
  for (const fiber of scheduler.fibers) {
    list.push({ fiber: `#${fiber.id().id}`, spans: describeSpans(fiber) })
  }
  return list.sort((a, b) => b.spans.length - a.spans.length)
}

/** How long (virtual ms) an interrupted run may take to finish its finalizers. */
const WIND_DOWN = 60_000

/** Wall milliseconds the world runs before it lets the host's event loop in (output, signals, timers). */
const SLICE = 20

/**
 * Wall milliseconds a run stopped by its `signal` may take to wind down (its finalizers)
 * before it is given up on: a stop asked for by a person must not wait on a busy world.
 */
const ABORT_WALL = 500

export const run = <A, E>(effect: Effect.Effect<A, E>, options: RunOptions = {}): Effect.Effect<Outcome<A, E>> =>
  Effect.async<Outcome<A, E>>((resume) => {
    const clock = new VirtualClock()
    const scheduler = new QueueScheduler()
    let exit: Exit.Exit<A, E> | undefined
    const fiber = Effect.runFork(Effect.withClock(effect, clock), { scheduler })
    const control: Control = {
      get now() {
        return clock.now
      },
      fork: (extra) => void Effect.runFork(Effect.withClock(extra, clock), { scheduler })
    }
    if (options.onTask !== undefined) {
      const onTask = options.onTask
      scheduler.onTask = () => onTask(control)
    }
    let stalledWith: Array<Waiting> = []
    fiber.addObserver((e) => {
      exit = e
    })
    const progressEvery = options.progressEvery ?? 100
    let lastProgress = performance.now()
    let verdict: "Stalled" | "TimedOut" | "Interrupted" | undefined
    let limit = options.until ?? Infinity
    let cancelled = false
    // The signal only marks the run: the world is interrupted at its next step, between tasks.
    const signal = options.signal
    let abortedAt: number | undefined
    const onAbort = () => {
      abortedAt ??= performance.now()
    }
    if (signal !== undefined) {
      if (signal.aborted) onAbort()
      else signal.addEventListener("abort", onAbort, { once: true })
    }

    const end = (outcome: Outcome<A, E>) => {
      cancelled = true
      signal?.removeEventListener("abort", onAbort)
      resume(Effect.succeed(outcome))
    }

    const outcomeOf = (exit: Exit.Exit<A, E> | undefined): Outcome<A, E> =>
      verdict === "Stalled"
        ? { _tag: "Stalled", exit, virtualMillis: clock.now, waiting: stalledWith }
        : verdict === "TimedOut"
        ? { _tag: "TimedOut", exit, virtualMillis: clock.now }
        : { _tag: "Interrupted", exit, virtualMillis: clock.now }

    const finish = () => {
      if (exit === undefined) return false
      end(verdict === undefined ? { _tag: "Done", exit, virtualMillis: clock.now } : outcomeOf(exit))
      return true
    }

    const interrupt = (why: "Stalled" | "TimedOut" | "Interrupted") => {
      verdict = why
      limit = clock.now + WIND_DOWN
      fiber.unsafeInterruptAsFork(fiber.id())
    }

    const step = () => {
      if (cancelled) return
      const sliceEnd = performance.now() + SLICE
      for (;;) {
        if (abortedAt !== undefined && verdict !== "Interrupted") {
          if (verdict === undefined) interrupt("Interrupted")
          else verdict = "Interrupted" // already winding down: the stop asked for wins
        }
        if (abortedAt !== undefined && performance.now() - abortedAt > ABORT_WALL) {
          // The wind-down did not finish in time: give up on it, leaving the world as it is.
          if (!finish()) end(outcomeOf(undefined))
          return
        }
        // Time-sliced: a world busy at one virtual instant still lets the event loop in.
        if (!scheduler.drain(sliceEnd)) {
          setImmediate(step)
          return
        }
        if (finish()) return
        if (!clock.advance(limit)) {
          if (verdict !== undefined) {
            // Even the interruption cannot finish: give up on it.
            end(outcomeOf(undefined))
            return
          }
          const stalled = clock.next() === undefined
          if (stalled) stalledWith = waiting(scheduler)
          interrupt(stalled ? "Stalled" : "TimedOut")
          continue
        }
        const now = performance.now()
        if (options.onProgress !== undefined && now - lastProgress >= progressEvery) {
          lastProgress = now
          options.onProgress(clock.now)
        }
        // Let the host event loop breathe (output, signals) every few wall milliseconds.
        if (now > sliceEnd) {
          setImmediate(step)
          return
        }
      }
    }
    step()
    return Effect.sync(() => {
      cancelled = true
      signal?.removeEventListener("abort", onAbort)
      fiber.unsafeInterruptAsFork(fiber.id())
      scheduler.drain()
    })
  })
