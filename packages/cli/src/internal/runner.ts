/**
 * Runs a scenario on the simulator, in virtual time: boots the machine (drivers, devices,
 * cables, media), starts the workload, plays the timeline, and at the end unloads every
 * driver, waits for the operations in flight, and checks the guarantees.
 *
 * Whatever way the run ends (on its own, with an action that hung, stalled, or past the time
 * limit), the record keeps what was recorded until then: the lifecycle events, the trace, the
 * IOMMU faults, the operations' accounting, and where the run was waiting. A run stopped by
 * its signal keeps what was recorded up to the stop, and is judged on that.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { Lifecycle } from "@devscope/core"
import { type Iommu, Simulator, type Trace, VirtualTime } from "@devscope/sim"
import { Oracle } from "@devscope/testing"
import type { Progress, RunOptions } from "../Runner.js"
import * as Scenario from "../Scenario.js"
import type { DeviceSummary, DriverFailure, Note, RunRecord, Stall, TimelineEntry, UnbindSummary, Violation } from "./record.js"
import { describeError, describeSpan, LogBook, trackingTracer } from "./logbook.js"
import * as Machine from "./machine.js"
import * as Workloads from "./workloads.js"
import { REMOVE_TIMEOUT, workloadDefaults } from "./defaults.js"

/** Virtual time the end of a run may take to resolve the operations in flight. */
const DRAIN = 1_000

/**
 * Virtual time a scenario action (or an unload at the end) may take before it is reported
 * as hung. Unbinds of the example drivers take microseconds to a few milliseconds; the core's
 * own deadlines (gate drain, fiber stop) are shorter than this.
 */
export const HANG = 1_000

/** Virtual time after the scenario's end at which a run still going is cut (TimedOut). */
const LIMIT = 60_000

/** Most recent simulator events the trace keeps (the older ones are dropped, and counted). */
export const TRACE_LIMIT = 1_000_000

/** Options of the runner not in the public API (tests). */
export interface InternalOptions {
  /** The simulator trace's limit (default `TRACE_LIMIT`). */
  readonly traceLimit?: number | undefined
}

/**
 * Where a run happens. The simulator is made inside the run's virtual world; a host whose
 * start is real I/O (QEMU) is made outside it, before the world starts, and `inWorld` (its
 * clock) runs as a fiber of the world.
 */
export type Start<E> =
  | { readonly _tag: "simulator" }
  | {
    readonly _tag: "outside"
    readonly make: (
      onLifecycle: (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => void,
      traceLimit: number
    ) => Effect.Effect<{ readonly host: Machine.Host; readonly inWorld: Effect.Effect<void> }, E, Scope.Scope>
  }

const onTheSimulator: Start<never> = { _tag: "simulator" }

/** The reason of an aborted signal, as the record states it: a string reason as given, else "aborted". */
const reasonOf = (signal: AbortSignal): string =>
  typeof signal.reason === "string" && signal.reason.length > 0 ? signal.reason.slice(0, 80) : "aborted"

/** What a run had recorded when its signal stopped it: the record is cut there. */
interface Stop {
  readonly reason: string
  readonly at: number
  readonly trace: ReadonlyArray<Trace.TraceEvent>
  readonly dropped: number
  readonly iommuFaults: ReadonlyArray<Iommu.Fault>
  readonly lifecycle: number
  readonly timeline: number
  readonly seen: number
  readonly stalls: number
  readonly ops: ReadonlyMap<string, Oracle.DeviceOps>
  readonly failures: ReadonlyArray<DriverFailure>
  readonly notes: ReadonlyArray<Note>
}

const busOf = (kind: Scenario.Kind): "pci" | "platform" => Scenario.kinds[kind].bus

/** The workload with every field filled in (shared with the estimate of a run's work). */
export const defaults = workloadDefaults

/** Keeps at most a few violations of one kind per device, as the oracle does. */
const capped = (list: ReadonlyArray<Violation>, max = 5): Array<Violation> => {
  const counts = new Map<string, number>()
  const out: Array<Violation> = []
  for (const v of list) {
    const key = `${v.guarantee}/${v.device}/${v.message.slice(0, 40)}`
    const n = (counts.get(key) ?? 0) + 1
    counts.set(key, n)
    if (n <= max) out.push(v)
  }
  return out
}

// ---------------------------------------------------------------------------------------

export const run = (
  scenario: Scenario.Scenario,
  options: RunOptions = {},
  internalOptions: InternalOptions = {}
): Effect.Effect<RunRecord> => runOn(scenario, onTheSimulator, options, internalOptions)

/** Runs a scenario on the host `start` makes (see {@link run}); fails only if the host cannot start. */
export const runOn = <E>(
  scenario: Scenario.Scenario,
  start: Start<E>,
  options: RunOptions = {},
  internalOptions: InternalOptions = {}
): Effect.Effect<RunRecord, E> =>
  Effect.scoped(Effect.gen(function*() {
    const seed = options.seed ?? scenario.seed ?? 1
    const wallStart = performance.now()
    const lifecycle: Array<{ readonly bus: "pci" | "platform"; readonly event: Lifecycle.LifecycleEvent }> = []
    /** When the device's current unbind (or probe, for a probe failure's teardown) started: virtual and wall time. */
    const unbindStarted = new Map<string, { readonly at: number; readonly wall: number }>()
    const unbinds = new Map<string, Array<UnbindSummary>>()
    const ended = new Map<string, number>()
    const bound = new Set<string>()
    const present = new Set<string>()
    const timeline: Array<TimelineEntry> = []
    const ops = Oracle.makeOps()
    const busy = new Workloads.Busy()
    const seen: Array<Violation> = []
    const stalls: Array<Stall> = []
    const openSpans = new Set<Tracer.Span>()
    const book = new LogBook(options.onNote)
    // The host, kept outside the program: its trace and faults are evidence however the
    // program ends.
    let simulator: Machine.Host | undefined
    let worldClock: Clock.Clock | undefined
    let now = 0
    let stop: Stop | undefined

    const progress = (): Progress => ({
      virtualMillis: now,
      duration: scenario.duration,
      devices: scenario.devices.map((d) => ({
        name: d.name,
        state: bound.has(d.name) ? "bound" as const : present.has(d.name) ? "unbound" as const : "absent" as const
      })),
      resolved: ops.resolved,
      inFlight: ops.inFlight
    })

    const onLifecycle = (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => {
      if (stop !== undefined) return // the wind-down after a stop is not part of the run
      lifecycle.push({ bus, event })
      switch (event._tag) {
        case "Bound":
          bound.add(event.device.name)
          break
        // A probe that fails is torn down without an Unbinding event: its unbind (as its
        // report's duration) is measured from the probe's start.
        case "Probing":
        case "Unbinding":
          unbindStarted.set(event.device.name, { at: event.at, wall: performance.now() })
          break
        case "Unbound": {
          const name = event.device.name
          const wallNow = performance.now()
          const started = unbindStarted.get(name)
          unbindStarted.delete(name)
          bound.delete(name)
          ended.set(name, (ended.get(name) ?? 0) + 1)
          const list = unbinds.get(name) ?? []
          list.push({
            cause: event.cause,
            startedAt: started?.at ?? Math.max(0, event.at - event.report.durationMillis),
            at: event.at,
            virtualMillis: event.report.durationMillis,
            wallMillis: started === undefined ? 0 : Math.max(0, wallNow - started.wall),
            released: event.report.released.length,
            leaks: event.report.leaks.length
          })
          unbinds.set(name, list)
          break
        }
      }
    }

    /** Spans opened since `since` and still open: what a hung action waits in. */
    const openSince = (since: number) =>
      [...openSpans]
        .filter((s) => s.status._tag === "Started" && Number(s.status.startTime) / 1e6 >= since - 1e-9)
        .map(describeSpan)

    const traceLimit = internalOptions.traceLimit ?? TRACE_LIMIT
    // A host made outside the world lives in a scope of its own, closed once the world has
    // ended and before the record is made: what its close does and sees (its bus's last
    // events, a close that had to give up) is part of the record, as the simulator's is.
    const hostScope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(hostScope, Exit.void))
    const outside = start._tag === "outside" ? yield* Scope.extend(start.make(onLifecycle, traceLimit), hostScope) : undefined
    const program = Effect.scoped(Effect.gen(function*() {
      let sim: Machine.Host
      if (outside === undefined) {
        sim = Machine.onSimulator(yield* Simulator.make({ seed, faults: scenario.faults, traceLimit, onLifecycle }))
      } else {
        sim = outside.host
        yield* Effect.forkScoped(outside.inWorld)
      }
      simulator = sim
      worldClock = yield* Effect.clock
      const machine = Machine.make(scenario, sim, seed)
      const { load, plug } = machine
      const registered = new Set<Scenario.Kind>()
      for (const driver of scenario.drivers) {
        yield* Effect.orDie(load(driver.kind))
        registered.add(driver.kind)
      }
      for (const device of scenario.devices) {
        if (device.present === false) continue
        yield* Effect.orDie(plug(device))
        present.add(device.name)
      }

      // The workload: user code, started once, for the whole run.
      const workload = yield* Effect.fork(machine.workload({
        ops,
        busy,
        bindingsEnded: (device) => ended.get(device) ?? 0,
        violation: (v) => void seen.push(v)
      }))

      const act = (event: Scenario.TimelineEvent): Effect.Effect<string | undefined> => {
        const spec = "device" in event ? scenario.devices.find((d) => d.name === event.device)! : undefined
        const outcome = (effect: Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>) =>
          Effect.match(effect, { onFailure: (e) => `refused: ${e.message}`, onSuccess: () => undefined })
        switch (event.action) {
          case "plug":
            return Effect.tap(outcome(plug(spec!)), (r) => Effect.sync(() => r === undefined && present.add(spec!.name)))
          case "unplug":
            return Effect.tap(outcome(sim.unplug(event.device)), () => Effect.sync(() => present.delete(event.device)))
          case "surprise":
            return Effect.tap(outcome(sim.surpriseRemove(event.device)), () => Effect.sync(() => present.delete(event.device)))
          case "unbind":
            return outcome(Machine.busFor(sim, spec!.kind).unbind(event.device))
          case "bind":
            return outcome(Machine.busFor(sim, spec!.kind).bind(event.device))
          case "unload":
            return Effect.tap(
              outcome(Machine.busFor(sim, event.driver).unregisterDriver(Machine.driverOf(event.driver))),
              () => Effect.sync(() => registered.delete(event.driver))
            )
          case "load":
            return Effect.tap(outcome(load(event.driver)), (r) => Effect.sync(() => r === undefined && registered.add(event.driver)))
        }
      }

      /**
       * Runs an action; one still going after HANG ms of virtual time is left running in the
       * background (it cannot be interrupted: an unbind holds on) and reported as hung, with
       * the spans opened since it started as its wait sites.
       */
      const guarded = <A>(device: string, what: string, effect: Effect.Effect<A>) =>
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          // As Effect.disconnect does: the action is interrupted (it may not stop: an unbind
          // holds on) without being waited for, at the deadline or when the run is stopped.
          const running = yield* Effect.forkDaemon(effect)
          const result = yield* Effect.timeoutOption(Fiber.join(running), HANG).pipe(
            Effect.onInterrupt(() => Fiber.interruptFork(running))
          )
          if (Option.isNone(result)) {
            yield* Fiber.interruptFork(running)
            stillRunning.add(running)
            // What opened since the action started; if nothing did (it waits on a lock held
            // by an earlier hang), every span still open.
            const since = openSince(started)
            const waitSites = since.length > 0 ? since : openSince(-Infinity)
            stalls.push({ outcome: "Hung", device, at: started, what, waitSites })
            options.onNote?.(
              `${started.toFixed(3)} ms  ${what} did not finish within ${HANG} ms of virtual time (hung)` +
                (waitSites.length > 0 ? `; waiting in: ${waitSites.join("; ")}` : "")
            )
          }
          return result
        })

      const devicesOf = (kind: Scenario.Kind) => scenario.devices.filter((d) => d.kind === kind).map((d) => d.name)
      const inFlightOf = (names: ReadonlyArray<string>): Record<string, number> => {
        const total: Record<string, number> = {}
        for (const name of names) for (const [what, n] of Object.entries(busy.of(name))) total[what] = (total[what] ?? 0) + n
        return total
      }

      /** Actions left running after their hang was reported. */
      const stillRunning = new Set<Fiber.RuntimeFiber<unknown>>()
      let hung = false
      const events = [...(scenario.timeline ?? [])].map((e, i) => [e, i] as const).sort((a, b) => a[0].at - b[0].at || a[1] - b[1])
      for (const [event, _] of events) {
        const target = "device" in event ? event.device : event.driver
        if (hung) {
          timeline.push({ at: event.at, action: event.action, target, detail: "skipped: the run ended early after a hung action" })
          continue
        }
        // From the clock, not `now`: an action that took time must not delay the next one.
        const wait = event.at - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(wait)
        const clock = yield* Clock.currentTimeMillis
        // The clock adds floats: 15.011 + (20 - 15.011) may be 19.99999999999995.
        const started = Math.abs(clock - event.at) < 1e-6 ? event.at : clock
        now = Math.max(now, started)
        const inFlight = inFlightOf("device" in event ? [event.device] : devicesOf(event.driver))
        const result = yield* guarded(target, `${event.action} ${target} at ${event.at} ms`, act(event))
        const entry: TimelineEntry = {
          at: started,
          action: event.action,
          target,
          detail: Option.isNone(result) ? `hung: did not finish within ${HANG} ms` : result.value,
          inFlight,
          tookMillis: Option.isNone(result) ? undefined : Math.max(0, (yield* Clock.currentTimeMillis) - clock)
        }
        timeline.push(entry)
        options.onAction?.(entry, progress())
        if (Option.isNone(result)) hung = true
      }
      const last = yield* Clock.currentTimeMillis
      if (!hung && scenario.duration > last) yield* Effect.sleep(scenario.duration - last)
      const end = yield* Clock.currentTimeMillis
      now = Math.max(now, !hung && Math.abs(end - scenario.duration) < 1e-6 ? scenario.duration : end)

      // The end: stop starting operations, unload every driver (which resolves the ones in
      // flight, with a result or DeviceGone), then give them a bounded time to come back.
      ops.stopping = true
      for (const kind of [...registered]) {
        const unloaded = yield* guarded(kind, `unload ${kind} at the end`, Effect.option(Machine.busFor(sim, kind).unregisterDriver(Machine.driverOf(kind))))
        timeline.push({
          at: now,
          action: "unload",
          target: kind,
          detail: Option.isNone(unloaded)
            ? `hung: did not finish within ${HANG} ms`
            : Option.isNone(unloaded.value)
            ? "not registered"
            : "end of run"
        })
      }
      const drained = yield* Fiber.join(workload).pipe(Effect.timeout(DRAIN), Effect.option)
      if (Option.isNone(drained)) yield* Effect.timeoutOption(Fiber.interrupt(workload), HANG)
      // A host made outside the world (QEMU) outlives it: a hung action is given the bus's
      // deadlines to end inside the world, where its clock runs, rather than being left in a
      // world that has ended while the host waits for it at its close.
      if (outside !== undefined && stillRunning.size > 0) yield* Effect.timeoutOption(Fiber.awaitAll([...stillRunning]), REMOVE_TIMEOUT + HANG)
    }))

    // A stop (the signal aborted) comes between two tasks of the world: take what was
    // recorded until then, before the interruption winds the world down.
    const onAbort = () => {
      if (stop !== undefined || options.signal === undefined) return
      const copyOps = new Map<string, Oracle.DeviceOps>()
      for (const [name, o] of ops.devices) copyOps.set(name, { ...o, inFlight: new Set(o.inFlight), problems: [...o.problems] })
      stop = {
        reason: reasonOf(options.signal),
        at: worldClock?.unsafeCurrentTimeMillis() ?? 0,
        trace: simulator?.trace.events() ?? [],
        dropped: simulator?.trace.dropped ?? 0,
        iommuFaults: simulator?.iommuFaults() ?? [],
        lifecycle: lifecycle.length,
        timeline: timeline.length,
        seen: seen.length,
        stalls: stalls.length,
        ops: copyOps,
        failures: [...book.failures.values()].map((f) => ({ ...f })),
        notes: [...book.notes.values()].map((n) => ({ ...n }))
      }
    }
    if (options.signal?.aborted === true) onAbort()
    else options.signal?.addEventListener("abort", onAbort, { once: true })

    const outcome = yield* Effect.flatMap(Effect.tracer, (tracer) =>
      VirtualTime.run(
        program.pipe(
          Effect.withTracer(trackingTracer(tracer, openSpans)),
          Effect.provide(Logger.replace(Logger.defaultLogger, book.logger)),
          Effect.withUnhandledErrorLogLevel(Option.some(LogLevel.Error))
        ),
        {
          until: scenario.duration + LIMIT,
          signal: options.signal,
          onProgress: options.onProgress === undefined ? undefined : (t) => {
            now = Math.max(now, t)
            options.onProgress!(progress())
          }
        }
      )).pipe(Effect.ensuring(Effect.sync(() => options.signal?.removeEventListener("abort", onAbort))))
    yield* Scope.close(hostScope, Exit.void)
    // A stop that came after the program ended changes nothing.
    const stopped = outcome._tag === "Interrupted" ? stop : undefined

    // Evidence, whatever the outcome (up to the stop, for a stopped run).
    const trace: ReadonlyArray<Trace.TraceEvent> = stopped?.trace ?? simulator?.trace.events() ?? []
    const iommuFaults: ReadonlyArray<Iommu.Fault> = stopped?.iommuFaults ?? simulator?.iommuFaults() ?? []
    if (stopped !== undefined) {
      lifecycle.length = stopped.lifecycle
      timeline.length = stopped.timeline
      seen.length = stopped.seen
      stalls.length = stopped.stalls
    }
    if (outcome._tag === "Stalled") {
      // Fiber ids differ from run to run; spans do not.
      const sites = outcome.waiting.filter((w) => w.spans.length > 0).map((w) => w.spans.join(" < "))
      stalls.push({
        outcome: "Stalled",
        device: "-",
        at: outcome.virtualMillis,
        what: `nothing could run any more, ${outcome.waiting.length} fiber(s) waiting`,
        waitSites: sites
      })
    } else if (outcome._tag === "TimedOut") {
      stalls.push({
        outcome: "TimedOut",
        device: "-",
        at: outcome.virtualMillis,
        what: `still running ${LIMIT} ms of virtual time after the end of the scenario`,
        waitSites: [...openSpans].map(describeSpan)
      })
    }
    const failures: Array<DriverFailure> = [...(stopped?.failures ?? book.failures.values())]
    // What the host saw go wrong itself (QEMU lost, an interrupt handler that threw there).
    for (const problem of simulator?.problems() ?? []) {
      failures.push({ device: "-", where: `the ${simulator!.name === "qemu" ? "QEMU machine" : "simulator"}`, error: problem, defect: false, at: outcome.virtualMillis, count: 1 })
    }
    if (outcome.exit !== undefined && Exit.isFailure(outcome.exit) && !Cause.isInterruptedOnly(outcome.exit.cause)) {
      // The run itself died: a defect that reached the scenario's own fiber.
      const cause = outcome.exit.cause
      const defect = Chunk.toReadonlyArray(Cause.defects(cause))[0] ?? Option.getOrUndefined(Cause.failureOption(cause))
      failures.push({
        device: "-",
        where: "the scenario run died",
        error: defect === undefined ? Cause.pretty(cause).split("\n")[0]! : describeError(defect),
        defect: true,
        at: outcome.virtualMillis,
        count: 1
      })
    }
    // A stopped run is judged as far as it went: the operations in flight at the stop were cut
    // by it, not lost by a driver (they are reported as in flight, and break nothing).
    const accounted: ReadonlyMap<string, Oracle.DeviceOps> = stopped?.ops ?? ops.devices
    const judged = stopped === undefined
      ? accounted
      : new Map([...accounted].map(([name, o]) => [name, { ...o, inFlight: new Set<number>() }]))
    const verdict = Oracle.judge({ lifecycle, trace, iommuFaults, ops: judged, outcome: outcome._tag })
    const hung = stalls.filter((s) => s.outcome === "Hung").map((s): Violation => ({
      guarantee: "G4",
      device: s.device,
      message: `${s.what} did not finish within ${HANG} ms of virtual time (hung)${
        s.waitSites.length > 0 ? `; waiting in: ${s.waitSites.join("; ")}` : ""
      }`
    }))
    const violations: Array<Violation> = [...verdict.violations, ...capped(seen), ...hung]
    const violationCount = verdict.count + seen.length + hung.length
    const devices: Array<DeviceSummary> = scenario.devices.map((spec) => {
      const mine = accounted.get(spec.name) ?? ops.of(spec.name)
      const list = unbinds.get(spec.name) ?? []
      return {
        device: spec.name,
        kind: spec.kind,
        bus: busOf(spec.kind),
        completed: mine.completed,
        failedGone: mine.gone,
        lost: (stopped === undefined ? mine.inFlight.size : 0) + mine.interrupted,
        inFlight: mine.inFlight.size,
        unbinds: list,
        released: list.reduce((n, u) => n + u.released, 0),
        leaks: list.reduce((n, u) => n + u.leaks, 0),
        iommuFaults: iommuFaults.filter((f) => f.device === spec.name).length
      }
    })
    return {
      scenario: scenario.name,
      seed,
      endedAt: stopped?.at ?? outcome.virtualMillis,
      wallMillis: performance.now() - wallStart,
      lifecycle,
      trace,
      iommuFaults,
      timeline,
      devices,
      violations,
      violationCount,
      failures,
      notes: stopped?.notes ?? [...book.notes.values()],
      stalls,
      dropped: { trace: stopped?.dropped ?? simulator?.trace.dropped ?? 0 },
      ...(stopped === undefined ? {} : { interrupted: { reason: stopped.reason, at: stopped.at } }),
      ...(simulator?.name === "qemu" ? { backend: "qemu" as const } : {})
    } satisfies RunRecord
  }))
