/**
 * A scenario file as `@devscope/testing`'s Fuzz sees it: the file's devices (with their
 * cables, media and latencies) are the spec's devices, its drivers (with their planted bugs)
 * the spec's drivers, its fault rules present from the start; every kind of fault step may be
 * drawn. Each sequence starts by plugging the devices present at the start (the prefix), then
 * runs random steps; one `io` step is one user operation (a NIC sends a frame, a disk writes
 * then reads a sector, a sensor is read).
 *
 * Case `i` of a fuzzing campaign is the `i`-th sequence fast-check draws from the seed (the
 * sequences `Fuzz.check` runs with that seed, in order); the simulator runs with the same seed.
 * A failing case is shrunk by fast-check from its path (`i`), to a path `i:a:b:...` that
 * names the shrunk sequence.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import { Fuzz } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import { LogBook } from "./logbook.js"
import * as Machine from "./machine.js"
import { makeFrame } from "./workloads.js"

/** Default `--cases`: random sequences run. */
export const DEFAULT_CASES = 100

/** The spec of a file, and a way to run one sequence of it with driver failures collected. */
export interface Fuzzing {
  readonly spec: Fuzz.Spec
  /** Steps run before every sequence: the devices present at the start are plugged. */
  readonly prefix: ReadonlyArray<Fuzz.Action>
  /** Runs `prefix` then `sequence`; a driver failure logged during the run fails it. */
  readonly run: (sequence: ReadonlyArray<Fuzz.Action>) => Effect.Effect<Fuzz.RunResult>
  readonly seed: number
}

export const make = (scenario: Scenario.Scenario, seed: number): Fuzzing => {
  let machine: Machine.Machine | undefined
  let book = new LogBook(undefined)
  let round = 0
  const current = () => machine!
  const device = (spec: Scenario.DeviceSpec): Fuzz.DeviceSpec => ({
    name: spec.name,
    bus: Machine.busOf(spec.kind),
    plug: () => current().plug(spec),
    io: ({ oracle }) =>
      Effect.gen(function*() {
        const n = round++
        switch (spec.kind) {
          case "nic": {
            const dev = current().net.lookup(spec.name)
            if (Option.isSome(dev)) yield* oracle.track(spec.name, "send", dev.value.send(makeFrame(0, n, 128)))
            return
          }
          case "blk": {
            const disk = current().disks.lookup(spec.name)
            if (Option.isNone(disk)) return
            const sector = n % Math.max(1, disk.value.sectors)
            const written = yield* oracle.track(spec.name, "write", disk.value.write(sector, new Uint8Array(disk.value.sectorSize).fill(n & 0xff)))
            if (Option.isSome(written)) yield* oracle.track(spec.name, "read", disk.value.read(sector, 1))
            return
          }
          case "sensor": {
            const handle = current().hwmon.lookup(spec.name)
            if (Option.isSome(handle)) yield* oracle.track(spec.name, "readTemperature", handle.value.readTemperature())
            return
          }
          case "edu": {
            const edu = current().edus.lookup(spec.name)
            if (Option.isNone(edu)) return
            const computed = yield* oracle.track(spec.name, "factorial", edu.value.factorial(n % 13))
            if (Option.isSome(computed)) yield* oracle.track(spec.name, "dmaToDevice", edu.value.dmaToDevice(new Uint8Array(64).fill(n & 0xff)))
            return
          }
          case "pci-testdev":
            // rust_driver_pci has nothing for user code to call.
            return
        }
      })
  })
  const spec: Fuzz.Spec = {
    name: scenario.name,
    simulator: { faults: scenario.faults },
    setup: (sim) =>
      Effect.zipRight(
        Machine.logInto(book),
        Effect.sync(() => {
          machine = Machine.make(scenario, Machine.onSimulator(sim), seed)
          round = 0
        })
      ),
    devices: scenario.devices.map(device),
    drivers: scenario.drivers.map((d): Fuzz.DriverSpec => ({
      name: Machine.driverOf(d.kind),
      bus: Machine.busOf(d.kind),
      register: () => current().load(d.kind)
    }))
  }
  const prefix = scenario.devices
    .filter((d) => d.present !== false)
    .map((d): Fuzz.Action => ({ _tag: "plug", device: d.name }))
  const run = (sequence: ReadonlyArray<Fuzz.Action>) =>
    Effect.suspend(() => {
      // Runs are one at a time in a thread: the book is this run's.
      const mine = book = new LogBook(undefined)
      return Effect.map(Fuzz.runSequence(spec, [...prefix, ...sequence], seed), (result): Fuzz.RunResult => {
        const failure = Machine.driverFailure(mine)
        return failure === undefined || result.failure !== undefined ? result : { ...result, failure }
      })
    })
  return { spec, prefix, run, seed }
}

/** A sequence that failed: a failure of the run or a violation. */
export const failed = (result: Fuzz.RunResult) => result.failure !== undefined || result.violationCount > 0

/** The first `count` sequences fast-check draws from `seed` (case `i` is the `i`-th). */
export const sequences = (fuzzing: Fuzzing, count: number): Array<ReadonlyArray<Fuzz.Action>> =>
  FastCheck.sample(Fuzz.actions(fuzzing.spec), { seed: fuzzing.seed, numRuns: count })

/** A replay token of fuzzing: `name@seed:fuzz:path` (path `i`, or `i:a:b...` once shrunk). */
export const token = (scenario: string, seed: number, path: string) => `${scenario}@${seed}:fuzz:${path}`

/** A replay token of fuzzing, taken apart; `undefined` if it is not one. */
export const parseToken = (text: string): { readonly scenario: string; readonly seed: number; readonly path: string } | undefined => {
  const match = /^(.+)@(\d+):fuzz:(\d+(?::\d+)*)$/.exec(text)
  return match === null ? undefined : { scenario: match[1]!, seed: Number(match[2]), path: match[3]! }
}

/** The sequence at a fast-check path (`i` or `i:a:b...`), without running it. */
export const atPath = (fuzzing: Fuzzing, path: string): ReadonlyArray<Fuzz.Action> => {
  let found: ReadonlyArray<Fuzz.Action> | undefined
  // The property fails on the first value it sees: fast-check stops there (endOnFailure).
  FastCheck.check(
    FastCheck.property(Fuzz.actions(fuzzing.spec), (sequence) => {
      if (found === undefined) found = sequence
      return false
    }),
    { seed: fuzzing.seed, path, numRuns: 1, endOnFailure: true }
  )
  if (found === undefined) throw new Error(`fast-check found no sequence at path ${path}`)
  return found
}

/** What shrinking a failing case found: the path of the smallest failing sequence, and it. */
export interface Shrunk {
  readonly index: number
  readonly path: string
  readonly sequence: ReadonlyArray<Fuzz.Action>
  readonly result: Fuzz.RunResult
}

/** Shrinks case `index` (which must fail) with fast-check, from its path. */
export const shrink = (fuzzing: Fuzzing, index: number): Effect.Effect<Shrunk> =>
  Effect.gen(function*() {
    const details = yield* Effect.promise(() =>
      FastCheck.check(
        FastCheck.asyncProperty(Fuzz.actions(fuzzing.spec), async (sequence) => !failed(await Effect.runPromise(fuzzing.run(sequence)))),
        { seed: fuzzing.seed, path: String(index), numRuns: 1 }
      )
    )
    const path = details.counterexamplePath ?? String(index)
    const sequence = details.counterexample?.[0] ?? atPath(fuzzing, String(index))
    const result = yield* fuzzing.run(sequence)
    return { index, path, sequence, result }
  })
