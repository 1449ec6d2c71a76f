/**
 * Errors of the device model: typed failures for bad requests, and defects for
 * broken invariants (a stale token, a token of the wrong device).
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type { UnbindCause } from "./Lifecycle.js"

/**
 * The device id was never added to the bus, or was removed and forgotten.
 * @since 0.1.0
 * @category errors
 */
export class DeviceNotFound extends Data.TaggedError("DeviceNotFound")<{
  readonly device: string
}> {
  override get message() {
    return `No device "${this.device}" on the bus`
  }
}

/**
 * A device with this name is already on the bus.
 * @since 0.1.0
 * @category errors
 */
export class DeviceExists extends Data.TaggedError("DeviceExists")<{
  readonly device: string
}> {
  override get message() {
    return `A device named "${this.device}" is already on the bus`
  }
}

/**
 * The device was removed from its bus: it can no longer be bound, unbound or removed again.
 * @since 0.1.0
 * @category errors
 */
export class DeviceRemoved extends Data.TaggedError("DeviceRemoved")<{
  readonly device: string
}> {
  override get message() {
    return `Device "${this.device}" has been removed`
  }
}

/**
 * Bind was asked for a device that already has a driver.
 * @since 0.1.0
 * @category errors
 */
export class AlreadyBound extends Data.TaggedError("AlreadyBound")<{
  readonly device: string
  readonly driver: string
}> {
  override get message() {
    return `Device "${this.device}" is already bound to driver "${this.driver}"`
  }
}

/**
 * Unbind was asked for a device with no driver (including a second unbind).
 * @since 0.1.0
 * @category errors
 */
export class NotBound extends Data.TaggedError("NotBound")<{
  readonly device: string
}> {
  override get message() {
    return `Device "${this.device}" is not bound to a driver`
  }
}

/**
 * No registered driver matches the device (or the named driver does not match it).
 * @since 0.1.0
 * @category errors
 */
export class NoMatchingDriver extends Data.TaggedError("NoMatchingDriver")<{
  readonly device: string
  readonly driver?: string
}> {
  override get message() {
    return this.driver === undefined
      ? `No registered driver matches device "${this.device}"`
      : `Driver "${this.driver}" does not match device "${this.device}"`
  }
}

/**
 * The driver name is not registered on this bus.
 * @since 0.1.0
 * @category errors
 */
export class DriverNotFound extends Data.TaggedError("DriverNotFound")<{
  readonly driver: string
}> {
  override get message() {
    return `No driver "${this.driver}" is registered`
  }
}

/**
 * A driver with this name is already registered on this bus.
 * @since 0.1.0
 * @category errors
 */
export class DriverAlreadyRegistered extends Data.TaggedError("DriverAlreadyRegistered")<{
  readonly driver: string
}> {
  override get message() {
    return `A driver named "${this.driver}" is already registered`
  }
}

/**
 * A driver's probe asks to be retried later (the kernel's `-EPROBE_DEFER`): a supplier it
 * needs is not there yet. Fail `probe` with it; the bus retries after any other bind succeeds.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DeviceError } from "@devscope/core"
 *
 * const needClock = Effect.fail(new DeviceError.ProbeDefer({ reason: "clock controller not bound yet" }))
 * ```
 * @since 0.1.0
 * @category errors
 */
export class ProbeDefer extends Data.TaggedError("ProbeDefer")<{
  readonly reason: string
}> {}

/**
 * What `bind` fails with when the probe deferred: the device is queued for a retry.
 * @since 0.1.0
 * @category errors
 */
export class ProbeDeferred extends Data.TaggedError("ProbeDeferred")<{
  readonly device: string
  readonly driver: string
  readonly reason: string
}> {
  override get message() {
    return `Probe of "${this.device}" by "${this.driver}" deferred: ${this.reason}`
  }
}

/**
 * The probe failed (or was interrupted). Everything it had acquired was released, and
 * the device is unbound. `releaseFailures` lists releases that failed during that clean-up (and early releases
 * that failed during the probe).
 * @since 0.1.0
 * @category errors
 */
export class ProbeFailed extends Data.TaggedError("ProbeFailed")<{
  readonly device: string
  readonly driver: string
  readonly cause: Cause.Cause<unknown>
  readonly releaseFailures: ReadonlyArray<{ readonly resource: string; readonly cause: Cause.Cause<unknown> }>
}> {
  override get message() {
    return `Probe of "${this.device}" by "${this.driver}" failed`
  }
}

/**
 * A user-facing entry point (a Gate) of a device whose binding is ending or has ended: the
 * call did not start. Every call into a gone device gets this, never a hang.
 * @since 0.1.0
 * @category errors
 */
export class DeviceGone extends Data.TaggedError("DeviceGone")<{
  readonly device: string
  readonly driver: string
  readonly gate: string
}> {
  override get message() {
    return `Device "${this.device}" (driver "${this.driver}") is gone: ${this.gate} is closed`
  }
}

/**
 * Defect: a resource or token of a binding was used after that binding ended. Names the
 * device, the driver, why the binding ended and where the unbind was requested.
 * @since 0.1.0
 * @category defects
 */
export class UseAfterUnbind extends Data.TaggedError("UseAfterUnbind")<{
  readonly device: string
  readonly driver: string
  readonly resource: string
  readonly unbindCause: UnbindCause | "released"
  readonly revokedAt: string
}> {
  override get message() {
    const what = this.unbindCause === "released"
      ? `after it was released early at ${this.revokedAt}`
      : `after device "${this.device}" was unbound (cause: ${this.unbindCause}, at ${this.revokedAt})`
    return `Use of ${this.resource} of driver "${this.driver}" ${what}`
  }
}

/**
 * Defect: a token of one binding was presented for a resource of another binding (another
 * device bound by the same driver), or the token was not made by devscope.
 * @since 0.1.0
 * @category defects
 */
export class DeviceMismatch extends Data.TaggedError("DeviceMismatch")<{
  readonly resource: string
  readonly expected: string
  readonly actual: string
}> {
  override get message() {
    return `${this.resource} belongs to device "${this.expected}" but was accessed with a token of "${this.actual}"`
  }
}

/**
 * Defect: a `Core` token was used outside the probe/remove callback it was made for.
 * @since 0.1.0
 * @category defects
 */
export class CoreNotHeld extends Data.TaggedError("CoreNotHeld")<{
  readonly device: string
  readonly driver: string
}> {
  override get message() {
    return `Core token of "${this.device}" (driver "${this.driver}") used outside probe/remove`
  }
}

/**
 * A device link that would close a cycle: the supplier already consumes the consumer,
 * directly or through other links, or both are the same device. `path` is the cycle the
 * link would make, each device consuming the next: `["a", "b", "a"]`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bus } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* Bus.Bus
 *   yield* bus.addDevice({ name: "clk0" })
 *   yield* bus.addDevice({ name: "uart0" })
 *   yield* bus.link("uart0", "clk0")
 *   const error = yield* Effect.flip(bus.link("clk0", "uart0"))
 *   if (error._tag === "LinkCycle") console.log(error.path) // ["clk0", "uart0", "clk0"]
 * }).pipe(Effect.provide(Bus.layer()))
 * ```
 * @since 0.1.0
 * @category errors
 */
export class LinkCycle extends Data.TaggedError("LinkCycle")<{
  readonly consumer: string
  readonly supplier: string
  readonly path: ReadonlyArray<string>
}> {
  override get message() {
    return `Linking "${this.consumer}" as a consumer of "${this.supplier}" would make a cycle: ${
      this.path.join(" consumes ")
    }`
  }
}

/**
 * The bus is shutting down (its scope is closing) or has shut down: it takes no new
 * device, driver or bind, so nothing binds during or after the shutdown.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bus } from "@devscope/core"
 *
 * const program = Effect.gen(function*() {
 *   const bus = yield* Effect.scoped(Bus.make())
 *   // The scope above closed: the bus is shut down.
 *   const refused = yield* Effect.flip(bus.addDevice({ name: "late0" }))
 *   console.log(refused._tag) // "BusShutDown"
 * })
 * ```
 * @since 0.1.0
 * @category errors
 */
export class BusShutDown extends Data.TaggedError("BusShutDown")<{
  readonly bus: string
  readonly state: "shutting-down" | "closed"
}> {
  override get message() {
    return `Bus "${this.bus}" is ${this.state === "closed" ? "shut down" : "shutting down"}: no new devices, drivers or binds`
  }
}

/**
 * A binding tried to add a child device after its own unbind had begun (its children were
 * already being taken down).
 * @since 0.1.0
 * @category errors
 */
export class ParentUnbinding extends Data.TaggedError("ParentUnbinding")<{
  readonly device: string
  readonly parent: string
}> {
  override get message() {
    return `Device "${this.device}" cannot be added: its parent "${this.parent}" is unbinding`
  }
}
