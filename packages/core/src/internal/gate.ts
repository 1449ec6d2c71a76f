import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as Bound from "../Bound.js"
import { DeviceGone } from "../DeviceError.js"
import type * as Driver from "../Driver.js"
import type * as Gate from "../Gate.js"
import type { GateReport } from "../Lifecycle.js"
import { type Binding, liveBinding } from "./binding.js"
import { waitAtMost } from "./deadline.js"
import { adoptChildrenSince } from "./escape.js"
import { nextFiberId } from "./fiberIds.js"

/** @internal */
export const TypeId: typeof Gate.TypeId = Symbol.for("@devscope/core/Gate") as any

/** @internal */
export class GateImpl<D extends string> implements Gate.Gate<D> {
  readonly [TypeId]: Gate.TypeId = TypeId
  open = true
  active = 0
  /**
   * The fiber of each section in flight, by slot; freed slots are reused. An array rather than
   * a map keyed by fiber: hashing fibers would cost more than the rest of the section.
   */
  readonly slots: Array<Fiber.RuntimeFiber<any, any> | undefined> = []
  /** The next fiber id when each slot's section began (internal/escape.ts). */
  private readonly since: Array<number> = []
  readonly free: Array<number> = []
  /** The exit continuation of each slot (see `exitOf`). */
  private readonly exits: Array<ReturnType<GateImpl<D>["exitOf"]> | undefined> = []
  drained: Deferred.Deferred<void> | undefined = undefined
  /** Sections of the fiber that closes the gate: the close cannot wait for those. */
  closerSections = 0
  report: Deferred.Deferred<GateReport> | undefined = undefined
  private readonly gone: DeviceGone

  constructor(
    readonly binding: Binding,
    readonly tag: Bound.Tag<D>,
    readonly token: Bound.Bound<D>,
    readonly name: string,
    readonly deadline: Duration.Duration
  ) {
    this.gone = new DeviceGone({ device: binding.device.name, driver: binding.driver, gate: name })
  }

  get device() {
    return this.binding.device
  }

  get isOpen() {
    return this.open
  }

  get inFlight() {
    return this.active
  }

  enter<A, E, R>(f: (token: Bound.Bound<D>) => Effect.Effect<A, E, R>): Effect.Effect<A, E | DeviceGone, R> {
    return Effect.withFiberRuntime<A, E | DeviceGone, R>((fiber, status) =>
      // Called uninterruptibly (a user call that must not lose what it submits): the section
      // is entered and its exit installed in this one step, and the body keeps running
      // uninterruptibly, as `restore` would leave it. Otherwise one mask for the whole
      // section: entering and installing the exit are atomic, the body runs interruptibly,
      // and the exit continuation uninterruptibly (a plain match, not `ensuring`, which would
      // mask a second time: this path is measured against a semaphore).
      RuntimeFlags.interruptible(status.runtimeFlags)
        ? Effect.uninterruptibleMask((restore) => this.section(fiber, f, restore))
        : this.section(fiber, f, undefined)
    )
  }

  /** Enters, builds the body and installs the exit; runs uninterruptibly. */
  private section<A, E, R>(
    fiber: Fiber.RuntimeFiber<any, any>,
    f: (token: Bound.Bound<D>) => Effect.Effect<A, E, R>,
    restore: (<A1, E1, R1>(effect: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1, E1, R1>) | undefined
  ): Effect.Effect<A, E | DeviceGone, R> {
    // A nested entry is a section of its own: it succeeds while the gate is open and fails
    // after it closed (as `drm_dev_enter` does), so it never holds a close up.
    if (!this.open) return Effect.fail(this.gone)
    const slot = this.free.length > 0 ? this.free.pop()! : this.slots.length
    this.slots[slot] = fiber
    this.since[slot] = nextFiberId()
    this.active++
    // Built here rather than in an `Effect.suspend` (one op less per section); a throwing
    // `f` leaves at once and dies as the suspend would have.
    let body: Effect.Effect<A, E, R>
    try {
      body = f(this.token)
    } catch (defect) {
      this.leave(slot)
      return Effect.die(defect)
    }
    return Effect.matchCauseEffect(restore === undefined ? body : restore(body), this.exitOf(slot))
  }

  /**
   * Children the section's caller forked during it and left running hold the token outside
   * the binding's supervision: the binding adopts them (internal/escape.ts). One field read
   * when the caller has no children (the usual case).
   */
  private adoptEscapees(slot: number): void {
    const caller = this.slots[slot] as unknown as { readonly _children?: Set<unknown> | null } | undefined
    if (caller?._children == null || caller._children.size === 0) return
    adoptChildrenSince(this.binding, this.slots[slot]!, this.since[slot]!, this.name)
  }

  /**
   * The exit continuation of a section in `slot`: made once per slot (slots are reused), so a
   * section allocates no closures for it.
   */
  private exitOf(slot: number): {
    readonly onFailure: (cause: Cause.Cause<any>) => Effect.Effect<never, any>
    readonly onSuccess: (value: any) => Effect.Effect<any>
  } {
    return this.exits[slot] ??= {
      onFailure: (cause) => {
        this.adoptEscapees(slot)
        this.leave(slot)
        return Effect.failCause(cause)
      },
      onSuccess: (value) => {
        this.adoptEscapees(slot)
        this.leave(slot)
        return Effect.succeed(value)
      }
    }
  }

  leave(slot: number) {
    this.slots[slot] = undefined
    this.free.push(slot)
    if (--this.active <= this.closerSections && this.drained !== undefined) Deferred.unsafeDone(this.drained, Exit.void)
  }

  close(): Effect.Effect<GateReport> {
    return Effect.uninterruptible(Effect.suspend(() => {
      if (this.report !== undefined) return Deferred.await(this.report)
      const report = this.report = Deferred.unsafeMake<GateReport>(FiberId.none)
      this.open = false
      return Effect.flatMap(Effect.clock, (clock) => Effect.withFiberRuntime<GateReport>((self) => {
        const started = clock.unsafeCurrentTimeMillis()
        const awaited = this.active
        // A section closing its own gate (a call that unregisters its interface) must not
        // wait for itself.
        this.closerSections = this.slots.filter((fiber) => fiber === self).length
        const drain = Effect.suspend(() =>
          this.active <= this.closerSections ? Effect.void : Deferred.await(this.drained ??= Deferred.unsafeMake<void>(FiberId.none))
        )
        const waitUpTo = (effect: Effect.Effect<void>) => Effect.map(waitAtMost(effect, this.deadline), Option.isSome)
        return Effect.gen(this, function*() {
          const interrupted: Array<string> = []
          let stuck = 0
          if (!(yield* waitUpTo(drain))) {
            for (const fiber of new Set(this.slots)) {
              if (fiber === undefined || fiber === self) continue
              interrupted.push(FiberId.threadName(fiber.id()))
              fiber.unsafeInterruptAsFork(self.id())
            }
            if (!(yield* waitUpTo(drain))) stuck = this.active
          }
          const result: GateReport = {
            gate: this.name,
            awaited,
            interrupted,
            stuck,
            durationMillis: clock.unsafeCurrentTimeMillis() - started
          }
          if (interrupted.length > 0 || stuck > 0) {
            yield* Effect.logWarning(
              `gate "${this.name}" of "${this.binding.device.name}": ${interrupted.length} section(s) interrupted ` +
                `at the ${Duration.format(this.deadline)} deadline${stuck > 0 ? `, ${stuck} still running` : ""}`
            )
          }
          return result
        })
      })).pipe(
        // Whatever happens, later closes (and the unbind) must not wait for this one forever.
        Effect.onExit((exit) => Effect.sync(() => Deferred.unsafeDone(report, exit)))
      )
    }))
  }

  toString() {
    return `Gate(${this.name}, ${this.binding.device.name}, ${this.open ? "open" : "closed"})`
  }
}

/** @internal */
export const make = <D extends string>(
  driver: Driver.Brand<D>,
  options?: Gate.Options
): Effect.Effect<Gate.Gate<D>, never, Bound.Bound<D>> =>
  Effect.map(driver.Bound, (token) => {
    const name = options?.name ?? "gate"
    const binding = liveBinding(token, `Gate "${name}"`)
    const gate = new GateImpl(binding, driver.Bound, token, name, Duration.decode(options?.deadline ?? "5 seconds"))
    binding.hooks.push({
      step: 2,
      name,
      run: (b) => Effect.map(gate.close(), (report) => void b.gateReports.push(report))
    })
    return gate
  })

/** @internal */
export const enterWith = <D extends string, A, E, R>(
  gate: Gate.Gate<D>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | DeviceGone, Exclude<R, Bound.Bound<D>>> => {
  const impl = gate as GateImpl<D>
  return impl.enter((token) => Effect.provideService(effect, impl.tag, token)) as never
}

/** @internal */
export const close = <D extends string>(gate: Gate.Gate<D>): Effect.Effect<GateReport> => (gate as GateImpl<D>).close()
