/**
 * A driver whose every callback misbehaves as its plan says, and the ledger it writes: what
 * each binding acquired, released, and did after its unbind.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Bound, type Bus, Devres, Driver, Registration } from "@devscope/core"
import type { Misbehaviour, Plan } from "../Hostile.js"

export const misbehaviours: ReadonlyArray<Misbehaviour> = ["ok", "fail", "die", "throw", "hang", "hang-uninterruptibly"]

export const HOSTILE = "hostile"
export const CHILD = "hostile-child"
export const Hostile = Driver.brand(HOSTILE)
export const Child = Driver.brand(CHILD)

/** One binding of the hostile driver (or of its child driver), as the ledger saw it. */
export interface BindingRecord {
  readonly serial: number
  readonly device: string
  readonly driver: string
  readonly acquired: Array<string>
  /** Releases in the order they started (a hanging one starts and never ends). */
  readonly releaseStarts: Array<string>
  /** Ticks of its fibers seen after its token was revoked. */
  lateTicks: number
  token: Bound.Bound<any> | undefined
}

/** Everything the hostile drivers did in one sequence. */
export class Ledger {
  readonly bindings: Array<BindingRecord> = []
  readonly handles: Map<string, Registration.Registration<typeof HOSTILE, {}>> = new Map()
  begin(device: string, driver: string): BindingRecord {
    const record: BindingRecord = {
      serial: this.bindings.length,
      device,
      driver,
      acquired: [],
      releaseStarts: [],
      lateTicks: 0,
      token: undefined
    }
    this.bindings.push(record)
    return record
  }
}

const planted = (what: string) => new Error(`planted: ${what}`)

/** `behaviour` as an effect builder (`throw` throws when called). */
const act = (behaviour: Misbehaviour, what: string): () => Effect.Effect<void, unknown> => {
  switch (behaviour) {
    case "ok":
      return () => Effect.void
    case "fail":
      return () => Effect.fail(planted(`${what} fails`))
    case "die":
      return () => Effect.die(planted(`${what} dies`))
    case "throw":
      return () => {
        throw planted(`${what} throws`)
      }
    case "hang":
      return () => Effect.never
    case "hang-uninterruptibly":
      return () => Effect.uninterruptible(Effect.never)
  }
}

const ticking = (record: BindingRecord, token: Bound.Bound<any>) =>
  Effect.forever(Effect.zipRight(
    Effect.sleep("1 millis"),
    Effect.sync(() => {
      if (!Bound.isLive(token)) record.lateTicks++
    })
  ))

/** A child device's driver: one resource and one ticking fiber, well behaved. */
export const childDriver = (ledger: Ledger) =>
  Driver.make(Child, {
    match: [{ vendor: 8 }],
    probe: (device) =>
      Layer.effectDiscard(Effect.gen(function*() {
        const record = ledger.begin(device.name, CHILD)
        const token = yield* Child.Bound
        record.token = token
        const label = `${device.name}#${record.serial}/r0`
        yield* Devres.acquireRelease(Child, Effect.sync(() => void record.acquired.push(label)), () =>
          Effect.sync(() => void record.releaseStarts.push(label)), { label })
        yield* Bound.fork(token, ticking(record, token))
      }))
  })

/** The hostile driver of `plan`, writing to `ledger`. */
export const hostileDriver = (plan: Plan, ledger: Ledger, bus: () => Bus.Service) =>
  Driver.make(Hostile, {
    match: [{ vendor: 7 }],
    probe: (device) =>
      Layer.effectDiscard(Effect.gen(function*() {
        const record = ledger.begin(device.name, HOSTILE)
        const token = yield* Hostile.Bound
        record.token = token
        for (let i = 0; i < plan.releases.length; i++) {
          const label = `${device.name}#${record.serial}/r${i}`
          const release = act(plan.releases[i]!, `release of ${label}`)
          yield* Devres.acquireRelease(Hostile, Effect.sync(() => void record.acquired.push(label)), () => {
            record.releaseStarts.push(label)
            return release()
          }, { label })
        }
        const destroy = act(plan.destroy, "destroy")
        const registration = yield* Registration.register(Hostile, {
          name: `${device.name}-file`,
          open: () => Effect.succeed({}),
          destroy: () => destroy(),
          ops: {}
        }, { destroyDeadline: "50 millis" })
        ledger.handles.set(device.name, registration)
        switch (plan.fiber) {
          case "ticks":
            yield* Bound.fork(token, ticking(record, token))
            break
          case "hang-uninterruptibly":
            yield* Bound.fork(token, Effect.uninterruptible(Effect.never))
            break
          case "unload-own-driver":
            yield* Bound.fork(token, Effect.zipRight(Effect.sleep("5 millis"), Effect.ignore(bus().unregisterDriver(HOSTILE))))
            break
          case "add-child":
            yield* Bound.fork(token, Effect.ignore(bus().addDevice({ name: `${device.name}.fiber-child`, ids: { vendor: 8 } })))
            break
          case "escapes":
            // A root fiber outside supervision, holding the token.
            Effect.runFork(Effect.provide(ticking(record, token), yield* Effect.context<never>()))
            break
        }
        switch (plan.probe) {
          case "add-child":
            yield* Effect.ignore(bus().addDevice({ name: `${device.name}.child`, ids: { vendor: 8 } }))
            return
          case "unload-own-driver":
            return yield* Effect.ignore(bus().unregisterDriver(HOSTILE))
          case "interrupt-self":
            return yield* Effect.interrupt
          default:
            return yield* act(plan.probe, "probe")()
        }
      })),
    remove: () =>
      plan.remove === "unload-own-driver"
        ? Effect.ignore(bus().unregisterDriver(HOSTILE))
        : act(plan.remove, "remove")()
  })
