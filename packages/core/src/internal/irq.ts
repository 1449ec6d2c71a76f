import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Bound from "../Bound.js"
import * as Devres from "../Devres.js"
import type * as Driver from "../Driver.js"
import * as Hardware from "../Hardware.js"
import type * as Irq from "../Irq.js"
import { type Binding, bindingOf, forkIn } from "./binding.js"
import { waitAtMost } from "./deadline.js"

/** @internal */
export const TypeId: typeof Irq.TypeId = Symbol.for("@devscope/core/Irq") as any

/** @internal */
export const DEFAULT_STORM_THRESHOLD = 1000

/** The default hard handler of a threaded registration. @internal */
export const wakeThread: Effect.Effect<Irq.ThreadedReturn> = Effect.succeed("wake-thread")

interface Waiter {
  readonly handler: number
  readonly thread: number
  readonly resume: (effect: Effect.Effect<void>) => void
}

/**
 * The runtime side of one interrupt registration: the line, the dispatcher and thread
 * fibers, and live statistics. The platform's listener only opens a latch, so the hot path
 * (a raise) is a flag write and, when the dispatcher is idle, one fiber wake-up.
 * @internal
 */
export class RegistrationImpl implements Irq.Registration {
  readonly [TypeId]: Irq.TypeId = TypeId
  readonly stats = { handled: 0, unhandled: 0, threadRuns: 0, storms: 0 }
  disabled = false
  released = false
  /** Unhandled invocations in a row (storm detection). */
  unhandledRun = 0
  handlerStarted = 0
  handlerDone = 0
  threadStarted = 0
  threadDone = 0
  handlerFiber: Fiber.RuntimeFiber<never> | undefined = undefined
  threadFiber: Fiber.RuntimeFiber<never> | undefined = undefined
  unlisten: (() => void) | undefined = undefined
  /** Open while an interrupt is pending for the hard handler. */
  readonly pending = Effect.unsafeMakeLatch(false)
  /** Open while a wake-up is pending for the thread. */
  readonly wake = Effect.unsafeMakeLatch(false)
  readonly waiters = new Set<Waiter>()

  constructor(
    readonly binding: Binding,
    readonly io: Hardware.IrqLine,
    readonly label: string,
    readonly stormThreshold: number
  ) {}

  get device(): string {
    return this.io.device
  }

  get line(): number {
    return this.io.line
  }

  /** What the platform calls, synchronously, when the device raises the line. */
  readonly listener = (): void => {
    if (!this.released) this.pending.unsafeOpen()
  }

  readonly synchronize: Effect.Effect<void> = Effect.withFiberRuntime((self) => {
    // A handler waiting for itself would wait forever: each side only waits for the other.
    const handler = self === this.handlerFiber || this.handlerStarted === this.handlerDone ? 0 : this.handlerStarted
    const thread = self === this.threadFiber || this.threadStarted === this.threadDone ? 0 : this.threadStarted
    if (this.handlerDone >= handler && this.threadDone >= thread) return Effect.void
    return Effect.async<void>((resume) => {
      const waiter: Waiter = { handler, thread, resume }
      this.waiters.add(waiter)
      return Effect.sync(() => {
        this.waiters.delete(waiter)
      })
    })
  })

  /** Wakes the `synchronize` callers whose runs have completed. */
  notify(): void {
    if (this.waiters.size === 0) return
    for (const waiter of Array.from(this.waiters)) {
      if (this.handlerDone >= waiter.handler && this.threadDone >= waiter.thread) {
        this.waiters.delete(waiter)
        waiter.resume(Effect.void)
      }
    }
  }

  disable(): void {
    if (this.released || this.disabled) return
    this.disabled = true
    this.io.mask()
  }

  enable(): void {
    if (this.released || !this.disabled) return
    this.disabled = false
    this.unhandledRun = 0
    this.io.unmask()
  }

  /** Accounts for one hard-handler result; returns the storm warning to log, if any. */
  onResult(result: Irq.ThreadedReturn): Effect.Effect<void> {
    if (result === "none") {
      this.stats.unhandled++
      if (++this.unhandledRun < this.stormThreshold) return Effect.void
      this.unhandledRun = 0
      if (this.disabled || this.released) return Effect.void
      this.disabled = true
      this.stats.storms++
      this.io.mask()
      return Effect.logWarning(
        `irq ${this.line} of device "${this.device}": nobody cared (${this.stormThreshold} unhandled in a row), disabling`
      ).pipe(Effect.annotateLogs({ device: this.device, line: this.line }))
    }
    this.unhandledRun = 0
    this.stats.handled++
    if (result === "wake-thread" && this.threadFiber !== undefined) this.wake.unsafeOpen()
    return Effect.void
  }

  /** Stops listening, then stops (and, outside an unbind, awaits) the handler fibers. */
  release(): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.withFiberRuntime<void>((self) => {
      this.released = true
      this.unlisten?.()
      this.unlisten = undefined
      const fibers: Array<Fiber.RuntimeFiber<never>> = []
      for (const fiber of [this.handlerFiber, this.threadFiber]) {
        if (fiber === undefined) continue
        fiber.unsafeInterruptAsFork(self.id())
        // Freeing the line from its own handler: the interruption lands when the handler returns.
        if (fiber !== self) fibers.push(fiber)
      }
      const done = Effect.sync(() => {
        // Give the line back as it was found: unmask what this registration masked.
        if (this.disabled) this.io.unmask()
        this.notify()
      })
      // At unbind, step 4 already interrupted and awaited every binding fiber; one that is
      // still running was reported as a leak, and waiting for it again would hang the unbind.
      if (this.binding.phase === "unbind" || fibers.length === 0) return done
      return Effect.zipRight(waitAtMost(Fiber.awaitAll(fibers), this.binding.options.fiberStopTimeout), done)
    }))
  }

  toString() {
    return `Irq(${this.label}, ${this.device}${this.released ? ", released" : ""})`
  }
}

const failed = (what: string, cause: Cause.Cause<unknown>) => Effect.logError(what, cause)

/** The hard-handler loop: one invocation at a time; raises during a run coalesce into one more. */
const dispatcher = <R>(
  reg: RegistrationImpl,
  handler: Effect.Effect<Irq.ThreadedReturn, never, R>
): Effect.Effect<never, never, R> => {
  // Uninterruptible as a whole: a run that starts is counted, and completes.
  const run: Effect.Effect<void, never, R> = Effect.uninterruptible(Effect.suspend(() => {
    reg.pending.unsafeClose()
    reg.handlerStarted++
    return handler.pipe(
      Effect.catchAllCause((cause) =>
        Effect.as(failed(`irq ${reg.line} of device "${reg.device}": handler failed`, cause), "none" as const)
      ),
      Effect.flatMap((result) => reg.onResult(result)),
      Effect.ensuring(Effect.sync(() => {
        reg.handlerDone++
        reg.notify()
      }))
    )
  }))
  return Effect.forever(Effect.zipRight(reg.pending.await, run))
}

/** The thread loop: runs `thread` once per wake-up; wake-ups during a run coalesce into one more. */
const threadLoop = <R>(reg: RegistrationImpl, thread: Effect.Effect<void, never, R>): Effect.Effect<never, never, R> => {
  const run: Effect.Effect<void, never, R> = Effect.uninterruptible(Effect.suspend(() => {
    reg.wake.unsafeClose()
    reg.threadStarted++
    return thread.pipe(
      Effect.catchAllCause((cause) => failed(`irq ${reg.line} of device "${reg.device}": thread failed`, cause)),
      Effect.ensuring(Effect.sync(() => {
        reg.stats.threadRuns++
        reg.threadDone++
        reg.notify()
      }))
    )
  }))
  return Effect.forever(Effect.zipRight(reg.wake.await, run))
}

/** @internal */
export const request = <D extends string, R, R2>(
  driver: Driver.Brand<D>,
  line: number,
  handler: Effect.Effect<Irq.ThreadedReturn, never, R>,
  thread: Effect.Effect<void, never, R2> | undefined,
  options: Irq.Options | undefined
): Effect.Effect<
  Devres.Devres<Irq.Registration, D>,
  Hardware.NoSuchIrq | Hardware.HardwareRefused,
  Hardware.Hardware | Bound.Bound<D> | R | R2
> => {
  const label = options?.label ?? `irq ${line}`
  const requested = options?.stormThreshold
  const threshold = requested === undefined || Number.isNaN(requested) ? DEFAULT_STORM_THRESHOLD : Math.max(1, requested)
  // Built here, synchronously, so that the Devres records the caller's site.
  return Devres.acquireRelease(
    driver,
    Effect.gen(function*() {
      const hardware = yield* Hardware.Hardware
      const token = yield* driver.Bound
      const io = yield* hardware.irq(token.device, line)
      const reg = new RegistrationImpl(bindingOf(token), io, label, threshold)
      const span = { attributes: { device: io.device, line: io.line } }
      // Forked from the (uninterruptible) acquisition: the loops must be interruptible
      // between runs, or the unbind could not stop them.
      reg.handlerFiber = yield* forkIn(
        token,
        Effect.interruptible(Effect.withSpan(dispatcher(reg, handler), `${label} handler`, span))
      )
      if (thread !== undefined) {
        reg.threadFiber = yield* forkIn(
          token,
          Effect.interruptible(Effect.withSpan(threadLoop(reg, thread), `${label} thread`, span))
        )
      }
      reg.unlisten = io.listen(reg.listener)
      return reg
    }),
    (reg) => reg.release(),
    { label }
  )
}
