/**
 * The unit of work of exploration and fuzzing, run in this thread or on a worker thread: the
 * same function either way, so a case has the same result wherever it runs. A job and its
 * result are plain data (structured-cloneable).
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Explore, Fuzz } from "@devscope/testing"
import type * as Scenario from "../Scenario.js"
import * as ExploreCases from "./explore.js"
import * as FuzzCases from "./fuzz.js"

/** What every job of one campaign shares: the file and the settings (sent once to each worker). */
export interface Context {
  readonly scenario: Scenario.Scenario
  readonly seed: number
  /** Explore's horizon (virtual milliseconds). */
  readonly horizon: number
}

export type Job =
  | { readonly _tag: "explore"; readonly job: ExploreCases.Job }
  | { readonly _tag: "fuzz"; readonly sequence: ReadonlyArray<Fuzz.Action> }
  | { readonly _tag: "shrink"; readonly index: number }

export type Result =
  | { readonly _tag: "explore"; readonly result: Explore.CaseResult }
  | { readonly _tag: "fuzz"; readonly result: Fuzz.RunResult }
  | { readonly _tag: "shrink"; readonly shrunk: FuzzCases.Shrunk }

/** A runner of the jobs of one context (the fuzz spec is made once). */
export const handler = (context: Context): (job: Job) => Effect.Effect<Result> => {
  let fuzzing: FuzzCases.Fuzzing | undefined
  const fuzz = () => fuzzing ??= FuzzCases.make(context.scenario, context.seed)
  return (job) => {
    switch (job._tag) {
      case "explore":
        return Effect.map(
          ExploreCases.runJob(context.scenario, { seed: context.seed, horizon: context.horizon }, job.job),
          (result) => ({ _tag: "explore", result })
        )
      case "fuzz":
        return Effect.map(fuzz().run(job.sequence), (result) => ({ _tag: "fuzz", result }))
      case "shrink":
        return Effect.map(FuzzCases.shrink(fuzz(), job.index), (shrunk) => ({ _tag: "shrink", shrunk }))
    }
  }
}
