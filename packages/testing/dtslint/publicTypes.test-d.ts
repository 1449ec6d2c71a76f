import { Effect, Exit } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import { LockedBy, Revocable } from "@devscope/core"
import type { Simulator } from "@devscope/sim"
import { VirtualTime } from "@devscope/sim"
import { Explore, Fuzz, Hostile, Oracle } from "@devscope/testing"

/** `value` as a `T`, checked as an annotated declaration would be (excess fields too). */
const is = <T>(value: T): T => value

describe("the public models, as users write them", () => {
  it("Explore.Scenario is a literal object; an unknown field is rejected", () => {
    const scenario: Explore.Scenario = {
      name: "edu-dma",
      device: "edu0",
      seed: 7,
      simulator: { trace: true },
      run: ({ sim, oracle }) => {
        expectTypeOf(sim).toEqualTypeOf<Simulator.Service>()
        expectTypeOf(oracle).toEqualTypeOf<Oracle.Oracle>()
        return Effect.void
      }
    }
    expectTypeOf(Explore.explore(scenario)).toEqualTypeOf<Effect.Effect<Explore.Report>>()

    // A scenario that may fail says so in its type.
    const failing: Explore.Scenario<Error> = { name: "f", device: "d", run: () => Effect.fail(new Error("no")) }
    expectTypeOf(Explore.explore(failing)).toEqualTypeOf<Effect.Effect<Explore.Report>>()
    // @ts-expect-error: a scenario of `never` does not fail
    is<Explore.Scenario>({ name: "f", device: "d", run: () => Effect.fail(new Error("no")) })

    Explore.explore({
      name: "edu-dma",
      device: "edu0",
      run: () => Effect.void,
      // @ts-expect-error: not a field of Explore.Scenario
      devices: ["edu0"]
    })
    // @ts-expect-error: `device` is required
    is<Explore.Scenario>({ name: "edu-dma", run: () => Effect.void })
  })

  it("Explore.Options and Explore.Case", () => {
    const options: Explore.Options = { modes: ["surprise", "surprise-in-remove"], maxPoints: 50, timeout: 10_000 }
    expectTypeOf(options.modes).toEqualTypeOf<ReadonlyArray<Explore.Mode> | undefined>()
    // @ts-expect-error: not a mode
    is<Explore.Options>({ modes: ["unbind"] })
    // @ts-expect-error: not an option
    is<Explore.Options>({ points: 50 })
    const c: Explore.Case = { mode: "surprise-in-remove", point: 3, inner: 2 }
    expectTypeOf(c.mode).toEqualTypeOf<Explore.Mode | "baseline">()
  })

  it("Fuzz.Spec, its actions and options", () => {
    const spec: Fuzz.Spec = {
      name: "edu",
      devices: [{
        name: "edu0",
        bus: "pci",
        plug: (sim) => sim.pci.addDevice({ name: "edu0", ids: { vendor: 0x1234 } }),
        io: ({ oracle }) => Effect.asVoid(oracle.track("edu0", "read", Effect.succeed(1))),
        faults: ["fail-irq", "irq-storm"]
      }],
      drivers: [{ name: "edu", bus: "pci", register: () => Effect.void }],
      faults: false
    }
    expectTypeOf(Fuzz.check(spec, { numRuns: 10, seed: 1 })).toEqualTypeOf<Effect.Effect<Fuzz.Report>>()
    const prefix: ReadonlyArray<Fuzz.Action> = [
      { _tag: "plug", device: "edu0" },
      { _tag: "io", device: "edu0", count: 2 },
      { _tag: "wait", micros: 100 },
      { _tag: "unload", driver: "edu" },
      { _tag: "fault", device: "edu0", rule: { kind: "all-ones-reads", device: "edu0" } }
    ]
    const options: Fuzz.Options = { prefix }
    expectTypeOf(options.prefix).toEqualTypeOf<ReadonlyArray<Fuzz.Action> | undefined>()
    // @ts-expect-error: an io step needs its count
    is<Fuzz.Action>({ _tag: "io", device: "edu0" })
    // @ts-expect-error: a wait step counts microseconds, not milliseconds
    is<Fuzz.Action>({ _tag: "wait", millis: 1 })
    // @ts-expect-error: not a fault kind
    is<Fuzz.FaultKind>("fail-everything")
    Fuzz.check({
      ...spec,
      drivers: [{
        name: "edu",
        bus: "pci",
        register: () => Effect.void,
        // @ts-expect-error: not a field of Fuzz.DriverSpec
        match: [{ vendor: 0x1234 }]
      }]
    })
  })

  it("Hostile.Sequence, Plan and Step", () => {
    const sequence: Hostile.Sequence = {
      plan: {
        probe: "add-child",
        remove: "hang-uninterruptibly",
        releases: ["ok", "throw"],
        fiber: "escapes",
        destroy: "ok",
        observer: "throw-on-unbinding"
      },
      steps: [
        { _tag: "plug", device: "h0", interruptAfter: 5 },
        { _tag: "reload" },
        { _tag: "link", consumer: "h0", supplier: "h1" },
        { _tag: "wait", millis: 20 }
      ]
    }
    expectTypeOf(Hostile.run(sequence)).toEqualTypeOf<Effect.Effect<Hostile.Result>>()
    expectTypeOf(Hostile.token).parameter(0).toEqualTypeOf<Hostile.Sequence>()
    // @ts-expect-error: `interrupt-self` is a probe's misbehaviour only
    is<Hostile.Plan>({ ...sequence.plan, remove: "interrupt-self" })
    // @ts-expect-error: a link step has no interruptAfter
    is<Hostile.Step>({ _tag: "link", consumer: "h0", supplier: "h1", interruptAfter: 1 })
  })

  it("Oracle.Evidence and Oracle.Ops", () => {
    const ops: Oracle.Ops = Oracle.makeOps()
    const evidence: Oracle.Evidence = { lifecycle: [], trace: [], iommuFaults: [], ops: ops.devices, outcome: "Done" }
    expectTypeOf(Oracle.judge(evidence)).toEqualTypeOf<Oracle.Verdict>()
    expectTypeOf(Oracle.make().lifecycle).toEqualTypeOf<ReadonlyArray<Oracle.BusEvent>>()
    expectTypeOf(ops.of("edu0")).toEqualTypeOf<Oracle.DeviceOps>()
    const violation: Oracle.Violation = { guarantee: "G4", device: "edu0", message: "1 operation lost" }
    // @ts-expect-error: not a guarantee
    is<Oracle.Violation>({ ...violation, guarantee: "G6" })
    // @ts-expect-error: not a field of Oracle.Evidence
    is<Oracle.Evidence>({ ...evidence, verdict: undefined })
  })

  it("VirtualTime.Outcome narrows by its tag", () => {
    const run = VirtualTime.run(Effect.succeed(1))
    expectTypeOf(run).toEqualTypeOf<Effect.Effect<VirtualTime.Outcome<number, never>>>()
    const show = (outcome: VirtualTime.Outcome<number, never>) => {
      switch (outcome._tag) {
        case "Done":
          expectTypeOf(outcome).toEqualTypeOf<VirtualTime.Done<number, never>>()
          return Exit.isSuccess(outcome.exit) ? outcome.exit.value : 0
        case "Stalled":
          expectTypeOf(outcome.waiting).toEqualTypeOf<ReadonlyArray<VirtualTime.Waiting>>()
          return outcome.virtualMillis
        case "TimedOut":
          expectTypeOf(outcome.exit).toEqualTypeOf<Exit.Exit<number, never> | undefined>()
          return outcome.virtualMillis
        case "Interrupted":
          expectTypeOf(outcome).toEqualTypeOf<VirtualTime.Interrupted<number, never>>()
          return outcome.virtualMillis
      }
    }
    expectTypeOf(show).returns.toEqualTypeOf<number>()
    const options: VirtualTime.RunOptions = { until: 1_000, onTask: (control) => expectTypeOf(control.now).toEqualTypeOf<number>() }
    // @ts-expect-error: not a field of VirtualTime.RunOptions
    is<VirtualTime.RunOptions>({ ...options, timeout: 1_000 })
  })

  it("error interfaces keep their constructors and tags", () => {
    const revoked = new Revocable.Revoked({ label: "regs" })
    expectTypeOf(revoked).toEqualTypeOf<Revocable.Revoked>()
    expectTypeOf(revoked._tag).toEqualTypeOf<"Revoked">()
    expectTypeOf(revoked).toMatchTypeOf<Error>()
    const wrong = new LockedBy.WrongLock({ value: "node", expected: "tree#1", actual: "tree#2" })
    expectTypeOf(Effect.fail(wrong)).toEqualTypeOf<Effect.Effect<never, LockedBy.WrongLock>>()
    const error: unknown = wrong
    if (error instanceof LockedBy.WrongLock) expectTypeOf(error.expected).toEqualTypeOf<string>()
    // @ts-expect-error: a Revoked names its label
    new Revocable.Revoked({})
  })
})
