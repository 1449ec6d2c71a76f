/**
 * Driver code that misbehaves on purpose: each test is one way a hostile driver (or observer,
 * or caller) broke the unbind contract before the bus bounded every wait and ran its
 * sequences apart from their callers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, Scope, TestClock } from "effect"
import { Bound, Bus, Core, Devres, Driver, Gate, Lifecycle, Registration } from "@devscope/core"
import { advance, Log, resource, withBus } from "./utils.js"

const Edu = Driver.brand("edu")
const Child = Driver.brand("child")

const pollDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) => fiber.unsafePoll() !== null

describe("hostile drivers cannot break the unbind", () => {
  it.effect("1. an uninterruptible binding fiber (Bound.fork, forkScoped) is reported; the unbind ends and the lock is free", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Edu.Bound
              yield* Bound.fork(bound, Effect.uninterruptible(Effect.never))
            })).pipe(
              Layer.provideMerge(Layer.scopedDiscard(Effect.forkScoped(Effect.uninterruptible(Effect.never)))),
              Layer.provideMerge(resource(Edu, log, "r"))
            )
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        // Stopping the fibers (100 ms), then the forkScoped fiber's finalizer, cut (100 ms)
        // and detached (100 ms more): well within a second.
        yield* advance(1000)
        expect(pollDone(unbinding)).toBe(true)
        const report = yield* Fiber.join(unbinding)
        expect(report.leaks.filter((l) => l._tag === "FiberLeak")).toHaveLength(2)
        expect(log.entries).toEqual(["acquire r", "release r"])
        // The lock is free: the device binds again (and is removed, under virtual time, before
        // the bus's shutdown would wait for the same fibers under a clock nobody advances).
        yield* bus.bind("edu0")
        expect((yield* bus.device("edu0")).state).toBe("bound")
        const removal = yield* Effect.fork(bus.removeDevice("edu0"))
        yield* advance(1000)
        expect(pollDone(removal)).toBe(true)
      }), { fiberStopTimeout: "100 millis", releaseTimeout: "100 millis" }))

  it.effect("2. a registration destroy stuck uninterruptibly is detached at destroyDeadline and reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let registration: Registration.Registration<"edu", {}> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              registration = yield* Registration.register(Edu, {
                name: "chr0",
                open: () => Effect.succeed({}),
                destroy: () => Effect.uninterruptible(Effect.never),
                ops: {}
              }, { destroyDeadline: "10 millis" })
            }))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* registration!.open()
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* TestClock.adjust("25 millis")
        expect(pollDone(unbinding)).toBe(true)
        const report = yield* Fiber.join(unbinding)
        expect(report.leaks).toMatchObject([{ _tag: "Detached", phase: "destroy", deadlineMillis: 10 }])
        expect((yield* bus.device("edu0")).state).toBe("unbound")
      })))

  it.effect("3. an observer that throws on Unbinding stops nothing: everything is released and revoked", () =>
    Effect.gen(function*() {
      const log = new Log()
      let token: Bound.Bound<"edu"> | undefined
      let held: Devres.Devres<string, "edu"> | undefined
      const onEvent = (event: Lifecycle.LifecycleEvent) => {
        if (event._tag === "Unbinding") throw new Error("observer bug")
      }
      yield* withBus((bus) =>
        Effect.gen(function*() {
          yield* bus.registerDriver(Driver.make(Edu, {
            match: [{ vendor: 1 }],
            probe: () =>
              Layer.effectDiscard(Effect.gen(function*() {
                token = yield* Edu.Bound
                held = yield* Devres.acquireRelease(Edu, Effect.succeed("r"), () => log.push("release r"), { label: "r" })
              }))
          }))
          yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
          const report = yield* bus.removeDevice("edu0")
          expect(report!.released).toEqual(["r"])
          expect(log.entries).toEqual(["release r"])
          expect(Bound.isLive(token!)).toBe(false)
          expect(held!.tryAccess()).toEqual(Option.none())
          expect(yield* Effect.flip(bus.device("edu0"))).toMatchObject({ _tag: "DeviceNotFound" })
          const failed = (yield* bus.history).filter((e) => e._tag === "ObserverFailed")
          expect(failed).toMatchObject([{ _tag: "ObserverFailed", event: "Unbinding" }])
        }), { onEvent })
    }))

  it.effect("4. a device added by a binding is its child: own fibers and report, removed first at the parent's unbind", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(Child, {
          match: [{ vendor: 2 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Child.Bound
              yield* Bound.fork(bound, Effect.onInterrupt(Effect.never, () => log.push("child fiber stopped")))
              yield* Bound.fork(bound, Effect.onInterrupt(Effect.never, () => log.push("child fiber stopped")))
            })).pipe(Layer.provideMerge(resource(Child, log, "child r")))
        }))
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Edu.Bound
              yield* Bound.fork(bound, Effect.never)
              yield* bus.addDevice({ name: "edu0.aux0", ids: { vendor: 2 } })
            })).pipe(Layer.provideMerge(resource(Edu, log, "parent r")))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.yieldNow()
        const child = yield* bus.device("edu0.aux0")
        expect(child.parent).toBe("edu0")
        expect(child.state).toBe("bound")
        const report = yield* bus.unbind("edu0")
        expect(report.fibersInterrupted).toBe(1)
        expect(report.children).toHaveLength(1)
        expect(report.children[0]).toMatchObject({ device: "edu0.aux0", driver: "child", fibersInterrupted: 2 })
        expect(log.entries).toEqual([
          "acquire parent r",
          "acquire child r",
          "child fiber stopped",
          "child fiber stopped",
          "release child r",
          "release parent r"
        ])
        expect(child.state).toBe("removed")
        expect(Lifecycle.flatten(report).map((r) => r.device)).toEqual(["edu0.aux0", "edu0"])
      })))

  it.effect("5. during and after the shutdown nothing is added, registered or bound", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const bus = yield* Scope.extend(Bus.make(), scope)
      const refusals: Array<string> = []
      yield* bus.registerDriver(Driver.make(Edu, {
        match: [{ vendor: 1 }],
        probe: () => Layer.empty,
        // During the shutdown's unbind: a new device and a new driver are refused.
        remove: () =>
          Effect.gen(function*() {
            refusals.push((yield* Effect.flip(bus.addDevice({ name: "late0", ids: { vendor: 1 } })))._tag)
            refusals.push((yield* Effect.flip(bus.registerDriver(Driver.make(Child, { match: [], probe: () => Layer.empty }))))._tag)
          })
      }))
      yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
      yield* Scope.close(scope, Exit.void)
      expect(refusals).toEqual(["BusShutDown", "BusShutDown"])
      expect(yield* bus.devices).toEqual([])
      const after = yield* Effect.flip(bus.addDevice({ name: "edu1", ids: { vendor: 1 } }))
      expect(after).toMatchObject({ _tag: "BusShutDown", state: "closed" })
      expect(yield* bus.devices).toEqual([])
    }))

  it.effect("6. unregisterDriver from one of the driver's own fibers, or with its caller interrupted, runs to its end", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: (device) =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Edu.Bound
              // A fatal-error path: the first device's fiber unloads its own driver.
              if (device.name === "edu0") {
                yield* Bound.fork(bound, Effect.zipRight(Effect.sleep("1 second"), bus.unregisterDriver("edu")))
              }
            })),
          remove: () => Effect.sleep("10 millis")
        }))
        for (const name of ["edu0", "edu1", "edu2"]) yield* bus.addDevice({ name, ids: { vendor: 1 } })
        yield* TestClock.adjust("1 second")
        yield* TestClock.adjust("100 millis")
        expect((yield* bus.devices).map((d) => d.state)).toEqual(["unbound", "unbound", "unbound"])
        expect(yield* bus.drivers).toEqual([])
        expect((yield* bus.history).filter((e) => e._tag === "DriverUnregistered")).toHaveLength(1)
      })))

  it.effect("6b. an interrupted unregisterDriver caller stops waiting; the unload goes on and a second call joins it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => Layer.empty, remove: () => Effect.sleep("10 millis") }))
        for (const name of ["edu0", "edu1", "edu2"]) yield* bus.addDevice({ name, ids: { vendor: 1 } })
        const first = yield* Effect.fork(bus.unregisterDriver("edu"))
        yield* TestClock.adjust("5 millis")
        const second = yield* Effect.fork(bus.unregisterDriver("edu"))
        yield* Fiber.interrupt(first)
        yield* TestClock.adjust("100 millis")
        const reports = yield* Fiber.join(second)
        expect(reports.map((r) => r.device)).toEqual(["edu0", "edu1", "edu2"])
        expect((yield* bus.devices).map((d) => d.state)).toEqual(["unbound", "unbound", "unbound"])
        expect((yield* bus.history).filter((e) => e._tag === "DriverUnregistered")).toHaveLength(1)
        expect(yield* Effect.flip(bus.unregisterDriver("edu"))).toMatchObject({ _tag: "DriverNotFound" })
      })))

  it.effect("7. an early release still running when the unbind starts is waited for, in LIFO order, and its failure reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let a: Devres.Devres<string, "edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              a = yield* Devres.acquireRelease(
                Edu,
                Effect.succeed("a"),
                () => log.push("release a: start").pipe(Effect.zipRight(Effect.sleep("50 millis")), Effect.zipRight(log.push("release a: end")), Effect.zipRight(Effect.fail("a failed"))),
                { label: "a" }
              )
            })).pipe(Layer.provideMerge(resource(Edu, log, "b")))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const early = yield* Effect.fork(Devres.release(a!))
        yield* TestClock.adjust("10 millis")
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* TestClock.adjust("100 millis")
        const report = yield* Fiber.join(unbinding)
        yield* Effect.exit(Fiber.join(early))
        expect(log.entries).toEqual(["acquire b", "release a: start", "release a: end", "release b"])
        expect(report.releaseFailures.map((f) => f.resource)).toEqual(["a"])
      })))

  it.effect("8. deferred retries do not run in the binder's fiber: interrupting it does not stop a consumer's retried probe", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const Supplier = Driver.brand("supplier")
        yield* bus.registerDriver(Driver.make(Supplier, { match: [{ vendor: 3 }], probe: () => Layer.empty }))
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.sleep("10 millis"))
        }))
        yield* bus.addDevice({ name: "clk0", ids: { vendor: 3 } }).pipe(Effect.zipRight(bus.unbind("clk0")))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } }, { suppliers: ["clk0"] })
        expect((yield* bus.device("edu0")).state).toBe("deferred")
        const binder = yield* Effect.fork(bus.bind("clk0"))
        yield* TestClock.adjust("5 millis")
        expect((yield* bus.device("clk0")).state).toBe("bound")
        expect((yield* bus.device("edu0")).state).toBe("probing")
        yield* Fiber.interrupt(binder)
        yield* TestClock.adjust("10 millis")
        expect((yield* bus.device("edu0")).state).toBe("bound")
      })))

  it.effect("9. a release that never returns and a remove that waits forever are cut: later releases, revocation and Unbound still happen", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        let token: Bound.Bound<"edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              token = yield* Edu.Bound
              yield* Devres.acquireRelease(Edu, Effect.succeed("stuck"), () => Effect.uninterruptible(Effect.never), { label: "stuck" })
            })).pipe(Layer.provideMerge(resource(Edu, log, "first"))),
          remove: () => Effect.never
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        const unbinding = yield* Effect.fork(bus.unbind("edu0"))
        yield* advance(1000)
        expect(pollDone(unbinding)).toBe(true)
        const report = yield* Fiber.join(unbinding)
        expect(report.removeFailure).toBeDefined()
        expect(log.entries).toEqual(["acquire first", "release first"])
        expect(report.leaks).toMatchObject([{ _tag: "Detached", phase: "release", what: "stuck", deadlineMillis: 100 }])
        expect(Bound.isLive(token!)).toBe(false)
        expect((yield* bus.history).some((e) => e._tag === "Unbound")).toBe(true)
        yield* bus.bind("edu0")
        expect((yield* bus.device("edu0")).state).toBe("bound")
        const removal = yield* Effect.fork(bus.removeDevice("edu0"))
        yield* advance(1000)
        expect(pollDone(removal)).toBe(true)
      }), { removeTimeout: "100 millis", releaseTimeout: "100 millis" }))

  it.effect("10. a Core token is valid only for the probe that received it, not during a later remove", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let kept: Core.Core<"edu"> | undefined
        const seen: Array<boolean> = []
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(Effect.map(Edu.Core, (core) => void (kept = core))),
          remove: () =>
            Effect.gen(function*() {
              const own = yield* Edu.Core
              seen.push(Core.isHeld(own), Core.isHeld(kept!))
            })
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        expect(Core.isHeld(kept!)).toBe(false)
        yield* bus.unbind("edu0")
        expect(seen).toEqual([true, false])
      })))

  it.effect("11. an early release that throws is in releaseFailures", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        let d: Devres.Devres<string, "edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              d = yield* Devres.acquireRelease(Edu, Effect.succeed("t"), (): Effect.Effect<void> => {
                throw new Error("thrown, not failed")
              }, { label: "thrower" })
            }))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        yield* Effect.exit(Devres.release(d!))
        const report = yield* bus.unbind("edu0")
        expect(report.releaseFailures).toMatchObject([{ resource: "thrower", atUnbind: false }])
      })))

  it.effect("12. removing the root of a 10,000-deep link chain on a strict bus returns the report", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(Edu, { match: [{ vendor: 1 }], probe: () => Layer.empty }))
        const depth = 10_000
        yield* bus.addDevice({ name: "d0", ids: { vendor: 1 } })
        for (let i = 1; i < depth; i++) yield* bus.addDevice({ name: `d${i}`, ids: { vendor: 1 } }, { suppliers: [`d${i - 1}`] })
        const report = yield* bus.removeDevice("d0")
        const all = Lifecycle.flatten(report!)
        expect(all).toHaveLength(depth)
        expect(all[0]!.device).toBe(`d${depth - 1}`)
        expect(all[depth - 1]!.device).toBe("d0")
      }), { strict: true }), 120_000)

  it.effect("13. fibers that escaped supervision holding the token are stopped by the unbind and reported", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const uses: Array<string> = []
        let gate: Gate.Gate<"edu"> | undefined
        yield* bus.registerDriver(Driver.make(Edu, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const bound = yield* Edu.Bound
              gate = yield* Gate.make(Edu, { name: "g" })
              // A root fiber outside the binding's supervision, holding the token.
              Effect.runFork(Effect.forever(Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => {
                if (Bound.isLive(bound)) uses.push("root")
              }))))
            }))
        }))
        yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
        // A user call that forks inside a gate section and leaves the fiber running.
        yield* gate!.enter((bound) =>
          Effect.asVoid(Effect.fork(Effect.forever(Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => {
            if (Bound.isLive(bound)) uses.push("section")
          })))))
        )
        const report = yield* bus.unbind("edu0")
        expect(report.leaks.map((l) => l._tag)).toEqual(["EscapedFiber", "EscapedFiber"])
        const how = report.leaks.map((l) => (l._tag === "EscapedFiber" ? l.how : "")).sort()
        expect(how[0]).toContain("root fiber started by binding code")
        expect(how[1]).toContain(`gate "g"`)
        expect(report.fibersInterrupted).toBe(2)
        // Stopped: neither uses the token after the unbind.
        const before = uses.length
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        expect(uses.length).toBe(before)
      })))
})

describe("found by review: the unbind still ends", () => {
  const P = Driver.brand("p")
  const C = Driver.brand("c")

  it.effect("a parent cannot be linked as a consumer of its own child (the lock orders would deadlock)", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(C, { match: [{ vendor: 2 }], probe: () => Layer.empty }))
        yield* bus.registerDriver(Driver.make(P, {
          match: [{ vendor: 1 }],
          probe: () => Layer.effectDiscard(bus.addDevice({ name: "p0.c0", ids: { vendor: 2 } }))
        }))
        yield* bus.addDevice({ name: "p0", ids: { vendor: 1 } })
        const refused = yield* Effect.flip(bus.link("p0", "p0.c0"))
        expect(refused).toMatchObject({ _tag: "LinkCycle", path: ["p0", "p0.c0", "p0"] })
        const report = yield* bus.unbind("p0")
        expect(report.children.map((r) => r.device)).toEqual(["p0.c0"])
      })))

  it.effect("a child still probing in one of its parent's fibers is cancelled: the parent's unbind ends", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        yield* bus.registerDriver(Driver.make(C, { match: [{ vendor: 2 }], probe: () => Layer.effectDiscard(Effect.never) }))
        yield* bus.registerDriver(Driver.make(P, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.flatMap(P.Bound, (b) => Bound.fork(b, bus.addDevice({ name: "p0.c0", ids: { vendor: 2 } }))))
        }))
        yield* bus.addDevice({ name: "p0", ids: { vendor: 1 } })
        yield* Effect.yieldNow()
        expect((yield* bus.device("p0.c0")).state).toBe("probing")
        const unbinding = yield* Effect.fork(bus.unbind("p0"))
        yield* advance(1000)
        expect(pollDone(unbinding)).toBe(true)
        expect(yield* bus.devices).toMatchObject([{ name: "p0", state: "unbound" }])
      }), { fiberStopTimeout: "50 millis" }))

  it.effect("an unload joins only the unload of the same registration; a driver registered again is unloaded on its own", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const make = () => Driver.make(P, { match: [{ vendor: 1 }], probe: () => Layer.empty, remove: () => Effect.sleep("500 millis") })
        yield* bus.addDevice({ name: "d0", ids: { vendor: 1 } })
        yield* bus.registerDriver(make())
        const first = yield* Effect.fork(bus.unregisterDriver("p"))
        yield* advance(20)
        yield* bus.registerDriver(make())
        yield* bus.addDevice({ name: "d1", ids: { vendor: 1 } })
        const second = yield* Effect.fork(bus.unregisterDriver("p"))
        yield* advance(1500)
        expect((yield* Fiber.join(first)).map((r) => r.device)).toEqual(["d0"])
        expect((yield* Fiber.join(second)).map((r) => r.device)).toEqual(["d1"])
        expect(yield* bus.drivers).toEqual([])
        expect((yield* bus.devices).map((d) => d.state)).toEqual(["unbound", "unbound"])
      }), { removeTimeout: "1 second" }))

  it.effect("code of a binding that has ended cannot add devices that would outlive it", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const outcome: Array<string> = []
        yield* bus.registerDriver(Driver.make(P, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.flatMap(P.Bound, (b) =>
              Bound.fork(b, Effect.uninterruptible(Effect.zipRight(
                Effect.sleep("300 millis"),
                Effect.flatMap(Effect.either(bus.addDevice({ name: "ghost", ids: {} })), (r) =>
                  Effect.sync(() => void outcome.push(r._tag === "Left" ? r.left._tag : "added")))
              )))))
        }))
        yield* bus.addDevice({ name: "p0", ids: { vendor: 1 } })
        const unbinding = yield* Effect.fork(bus.unbind("p0"))
        yield* advance(500)
        expect((yield* Fiber.join(unbinding)).leaks.map((l) => l._tag)).toEqual(["FiberLeak"])
        expect(outcome).toEqual(["ParentUnbinding"])
        expect((yield* bus.devices).map((d) => d.name)).toEqual(["p0"])
      }), { fiberStopTimeout: "50 millis" }))

  it.effect("a leaked fiber releasing early during the unbind's releases cannot break their order", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(P, {
          match: [{ vendor: 1 }],
          probe: () =>
            Layer.effectDiscard(Effect.gen(function*() {
              const b = yield* P.Bound
              const first = yield* Devres.acquireRelease(P, Effect.succeed(1), () => Effect.zipRight(log.push("rel first"), Effect.sleep("100 millis")), { label: "first" })
              yield* Devres.acquireRelease(P, Effect.succeed(2), () => Effect.zipRight(log.push("rel second"), Effect.sleep("200 millis")), { label: "second" })
              yield* Bound.fork(b, Effect.uninterruptible(Effect.zipRight(Effect.sleep("80 millis"), Devres.release(first))))
            }))
        }))
        yield* bus.addDevice({ name: "p0", ids: { vendor: 1 } })
        const unbinding = yield* Effect.fork(bus.unbind("p0"))
        yield* advance(1000)
        const report = yield* Fiber.join(unbinding)
        expect(log.entries).toEqual(["rel second", "rel first"])
        expect(report.released).toEqual(["second", "first"])
      }), { fiberStopTimeout: "50 millis", releaseTimeout: "500 millis" }))
})

describe("probeTimeout: a probe that never returns", () => {
  const P = Driver.brand("p")

  it.effect("is cut at the deadline, or detached and reported if it cannot be interrupted; what it acquired is released", () =>
    withBus((bus) =>
      Effect.gen(function*() {
        const log = new Log()
        yield* bus.registerDriver(Driver.make(P, {
          match: [{ vendor: 1 }],
          probe: (device) =>
            Layer.effectDiscard(device.name === "stuck0" ? Effect.uninterruptible(Effect.never) : Effect.never)
              .pipe(Layer.provideMerge(resource(P, log, device.name)))
        }))
        for (const name of ["hang0", "stuck0"]) {
          const adding = yield* Effect.fork(bus.addDevice({ name, ids: { vendor: 1 } }))
          yield* advance(300)
          expect(pollDone(adding)).toBe(true)
        }
        expect(log.entries).toEqual(["acquire hang0", "release hang0", "acquire stuck0", "release stuck0"])
        const failed = (yield* bus.history).filter((e) => e._tag === "ProbeFailed")
        expect(failed.map((e) => e._tag === "ProbeFailed" && Cause.pretty(e.cause).split("\n")[0])).toEqual([
          "Error: probe did not finish within 100ms; interrupted",
          "Error: probe did not finish within 100ms; interrupted"
        ])
        expect((yield* bus.leaks).filter((l) => l._tag === "Detached")).toMatchObject([{ device: "stuck0", phase: "probe" }])
        expect((yield* bus.devices).map((d) => d.state)).toEqual(["unbound", "unbound"])
      }), { probeTimeout: "100 millis" }))

  it.effect("is cancelled by the bus shutdown, which then ends", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const bus = yield* Scope.extend(Bus.make({ probeTimeout: "1 hour" }), scope)
      yield* bus.registerDriver(Driver.make(P, { match: [{ vendor: 1 }], probe: () => Layer.effectDiscard(Effect.never) }))
      const adding = yield* Effect.fork(bus.addDevice({ name: "p0", ids: { vendor: 1 } }))
      yield* advance(10)
      expect((yield* bus.device("p0")).state).toBe("probing")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* advance(10)
      expect(pollDone(closing)).toBe(true)
      expect(pollDone(adding)).toBe(true)
      expect(yield* bus.devices).toEqual([])
    }))
})
