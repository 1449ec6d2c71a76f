/**
 * A small driver for the edu device with one bug planted at a time, each breaking one
 * guarantee G1-G5 (docs/testing.md) in a way only the oracle sees (the driver runs; nothing
 * fails in the test's face):
 *
 * - `stale-region` (G1): keeps the raw register window (`Hardware.region`) instead of the
 *   revocable `Mmio`, so a handle used after the unbind still reaches the device;
 * - `leak-mapping` (G2): `remove` never unmaps a streaming mapping made at probe;
 * - `leak-tracked` (G2): `remove` never releases a `Leak.track`ed object;
 * - `failing-release` (G2): a Devres release that dies;
 * - `raw-dma-leak` (G2): coherent memory taken from the DMA port directly, never freed;
 * - `release-order` (G2): coherent memory from the DMA port freed by a plain Effect finalizer
 *   of the probe layer, which runs before the Devres the layer acquired after it (see
 *   docs/concepts.md, section 5): released in the order acquired, not reversed;
 * - `stuck-fiber` (G3): a binding fiber that does not stop within the stop timeout;
 * - `late-fiber` (G3): a handle that starts a fiber from a runtime captured at probe, which
 *   still works after the unbind;
 * - `lost-operation` (G4): `remove` does not fail the operation waiting for the device;
 * - `probe-error-leak` (G2): a probe that fails after mapping (an allocation refused) leaves
 *   the mapping mapped; only a fault finds it.
 *
 * The correct driver (no plant) does each of these right.
 */
import { Context, Deferred, Effect, Layer, Runtime } from "effect"
import { Bound, DeviceError, Devres, Dma, Driver, Hardware, Leak, type Mmio } from "@devscope/core"
import { Edu as SimEdu } from "@devscope/sim"

export const OracleX = Driver.brand("oracle-x")
const Page = Dma.array(Dma.struct({ word: "u32" }), 16)
const LIVENESS = 0x04

export type Plant =
  | "stale-region"
  | "leak-mapping"
  | "leak-tracked"
  | "failing-release"
  | "raw-dma-leak"
  | "release-order"
  | "stuck-fiber"
  | "late-fiber"
  | "lost-operation"
  | "probe-error-leak"

export interface Handle {
  /** Writes LIVENESS and reads it back (the device answers with the inverse). */
  poke(value: number): Effect.Effect<number>
  /** Waits for the device's next event; at unbind, fails with `DeviceGone`. */
  waitEvent(): Effect.Effect<void, DeviceError.DeviceGone>
  /** Starts background work for the device. */
  kick(): Effect.Effect<void>
}

class State extends Context.Tag("oracleX/State")<State, {
  readonly waiter: Deferred.Deferred<void, DeviceError.DeviceGone>
  readonly mapping: Devres.Devres<Dma.Mapping, "oracle-x">
  readonly tracked: Leak.Tracked
}>() {}

export const driver = (plant: Plant | undefined, handles: Map<string, Handle>) => {
  const probe = Layer.scopedContext(Effect.gen(function*() {
    const token = yield* OracleX.Bound
    const hardware = yield* Hardware.Hardware
    // Mapped first, unmapped early in remove: out of order, and fine. A probe failing after
    // it unmaps it too (the unbind's leak check reports a mapping the driver left mapped).
    const mapping = yield* Dma.map(OracleX, new Uint8Array(64), "to-device", { label: "status block" })
    return yield* plant === "probe-error-leak"
      ? rest(token, hardware, mapping)
      : Effect.onError(rest(token, hardware, mapping), () => Dma.unmap(mapping))
  }))

  const rest = (
    token: Bound.Bound<"oracle-x">,
    hardware: Hardware.Service,
    mapping: Devres.Devres<Dma.Mapping, "oracle-x">
  ) => Effect.gen(function*() {
    if (plant === "release-order") {
      // The bug: memory from the port with a plain Effect finalizer, in the same layer as
      // the Devres acquired after it. The layer's own finalizers join the binding scope when
      // the layer completes, so this is freed first: in the order acquired, not reversed.
      const port = hardware.dma(token.device)
      yield* Effect.acquireRelease(
        port.allocCoherent(128, "oracleFixture release-order"),
        ({ iova }) => Effect.sync(() => port.freeCoherent(iova, "oracleFixture release-order"))
      )
    }
    const bar0 = yield* Hardware.iomap(OracleX, SimEdu.registers, 0, { label: "BAR0" })
    yield* Dma.allocCoherent(OracleX, Page, { label: "page" })
    const tracked = Leak.track(token, "doorbell subscription")
    const waiter = yield* Deferred.make<void, DeviceError.DeviceGone>()
    if (plant === "raw-dma-leak") {
      // The bug: memory from the port, outside every Devres; nothing frees it.
      yield* hardware.dma(token.device).allocCoherent(128, "oracleFixture raw-dma-leak")
    }
    yield* Devres.acquireRelease(
      OracleX,
      Effect.void,
      () => plant === "failing-release" ? Effect.dieMessage("firmware did not acknowledge the shutdown") : Effect.void,
      { label: "firmware" }
    )
    if (plant === "stuck-fiber") {
      // The bug: background work that cannot be interrupted for a second (once started: the
      // yield lets it start, as any probe that waits for hardware would).
      yield* Bound.fork(token, Effect.uninterruptible(Effect.sleep("1 second")))
      yield* Effect.yieldNow()
    } else {
      yield* Bound.fork(token, Effect.never)
    }
    const raw: Mmio.Region | undefined = plant === "stale-region" ? yield* hardware.region(token.device, 0) : undefined
    const runtime = yield* Effect.runtime<never>()
    const handle: Handle = {
      poke: (value) =>
        Effect.sync(() => {
          if (raw !== undefined) {
            // The bug: the raw window is never revoked.
            raw.write32(LIVENESS, value)
            return raw.read32(LIVENESS)
          }
          const bar = bar0.access(token)
          bar.write("LIVENESS", value)
          return bar.read("LIVENESS")
        }),
      waitEvent: () => Deferred.await(waiter),
      kick: () =>
        plant === "late-fiber"
          // The bug: a runtime captured inside the binding outlives it.
          ? Effect.sync(() => void Runtime.runFork(runtime)(Effect.never))
          : Effect.asVoid(Bound.fork(token, Effect.never))
    }
    yield* Devres.acquireRelease(
      OracleX,
      Effect.sync(() => handles.set(token.device.name, handle)),
      () => Effect.sync(() => handles.delete(token.device.name)),
      { label: "handle" }
    )
    return Context.make(State, { waiter, mapping, tracked })
  })
  return Driver.make(OracleX, {
    match: [{ vendor: SimEdu.ids.vendor, device: SimEdu.ids.device }],
    probe: () => probe,
    remove: () =>
      Effect.gen(function*() {
        const state = yield* State
        if (plant !== "leak-mapping") yield* Dma.unmap(state.mapping)
        if (plant !== "leak-tracked") state.tracked.release()
        if (plant !== "lost-operation") {
          const token = yield* OracleX.Bound
          yield* Deferred.fail(
            state.waiter,
            new DeviceError.DeviceGone({ device: token.device.name, driver: "oracle-x", gate: "events" })
          )
        }
      })
  })
}

export const plug = (sim: { plug: (spec: any) => Effect.Effect<unknown, unknown> }, name = "edu0") =>
  sim.plug({ bus: "pci", name, ids: SimEdu.ids, model: SimEdu.model({ dma: "200 micros" }) })
