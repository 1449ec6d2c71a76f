import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Bus, Driver } from "@devscope/core"
import { Log, resource, tags, withBus } from "./utils.js"

const Edu = Driver.brand("edu")

describe("smoke", () => {
  it.effect("binds and unbinds with LIFO release", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const driver = Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.mergeAll(resource(Edu, log, "a")).pipe(Layer.provideMerge(resource(Edu, log, "b")))
        })
        yield* bus.registerDriver(driver)
        const dev = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(dev.state).toBe("bound")
        const report = yield* bus.unbind(dev)
        expect(dev.state).toBe("unbound")
        expect(log.entries).toEqual(["acquire b", "acquire a", "release a", "release b"])
        expect(report.released).toEqual(["a", "b"])
        expect(tags(yield* bus.history)).toEqual([
          "DriverRegistered", "DeviceAdded", "Probing", "Bound", "Unbinding", "Unbound"
        ])
      })
    ))
})
