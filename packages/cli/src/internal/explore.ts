/**
 * A scenario file as `@devscope/testing`'s Explore sees it: one exploration per target device
 * (each device present at the start whose kind has a driver in the file). A case boots the
 * file's machine (its drivers with their planted bugs, its devices, cables, media and fault
 * rules, its seed), runs the file's workload for the horizon (virtual time), then unloads every
 * driver and gives the operations in flight a bounded time to resolve, as a run ends; the
 * explorer removes the target device at one suspension point. The file's timeline is not
 * played: the explorer's removals take its place.
 *
 * The cases of a file are numbered, target by target in file order, as `Explore.explore`
 * runs them: the baseline, the `surprise` points, the `unplug` points, the orderly unplug in
 * the middle, then the `surprise-in-remove` points inside its unbind. Points are spread
 * evenly as `Explore.explore` spreads them (`maxPoints` is `--points`).
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { Explore } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import { LogBook } from "./logbook.js"
import * as Machine from "./machine.js"

/** Virtual time the end of a case may take to resolve the operations in flight (as a run's end). */
const DRAIN = 1_000

/** Default virtual time the workload runs in each case, in milliseconds (at most the file's duration). */
export const DEFAULT_HORIZON = 2

/** Default `--points`: at most this many points per mode and target device. */
export const DEFAULT_POINTS = 20

/** The explorer's timeout of a case, from its baseline (as `Explore.explore` computes it). */
export const caseTimeout = (baselineMillis: number) => baselineMillis * 20 + 1_000

/** The baseline's timeout (`Explore.explore`'s). */
export const BASELINE_TIMEOUT = 600_000

/** What a file's exploration depends on besides the file: the seed and the horizon. */
export interface Settings {
  readonly seed: number
  /** Virtual milliseconds the workload runs in each case. */
  readonly horizon: number
}

/** The devices explored: present at the start, with a driver for their kind in the file. */
export const targets = (scenario: Scenario.Scenario): Array<string> =>
  scenario.devices
    .filter((d) => d.present !== false && scenario.drivers.some((driver) => driver.kind === d.kind))
    .map((d) => d.name)

/** The horizon in a token: `2ms`, `0.5ms`. */
const horizonText = (horizon: number) => `${horizon}ms`

/** The Explore scenario's name, the first part of its replay tokens: `file-name/device/2ms`. */
export const scenarioName = (scenario: Scenario.Scenario, device: string, horizon: number) =>
  `${scenario.name}/${device}/${horizonText(horizon)}`

/** A replay token of an exploration, taken apart; `undefined` if it is not one. */
export const parseToken = (token: string):
  | { readonly scenario: string; readonly device: string; readonly horizon: number; readonly seed: number; readonly case: Explore.Case }
  | undefined =>
{
  const match = /^(.+)\/([A-Za-z][A-Za-z0-9_.-]{0,31})\/([0-9]+(?:\.[0-9]+)?)ms@(\d+):(baseline|surprise|unplug|surprise-in-remove):(\d+)(?::(\d+))?$/
    .exec(token)
  if (match === null) return undefined
  return {
    scenario: match[1]!,
    device: match[2]!,
    horizon: Number(match[3]),
    seed: Number(match[4]),
    case: {
      mode: match[5] as Explore.Case["mode"],
      point: Number(match[6]),
      inner: match[7] === undefined ? undefined : Number(match[7])
    }
  }
}

/**
 * The Explore scenario of one target device. Driver code that fails (a defect in an interrupt
 * handler, a binding fiber) is logged into `book`; the run then fails at its end, naming it.
 */
const exploreScenario = (scenario: Scenario.Scenario, device: string, settings: Settings, book: LogBook): Explore.Scenario<Error> => ({
  name: scenarioName(scenario, device, settings.horizon),
  device,
  seed: settings.seed,
  simulator: { faults: scenario.faults },
  run: ({ oracle, sim }) =>
    Effect.gen(function*() {
      yield* Machine.logInto(book)
      const machine = Machine.make(scenario, Machine.onSimulator(sim), settings.seed)
      const registered: Array<Scenario.Kind> = []
      for (const driver of scenario.drivers) {
        yield* Effect.orDie(machine.load(driver.kind))
        registered.push(driver.kind)
      }
      for (const spec of scenario.devices) if (spec.present !== false) yield* Effect.orDie(machine.plug(spec))
      const workload = yield* Effect.fork(machine.workload(Machine.oracleLoads(oracle)))
      yield* Effect.sleep(settings.horizon)
      // The end, as a run's: no new operations, every driver unloaded (the operations in
      // flight resolve), then a bounded time for them to come back.
      oracle.ops.stopping = true
      for (const kind of registered) yield* Effect.ignore(sim[Machine.busOf(kind)].unregisterDriver(Machine.driverOf(kind)))
      const drained = yield* Fiber.join(workload).pipe(Effect.timeout(DRAIN), Effect.option)
      if (Option.isNone(drained)) yield* Fiber.interrupt(workload)
      const failure = Machine.driverFailure(book)
      if (failure !== undefined) return yield* Effect.fail(new Error(failure))
    })
})

/** What a case of an exploration is: the target device and the Explore case. */
export interface Job {
  readonly device: string
  readonly case: Explore.Case
  readonly timeout: number
}

/** Runs one case in this thread, with the driver failures it logs collected, not printed. */
export const runJob = (scenario: Scenario.Scenario, settings: Settings, job: Job): Effect.Effect<Explore.CaseResult> =>
  Effect.suspend(() => {
    const book = new LogBook(undefined)
    return Explore.runCase(exploreScenario(scenario, job.device, settings, book), settings.seed, job.case, job.timeout)
  })

/** The points `Explore.explore` explores among `count` (at most `max`, spread evenly). */
export const spread = (count: number, max: number): Array<number> => {
  if (count <= max) return Array.from({ length: count }, (_, i) => i + 1)
  const points = new Set<number>()
  for (let i = 0; i < max; i++) points.add(1 + Math.floor((i * (count - 1)) / (max - 1)))
  return [...points]
}

/** The orderly unplug in the middle of the run, whose unbind `surprise-in-remove` explores. */
export const middle = (baseline: Explore.CaseResult) => Math.max(1, Math.floor(baseline.points.bound / 2))

/** A case that failed: a failure of the run or a violation. */
export const failed = (result: Explore.CaseResult) => result.failure !== undefined || result.violationCount > 0
