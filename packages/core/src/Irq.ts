/**
 * Interrupt handlers (the kernel's `request_irq` / `free_irq`, threaded handlers, and
 * Rust-for-Linux's `irq::Registration`). A registration is a Devres of the binding:
 *
 * - The handler runs as a fiber of the binding, with the binding's context (so it has the
 *   Bound token and reaches the binding's resources with `access`). Like a hard interrupt
 *   handler it runs one invocation at a time and uninterruptibly; interrupts raised while it
 *   runs coalesce into one more run.
 * - A threaded registration adds a thread fiber: the handler answers `"wake-thread"` and the
 *   thread runs the slow part; wake-ups while it runs coalesce into one more run.
 * - At unbind (or {@link Devres.release}) the line stops being listened to and the handler
 *   and thread fibers are stopped, waiting for a running handler to finish: no handler runs
 *   after its registration is released.
 * - A handler answering `"none"` is a spurious (unhandled) interrupt; too many in a row
 *   and the line is masked ("irq N: nobody cared, disabling").
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Bound from "./Bound.js"
import type * as Devres from "./Devres.js"
import type * as Driver from "./Driver.js"
import type { Hardware, HardwareRefused, NoSuchIrq } from "./Hardware.js"
import * as internal from "./internal/irq.js"

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
 * What a handler answers (the kernel's `irqreturn_t`): `"handled"` if its device raised
 * the interrupt and it dealt with it, `"none"` if it was not its device's (spurious).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Irq } from "@devscope/core"
 *
 * let events = 0
 * const handler: Effect.Effect<Irq.Return> = Effect.sync(() => (events++ > 0 ? "handled" : "none"))
 * ```
 * @since 0.1.0
 * @category models
 */
export type Return = "handled" | "none"

/**
 * What the hard handler of a threaded registration answers: also `"wake-thread"` (handled,
 * and the rest of the work is for the thread).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Irq } from "@devscope/core"
 *
 * const handler: Effect.Effect<Irq.ThreadedReturn> = Effect.succeed("wake-thread")
 * ```
 * @since 0.1.0
 * @category models
 */
export type ThreadedReturn = Return | "wake-thread"

/**
 * Live counters of a registration, read synchronously.
 *
 * @example
 * ```ts
 * import type { Irq } from "@devscope/core"
 *
 * const spuriousRatio = (stats: Irq.Stats) => stats.unhandled / Math.max(1, stats.handled + stats.unhandled)
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Handler invocations that answered `"handled"` or `"wake-thread"`. */
  readonly handled: number
  /** Handler invocations that answered `"none"` (spurious), or failed. */
  readonly unhandled: number
  /** Completed runs of the thread. */
  readonly threadRuns: number
  /** Times the line was masked by storm detection. */
  readonly storms: number
}

/**
 * A requested interrupt line (the kernel's `irq::Registration`). Reach it inside the
 * binding with `devres.access(token)`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type Devres, Driver } from "@devscope/core"
 * import type { Irq } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * declare const irq: Devres.Devres<Irq.Registration, "edu">
 *
 * const report = Effect.map(Edu.Bound, (token) => {
 *   const registration = irq.access(token)
 *   return `irq ${registration.line}: ${registration.stats.handled} handled`
 * })
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Registration {
  readonly [TypeId]: TypeId
  /** The device's name. */
  readonly device: string
  /** The line's index on its device. */
  readonly line: number
  /** Live counters. */
  readonly stats: Stats
  /** Whether the line is masked by {@link disable} or by storm detection. */
  readonly disabled: boolean
  /**
   * Waits until no handler (nor thread run) that is running now is still running (the
   * kernel's `synchronize_irq`). Called from the handler (or the thread) itself, it does
   * not wait for that one.
   */
  readonly synchronize: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Unhandled (`"none"`) handler invocations in a row after which the line is masked and
   * a warning logged. At least 1; default 1000; `Infinity` turns storm detection off.
   */
  readonly stormThreshold?: number | undefined
  /** The Devres label (in unbind reports and leak reports). Default `"irq <line>"`. */
  readonly label?: string | undefined
}

/**
 * The two halves of a threaded registration. Without `handler`, every interrupt wakes the
 * thread (the kernel's `request_threaded_irq` with a NULL primary handler).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Irq } from "@devscope/core"
 *
 * const halves: Irq.Threaded<never, never> = {
 *   handler: Effect.succeed("wake-thread"),
 *   thread: Effect.log("drain the completion ring")
 * }
 * ```
 * @since 0.1.0
 * @category models
 */
export interface Threaded<R, R2> {
  /** The hard handler: short, answers quickly. */
  readonly handler?: Effect.Effect<ThreadedReturn, never, R> | undefined
  /** The thread: the slow part, run after a `"wake-thread"`. It runs to completion. */
  readonly thread: Effect.Effect<void, never, R2>
}

/**
 * Requests interrupt line `line` of the bound device and installs `handler` (the kernel's
 * `devm_request_irq`). The handler runs as a fiber of the binding, with the caller's
 * context (the Bound token included), one invocation at a time and uninterruptibly;
 * interrupts raised while it runs coalesce into one more run. A handler that dies is logged
 * and counted as unhandled.
 *
 * The registration is a Devres labelled `irq <line>`: at unbind (or `Devres.release`) the
 * line stops being listened to and the release waits for a running handler, so no handler
 * runs after it. A line this registration masked is unmasked then.
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import { type Devres, Driver } from "@devscope/core"
 * import { Irq } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * class EduIrq extends Context.Tag("edu/Irq")<EduIrq, Devres.Devres<Irq.Registration, "edu">>() {}
 *
 * let completions = 0
 * const IrqLive = Layer.effect(
 *   EduIrq,
 *   Irq.request(Edu, 0, Effect.sync(() => {
 *     completions++
 *     return "handled" as const
 *   }))
 * )
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const request = <D extends string, R = never>(
  driver: Driver.Brand<D>,
  line: number,
  handler: Effect.Effect<Return, never, R>,
  options?: Options
): Effect.Effect<Devres.Devres<Registration, D>, NoSuchIrq | HardwareRefused, Hardware | Bound.Bound<D> | R> =>
  internal.request(driver, line, handler, undefined, options)

/**
 * Requests interrupt line `line` with a threaded handler (the kernel's
 * `devm_request_threaded_irq`). The hard handler answers `"wake-thread"` to run `thread`,
 * another fiber of the binding; wake-ups while the thread runs coalesce into one more run.
 * Both run to completion: the release at unbind waits for them.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Driver } from "@devscope/core"
 * import { Irq } from "@devscope/core"
 *
 * const Nic = Driver.brand("nic")
 * const rx = Irq.requestThreaded(Nic, 1, {
 *   handler: Effect.succeed("wake-thread"),
 *   thread: Effect.log("process received frames")
 * })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const requestThreaded = <D extends string, R = never, R2 = never>(
  driver: Driver.Brand<D>,
  line: number,
  threaded: Threaded<R, R2>,
  options?: Options
): Effect.Effect<
  Devres.Devres<Registration, D>,
  NoSuchIrq | HardwareRefused,
  Hardware | Bound.Bound<D> | R | R2
> => internal.request(driver, line, threaded.handler ?? internal.wakeThread, threaded.thread, options)

/**
 * Masks the line (the kernel's `disable_irq_nosync`): interrupts the device raises stay
 * pending until {@link enable}. Synchronous; does not nest; does nothing once released.
 * To also wait for a running handler, follow it with `registration.synchronize`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type Devres, Driver } from "@devscope/core"
 * import { Irq } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * declare const irq: Devres.Devres<Irq.Registration, "edu">
 *
 * const quiesce = Effect.flatMap(Edu.Bound, (token) => {
 *   const registration = irq.access(token)
 *   Irq.disable(registration)
 *   return registration.synchronize
 * })
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const disable = (registration: Registration): void => (registration as internal.RegistrationImpl).disable()

/**
 * Unmasks the line (the kernel's `enable_irq`), also after storm detection masked it; a
 * pending interrupt is delivered. Synchronous; does nothing once released.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type Devres, Driver } from "@devscope/core"
 * import { Irq } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * declare const irq: Devres.Devres<Irq.Registration, "edu">
 *
 * const resume = Effect.map(Edu.Bound, (token) => Irq.enable(irq.access(token)))
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const enable = (registration: Registration): void => (registration as internal.RegistrationImpl).enable()
