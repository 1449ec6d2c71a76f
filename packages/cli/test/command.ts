/** The real `devscope` command (its TypeScript sources through tsx), for tests that stop it. */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"

export const root = path.resolve(__dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const tsx = path.join(root, "node_modules/.bin/tsx")

export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** Wall ms from the signal to the exit. */
  readonly afterSignal: number
}

/**
 * Runs the real command; once its output shows `ready` (and `settle` ms more), sends
 * `signal` (none: waits for the command to end on its own).
 */
export const devscope = (
  args: ReadonlyArray<string>,
  options: {
    readonly signal?: NodeJS.Signals | undefined
    readonly env?: NodeJS.ProcessEnv
    /** The output (stdout, then stderr) that shows the command is busy (default the run header's `devices:`). */
    readonly ready?: string | undefined
    /** Wall ms after `ready` before the signal (default 700). */
    readonly settle?: number | undefined
  } = {}
) =>
  Effect.async<Ran>((resume) => {
    const child = spawn(tsx, ["--conditions=@devscope/source", bin, ...args], {
      cwd: root,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let sentAt: number | undefined
    const kill = setTimeout(() => child.kill("SIGKILL"), 90_000)
    const ready = options.ready ?? "devices:"
    const check = () => {
      if (options.signal !== undefined && sentAt === undefined && (stdout.includes(ready) || stderr.includes(ready))) {
        sentAt = -1
        // Some wall time into the run, so that it is busy simulating when the signal comes.
        setTimeout(() => {
          sentAt = performance.now()
          child.kill(options.signal)
        }, options.settle ?? 700)
      }
    }
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      check()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
      check()
    })
    child.on("close", (code) => {
      clearTimeout(kill)
      resume(Effect.succeed({ code, stdout, stderr, afterSignal: sentAt === undefined ? 0 : performance.now() - sentAt }))
    })
  })

