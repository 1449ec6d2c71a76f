// The README's "driver in 20 lines", kept compiling and behaving as the README says.
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule, TestClock } from "effect"
import { Bound, Bus, Devres, Driver } from "@devscope/core"

const log: Array<string> = []
const Edu = Driver.brand("edu")

class Regs extends Context.Tag("Regs")<Regs, Devres.Devres<Uint32Array, "edu">>() {}

const RegsLive = Layer.effect(Regs,
  Devres.acquireRelease(Edu, Effect.sync(() => new Uint32Array(64)), () => Effect.sync(() => log.push("unmap BAR0")), { label: "BAR0" }))

const Poller = Layer.effectDiscard(Effect.gen(function*() {
  const regs = yield* Regs
  const bound = yield* Edu.Bound
  yield* Bound.fork(bound, Effect.repeat(Effect.sync(() => regs.access(bound)[0]++), Schedule.spaced("1 millis")))
}))

const EduDriver = Driver.make(Edu, {
  match: [{ vendor: 0x1234, device: 0x11e8 }],
  probe: () => Poller.pipe(Layer.provideMerge(RegsLive)),
  remove: () => Effect.sync(() => log.push("edu: stop the DMA engine while registers are still mapped"))
})

describe("README example", () => {
  it.effect("binds, polls, and on surprise removal stops the poller before unmapping", () =>
    Effect.gen(function*() {
      const bus = yield* Bus.Bus
      yield* bus.registerDriver(EduDriver)
      yield* bus.addDevice({ name: "edu0", ids: { vendor: 0x1234, device: 0x11e8 } })
      yield* TestClock.adjust("10 millis")
      const report = yield* bus.removeDevice("edu0", { cause: "surprise" })
      expect(report?.fibersInterrupted).toBe(1)
      expect(report?.released).toEqual(["BAR0"])
      expect(log).toEqual(["edu: stop the DMA engine while registers are still mapped", "unmap BAR0"])
    }).pipe(Effect.provide(Bus.layer())))
})
