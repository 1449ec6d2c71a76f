/**
 * An edu DMA driver for exploration, with two bugs that can be planted:
 * - `wait-irq-no-timeout`: `remove` waits for the completion interrupt of a transfer in
 *   flight without a timeout; after a surprise removal that interrupt never comes;
 * - `free-dma-before-stop`: `remove` frees the DMA page before waiting for the engine to
 *   stop, so a transfer in flight reads freed memory.
 * User calls (`transfer`) go through a gate; the completion is awaited outside the section
 * and failed with DeviceGone at unbind, so each call resolves exactly once.
 */
import { Context, Deferred, Effect, Layer, Option } from "effect"
import { Devres, DeviceError, Dma, Driver, Gate, Hardware, Irq, type Mmio } from "@devscope/core"
import { Edu as SimEdu } from "@devscope/sim"
import type { Explore } from "@devscope/testing"

export const EduX = Driver.brand("edu-x")
const Page = Dma.array(Dma.struct({ word: "u32" }), 64)
const START = 1
const IRQ = 4

export type Bug = "wait-irq-no-timeout" | "free-dma-before-stop"

export interface Handle {
  transfer(round: number): Effect.Effect<void, DeviceError.DeviceGone>
}

class Bar0 extends Context.Tag("eduX/Bar0")<Bar0, Devres.Devres<Mmio.Mmio<typeof SimEdu.registers.spec>, "edu-x">>() {}
class State extends Context.Tag("eduX/State")<State, {
  readonly page: Devres.Devres<Dma.Coherent<typeof Page>, "edu-x">
  readonly irqSeen: { current: Deferred.Deferred<void> }
  readonly pending: { current: Deferred.Deferred<void, DeviceError.DeviceGone> | undefined }
  readonly gone: DeviceError.DeviceGone
}>() {}

export const driver = (bug: Bug | undefined, handles: Map<string, Handle>) =>
  Driver.make(EduX, {
    match: [{ vendor: SimEdu.ids.vendor, device: SimEdu.ids.device }],
    probe: () =>
      Layer.effectContext(Effect.gen(function*() {
        const token = yield* EduX.Bound
        const bar0 = yield* Hardware.iomap(EduX, SimEdu.registers, 0, { label: "BAR0" })
        const bar = bar0.access(token)
        const page = yield* Dma.allocCoherent(EduX, Page, { label: "dma page" })
        const irqSeen = { current: yield* Deferred.make<void>() }
        const pending: { current: Deferred.Deferred<void, DeviceError.DeviceGone> | undefined } = { current: undefined }
        const gone = new DeviceError.DeviceGone({ device: token.device.name, driver: "edu-x", gate: "edu-x transfers" })
        yield* Irq.request(
          EduX,
          0,
          Effect.gen(function*() {
            const status = bar.read("IRQ_STATUS")
            if (status === 0 || status === 0xffffffff) return "none" as const
            bar.write("IRQ_ACK", status)
            yield* Deferred.succeed(irqSeen.current, undefined)
            if (pending.current !== undefined) yield* Deferred.succeed(pending.current, undefined)
            return "handled" as const
          })
        )
        const gate = yield* Gate.make(EduX, { name: "edu-x transfers", deadline: "5 millis" })
        // One DMA engine: transfers take turns (outside the gate, so a waiter never holds up
        // its close; after the unbind the next in line finds the gate closed).
        const engine = yield* Effect.makeSemaphore(1)
        const handle: Handle = {
          transfer: (round) =>
            engine.withPermits(1)(Effect.flatMap(
              gate.enter((t) =>
                Effect.gen(function*() {
                  const coherent = page.access(t)
                  for (let i = 0; i < Page.length; i++) coherent.view.set(i, "word", round * 100 + i)
                  const done = yield* Deferred.make<void, DeviceError.DeviceGone>()
                  pending.current = done
                  irqSeen.current = yield* Deferred.make<void>()
                  const regs = bar0.access(t)
                  regs.write("DMA_SRC", coherent.iova)
                  regs.write("DMA_DST", SimEdu.BUFFER_ADDRESS)
                  regs.write("DMA_CNT", Page.length * 4)
                  regs.write("DMA_CMD", START | IRQ)
                  return done
                })
              ),
              Deferred.await
            ))
        }
        yield* Devres.acquireRelease(
          EduX,
          Effect.sync(() => handles.set(token.device.name, handle)),
          () => Effect.sync(() => handles.delete(token.device.name)),
          { label: "handle" }
        )
        return Context.make(Bar0, bar0).pipe(Context.add(State, { page, irqSeen, pending, gone }))
      })),
    remove: () =>
      Effect.gen(function*() {
        const token = yield* EduX.Bound
        const bar = (yield* Bar0).access(token)
        const state = yield* State
        const inFlight = (bar.read("DMA_CMD") & START) !== 0 || bar.read("DMA_CMD") === 0xffffffff
        if (bug === "wait-irq-no-timeout" && inFlight) {
          // The bug: no timeout; a removed device never interrupts.
          yield* Deferred.await(state.irqSeen.current)
        }
        if (bug === "free-dma-before-stop") yield* Devres.release(state.page)
        for (let i = 0; i < 50; i++) {
          const cmd = bar.read("DMA_CMD")
          if (cmd === 0xffffffff || (cmd & START) === 0) break
          yield* Effect.sleep("100 micros")
        }
        if (state.pending.current !== undefined) yield* Deferred.fail(state.pending.current, state.gone)
      })
  })

/** A bounded workload: `rounds` transfers through the gate, each tracked by the oracle. */
export const scenario = (bug: Bug | undefined, rounds = 12): Explore.Scenario => ({
  name: `edu-x${bug === undefined ? "" : `-${bug}`}`,
  device: "edu0",
  seed: 5,
  // A remove deadline well inside the explorer's time limit, so a remove that waits forever
  // is cut (and reported) within the case.
  simulator: { bus: { removeTimeout: "100 millis" } },
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      const handles = new Map<string, Handle>()
      yield* Effect.provideService(sim.pci.registerDriver(driver(bug, handles)), Hardware.Hardware, sim.hardware)
      yield* sim.plug({ bus: "pci", name: "edu0", ids: SimEdu.ids, model: SimEdu.model({ dma: "200 micros" }) })
      for (let round = 0; round < rounds; round++) {
        const handle = Option.fromNullable(handles.get("edu0"))
        if (Option.isNone(handle)) return
        const result = yield* oracle.track("edu0", `transfer ${round}`, handle.value.transfer(round))
        if (Option.isNone(result)) return
        yield* Effect.sleep("50 micros")
      }
    }).pipe(Effect.orDie)
})
