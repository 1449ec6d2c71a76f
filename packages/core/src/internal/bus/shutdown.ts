/**
 * Bus shutdown: the bus's scope closing.
 *
 * # Invariants
 * - From its first step the bus is `shutting-down`: no device, driver or bind is accepted
 *   and nothing binds. Probes in flight are cancelled (interrupted; torn down by their bind,
 *   bounded by `probeTimeout`); a probe that completes all the same is torn down by its bind
 *   (it checks the bus's life when the probe ends).
 * - Then every device is unbound (cause `unload`) and removed, each under its lock, a
 *   parent's children with it, until none is left; then the bus is `closed`. Every step is
 *   bounded (see internal/bus/unbind.ts), so the shutdown always ends.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type { BusState } from "./state.js"
import { forget } from "./unbind.js"

export const shutdown = (bus: BusState): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (bus.life !== "open") return Effect.void
    bus.life = "shutting-down"
    bus.publish({ _tag: "BusShuttingDown" })
    // With `probeTimeout` a probe runs in a fiber of its own, which can be cancelled; without,
    // it runs in its binder's fiber, which is not the bus's to interrupt.
    if (bus.settings.probeTimeout !== undefined) {
      for (const entry of bus.entries.values()) {
        if (entry.device.state === "probing") entry.binding?.prober?.unsafeInterruptAsFork(FiberId.none)
      }
    }
    const next: Effect.Effect<void> = Effect.suspend(() => {
      const first = bus.entries.values().next()
      if (first.done === true) return Effect.void
      const entry = first.value
      return entry.lock.withLock(Effect.suspend(() =>
        entry.device.state === "removed" ? Effect.void : Effect.asVoid(forget(bus, entry, "hot-unplug", "bus shutdown", "unload"))
      )).pipe(Effect.zipRight(next))
    })
    return Effect.ensuring(next, Effect.sync(() => (bus.life = "closed")))
  })
