import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as Bound from "../Bound.js"
import { DeviceGone, DeviceMismatch } from "../DeviceError.js"
import type * as Driver from "../Driver.js"
import type * as Gate from "../Gate.js"
import type * as Registration from "../Registration.js"
import { type Binding, liveBinding } from "./binding.js"
import { bounded } from "./deadline.js"
import { overDeadline } from "./teardown.js"
import * as gate_ from "./gate.js"

/** @internal */
export const TypeId: typeof Registration.TypeId = Symbol.for("@devscope/core/Registration") as any

/** @internal */
export const HandleTypeId: typeof Registration.HandleTypeId = Symbol.for("@devscope/core/Registration/Handle") as any

/** @internal */
export class HandleClosed
  extends Data.TaggedError("HandleClosed")<Pick<Registration.HandleClosed, "device" | "registration" | "handle">>
  implements Registration.HandleClosed
{
  override get message() {
    return `Handle #${this.handle} of registration "${this.registration}" of "${this.device}" is closed`
  }
}

const variance = { _D: (_: any) => _ }

type AnySpec = Registration.Spec<any, any, any, any, any, Registration.Ops<any, any>>

/** @internal */
export class HandleImpl implements Registration.Handle<any> {
  readonly [HandleTypeId]: Registration.HandleTypeId = HandleTypeId
  /** Closed by its user. */
  closed = false
  /** Disassociated by the unbind (or `unregister`). */
  zombie = false
  /** Someone (close, the last call out, the disassociation) has started destroying the state. */
  destroyClaimed = false
  /** Calls running on this handle now. */
  inFlight = 0
  private closedError: HandleClosed | undefined = undefined

  constructor(
    readonly owner: RegistrationImpl<any>,
    readonly id: number,
    readonly state: unknown
  ) {}

  get registration() {
    return this.owner.name
  }

  get isZombie() {
    return this.zombie
  }

  get isClosed() {
    return this.closed
  }

  private get closedFailure(): HandleClosed {
    return this.closedError ??= new HandleClosed({
      device: this.owner.device.name,
      registration: this.owner.name,
      handle: this.id
    })
  }

  call(op: string, arg?: unknown): Effect.Effect<any, any> {
    const owner = this.owner
    const fn = Object.hasOwn(owner.spec.ops, op) ? owner.spec.ops[op] : undefined
    if (fn === undefined) {
      return Effect.dieMessage(`Registration "${owner.name}" has no operation "${op}"`)
    }
    return Effect.suspend(() => {
      if (this.zombie) return Effect.fail(owner.gone)
      if (this.closed) return Effect.fail(this.closedFailure)
      return owner.gate.enter((token) =>
        // Counting the call in and installing its way out are atomic; the operation itself runs
        // with the caller's interruptibility.
        Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            // Re-checked inside the section: a nested entry may outlive a disassociation.
            if (this.zombie) return Effect.fail(owner.gone)
            if (this.closed) return Effect.fail(this.closedFailure)
            this.inFlight++
            return Effect.matchCauseEffect(restore(owner.provide(Effect.suspend(() => fn(this.state, arg, token)))), {
              onFailure: (cause) => Effect.zipRight(this.leave(token), Effect.failCause(cause)),
              onSuccess: (value) => Effect.as(this.leave(token), value)
            })
          })
        )
      )
    })
  }

  /** A call leaves; the last one out of a closed handle destroys its state (still in the gate). */
  private leave(token: Bound.Bound<any>): Effect.Effect<void> {
    return Effect.suspend(() =>
      --this.inFlight === 0 && this.closed && !this.zombie ? this.owner.destroyHandle(this, token, undefined) : Effect.void
    )
  }

  close(): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
      if (this.closed) return Effect.void
      this.closed = true
      const owner = this.owner
      if (this.zombie) {
        owner.zombieCount--
        return Effect.void
      }
      owner.openCount--
      // Calls in flight keep the state alive: the last one out destroys it.
      if (this.inFlight > 0) return Effect.void
      return owner.gate.enter((token) => owner.destroyHandle(this, token, undefined)).pipe(
        // The gate is closing: the disassociation that follows destroys the state.
        Effect.catchTag("DeviceGone", () => Effect.void)
      )
    }))
  }

  toString() {
    const state = this.zombie ? "zombie" : this.closed ? "closed" : "open"
    return `Handle(#${this.id}, ${this.owner.name}, ${state})`
  }
}

/** @internal */
export class RegistrationImpl<D extends string> implements Registration.Registration<D, any, any> {
  readonly [TypeId] = variance
  /** Handles whose state nobody has started destroying yet. */
  readonly table = new Set<HandleImpl>()
  openCount = 0
  zombieCount = 0
  failures = 0
  disassociated = false
  private disassociation: Deferred.Deferred<void> | undefined = undefined
  private nextId = 0
  readonly gone: DeviceGone

  constructor(
    readonly binding: Binding,
    readonly gate: Gate.Gate<D>,
    readonly token: Bound.Bound<D>,
    readonly context: Context.Context<never>,
    readonly spec: AnySpec,
    readonly destroyDeadline: Duration.Duration
  ) {
    this.gone = new DeviceGone({ device: binding.device.name, driver: binding.driver, gate: gate.name })
  }

  get name(): string {
    return this.spec.name
  }

  get device() {
    return this.binding.device
  }

  get handles() {
    return this.openCount
  }

  get zombies() {
    return this.zombieCount
  }

  get destroyFailures() {
    return this.failures
  }

  get isDisassociated() {
    return this.disassociated
  }

  /** Runs user code with the context captured at registration. */
  provide<A, E>(effect: Effect.Effect<A, E, any>): Effect.Effect<A, E> {
    return Effect.provide(effect, this.context) as Effect.Effect<A, E>
  }

  open(): Effect.Effect<Registration.Handle<any>, any> {
    return Effect.suspend(() => {
      if (this.disassociated) return Effect.fail(this.gone)
      return this.gate.enter((token) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            if (this.disassociated) return Effect.fail(this.gone)
            return Effect.flatMap(restore(this.provide(Effect.suspend(() => this.spec.open(token)))), (state) => {
              // Uninterruptible from here: a state that was made is in the table (or destroyed).
              const handle = new HandleImpl(this, ++this.nextId, state)
              if (this.disassociated) {
                // Only a section that outlived the gate's deadline gets here.
                handle.zombie = true
                return Effect.zipRight(this.destroyHandle(handle, token, this.destroyDeadline), Effect.fail(this.gone))
              }
              this.table.add(handle)
              this.openCount++
              return Effect.succeed(handle)
            })
          })
        )
      )
    })
  }

  /** Destroys a handle's state unless someone already has; exactly once per handle. */
  destroyHandle(
    handle: HandleImpl,
    token: Bound.Bound<D>,
    deadline: Duration.Duration | undefined
  ): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (handle.destroyClaimed) return Effect.void
      handle.destroyClaimed = true
      this.table.delete(handle)
      // Binding code: a fiber it starts belongs to the binding.
      const destroy = this.binding.within(Effect.suspend(() => this.spec.destroy(handle.state, token)), this.context)
      const run: Effect.Effect<Exit.Exit<void, unknown>> = deadline === undefined
        ? Effect.exit(Effect.uninterruptible(destroy))
        : bounded(destroy, deadline).pipe(
          Effect.map((outcome) =>
            outcome._tag === "Done"
              ? outcome.exit
              : Exit.failCause(
                overDeadline(this.binding, "destroy", `${this.name} handle #${handle.id}`, `registration "${this.name}"`, deadline, outcome)
              )
          )
        )
      return Effect.flatMap(run, (exit) => {
        if (Exit.isSuccess(exit)) return Effect.void
        this.failures++
        return Effect.logError(
          `registration "${this.name}" of "${this.device.name}": destroying handle #${handle.id} failed`,
          exit.cause
        ).pipe(Effect.annotateLogs({ device: this.device.name, registration: this.name, handle: handle.id }))
      })
    })
  }

  /**
   * Disassociation (after the gate has closed and drained): every handle becomes a zombie, then
   * every state nobody has destroyed yet is destroyed, in open order. Idempotent; a second
   * caller waits for the first.
   */
  disassociate(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.disassociation !== undefined) return Deferred.await(this.disassociation)
      const done = this.disassociation = Deferred.unsafeMake<void>(FiberId.none)
      this.disassociated = true
      const victims = Array.from(this.table)
      for (const handle of victims) {
        handle.zombie = true
        if (!handle.closed) this.zombieCount++
      }
      this.openCount = 0
      return Effect.forEach(victims, (handle) => this.destroyHandle(handle, this.token, this.destroyDeadline), {
        discard: true
      }).pipe(Effect.ensuring(Deferred.done(done, Exit.void)))
    })
  }

  unregister(): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.zipRight(gate_.close(this.gate), this.disassociate()))
  }

  toString() {
    return `Registration(${this.name}, ${this.binding.device.name}, ${this.disassociated ? "disassociated" : "live"})`
  }
}

/** @internal */
export const register = <D extends string>(
  driver: Driver.Brand<D>,
  spec: AnySpec,
  options?: Registration.Options<D>
): Effect.Effect<any, never, any> =>
  Effect.contextWithEffect((context: Context.Context<never>) => {
    const token = Context.unsafeGet(context, driver.Bound)
    const binding = liveBinding(token, `Registration "${spec.name}"`)
    const given = options?.gate
    if (given !== undefined && (given as gate_.GateImpl<D>).binding !== binding) {
      return Effect.die(
        new DeviceMismatch({
          resource: `Registration "${spec.name}"`,
          expected: binding.device.name,
          actual: `gate "${given.name}" of ${String((given as gate_.GateImpl<D>).binding?.device.name)}`
        })
      )
    }
    const gate = given !== undefined
      ? Effect.succeed(given)
      : gate_.make(driver, { name: spec.name, deadline: options?.deadline })
    return Effect.map(gate, (gate) => {
      const registration = new RegistrationImpl(
        binding,
        gate,
        token,
        context,
        spec,
        Duration.decode(options?.destroyDeadline ?? "5 seconds")
      )
      // Step 2, after the gate's own hook when the gate was made first: close (or await the
      // close of) the gate, then disassociate while the binding is live.
      binding.hooks.push({ step: 2, name: `registration "${spec.name}"`, run: () => registration.unregister() })
      return registration
    })
  })

/** @internal */
export const unregister = (self: Registration.Registration<any, any, any>): Effect.Effect<void> =>
  (self as RegistrationImpl<any>).unregister()
