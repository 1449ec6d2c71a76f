/**
 * Registrations: a driver's user-facing interface registered with a subsystem, modelled as a
 * character-device-like handle table (open, calls, close), the way RDMA's uverbs and DRM
 * expose a device to user space.
 *
 * - Every entry point (`open`, `call`, the destroy run by `close`) runs inside the
 *   registration's {@link Gate.Gate}, which hands it the Bound token. The subsystem-facing
 *   object needs no token: it is usable from anywhere, the gate is what proves boundness.
 * - Each open handle owns a per-handle *user object* (the state made by `open`), destroyed
 *   through the driver's normal `destroy` path exactly once: at `close` (after the last call in
 *   flight on the handle, like the kernel's release on the last `fput`), or at unbind.
 * - At unbind (step 2 of the contract) the gate closes and waits for the calls in flight; then
 *   the registration is *disassociated* (uverbs style): every open handle becomes a zombie and
 *   its user object is destroyed, while the binding is still live (before `remove`, before any
 *   Devres is released), so `destroy` may use the device's resources through its token. A zombie
 *   handle fails every call with `DeviceGone`; its `close` succeeds and destroys nothing.
 * - A handle left open at disassociation is not a leak (the subsystem destroyed it); a
 *   `destroy` that fails (or overruns its deadline at unbind) is logged and counted in
 *   `destroyFailures`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Types from "effect/Types"
import type * as Bound from "./Bound.js"
import type { Device } from "./Device.js"
import type { DeviceGone } from "./DeviceError.js"
import type * as Driver from "./Driver.js"
import type * as Gate from "./Gate.js"
import * as internal from "./internal/registration.js"

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
export const HandleTypeId: unique symbol = internal.HandleTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type HandleTypeId = typeof HandleTypeId

/**
 * One operation of a registration (an ioctl, a read, a write...): gets the handle's state, the
 * caller's argument and the Bound token of the live binding.
 * @since 0.1.0
 * @category models
 */
export type Op<D extends string, S> = (state: S, arg: any, token: Bound.Bound<D>) => Effect.Effect<any, any, any>

/**
 * The operations table of a registration, by name.
 * @since 0.1.0
 * @category models
 */
export type Ops<D extends string, S> = { readonly [op: string]: Op<D, S> }

/**
 * Type-level helpers over one operation `F` of an operations table.
 * @since 0.1.0
 * @category models
 */
export declare namespace Op {
  /**
   * The argument the caller passes: optional when the operation ignores it (declares no
   * argument, or one of type `void`, `undefined`, `unknown` or `any`).
   * @since 0.1.0
   */
  export type Args<F> = F extends (state: any, arg: infer A, ...rest: Array<any>) => any
    ? unknown extends A ? [arg?: A] : [A] extends [void] ? [arg?: A] : [arg: A]
    : never
  /**
   * @since 0.1.0
   */
  export type Success<F> = F extends (...args: Array<any>) => Effect.Effect<infer A, infer _E, infer _R> ? A : never
  /**
   * @since 0.1.0
   */
  export type Error<F> = F extends (...args: Array<any>) => Effect.Effect<infer _A, infer E, infer _R> ? E : never
  /**
   * @since 0.1.0
   */
  export type Context<F> = F extends (...args: Array<any>) => Effect.Effect<infer _A, infer _E, infer R> ? R
    : never
}

/**
 * What a driver registers: a name, how to make the per-handle state (the user object), its
 * normal destroy path, and the operations.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec<D extends string, S, E, RO, RD, O extends Ops<D, S>> {
  /** Shown in `DeviceGone`, `HandleClosed`, logs; also the name of the gate made for it. */
  readonly name: string
  /** Makes the state of a new handle. Runs inside the gate. */
  readonly open: (token: Bound.Bound<D>) => Effect.Effect<S, E, RO>
  /**
   * The normal destroy path of a handle's state: at `close`, or at disassociation. Runs
   * exactly once per handle, uninterruptibly at `close`, with the binding live.
   */
  readonly destroy: (state: S, token: Bound.Bound<D>) => Effect.Effect<void, unknown, RD>
  readonly ops: O
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<D extends string> {
  /**
   * The gate the calls go through (to share one gate between several registrations of the
   * binding). It must belong to the current binding. Default: a new gate named after the
   * registration.
   */
  readonly gate?: Gate.Gate<D> | undefined
  /** Deadline of the gate made for the registration (ignored with `gate`). Default 5 seconds. */
  readonly deadline?: Duration.DurationInput | undefined
  /**
   * How long each `destroy` may run at disassociation before it is interrupted and counted as a
   * failure (Clock time). Default 5 seconds.
   */
  readonly destroyDeadline?: Duration.DurationInput | undefined
}

/**
 * The subsystem-facing side of a registration. Needs no token: hand it to user code.
 *
 * @since 0.1.0
 * @category models
 */
export interface Registration<in out D extends string, O, E = never> {
  readonly [TypeId]: { readonly _D: Types.Invariant<D> }
  readonly name: string
  readonly device: Device
  /** The gate every entry point goes through. */
  readonly gate: Gate.Gate<D>
  /** Handles open now (not closed, not disassociated). */
  readonly handles: number
  /** Handles disassociated at unbind that the user has not closed yet. */
  readonly zombies: number
  /** `destroy` runs that failed, died or overran their deadline. */
  readonly destroyFailures: number
  /** Whether the registration has been disassociated (unbind, or {@link unregister}). */
  readonly isDisassociated: boolean
  /**
   * Opens a handle: runs `open` inside the gate. Fails with `DeviceGone` once the gate is
   * closing or the registration is disassociated.
   */
  open(): Effect.Effect<Handle<O>, E | DeviceGone>
}

/**
 * An open handle (a file descriptor on the registration).
 *
 * @since 0.1.0
 * @category models
 */
export interface Handle<O> {
  readonly [HandleTypeId]: HandleTypeId
  /** Number of the handle in its registration, from 1. */
  readonly id: number
  /** Name of the registration. */
  readonly registration: string
  /** Disassociated: every call fails with `DeviceGone`; the state was destroyed by the unbind. */
  readonly isZombie: boolean
  /** Closed by the user: every call fails with `HandleClosed`. */
  readonly isClosed: boolean
  /**
   * Calls an operation inside the gate, with the handle's state and the Bound token. Fails
   * with `DeviceGone` once the gate is closing or the handle is a zombie, with `HandleClosed`
   * after `close`.
   */
  call<K extends keyof O & string>(
    op: K,
    ...args: Op.Args<O[K]>
  ): Effect.Effect<Op.Success<O[K]>, Op.Error<O[K]> | DeviceGone | HandleClosed>
  /**
   * Closes the handle; idempotent, never fails. Later calls fail with `HandleClosed`. The state
   * is destroyed when the last call in flight on the handle ends (at once if none is), inside
   * the gate. On a zombie (or once the gate is closing) nothing is destroyed here: the
   * disassociation does it.
   */
  close(): Effect.Effect<void>
}

/**
 * A call on a handle its user had already closed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Registration } from "@devscope/core"
 *
 * const safeRead = (handle: Registration.Handle<{ read: (s: number, n: number) => Effect.Effect<number> }>) =>
 *   handle.call("read", 4).pipe(Effect.catchTag("HandleClosed", () => Effect.succeed(0)))
 * ```
 * @since 0.1.0
 * @category errors
 */
export const HandleClosed: new(args: Pick<HandleClosed, "device" | "registration" | "handle">) => HandleClosed = internal.HandleClosed

/**
 * A call on a handle its user had already closed.
 * @since 0.1.0
 * @category errors
 */
export interface HandleClosed extends Cause.YieldableError {
  /** The tag. */
  readonly _tag: "HandleClosed"
  /** The device the registration belongs to. */
  readonly device: string
  /** The registration's name (`Spec.name`). */
  readonly registration: string
  /** The handle's number within its registration (1, 2, ... in the order they were opened). */
  readonly handle: number
}

/**
 * Registers a user-facing interface in the current binding. Calls go through a gate (made here
 * unless `options.gate` is given); at unbind step 2, after that gate has closed and drained, the
 * registration is disassociated: open handles become zombies and their states are destroyed
 * through `destroy`, before `remove` runs and before any Devres is released.
 *
 * What `open`, `destroy` and the operations require is taken from the context of this call
 * (the binding's) and provided to every call, so the returned registration requires nothing.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Devres, Driver } from "@devscope/core"
 * import { Registration } from "@devscope/core"
 *
 * const Chr = Driver.brand("chr")
 *
 * export const ChrDriver = Driver.make(Chr, {
 *   match: [{ vendor: 0x1af4 }],
 *   probe: () =>
 *     Layer.effectDiscard(Effect.gen(function*() {
 *       const fifo = yield* Devres.make(Chr, [] as Array<number>, { label: "fifo" })
 *       const registration = yield* Registration.register(Chr, {
 *         name: "chr0",
 *         open: () => Effect.succeed({ reads: 0 }),
 *         destroy: (state) => Effect.log(`closing a reader after ${state.reads} reads`),
 *         ops: {
 *           write: (_state, byte: number, token) => Effect.sync(() => void fifo.access(token).push(byte)),
 *           read: (state, _: void, token) => Effect.sync(() => (state.reads++, fifo.access(token).shift()))
 *         }
 *       })
 *       // Hand `registration` to user code: no token needed there.
 *       yield* Effect.log(registration.name)
 *     }))
 * })
 *
 * // In user code:
 * // const fd = yield* registration.open()
 * // yield* fd.call("write", 7)
 * // const byte = yield* fd.call("read")   // number | undefined, or DeviceGone after unbind
 * // yield* fd.close()
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const register = <
  D extends string,
  S,
  O extends Ops<D, S>,
  E = never,
  RO = never,
  RD = never
>(
  driver: Driver.Brand<D>,
  spec: Spec<D, S, E, RO, RD, O>,
  options?: Options<NoInfer<D>>
): Effect.Effect<Registration<D, O, E>, never, Bound.Bound<D> | RO | RD | Op.Context<O[keyof O]>> =>
  internal.register(driver, spec, options)

/**
 * Unregisters before the unbind (a subsystem going away): closes the registration's gate
 * (waiting for the calls in flight, up to its deadline) and disassociates every open handle
 * now. The unbind then has nothing left to do for it. Idempotent. With a shared gate, this
 * closes it for every registration using it. Called from inside one of the registration's own
 * calls, the close does not wait for that call (it waits for the others).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Registration } from "@devscope/core"
 *
 * const shutdown = (registration: Registration.Registration<"chr", {}>) =>
 *   Effect.zipRight(Registration.unregister(registration), Effect.log("chr0 is gone"))
 * ```
 * @since 0.1.0
 * @category destructors
 */
export const unregister = <D extends string, O, E>(self: Registration<D, O, E>): Effect.Effect<void> =>
  internal.unregister(self)

/**
 * Opens a handle for the lifetime of the current Scope: it is closed when the scope closes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Registration } from "@devscope/core"
 *
 * declare const registration: Registration.Registration<"chr", {
 *   read: (state: { reads: number }, _: void) => Effect.Effect<number | undefined>
 * }>
 *
 * const readOne = Effect.scoped(Effect.gen(function*() {
 *   const fd = yield* Registration.openScoped(registration)
 *   return yield* fd.call("read")
 * }))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const openScoped = <D extends string, O, E>(
  self: Registration<D, O, E>
): Effect.Effect<Handle<O>, E | DeviceGone, Scope.Scope> =>
  Effect.acquireRelease(self.open(), (handle) => handle.close())
