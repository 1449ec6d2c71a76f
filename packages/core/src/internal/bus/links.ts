/**
 * `link` and `unlink`: device links made and dropped at run time.
 *
 * # Invariants
 * - There is no moment where a link joins a bound consumer to a supplier that is not bound:
 *   such a consumer is unbound (and then deferred) before the link exists. Only a bound
 *   consumer's lock is taken, so a probe may link its own device; a link made during a probe
 *   is checked when the probe ends.
 * - The graph stays acyclic: a link that would close a cycle fails with `LinkCycle`.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Device from "../../Device.js"
import { type DeviceNotFound, type DeviceRemoved, LinkCycle } from "../../DeviceError.js"
import type { Site } from "../site.js"
import { afterBind, deferConsumer, tryBind } from "./bind.js"
import { addLink, dropLink, supplierPath, unboundSupplier } from "./graph.js"
import { type BusState, isEntry } from "./state.js"
import { failIfStrict, unbindLocked } from "./unbind.js"

export const link = (
  bus: BusState,
  consumerRef: Device.Device | string,
  supplierRef: Device.Device | string,
  site: Site
): Effect.Effect<void, DeviceNotFound | DeviceRemoved | LinkCycle> => {
  let unbound: string | undefined
  const attempt: Effect.Effect<void, DeviceNotFound | DeviceRemoved | LinkCycle> = Effect.suspend(() => {
    const consumer = bus.lookup(consumerRef)
    if (!isEntry(consumer)) return Effect.fail(consumer)
    const supplier = bus.lookup(supplierRef)
    if (!isEntry(supplier)) return Effect.fail(supplier)
    if (consumer.suppliers.has(supplier)) return Effect.void
    const path = supplierPath(supplier, consumer)
    if (path !== undefined || consumer === supplier) {
      return Effect.fail(
        new LinkCycle({
          consumer: consumer.device.name,
          supplier: supplier.device.name,
          path: [consumer, ...(path ?? [supplier])].map((e) => e.device.name)
        })
      )
    }
    if (consumer.device.state === "bound" && supplier.device.state !== "bound") {
      return consumer.lock.withLock(Effect.suspend(() => {
        const binding = consumer.binding
        if (binding === undefined || consumer.device.state !== "bound" || supplier.device.state === "bound") {
          return Effect.void
        }
        unbound = binding.driver
        return Effect.flatMap(unbindLocked(bus, consumer, "manual", site), (report) => failIfStrict(bus, report))
      })).pipe(Effect.zipRight(attempt))
    }
    addLink(consumer, supplier)
    return unbound === undefined ? Effect.void : deferConsumer(bus, consumer, unbound, site)
  })
  return attempt
}

export const unlink = (
  bus: BusState,
  consumerRef: Device.Device | string,
  supplierRef: Device.Device | string,
  site: Site
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const consumer = bus.lookup(consumerRef)
    const supplier = bus.lookup(supplierRef)
    if (!isEntry(consumer) || !isEntry(supplier) || !consumer.suppliers.has(supplier)) return Effect.void
    dropLink(consumer, supplier)
    return consumer.device.state === "deferred" && unboundSupplier(consumer) === undefined
      ? Effect.flatMap(tryBind(bus, consumer, undefined, site), (bound) => afterBind(bus, bound))
      : Effect.void
  })
