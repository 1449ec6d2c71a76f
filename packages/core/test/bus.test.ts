import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, FastCheck as fc, Fiber, Layer, Queue, Stream, TestClock } from "effect"
import { DeviceError, Driver } from "@devscope/core"
import { Log, resource, tags, withBus } from "./utils.js"

const Edu = Driver.brand("edu")
const Nic = Driver.brand("nic")

const eduDriver = (log: Log) =>
  Driver.make(Edu, {
    match: [{ vendor: 1 }],
    probe: () => resource(Edu, log, "b").pipe(Layer.provideMerge(resource(Edu, log, "a")))
  })

describe("bus", () => {
  it.effect("double unbind, unbind of an unbound device, bind of a removed device: typed errors, no state change", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(eduDriver(log))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* bus.unbind(device)
        const before = { events: (yield* bus.history).length, log: log.entries.length, state: device.state }

        expect(yield* Effect.flip(bus.unbind(device))).toEqual(new DeviceError.NotBound({ device: "edu0" }))
        expect(yield* Effect.flip(bus.unbind("edu0"))).toEqual(new DeviceError.NotBound({ device: "edu0" }))
        const after = { events: (yield* bus.history).length, log: log.entries.length, state: device.state }
        expect(after).toEqual(before)

        yield* bus.removeDevice(device)
        const removed = { events: (yield* bus.history).length, log: log.entries.length, state: device.state }
        expect(yield* Effect.flip(bus.bind(device))).toEqual(new DeviceError.DeviceRemoved({ device: "edu0" }))
        expect(yield* Effect.flip(bus.unbind(device))).toEqual(new DeviceError.DeviceRemoved({ device: "edu0" }))
        expect(yield* Effect.flip(bus.removeDevice(device))).toEqual(new DeviceError.DeviceRemoved({ device: "edu0" }))
        expect(yield* Effect.flip(bus.bind("edu0"))).toEqual(new DeviceError.DeviceNotFound({ device: "edu0" }))
        expect({ events: (yield* bus.history).length, log: log.entries.length, state: device.state }).toEqual(removed)
        expect(device.state).toBe("removed")
      })
    ))

  it.effect("bind errors: already bound, unknown driver, driver that does not match, no match; duplicates", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(eduDriver(log))
        yield* bus.registerDriver(Driver.make(Nic, { match: [{ vendor: 2 }], probe: Layer.empty }))
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const other = yield* bus.addDevice({ name: "x0", ids: { vendor: 9 } })
        expect(other.state).toBe("unbound")
        expect(yield* Effect.flip(bus.bind(device))).toEqual(new DeviceError.AlreadyBound({ device: "edu0", driver: "edu" }))
        expect(yield* Effect.flip(bus.bind(other, "blk"))).toEqual(new DeviceError.DriverNotFound({ driver: "blk" }))
        expect(yield* Effect.flip(bus.bind(other, "nic"))).toEqual(
          new DeviceError.NoMatchingDriver({ device: "x0", driver: "nic" })
        )
        expect(yield* Effect.flip(bus.bind(other))).toEqual(new DeviceError.NoMatchingDriver({ device: "x0" }))
        expect(yield* Effect.flip(bus.addDevice({ name: "x0" }))).toEqual(new DeviceError.DeviceExists({ device: "x0" }))
        expect(yield* Effect.flip(bus.registerDriver(eduDriver(log)))).toEqual(
          new DeviceError.DriverAlreadyRegistered({ driver: "edu" })
        )
        expect(yield* Effect.flip(bus.unregisterDriver("blk"))).toEqual(new DeviceError.DriverNotFound({ driver: "blk" }))
        expect(yield* Effect.flip(bus.device("nope"))).toEqual(new DeviceError.DeviceNotFound({ device: "nope" }))
        expect(log.entries).toEqual(["acquire a", "acquire b"])
      })
    ))

  it.effect("match tables: every listed id must match; array ids match by membership; predicates work", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const Temp = Driver.brand("temp")
        yield* bus.registerDriver(Driver.make(Temp, { match: [{ compatible: "acme,temp" }], probe: Layer.empty }))
        yield* bus.registerDriver(
          Driver.make(Nic, { match: (d) => d.name.startsWith("eth"), probe: Layer.empty })
        )
        yield* bus.registerDriver(Driver.make(Edu, { match: [{ vendor: 1, device: 2 }], probe: Layer.empty }))
        const sensor = yield* bus.addDevice({ name: "s", ids: { compatible: ["acme,temp-v2", "acme,temp"] } })
        const eth = yield* bus.addDevice({ name: "eth0" })
        const half = yield* bus.addDevice({ name: "e", ids: { vendor: 1, device: 3 } })
        const full = yield* bus.addDevice({ name: "f", ids: { vendor: 1, device: 2 } })
        expect([sensor.driver, eth.driver, half.driver, full.driver]).toEqual(["temp", "nic", undefined, "edu"])
      })
    ))

  it.effect("driver unregister unbinds all its devices (cause unload) and leaves others alone", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(eduDriver(log))
        yield* bus.registerDriver(Driver.make(Nic, { match: [{ vendor: 2 }], probe: () => resource(Nic, log, "n") }))
        for (const name of ["e0", "e1", "e2"]) yield* bus.addDevice({ name, ids: { vendor: 1 } })
        const nic = yield* bus.addDevice({ name: "n0", ids: { vendor: 2 } })
        const reports = yield* bus.unregisterDriver("edu")
        expect(reports.map((r) => [r.device, r.cause])).toEqual([["e0", "unload"], ["e1", "unload"], ["e2", "unload"]])
        expect(log.count("release a")).toBe(3)
        expect(log.count("release b")).toBe(3)
        for (const device of yield* bus.devices) {
          expect(device.state).toBe(device.name === "n0" ? "bound" : "unbound")
        }
        expect(nic.driver).toBe("nic")
        expect(yield* bus.drivers).toEqual(["nic"])
        // A device added now finds no driver.
        expect((yield* bus.addDevice({ name: "e3", ids: { vendor: 1 } })).state).toBe("unbound")
        expect(tags(yield* bus.history)).toContain("DriverUnregistered")
      })
    ))

  it.effect("driver unregister waits for an in-flight probe, then unbinds that device too", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.sleep("1 second")).pipe(Layer.provideMerge(resource(Edu, log, "a")))
        }))
        const adding = yield* Effect.fork(bus.addDevice({ name: "e0", ids: { vendor: 1 } }))
        yield* TestClock.adjust("10 millis")
        const unregistering = yield* Effect.fork(bus.unregisterDriver("edu"))
        yield* TestClock.adjust("1 second")
        const device = yield* Fiber.join(adding)
        const reports = yield* Fiber.join(unregistering)
        expect(reports.map((r) => r.device)).toEqual(["e0"])
        expect(device.state).toBe("unbound")
        expect(log.entries).toEqual(["acquire a", "release a"])
      })
    ))

  it.effect("different devices probe concurrently; operations on one device are serialised", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: (device) =>
            Layer.effectDiscard(
              Effect.zipRight(log.push(`probe ${device.name} start`), Effect.sleep("1 second")).pipe(
                Effect.zipRight(log.push(`probe ${device.name} end`))
              )
            )
        }))
        const adds = yield* Effect.fork(Effect.all([
          bus.addDevice({ name: "e0", ids: { vendor: 1 } }),
          bus.addDevice({ name: "e1", ids: { vendor: 1 } })
        ], { concurrency: "unbounded" }))
        yield* TestClock.adjust("1 second")
        const [e0, e1] = yield* Fiber.join(adds)
        // Both probes ran in the same virtual second: they overlapped.
        expect(log.entries.slice(0, 2).sort()).toEqual(["probe e0 start", "probe e1 start"])
        expect([e0.state, e1.state]).toEqual(["bound", "bound"])
        // On one device, a second bind waits for the first to finish, then sees AlreadyBound.
        yield* bus.unbind(e0)
        const both = yield* Effect.fork(Effect.all([bus.bind(e0), bus.bind(e0)], { concurrency: "unbounded", mode: "either" }))
        yield* TestClock.adjust("1 second")
        const results = yield* Fiber.join(both)
        expect(results.map((r) => r._tag).sort()).toEqual(["Left", "Right"])
        expect(log.count("probe e0 start")).toBe(2)
        expect(log.entries.slice(-2)).toEqual(["probe e0 start", "probe e0 end"])
      })
    ))

  it.effect("lifecycle events are published as a stream, with sequence numbers and Clock time", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        const subscription = yield* bus.subscribe
        const collector = yield* Effect.fork(Stream.runCollect(Stream.take(bus.events, 7)))
        // The stream subscribes when it starts running; let it start.
        yield* TestClock.adjust("0 millis")
        yield* bus.registerDriver(eduDriver(log))
        yield* TestClock.adjust("5 millis")
        const device = yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* bus.removeDevice(device)
        const events = Chunk.toReadonlyArray(yield* Fiber.join(collector))
        expect(tags(events)).toEqual([
          "DriverRegistered", "DeviceAdded", "Probing", "Bound", "Unbinding", "Unbound", "DeviceRemoved"
        ])
        expect(events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 5, 6])
        expect(events.map((e) => e.at)).toEqual([0, 5, 5, 5, 5, 5, 5])
        expect(Chunk.toReadonlyArray(yield* Queue.takeAll(subscription))).toEqual(events)
      })
    ))
})

describe("concurrency", () => {
  const Op = fc.constantFrom("bind", "unbind", "remove", "add")
  it.effect.prop(
    "concurrent bind/unbind/remove of one device: consistent final state, each resource released exactly once",
    [fc.array(fc.tuple(Op, fc.nat(4)), { minLength: 1, maxLength: 24 }), fc.nat(4)],
    ([ops, slowness]) =>
      withBus((bus) =>
        Effect.gen(function*() {
          const released = new Map<number, number>()
          let acquired = 0
          // A resource whose acquire and release take virtual time, so operations interleave.
          const counted = () => Layer.scopedDiscard(Effect.acquireRelease(
            Effect.sleep(`${slowness} millis`).pipe(Effect.map(() => acquired++)),
            (id) =>
              Effect.sleep(`${slowness} millis`).pipe(
                Effect.zipRight(Effect.sync(() => released.set(id, (released.get(id) ?? 0) + 1)))
              )
          ))
          yield* bus.registerDriver(Driver.make(Edu, {
            match: [{ vendor: 1 }],
            probe: () => counted().pipe(Layer.provideMerge(counted()))
          }))
          const operation = (op: string): Effect.Effect<unknown, { readonly _tag: string }> =>
            op === "bind"
              ? bus.bind("edu0")
              : op === "unbind"
              ? bus.unbind("edu0")
              : op === "remove"
              ? bus.removeDevice("edu0")
              : bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
          const run = ([op, delay]: readonly [string, number]) =>
            Effect.sleep(`${delay} millis`).pipe(Effect.zipRight(operation(op)), Effect.either)
          const all = yield* Effect.fork(
            Effect.zipRight(
              bus.addDevice({ name: "edu0", ids: { vendor: 1 } }),
              Effect.forEach(ops, run, { concurrency: "unbounded" })
            )
          )
          yield* TestClock.adjust("1 second")
          const results = yield* Fiber.join(all)
          // Every failure is one of the typed, expected ones.
          for (const result of results) {
            if (result._tag === "Left") {
              expect(["AlreadyBound", "NotBound", "DeviceNotFound", "DeviceExists", "DeviceRemoved"]).toContain(
                result.left._tag
              )
            }
          }
          const devices = yield* bus.devices
          expect(devices.length).toBeLessThanOrEqual(1)
          const device = devices[0]
          if (device !== undefined) expect(["bound", "unbound"]).toContain(device.state)
          const live = device?.state === "bound" ? 2 : 0
          // Released at most once each; what is not released belongs to the live binding.
          expect([...released.values()].every((n) => n === 1)).toBe(true)
          expect(acquired - released.size).toBe(live)
          // Remove what is left: now every resource is released exactly once.
          const cleanup = yield* Effect.fork(Effect.ignore(bus.removeDevice("edu0")))
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(cleanup)
          expect(released.size).toBe(acquired)
          expect([...released.values()].every((n) => n === 1)).toBe(true)
        })
      ),
    { fastCheck: { numRuns: 80 } }
  )
})
