/**
 * Hostile-driver fuzzing: random plans of misbehaving callbacks composed with random
 * lifecycles, each run on a fresh bus under TestClock, then judged against the unbind
 * contract. See Hostile.ts.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { Bound, Bus, Lifecycle } from "@devscope/core"
import type { Break, Options, Plan, Report as CheckReport, Result, Sequence, Step } from "../Hostile.js"
import { childDriver, HOSTILE, hostileDriver, Ledger, misbehaviours } from "./hostileDriver.js"

/** The bus's deadlines in a fuzzed world, and the most a step may take with all of them. */
const busOptions = {
  fiberStopTimeout: "50 millis",
  releaseTimeout: "50 millis",
  removeTimeout: "50 millis",
  probeTimeout: "100 millis",
  historySize: 1_000_000
} as const
const STEP_BUDGET_MS = 5_000
const TICK_MS = 10

const devices = ["h0", "h1"] as const

export const show = (step: Step): string => {
  const interrupted = "interruptAfter" in step && step.interruptAfter !== undefined ? ` (caller interrupted after ${step.interruptAfter} ms)` : ""
  switch (step._tag) {
    case "wait":
      return `wait ${step.millis} ms`
    case "link":
    case "unlink":
      return `${step._tag} ${step.consumer} -> ${step.supplier}`
    case "unload":
    case "reload":
      return `${step._tag} the hostile driver${interrupted}`
    default:
      return `${step._tag} ${step.device}${interrupted}`
  }
}

export const showPlan = (plan: Plan): string =>
  `probe ${plan.probe}, remove ${plan.remove}, releases [${plan.releases.join(", ")}], fiber ${plan.fiber}, ` +
  `destroy ${plan.destroy}, observer ${plan.observer}`

const misbehaviour = FastCheck.constantFrom(...misbehaviours)

export const plans: FastCheck.Arbitrary<Plan> = FastCheck.record({
  probe: FastCheck.oneof(misbehaviour, FastCheck.constantFrom("add-child" as const, "unload-own-driver" as const, "interrupt-self" as const)),
  remove: FastCheck.oneof(misbehaviour, FastCheck.constant("unload-own-driver" as const)),
  releases: FastCheck.array(misbehaviour, { minLength: 1, maxLength: 4 }),
  fiber: FastCheck.constantFrom("ticks" as const, "hang-uninterruptibly" as const, "unload-own-driver" as const, "add-child" as const, "escapes" as const),
  destroy: misbehaviour,
  observer: FastCheck.constantFrom("ok" as const, "throw-on-unbinding" as const, "throw-always" as const)
})

export const stepsArb: FastCheck.Arbitrary<ReadonlyArray<Step>> = (() => {
  const device = FastCheck.constantFrom(...devices)
  const interrupt = FastCheck.option(FastCheck.integer({ min: 0, max: 120 }), { nil: undefined, freq: 4 })
  const deviceStep = FastCheck.tuple(
    FastCheck.constantFrom("bind" as const, "unbind" as const, "surprise" as const, "unplug" as const, "plug" as const, "open" as const),
    device,
    interrupt
  ).map(([_tag, d, interruptAfter]): Step => ({ _tag, device: d, interruptAfter }))
  const driverStep = FastCheck.tuple(FastCheck.constantFrom("unload" as const, "reload" as const), interrupt)
    .map(([_tag, interruptAfter]): Step => ({ _tag, interruptAfter }))
  const wait = FastCheck.integer({ min: 1, max: 200 }).map((millis): Step => ({ _tag: "wait", millis }))
  // Links between the devices and the children the probes add (a link may be refused).
  const linked = FastCheck.constantFrom(...devices, ...devices.map((d) => `${d}.child`))
  const linkStep = FastCheck.tuple(FastCheck.constantFrom("link" as const, "unlink" as const), linked, linked)
    .map(([_tag, consumer, supplier]): Step => ({ _tag, consumer, supplier }))
  return FastCheck.array(FastCheck.oneof(
    { weight: 6, arbitrary: deviceStep },
    { weight: 1, arbitrary: driverStep },
    { weight: 2, arbitrary: wait },
    { weight: 1, arbitrary: linkStep }
  ), {
    minLength: 1,
    maxLength: 12
  })
})()

export const sequences: FastCheck.Arbitrary<Sequence> = FastCheck.record({ plan: plans, steps: stepsArb })

/** Moves TestClock until `fiber` is done or the budget is spent; true if done. */
const settle = (fiber: Fiber.RuntimeFiber<unknown, unknown>, budget: number): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    for (let spent = 0; spent <= budget; spent += TICK_MS) {
      if (fiber.unsafePoll() !== null) return true
      yield* TestClock.adjust(TICK_MS)
    }
    return fiber.unsafePoll() !== null
  })

const settleWhile = (busy: () => boolean, budget: number): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    for (let spent = 0; spent <= budget; spent += TICK_MS) {
      if (!busy()) return true
      yield* TestClock.adjust(TICK_MS)
    }
    return !busy()
  })

/** Runs one sequence in a world of its own and judges it. */
export const run = (sequence: Sequence): Effect.Effect<Result> =>
  Effect.gen(function*() {
    const { plan } = sequence
    const breaks: Array<Break> = []
    const ledger = new Ledger()
    const scope = yield* Scope.make()
    const onEvent = (event: Lifecycle.LifecycleEvent) => {
      if (plan.observer === "throw-always" || (plan.observer === "throw-on-unbinding" && event._tag === "Unbinding")) {
        throw new Error(`planted: observer throws on ${event._tag}`)
      }
    }
    const bus = yield* Scope.extend(Bus.make({ ...busOptions, onEvent }), scope)
    yield* bus.registerDriver(childDriver(ledger))
    yield* bus.registerDriver(hostileDriver(plan, ledger, () => bus))
    const inFlight = () => Effect.runSync(bus.devices).filter((d) => d.state === "probing" || d.state === "unbinding")
    const runStep = (step: Exclude<Step, { _tag: "wait" }>): Effect.Effect<unknown, unknown> => {
      switch (step._tag) {
        case "plug":
          return bus.addDevice({ name: step.device, ids: { vendor: 7 } })
        case "bind":
          return bus.bind(step.device)
        case "unbind":
          return bus.unbind(step.device)
        case "surprise":
          return bus.removeDevice(step.device, { cause: "surprise" })
        case "unplug":
          return bus.removeDevice(step.device)
        case "open": {
          const registration = ledger.handles.get(step.device)
          return registration === undefined ? Effect.void : registration.open()
        }
        case "unload":
          return bus.unregisterDriver(HOSTILE)
        case "reload":
          return bus.registerDriver(hostileDriver(plan, ledger, () => bus))
        case "link":
          return Effect.exit(bus.link(step.consumer, step.supplier))
        case "unlink":
          return bus.unlink(step.consumer, step.supplier)
      }
    }
    let index = 0
    for (const step of sequence.steps) {
      index++
      if (step._tag === "wait") {
        for (let t = 0; t < step.millis; t += TICK_MS) yield* TestClock.adjust(TICK_MS)
        continue
      }
      const fiber = yield* Effect.fork(Effect.exit(runStep(step)))
      if ("interruptAfter" in step && step.interruptAfter !== undefined) {
        const interruptAt = step.interruptAfter
        yield* settle(fiber, interruptAt)
        yield* Effect.fork(Fiber.interrupt(fiber))
      }
      if (!(yield* settle(fiber, STEP_BUDGET_MS))) {
        breaks.push({ rule: "bounded", message: `step ${index} (${show(step)}) did not end within ${STEP_BUDGET_MS} ms` })
        break
      }
      // Whatever the caller saw, no device is left halfway (an interrupted caller's sequence
      // runs to its end in the background).
      const settled = yield* settleWhile(() => inFlight().length > 0, STEP_BUDGET_MS)
      if (!settled) {
        const names = inFlight().map((d) => `${d.name} (${d.state})`).join(", ")
        breaks.push({ rule: "settled", message: `after step ${index} (${show(step)}): ${names} still in flight after ${STEP_BUDGET_MS} ms` })
        break
      }
    }
    const history = yield* bus.history
    const shutdown = yield* Effect.fork(Scope.close(scope, Exit.void))
    if (!(yield* settle(shutdown, 4 * STEP_BUDGET_MS))) {
      breaks.push({ rule: "bounded", message: `the bus shutdown did not end within ${4 * STEP_BUDGET_MS} ms` })
    } else if ((yield* bus.devices).length > 0) {
      breaks.push({ rule: "settled", message: `devices left after the shutdown: ${(yield* bus.devices).map((d) => d.name).join(", ")}` })
    }
    // Some late ticks only show after a while: give detached code time to misbehave.
    for (let t = 0; t < 50; t += TICK_MS) yield* TestClock.adjust(TICK_MS)
    judge(plan, ledger, [...history, ...(yield* bus.history).slice(history.length)], yield* bus.leaks, breaks)
    return { breaks, steps: sequence.steps.length, bindings: ledger.bindings.length }
  }).pipe(
    Effect.orDie,
    // A step that dies where it must not (a bus call that should have failed with a typed
    // error, or an observer's throw that escaped) is a break too.
    Effect.catchAllCause((cause) =>
      Effect.succeed<Result>({
        breaks: [{ rule: "crashed", message: `the sequence died: ${Cause.pretty(cause).split("\n")[0] ?? ""}` }],
        steps: sequence.steps.length,
        bindings: 0
      })
    ),
    // The driver's planted failures are logged by the bus (a failed destroy): not news here.
    Logger.withMinimumLogLevel(LogLevel.None),
    Effect.provide(TestContext.TestContext),
    Effect.scoped
  )

type Report = Lifecycle.UnbindReport

const judge = (
  plan: Plan,
  ledger: Ledger,
  history: ReadonlyArray<Lifecycle.LifecycleEvent>,
  busLeaks: ReadonlyArray<import("@devscope/core").Leak.LeakReport>,
  breaks: Array<Break>
) => {
  const reports: Array<Report> = []
  const seen = new Set<Report>()
  for (const event of history) {
    if (event._tag !== "Unbound") continue
    for (const r of Lifecycle.flatten(event.report)) {
      if (!seen.has(r)) {
        seen.add(r)
        reports.push(r)
      }
    }
  }
  const failuresOf = (resource: string) =>
    reports.flatMap((r) => r.releaseFailures).filter((f) => f.resource === resource)
  const detachedOf = (what: string) =>
    reports.flatMap((r) => r.leaks).some((l) => l._tag === "Detached" && l.what.startsWith(what))
  for (const record of ledger.bindings) {
    const revoked = record.token !== undefined && !Bound.isLive(record.token)
    if (!revoked) {
      if (record.acquired.length > 0) breaks.push({ rule: "settled", message: `binding #${record.serial} of ${record.device} was never revoked` })
      continue
    }
    // Exactly once, in reverse order of acquisition.
    for (const label of record.acquired) {
      const starts = record.releaseStarts.filter((l) => l === label).length
      if (starts !== 1) breaks.push({ rule: "exactly-once", message: `${label} was released ${starts} times` })
    }
    const expected = record.acquired.slice().reverse()
    if (record.releaseStarts.join() !== expected.join()) {
      breaks.push({ rule: "lifo", message: `binding #${record.serial}: released [${record.releaseStarts.join(", ")}], acquired [${record.acquired.join(", ")}]` })
    }
    // Every misbehaving release is named.
    if (record.driver === HOSTILE) {
      record.acquired.forEach((label, i) => {
        const behaviour = plan.releases[i]!
        if (behaviour === "ok") return
        const named = behaviour === "hang-uninterruptibly" ? detachedOf(label) : failuresOf(label).length > 0
        if (!named) breaks.push({ rule: "named", message: `release of ${label} (${behaviour}) is in no report` })
      })
    }
    if (record.lateTicks > 0) {
      const reported = [...reports.flatMap((r) => r.leaks), ...busLeaks].some((l) => l.device === record.device)
      if (!reported) {
        breaks.push({ rule: "no-late-fiber", message: `a fiber of binding #${record.serial} (${record.device}) ran ${record.lateTicks} times after its unbind, unreported` })
      }
    }
  }
  // The hostile driver's unbinds name its remove's and fiber's misbehaviour.
  for (const report of reports) {
    if (report.driver !== HOSTILE || report.cause === "probe-failure") continue
    if (plan.remove !== "ok" && plan.remove !== "unload-own-driver" && report.removeFailure === undefined) {
      breaks.push({ rule: "named", message: `remove (${plan.remove}) of ${report.device} is not in its report` })
    }
    if (plan.fiber === "hang-uninterruptibly" && !report.leaks.some((l) => l._tag === "FiberLeak")) {
      breaks.push({ rule: "named", message: `the stuck fiber of ${report.device} is not in its report` })
    }
    if (plan.fiber === "escapes" && !report.leaks.some((l) => l._tag === "EscapedFiber")) {
      breaks.push({ rule: "named", message: `the escaped fiber of ${report.device} is not in its report` })
    }
  }
  if (plan.observer !== "ok" && history.some((e) => e._tag === "Unbinding") && !history.some((e) => e._tag === "ObserverFailed")) {
    breaks.push({ rule: "named", message: "the observer's failure is in no event" })
  }
}

export const check = (options: Options = {}): Effect.Effect<CheckReport> =>
  Effect.promise(async () => {
    const seed = options.seed ?? 42
    const numRuns = options.numRuns ?? 100
    const details = await FastCheck.check(
      FastCheck.asyncProperty(sequences, async (sequence) => (await Effect.runPromise(run(sequence))).breaks.length === 0),
      { seed, numRuns }
    )
    if (!details.failed || details.counterexample === null) {
      return { runs: details.numRuns, seed, failed: details.failed, counterexample: undefined, result: undefined, token: undefined }
    }
    const [sequence] = details.counterexample
    const result = await Effect.runPromise(run(sequence))
    return { runs: details.numRuns, seed, failed: true, counterexample: sequence, result, token: tokenOf(sequence) }
  })

export const tokenOf = (sequence: Sequence): string => `hostile:${Buffer.from(JSON.stringify(sequence)).toString("base64url")}`

export const fromToken = (token: string): Sequence => {
  if (!token.startsWith("hostile:")) throw new Error(`not a hostile-fuzzing replay token: ${token.slice(0, 40)}`)
  try {
    return JSON.parse(Buffer.from(token.slice("hostile:".length), "base64url").toString("utf8")) as Sequence
  } catch (cause) {
    throw new Error("not a hostile-fuzzing replay token (its payload does not decode)", { cause })
  }
}

export const describe = (report: CheckReport): string =>
  !report.failed || report.counterexample === undefined
    ? `${report.runs} hostile sequences, no contract break (seed ${report.seed})`
    : [
      `contract broken (shrunk; seed ${report.seed}); replay with ${report.token}`,
      `  driver: ${showPlan(report.counterexample.plan)}`,
      ...report.counterexample.steps.map((s, i) => `  ${i + 1}. ${show(s)}`),
      ...(report.result?.breaks ?? []).map((b) => `  => ${b.rule}: ${b.message}`)
    ].join("\n")
