import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, FastCheck as fc, Fiber, Layer } from "effect"
import type { Bus, Lifecycle } from "@devscope/core"
import { DeviceError, Driver } from "@devscope/core"
import { Log, resource, withBus } from "./utils.js"

const Clk = Driver.brand("clk")
const Uart = Driver.brand("uart")
const Tty = Driver.brand("tty")

/** A driver for devices with `{ role }`: two logged resources `<device>.a`, `<device>.b` and a logged remove. */
const logged = <D extends string>(brand: Driver.Brand<D>, log: Log, role: string) =>
  Driver.make(brand, {
    match: [{ role }],
    probe: (device) =>
      resource(brand, log, `${device.name}.b`).pipe(Layer.provideMerge(resource(brand, log, `${device.name}.a`))),
    remove: (device) => log.push(`remove ${device.name}`)
  })

const teardown = (name: string) => [`remove ${name}`, `release ${name}.b`, `release ${name}.a`]

const unbounds = (events: ReadonlyArray<Lifecycle.LifecycleEvent>) =>
  events.flatMap((e) => e._tag === "Unbound" ? [[e.device.name, e.cause]] : [])

/** A bus with a clock supplier `clk0` and a uart consumer `uart0` linked to it, both bound. */
const pair = (bus: Bus.Service, log: Log) =>
  Effect.gen(function*() {
    yield* bus.registerDriver(logged(Clk, log, "clk"))
    yield* bus.registerDriver(logged(Uart, log, "uart"))
    const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
    const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } })
    yield* bus.link(uart, clk)
    expect([clk.state, uart.state]).toEqual(["bound", "bound"])
    log.entries.length = 0
    return { clk, uart }
  })

describe("device links: the consumer is unbound before its supplier, with the same cause", () => {
  const ways: ReadonlyArray<
    readonly [string, Lifecycle.UnbindCause, (bus: Bus.Service) => Effect.Effect<Lifecycle.UnbindReport | undefined, unknown>]
  > = [
    ["manual unbind", "manual", (bus) => bus.unbind("clk0")],
    ["driver unload", "unload", (bus) => Effect.map(bus.unregisterDriver("clk"), (reports) => reports[0])],
    ["hot-unplug", "hot-unplug", (bus) => bus.removeDevice("clk0")],
    ["surprise removal", "surprise", (bus) => bus.removeDevice("clk0", { cause: "surprise" })]
  ]
  for (const [name, cause, unbindSupplier] of ways) {
    it.effect(name, () =>
      withBus((bus) =>
        Effect.gen(function*() {
          const log = new Log()
          const { clk, uart } = yield* pair(bus, log)
          const report = yield* unbindSupplier(bus)
          // The consumer's remove and every release come entirely before the supplier's remove.
          expect(log.entries).toEqual([...teardown("uart0"), ...teardown("clk0")])
          expect(report?.device).toBe("clk0")
          expect(report?.cause).toBe(cause)
          expect(report?.consumers.map((r) => [r.device, r.cause, r.released])).toEqual([
            ["uart0", cause, ["uart0.b", "uart0.a"]]
          ])
          expect(unbounds(yield* bus.history)).toEqual([["uart0", cause], ["clk0", cause]])
          // The consumer stays on the bus, unbound (as in the kernel, it is not re-probed).
          expect(uart.state).toBe("unbound")
          expect(clk.state).toBe(cause === "hot-unplug" || cause === "surprise" ? "removed" : "unbound")
          expect((yield* bus.links).length).toBe(clk.state === "removed" ? 0 : 1)
        })
      ))
  }

  it.effect("bus shutdown (cause unload), even when the supplier was added first", () =>
    Effect.gen(function*() {
      const log = new Log()
      const history = yield* withBus((bus) => Effect.as(pair(bus, log), bus.history))
      expect(log.entries).toEqual([...teardown("uart0"), ...teardown("clk0")])
      expect(unbounds(yield* history)).toEqual([["uart0", "unload"], ["clk0", "unload"]])
    }))

  it.effect("recursively: tty0 consumes uart0 consumes clk0; unbinding clk0 unbinds tty0, then uart0, then clk0", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        yield* bus.registerDriver(logged(Uart, log, "uart"))
        yield* bus.registerDriver(logged(Tty, log, "tty"))
        yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } }, { suppliers: ["clk0"] })
        yield* bus.addDevice({ name: "tty0", ids: { role: "tty" } }, { suppliers: ["uart0"] })
        log.entries.length = 0
        const report = yield* bus.unbind("clk0")
        expect(log.entries).toEqual([...teardown("tty0"), ...teardown("uart0"), ...teardown("clk0")])
        expect(report.consumers.map((r) => r.device)).toEqual(["uart0"])
        expect(report.consumers[0]!.consumers.map((r) => [r.device, r.cause])).toEqual([["tty0", "manual"]])
        expect(unbounds(yield* bus.history)).toEqual([["tty0", "manual"], ["uart0", "manual"], ["clk0", "manual"]])
        // A consumer may be unbound on its own; its supplier stays bound.
        yield* bus.bind("clk0")
        yield* bus.bind("uart0")
        const alone = yield* bus.unbind("uart0")
        expect(alone.consumers).toEqual([])
        expect((yield* bus.device("clk0")).state).toBe("bound")
      })
    ))

  it.effect("a consumer whose probe is running when its supplier unbinds: the unbind waits for it, then unbinds it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const gate = yield* Deferred.make<void>()
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        yield* bus.registerDriver(Driver.make(Uart, {
          match: [{ role: "uart" }],
          probe: () => Layer.effectDiscard(Deferred.await(gate)).pipe(Layer.provideMerge(resource(Uart, log, "u"))),
          remove: () => log.push("remove uart0")
        }))
        const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        const adding = yield* Effect.fork(bus.addDevice({ name: "uart0", ids: { role: "uart" } }, { suppliers: [clk] }))
        yield* Effect.yieldNow().pipe(Effect.repeatN(10))
        const uart = yield* bus.device("uart0")
        expect(uart.state).toBe("probing")
        const unbinding = yield* Effect.fork(bus.unbind(clk))
        yield* Effect.yieldNow().pipe(Effect.repeatN(10))
        const during = { states: [clk.state, uart.state], log: log.entries.slice() }
        yield* Deferred.succeed(gate, undefined)
        expect(during).toEqual({
          states: ["unbinding", "probing"],
          log: ["acquire clk0.a", "acquire clk0.b", "acquire u"]
        })
        yield* Fiber.join(adding)
        const report = yield* Fiber.join(unbinding)
        expect(log.entries.slice(3)).toEqual(["remove uart0", "release u", ...teardown("clk0")])
        expect(report.consumers.map((r) => [r.device, r.cause])).toEqual([["uart0", "manual"]])
        expect([clk.state, uart.state]).toEqual(["unbound", "unbound"])
      })
    ))
})

describe("device links: binding order", () => {
  it.effect("a consumer's probe is deferred while its supplier is not bound, then binds automatically after it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(logged(Uart, log, "uart"))
        const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        // Auto-bind on device add follows the link.
        const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } }, { suppliers: [clk] })
        expect(uart.state).toBe("deferred")
        const reason = "supplier \"clk0\" is not bound"
        expect(yield* Effect.flip(bus.bind(uart))).toEqual(
          new DeviceError.ProbeDeferred({ device: "uart0", driver: "uart", reason })
        )
        expect(uart.state).toBe("deferred")
        expect(log.entries).toEqual([])
        const deferredEvents = (yield* bus.history).filter((e) => e._tag === "ProbeDeferred")
        expect(deferredEvents.map((e) => e._tag === "ProbeDeferred" && e.reason)).toEqual([reason, reason])
        // Auto-bind on driver register binds the supplier; the consumer follows.
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        expect([clk.state, uart.state]).toEqual(["bound", "bound"])
        expect(log.entries).toEqual(["acquire clk0.a", "acquire clk0.b", "acquire uart0.a", "acquire uart0.b"])
        // A manual unbind and re-bind of the supplier leaves the consumer unbound (as the
        // kernel does), and binding it then works.
        yield* bus.unbind(clk)
        yield* bus.bind(clk)
        expect(uart.state).toBe("unbound")
        yield* bus.bind(uart)
        expect(uart.state).toBe("bound")
      })
    ))

  it.effect("a consumer whose driver registers before its supplier's is deferred too", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } }, { suppliers: ["clk0"] })
        yield* bus.registerDriver(logged(Uart, log, "uart"))
        expect(uart.state).toBe("deferred")
        // Deferred before its probe ran.
        expect(log.entries).toEqual([])
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        expect([clk.state, uart.state]).toEqual(["bound", "bound"])
      })
    ))

  it.effect("linking a bound consumer to a supplier that is not bound unbinds the consumer first and defers it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(logged(Uart, log, "uart"))
        const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } })
        expect(uart.state).toBe("bound")
        yield* bus.link(uart, clk)
        expect(uart.state).toBe("deferred")
        expect(log.entries).toEqual(["acquire uart0.a", "acquire uart0.b", ...teardown("uart0")])
        expect(unbounds(yield* bus.history)).toEqual([["uart0", "manual"]])
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        expect([clk.state, uart.state]).toEqual(["bound", "bound"])
        // Linking a bound consumer to a bound supplier changes nothing.
        const other = yield* bus.addDevice({ name: "clk1", ids: { role: "clk" } })
        yield* bus.link(uart, other)
        expect(uart.state).toBe("bound")
        expect((yield* bus.suppliersOf(uart)).map((d) => d.name)).toEqual(["clk0", "clk1"])
      })
    ))

  it.effect("a link made during the consumer's probe, to a supplier that is not bound, defers that probe", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Uart, {
          match: [{ role: "uart" }],
          // The kernel pattern: the consumer's probe links itself to its supplier.
          probe: (device) =>
            Layer.effectDiscard(Effect.orDie(bus.link(device, "clk0"))).pipe(
              Layer.provideMerge(resource(Uart, log, "u"))
            )
        }))
        yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } })
        expect(uart.state).toBe("deferred")
        expect(log.entries).toEqual(["acquire u", "release u"])
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        expect(uart.state).toBe("bound")
      })
    ))

  it.effect("unlink: the supplier's unbind no longer touches the consumer; a consumer deferred on it is retried", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const { clk, uart } = yield* pair(bus, log)
        yield* bus.unlink(uart, clk)
        yield* bus.unlink(uart, clk)
        yield* bus.unlink("nope", clk)
        expect(yield* bus.links).toEqual([])
        const report = yield* bus.unbind(clk)
        expect(report.consumers).toEqual([])
        expect(uart.state).toBe("bound")
        yield* bus.unbind(uart)
        yield* bus.link(uart, clk)
        expect(yield* Effect.flip(bus.bind(uart))).toMatchObject({ _tag: "ProbeDeferred" })
        yield* bus.unlink(uart, clk)
        expect([clk.state, uart.state]).toEqual(["unbound", "bound"])
      })
    ))
})

describe("device links: the graph", () => {
  it.effect("a link that would close a cycle, a self-link included, fails with LinkCycle; linking twice is a no-op", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        for (const name of ["a", "b", "c"]) yield* bus.addDevice({ name })
        expect(yield* Effect.flip(bus.link("a", "a"))).toEqual(
          new DeviceError.LinkCycle({ consumer: "a", supplier: "a", path: ["a", "a"] })
        )
        yield* bus.link("b", "a")
        yield* bus.link("c", "b")
        yield* bus.link("c", "b")
        const error = yield* Effect.flip(bus.link("a", "c"))
        expect(error).toEqual(new DeviceError.LinkCycle({ consumer: "a", supplier: "c", path: ["a", "c", "b", "a"] }))
        expect(error.message).toBe("Linking \"a\" as a consumer of \"c\" would make a cycle: a consumes c consumes b consumes a")
        expect(yield* Effect.flip(bus.link("b", "c"))).toMatchObject({ _tag: "LinkCycle", path: ["b", "c", "b"] })
        const links = (yield* bus.links).map((l) => [l.consumer.name, l.supplier.name])
        expect(links).toEqual([["b", "a"], ["c", "b"]])
        // Not a cycle: a diamond.
        yield* bus.link("c", "a")
        expect((yield* bus.consumersOf("a")).map((d) => d.name)).toEqual(["b", "c"])
        expect(yield* Effect.flip(bus.link("a", "nope"))).toEqual(new DeviceError.DeviceNotFound({ device: "nope" }))
      })
    ))

  it.effect("removing a device removes its links, after unbinding its consumers", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(logged(Clk, log, "clk"))
        yield* bus.registerDriver(logged(Uart, log, "uart"))
        yield* bus.registerDriver(logged(Tty, log, "tty"))
        const clk = yield* bus.addDevice({ name: "clk0", ids: { role: "clk" } })
        const uart = yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } }, { suppliers: [clk] })
        yield* bus.addDevice({ name: "tty0", ids: { role: "tty" } }, { suppliers: [uart] })
        // Removing the middle device: its consumer goes first; its own supplier is untouched.
        log.entries.length = 0
        const report = yield* bus.removeDevice(uart)
        expect(log.entries).toEqual([...teardown("tty0"), ...teardown("uart0")])
        expect(report?.consumers.map((r) => [r.device, r.cause])).toEqual([["tty0", "hot-unplug"]])
        expect(yield* bus.links).toEqual([])
        expect(yield* bus.consumersOf(clk)).toEqual([])
        expect(yield* bus.suppliersOf("tty0")).toEqual([])
        expect(clk.state).toBe("bound")
        // A stale reference cannot be linked; a new device of the same name starts unlinked.
        expect(yield* Effect.flip(bus.link(uart, clk))).toEqual(new DeviceError.DeviceRemoved({ device: "uart0" }))
        expect(yield* Effect.flip(bus.addDevice({ name: "x" }, { suppliers: [uart] }))).toEqual(
          new DeviceError.DeviceRemoved({ device: "uart0" })
        )
        yield* bus.addDevice({ name: "uart0", ids: { role: "uart" } })
        expect(yield* bus.suppliersOf("uart0")).toEqual([])
        expect(yield* bus.consumersOf("uart0")).toEqual([])
      })
    ))
})

describe("device links: concurrency", () => {
  const Op = fc.constantFrom(
    "bind s", "unbind s", "remove s", "surprise s", "add s", "unload s", "register s",
    "bind c", "unbind c", "remove c", "add c", "link", "unlink"
  )
  const expected = [
    "AlreadyBound", "NotBound", "DeviceNotFound", "DeviceExists", "DeviceRemoved", "ProbeDeferred",
    "NoMatchingDriver", "DriverNotFound", "DriverAlreadyRegistered"
  ]
  it.effect.prop(
    "random concurrent operations: consumer bound ⇒ supplier bound at every event; each resource released once",
    [fc.array(fc.tuple(Op, fc.nat(6)), { minLength: 1, maxLength: 16 }), fc.nat(3)],
    ([ops, slowness]) => {
      const violations: Array<string> = []
      let bus: Bus.Service | undefined
      const onEvent = (event: Lifecycle.LifecycleEvent) => {
        if (bus === undefined) return
        for (const { consumer, supplier } of Effect.runSync(bus.links)) {
          if (consumer.state === "bound" && supplier.state !== "bound" && supplier.state !== "unbinding") {
            violations.push(`${event._tag} #${event.seq}: ${consumer.name} bound, ${supplier.name} ${supplier.state}`)
          }
        }
      }
      return withBus((b) =>
        Effect.gen(function*() {
          bus = b
          const released = new Map<number, number>()
          let acquired = 0
          const slow = Effect.yieldNow().pipe(Effect.repeatN(slowness))
          const counted = () =>
            Layer.scopedDiscard(Effect.acquireRelease(
              Effect.zipRight(slow, Effect.sync(() => acquired++)),
              (id) => Effect.zipRight(slow, Effect.sync(() => released.set(id, (released.get(id) ?? 0) + 1)))
            ))
          const driver = <D extends string>(brand: Driver.Brand<D>, role: string) =>
            Driver.make(brand, {
              match: [{ role }],
              probe: () => counted().pipe(Layer.provideMerge(counted())),
              remove: () => slow
            })
          const addS = b.addDevice({ name: "s0", ids: { role: "clk" } })
          const addC = b.addDevice({ name: "c0", ids: { role: "uart" } }, { suppliers: ["s0"] })
          yield* b.registerDriver(driver(Clk, "clk"))
          yield* b.registerDriver(driver(Uart, "uart"))
          yield* addS
          yield* addC
          const operation = (op: string): Effect.Effect<unknown, { readonly _tag: string }> => {
            switch (op) {
              case "bind s":
                return b.bind("s0")
              case "unbind s":
                return b.unbind("s0")
              case "remove s":
                return b.removeDevice("s0")
              case "surprise s":
                return b.removeDevice("s0", { cause: "surprise" })
              case "add s":
                return addS
              case "unload s":
                return b.unregisterDriver("clk")
              case "register s":
                return b.registerDriver(driver(Clk, "clk"))
              case "bind c":
                return b.bind("c0")
              case "unbind c":
                return b.unbind("c0")
              case "remove c":
                return b.removeDevice("c0")
              case "add c":
                return addC
              case "link":
                return b.link("c0", "s0")
              default:
                return b.unlink("c0", "s0")
            }
          }
          const results = yield* Effect.forEach(
            ops,
            ([op, delay]) => Effect.either(Effect.zipRight(Effect.yieldNow().pipe(Effect.repeatN(delay)), operation(op))),
            { concurrency: "unbounded" }
          )
          for (const result of results) {
            if (result._tag === "Left") expect(expected).toContain(result.left._tag)
          }
          expect(violations).toEqual([])
          // Settled: nothing in flight, every link holds, and no consumer waits for a bound supplier.
          const devices = yield* b.devices
          for (const device of devices) expect(["bound", "unbound", "deferred"]).toContain(device.state)
          for (const { consumer, supplier } of yield* b.links) {
            if (consumer.state === "bound") expect(supplier.state).toBe("bound")
            if (consumer.state === "deferred" && (yield* b.drivers).includes("uart")) {
              expect(supplier.state).not.toBe("bound")
            }
          }
          const live = devices.filter((d) => d.state === "bound").length * 2
          expect([...released.values()].every((n) => n === 1)).toBe(true)
          expect(acquired - released.size).toBe(live)
          // Remove what is left: now every resource is released exactly once.
          for (const device of devices) yield* Effect.ignore(b.removeDevice(device))
          expect(released.size).toBe(acquired)
          expect([...released.values()].every((n) => n === 1)).toBe(true)
          expect(violations).toEqual([])
          expect(yield* b.leaks).toEqual([])
        }), { onEvent })
    },
    { fastCheck: { numRuns: 300 } }
  )
})
