import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Auxiliary, Bound, Driver } from "@devscope/core"
import { Log, resource, withBus } from "./utils.js"

const Mfd = Driver.brand("mfd")
const GpioBrand = Driver.brand("gpio")
const Gpio = Auxiliary.make<{ readonly lines: number; readonly log: Log }>("acme.gpio")

const gpioDriver = Driver.make(GpioBrand, {
  match: Gpio.match,
  probe: (device) =>
    Layer.effectDiscard(Effect.gen(function*() {
      const { lines, log } = Auxiliary.data(Gpio, device)
      yield* log.push(`gpio ${device.name}: ${lines} lines`)
      const token = yield* GpioBrand.Bound
      yield* Bound.fork(token, Effect.onInterrupt(Effect.never, () => log.push(`gpio ${device.name} fiber stopped`)))
    })).pipe(Layer.provideMerge(resource(GpioBrand, new Log(), "gpio regs")))
})

describe("Auxiliary: child devices", () => {
  it.effect("a parent registers children; each binds its own driver with the parent's data; the parent's unbind removes them first", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let kept: Bound.Bound<"mfd"> | undefined
        yield* bus.registerDriver(gpioDriver)
        yield* bus.registerDriver(Driver.make(Mfd, {
          match: [{ vendor: 0xacde }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const token = yield* Mfd.Bound
              kept = token
              yield* Auxiliary.register(Gpio, token, { id: 0, data: { lines: 32, log } })
              yield* Auxiliary.register(Gpio, token, { id: 1, data: { lines: 8, log } })
            })).pipe(Layer.provideMerge(resource(Mfd, log, "mfd regs"))),
          // Too late: the children are being removed already.
          remove: () =>
            Effect.flatMap(Effect.flip(Auxiliary.register(Gpio, kept!, { id: 2, data: { lines: 1, log } })), (e) =>
              log.push(`late register: ${e._tag}`))
        }))
        yield* bus.addDevice({ name: "mfd0", ids: { vendor: 0xacde } })
        yield* Effect.yieldNow()
        const children = (yield* bus.devices).filter((d) => d.parent === "mfd0")
        expect(children.map((d) => [d.name, d.state, d.driver])).toEqual([
          ["mfd0.acme.gpio.0", "bound", "gpio"],
          ["mfd0.acme.gpio.1", "bound", "gpio"]
        ])
        const report = yield* bus.unbind("mfd0")
        // Children last registered first, each with its own report; then the parent's remove.
        expect(report.children.map((r) => [r.device, r.fibersInterrupted])).toEqual([
          ["mfd0.acme.gpio.1", 1],
          ["mfd0.acme.gpio.0", 1]
        ])
        expect(log.entries).toEqual([
          "acquire mfd regs",
          "gpio mfd0.acme.gpio.0: 32 lines",
          "gpio mfd0.acme.gpio.1: 8 lines",
          "gpio mfd0.acme.gpio.1 fiber stopped",
          "gpio mfd0.acme.gpio.0 fiber stopped",
          "late register: ParentUnbinding",
          "release mfd regs"
        ])
        expect(children.map((d) => d.state)).toEqual(["removed", "removed"])
      })))

  it.effect("data of a device that is not such a child is a defect with a clear message", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const plain = yield* bus.addDevice({ name: "plain0", ids: {} })
        expect(() => Auxiliary.data(Gpio, plain)).toThrow(`device "plain0" is not an auxiliary device "acme.gpio"`)
      })))
})
