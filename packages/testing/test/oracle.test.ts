/**
 * The oracle against planted bugs: each guarantee G1..G5 broken by a small driver on the
 * simulator is reported (right guarantee, a message naming what and where), the correct
 * driver breaks none on any path (removals, unbind, unload, failed probes), and a verdict
 * counts every violation while showing a sample.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import type * as Scope from "effect/Scope"
import { Hardware, type Lifecycle } from "@devscope/core"
import { Simulator, VirtualTime } from "@devscope/sim"
import { Oracle } from "@devscope/testing"
import { driver as eduDriver, type Handle as EduHandle } from "./eduFixture.js"
import { driver, type Handle, type Plant, plug } from "./oracleFixture.js"

interface Ctx {
  readonly sim: Simulator.Service
  readonly oracle: Oracle.Oracle
  readonly handles: Map<string, Handle>
}

/** Plugs edu0 with the fixture driver (with `plant`), runs `script`, judges the run. */
const run = <A>(
  plant: Plant | undefined,
  script: (ctx: Ctx) => Effect.Effect<A, unknown, Scope.Scope>,
  faults?: ReadonlyArray<Simulator.FaultRule>
) =>
  Effect.gen(function*() {
    const oracle = Oracle.make()
    const handles = new Map<string, Handle>()
    let sim: Simulator.Service | undefined
    const outcome = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
      const s = yield* Simulator.make({ seed: 1, onLifecycle: oracle.onLifecycle, faults, bus: { fiberStopTimeout: "1 millis" } })
      sim = s
      yield* Effect.provideService(s.pci.registerDriver(driver(plant, handles)), Hardware.Hardware, s.hardware)
      yield* plug(s)
      return yield* script({ sim: s, oracle, handles })
    })))
    const verdict = oracle.judge(sim!, outcome._tag)
    return {
      outcome,
      verdict,
      oracle,
      evidence: {
        lifecycle: oracle.lifecycle,
        trace: sim!.trace.events(),
        iommuFaults: sim!.iommuFaults(),
        ops: oracle.ops.devices,
        outcome: outcome._tag
      } satisfies Oracle.Evidence,
      result: outcome.exit !== undefined && Exit.isSuccess(outcome.exit) ? outcome.exit.value : undefined
    }
  })

const handleOf = (handles: Map<string, Handle>) => handles.get("edu0")!

const only = (verdict: Oracle.Verdict, guarantee: Oracle.Guarantee) => {
  expect(verdict.violations.map((v) => v.guarantee)).toEqual(verdict.violations.map(() => guarantee))
  expect(verdict.count).toBeGreaterThan(0)
  return verdict.violations
}

const unplug = ({ sim }: Ctx) => sim.unplug("edu0")

describe("Oracle: a correct driver", () => {
  it.effect("breaks no guarantee on any path: surprise, unplug, unbind, rebind, unload, operations in flight", () =>
    Effect.gen(function*() {
      const { outcome, verdict, oracle } = yield* run(undefined, ({ sim, oracle, handles }) =>
        Effect.gen(function*() {
          const waiting: Array<Fiber.RuntimeFiber<unknown>> = []
          const cycle = (remove: Effect.Effect<unknown, unknown>) =>
            Effect.gen(function*() {
              const handle = handleOf(handles)
              expect(yield* handle.poke(0x0f)).toBe(~0x0f >>> 0)
              yield* handle.kick()
              waiting.push(yield* Effect.fork(oracle.track("edu0", "event", handle.waitEvent())))
              yield* Effect.sleep("100 micros")
              yield* remove
            })
          yield* cycle(sim.surpriseRemove("edu0"))
          yield* plug(sim)
          yield* cycle(sim.unplug("edu0"))
          yield* plug(sim)
          yield* cycle(sim.pci.unbind("edu0"))
          yield* sim.pci.bind("edu0")
          yield* cycle(sim.pci.unregisterDriver("oracle-x"))
          yield* Fiber.joinAll(waiting)
        }))
      expect(outcome._tag).toBe("Done")
      expect(verdict).toEqual({ count: 0, violations: [], omitted: [] })
      const unbinds = oracle.lifecycle.flatMap(({ event }) => event._tag === "Unbound" ? [event] : [])
      expect(unbinds.map((e) => e.cause)).toEqual(["surprise", "hot-unplug", "manual", "unload"])
      // Each unbind released everything: the mapping early (in remove), the rest in reverse.
      for (const e of unbinds) {
        expect(e.report.released).toEqual(["handle", "firmware", "page", "BAR0"])
        expect(e.report.releasedEarly).toBe(1)
        expect(e.report.leaks).toEqual([])
      }
      // Every operation resolved, with DeviceGone.
      expect(oracle.ops.of("edu0")).toMatchObject({ started: 4, gone: 4, completed: 0 })
    }))

  it.effect("a probe failing at an injected allocation or mapping leaves nothing behind", () =>
    Effect.gen(function*() {
      for (const request of ["dma-alloc", "dma-map"] as const) {
        const { outcome, verdict, oracle } = yield* run(
          undefined,
          () => Effect.void,
          [{ kind: "fail-nth", request, n: 1, device: "edu0" }]
        )
        expect(outcome._tag).toBe("Done")
        const failed = oracle.lifecycle.filter(({ event }) => event._tag === "ProbeFailed")
        expect(failed).toHaveLength(1)
        expect(verdict.count).toBe(0)
      }
    }))
})

describe("Oracle: planted bugs", () => {
  it.effect("G1: a raw register window used after the unbind reaches the device", () =>
    Effect.gen(function*() {
      const script = ({ sim, handles }: Ctx) =>
        Effect.gen(function*() {
          const handle = handleOf(handles)
          yield* sim.pci.unbind("edu0")
          return yield* Effect.exit(handle.poke(7))
        })
      const buggy = yield* run("stale-region", script)
      // The stale handle returned a value: the device answered.
      expect(buggy.result).toEqual(Exit.succeed(~7 >>> 0))
      const violations = only(buggy.verdict, "G1")
      expect(violations.map((v) => v.message)).toEqual([
        expect.stringMatching(/^write of LIVENESS reached the device at [\d.]+ ms, after its binding ended$/),
        expect.stringMatching(/^read of LIVENESS reached the device at [\d.]+ ms, after its binding ended$/)
      ])
      expect(violations.every((v) => v.device === "edu0")).toBe(true)

      // The revocable Mmio dies instead (UseAfterUnbind), and nothing reaches the device.
      const correct = yield* run(undefined, script)
      expect(Exit.isFailure(correct.result!) && Cause.pretty(correct.result.cause)).toContain("UseAfterUnbind")
      expect(correct.verdict.count).toBe(0)
    }))

  it.effect("G2: a streaming DMA mapping never unmapped (found only by the unbind's leak check)", () =>
    Effect.gen(function*() {
      const { oracle, verdict } = yield* run("leak-mapping", unplug)
      // No LeakDetected event: the leak is only in the Unbound report.
      expect(oracle.lifecycle.some(({ event }) => event._tag === "LeakDetected")).toBe(false)
      const [violation] = only(verdict, "G2")
      expect(verdict.count).toBe(1)
      expect(violation!.device).toBe("edu0")
      expect(violation!.message).toMatch(
        /^streaming DMA mapping 0x[0-9a-f]+ \(to-device\) "status block" of driver "oracle-x" was still mapped at its unbind \(hot-unplug\): the driver never unmapped it \(the unbind did\); mapped at .*oracleFixture\.ts:\d+:\d+/
      )
    }))

  it.effect("G2: a Leak.track'ed object never released", () =>
    Effect.gen(function*() {
      const { verdict } = yield* run("leak-tracked", ({ sim }) => sim.surpriseRemove("edu0"))
      const [violation] = only(verdict, "G2")
      expect(verdict.count).toBe(1)
      expect(violation!.message).toMatch(
        /^"doorbell subscription" of driver "oracle-x" was never released \(found by the leak check of its unbind, surprise\); acquired at .*oracleFixture\.ts:\d+:\d+/
      )
    }))

  it.effect("G2: a release that fails", () =>
    Effect.gen(function*() {
      const { verdict } = yield* run("failing-release", ({ sim }) => sim.pci.unbind("edu0"))
      const [violation] = only(verdict, "G2")
      expect(violation!.message).toContain(`release of "firmware" (driver "oracle-x") failed at unbind (manual)`)
      expect(violation!.message).toContain("firmware did not acknowledge the shutdown")
    }))

  it.effect("G2: DMA memory that is never freed (taken from the port, outside every Devres)", () =>
    Effect.gen(function*() {
      const { verdict } = yield* run("raw-dma-leak", unplug)
      const [violation] = only(verdict, "G2")
      expect(verdict.count).toBe(1)
      expect(violation!.message).toMatch(
        /^coherent DMA window 0x[0-9a-f]+\+128 \(bidirectional\) that driver "oracle-x" allocated during its probe was never freed: still there after the unbind \(hot-unplug\) ended$/
      )
    }))

  it.effect("G2: resources released in the order they were acquired instead of the reverse", () =>
    Effect.gen(function*() {
      const { verdict, oracle } = yield* run("release-order", unplug)
      const [violation] = only(verdict, "G2")
      expect(verdict.count).toBe(1)
      expect(violation!.message).toMatch(
        /^DMA memory released out of order at unbind \(hot-unplug\) of driver "oracle-x": coherent DMA window (0x[0-9a-f]+)\+128 \(bidirectional\) was released before coherent DMA window (0x[0-9a-f]+)\+64 \(bidirectional\), which was acquired after it/
      )
      // The report alone cannot tell: the plain Effect finalizer is not a Devres.
      const unbound = oracle.lifecycle.find(({ event }) => event._tag === "Unbound")!.event as Lifecycle.LifecycleEvent & { _tag: "Unbound" }
      expect(unbound.report.releaseFailures).toEqual([])
      expect(unbound.report.leaks).toEqual([])
    }))

  it.effect("G2: the same resources released in reverse order, with the early unmap in remove, pass", () =>
    Effect.gen(function*() {
      // The correct driver unmaps in remove a mapping it made before the page (out of order,
      // early): allowed, the report counts it in releasedEarly.
      const { verdict } = yield* run(undefined, unplug)
      expect(verdict.count).toBe(0)
    }))

  it.effect("G3: a binding fiber that does not stop within the stop timeout", () =>
    Effect.gen(function*() {
      const { verdict } = yield* run("stuck-fiber", unplug)
      const [violation] = only(verdict, "G3")
      expect(verdict.count).toBe(1)
      expect(violation!.message).toMatch(
        /^fiber #\d+ of driver "oracle-x" was still running after its unbind \(hot-unplug\): it did not stop within the stop timeout; started during probe by fiber #\d+/
      )
    }))

  it.effect("G3: a fiber started from a captured runtime after the unbind", () =>
    Effect.gen(function*() {
      const script = ({ sim, handles }: Ctx) =>
        Effect.gen(function*() {
          const handle = handleOf(handles)
          yield* sim.pci.unbind("edu0")
          return yield* Effect.exit(handle.kick())
        })
      const { verdict } = yield* run("late-fiber", script)
      const [violation] = only(verdict, "G3")
      expect(verdict.count).toBe(1)
      expect(violation!.message).toMatch(
        /^fiber #\d+ of driver "oracle-x" was started after its binding ended \(from a captured runtime\) and outlived the unbind/
      )
      const correct = yield* run(undefined, script)
      expect(Exit.isFailure(correct.result!) && Cause.pretty(correct.result.cause)).toContain("UseAfterUnbind")
      expect(correct.verdict.count).toBe(0)
    }))

  it.effect("a leak both in an unbind report and in a LeakDetected event, or in a consumer's nested report, counts once", () =>
    Effect.gen(function*() {
      const { evidence } = yield* run("leak-mapping", unplug)
      const unbound = evidence.lifecycle.find(({ event }) => event._tag === "Unbound")!.event as Lifecycle.LifecycleEvent & { _tag: "Unbound" }
      const leak = unbound.report.leaks[0]!
      const detected = (l: typeof leak): Oracle.Evidence["lifecycle"][number] => ({
        bus: "pci",
        event: { _tag: "LeakDetected", seq: 1000, at: 1, leak: l }
      })
      // The supplier's report nests the same consumer report.
      const supplier: Oracle.Evidence["lifecycle"][number] = {
        bus: "pci",
        event: {
          ...unbound,
          device: { ...unbound.device, name: "supplier0" } as never,
          report: { ...unbound.report, device: "supplier0", leaks: [], released: [], releasedEarly: 0, consumers: [unbound.report] }
        }
      }
      const verdict = Oracle.judge({
        ...evidence,
        lifecycle: [...evidence.lifecycle, detected(leak), detected({ ...leak }), supplier]
      })
      expect(verdict.count).toBe(1)
      expect(verdict.violations[0]!.message).toContain(`"status block"`)
      // A leak only a LeakDetected event holds is counted.
      const other = { ...leak, label: "another thing" }
      expect(Oracle.judge({ ...evidence, lifecycle: [...evidence.lifecycle, detected(other)] }).count).toBe(2)
    }))

  it.effect("G4: an operation that never resolves (remove forgets to fail it)", () =>
    Effect.gen(function*() {
      const script = ({ sim, oracle, handles }: Ctx) =>
        Effect.gen(function*() {
          // A daemon: the operation outlives the run instead of being interrupted at its end.
          yield* Effect.forkDaemon(oracle.track("edu0", "event", handleOf(handles).waitEvent()))
          yield* Effect.sleep("10 micros")
          yield* sim.unplug("edu0")
        })
      const { verdict } = yield* run("lost-operation", script)
      expect(only(verdict, "G4")).toEqual([{ guarantee: "G4", device: "edu0", message: "1 operation(s) never resolved (lost)" }])
      expect((yield* run(undefined, script)).verdict.count).toBe(0)
    }))

  it.effect("G5: the device reads DMA memory the driver freed before stopping it", () =>
    Effect.gen(function*() {
      const judgeEdu = (bug: "free-dma-before-stop" | undefined) =>
        Effect.gen(function*() {
          const oracle = Oracle.make()
          const handles = new Map<string, EduHandle>()
          let sim: Simulator.Service | undefined
          const outcome = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
            const s = yield* Simulator.make({ seed: 1, onLifecycle: oracle.onLifecycle })
            sim = s
            yield* Effect.provideService(s.pci.registerDriver(eduDriver(bug, handles)), Hardware.Hardware, s.hardware)
            yield* plug(s)
            const transfer = yield* Effect.fork(oracle.track("edu0", "transfer", handles.get("edu0")!.transfer(1)))
            yield* Effect.sleep("50 micros") // the engine takes 200 µs
            yield* s.unplug("edu0")
            yield* Fiber.join(transfer)
          })))
          return oracle.judge(sim!, outcome._tag)
        })
      const verdict = yield* judgeEdu("free-dma-before-stop")
      const [violation] = only(verdict, "G5")
      expect(violation!.message).toMatch(
        /^the device accessed DMA memory the driver had already freed or unmapped \(memory freed before the device was stopped\): read of 256 bytes at iova 0x[0-9a-f]+ by edu dma engine.*mapped at .*eduFixture\.ts:\d+:\d+\)?, freed\/unmapped at .*eduFixture\.ts:\d+:\d+/
      )
      expect((yield* judgeEdu(undefined)).count).toBe(0)
    }))
})

describe("Oracle: verdicts", () => {
  it.effect("count every violation and show a sample: the note on what is left out is not a violation", () =>
    Effect.gen(function*() {
      const { verdict } = yield* run("stale-region", ({ sim, handles }) =>
        Effect.gen(function*() {
          const handle = handleOf(handles)
          yield* sim.pci.unbind("edu0")
          for (let i = 0; i < 8; i++) yield* handle.poke(i)
        }))
      // 8 writes and 8 reads reached the device.
      expect(verdict.count).toBe(16)
      expect(verdict.violations).toHaveLength(Oracle.SAMPLE_PER_KIND)
      expect(verdict.violations.every((v) => v.guarantee === "G1" && v.message.includes("after its binding ended"))).toBe(true)
      expect(verdict.omitted).toEqual([{ guarantee: "G1", device: "edu0", count: 11 }])
      const text = Oracle.format(verdict).split("\n")
      expect(text).toHaveLength(6)
      expect(text[5]).toBe("G1 edu0: (11 more of the same left out)")
    }))

  it("counts every problem of the operation ledger, beyond the messages it keeps", () => {
    const ops = Oracle.makeOps()
    for (let i = 0; i < 8; i++) ops.problem("disk0", `sector ${i} lost an acknowledged write`)
    const verdict = Oracle.judge({ lifecycle: [], trace: [], iommuFaults: [], ops: ops.devices, outcome: "Stalled" })
    expect(verdict.count).toBe(9)
    expect(verdict.violations).toHaveLength(6)
    expect(verdict.omitted).toEqual([{ guarantee: "G4", device: "disk0", count: 3 }])
    expect(Oracle.check({ lifecycle: [], trace: [], iommuFaults: [], ops: ops.devices, outcome: "Done" })).toHaveLength(5)
  })
})
