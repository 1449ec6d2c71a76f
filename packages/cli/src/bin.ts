/**
 * The `devscope` executable: `tsx packages/cli/src/bin.ts <command>` (or `pnpm devscope`).
 * Exit codes: 0 every guarantee held, 1 a guarantee was broken, 2 the scenario cannot run.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { main } from "./Cli.js"

main(process.argv).pipe(
  Effect.catchTags({
    GuaranteesBroken: (e) =>
      Effect.zipRight(Console.error(`\ndevscope: FAILED: ${e.message}`), Effect.sync(() => void (process.exitCode = 1))),
    InvalidScenario: (e) => Effect.zipRight(Console.error(`devscope: ${e.message}`), Effect.sync(() => void (process.exitCode = 2)))
  }),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: false })
)
