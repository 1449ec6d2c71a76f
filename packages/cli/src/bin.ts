#!/usr/bin/env node
/**
 * The `devscope` executable: `dist/bin.js` is the installed package's bin; in the workspace
 * `pnpm devscope <command>` runs this source through tsx.
 *
 * Exit codes: 0 every guarantee held; 1 a guarantee was broken or driver code failed; 2 the
 * scenario cannot run or the command line is wrong; 130 a run stopped by SIGINT (Ctrl-C), 143
 * by SIGTERM, 124 by --timeout (each after the summary and files of what ran), and 130 for
 * Ctrl-C outside a run.
 *
 * @since 0.1.0
 */
// Subpaths, not the barrel: the barrel loads modules that need platform-node's optional peers
// (@effect/cluster, @effect/rpc, @effect/sql), which a strict install does not have.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { exitCode } from "./Cli.js"

exitCode(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) && typeof exit.value === "number" ? exit.value : 130)
  })
)
