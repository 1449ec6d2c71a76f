/**
 * Launching one QEMU machine for the qtest backend: a private temp dir with the qtest FIFOs, the
 * synchronous QMP channel's FIFOs and the QMP socket, guest RAM in a /dev/shm file the process
 * can read and write, and QEMU itself under `setpriv --pdeathsig SIGKILL` so that it cannot
 * outlive us. Everything is released with the scope: SIGTERM, up to 2 s of grace, SIGKILL,
 * then the files.
 *
 * @since 0.1.0
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

/**
 * QEMU could not be started: no binary, a file we need could not be made, or it did not
 * come up in time.
 * @since 0.1.0
 * @category errors
 */
export class QemuStartFailed extends Data.TaggedError("QemuStartFailed")<{
  readonly reason: string
  /** The last 64 KiB of QEMU's stderr, if it ran at all. */
  readonly stderr: string
  readonly cause?: unknown
}> {
  override get message() {
    return `QEMU did not start: ${this.reason}${tail(this.stderr)}`
  }
}

/**
 * QEMU exited (or was killed) while we still needed it.
 * @since 0.1.0
 * @category errors
 */
export class QemuExited extends Data.TaggedError("QemuExited")<{
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
}> {
  override get message() {
    const how = this.signal !== null ? `was killed by ${this.signal}` : `exited with code ${this.code}`
    return `QEMU ${how}${tail(this.stderr)}`
  }
}

/**
 * The errors of this module.
 * @since 0.1.0
 * @category errors
 */
export type QemuError = QemuStartFailed | QemuExited

const tail = (stderr: string) => (stderr.trim() === "" ? "" : `; stderr:\n${stderr.trimEnd()}`)

/**
 * How QEMU ended.
 * @since 0.1.0
 * @category models
 */
export interface QemuExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** The last 64 KiB of stderr, read to its end. */
  readonly stderr: string
}

/**
 * What to launch.
 * @since 0.1.0
 * @category models
 */
export interface LaunchOptions {
  /** `qemu-system-x86_64` by default (looked up on PATH). */
  readonly binary?: string
  /** `setpriv` by default; `null` to run QEMU without the parent-death signal. */
  readonly setpriv?: string | null
  /** QEMU_MODULE_DIR: where the rebuilt qtest accelerator module lives. */
  readonly moduleDir?: string
  /**
   * `qtest` (the default) needs the accelerator module and gives `clock_step`; `tcg` starts
   * the machine stopped (`-S`): registers work, the virtual clock does not move.
   */
  readonly accel?: "qtest" | "tcg"
  /** Guest RAM in MiB (64 by default), backed by a shared /dev/shm file. */
  readonly memoryMiB?: number
  /** Extra arguments, typically `-device ...`. */
  readonly args?: ReadonlyArray<string>
}

/**
 * A running QEMU. Its files live in a private temp dir until the launching scope closes.
 * @since 0.1.0
 * @category models
 */
export interface Machine {
  readonly pid: number
  /** The private temp dir (mode 0700). */
  readonly dir: string
  /** `-qtest pipe:<qtestBase>`: QEMU reads `<qtestBase>.in` and writes `<qtestBase>.out`. */
  readonly qtestBase: string
  /**
   * `-chardev pipe,path=<qmpFifoBase>` under a second QMP monitor, for the synchronous QMP
   * client (qmpSync.ts): QEMU reads `<qmpFifoBase>.in` and writes `<qmpFifoBase>.out`.
   * Always there: until a client sends `qmp_capabilities` QEMU sends it no events, so an
   * unused channel holds only QEMU's greeting.
   */
  readonly qmpFifoBase: string
  readonly qmpSocket: string
  /** The guest RAM file: guest physical address A (below 4 GiB) is file offset A. */
  readonly memPath: string
  readonly memoryBytes: number
  /** Completed (never failed) when QEMU has exited and its stderr is read to the end. */
  readonly exited: Deferred.Deferred<QemuExit>
  /** How QEMU ended, once it has. */
  exitStatus(): QemuExit | undefined
  /** The last 64 KiB of stderr so far. */
  stderr(): string
  /** Sends a signal (no-op once QEMU has exited). */
  /**
   * Removes the FIFOs, the socket, the temp dir and the /dev/shm file once every end is open
   * (QEMU and this process keep their descriptors and mapping): a Node process killed with
   * SIGKILL then leaves nothing behind (QEMU dies with it, and the guest RAM with QEMU).
   */
  unlinkFiles(): void
  kill(signal: NodeJS.Signals): void
}

/** Stderr is kept as a tail: QEMU's last words matter (an abort's message), a flood does not. */
const STDERR_LIMIT = 64 * 1024

/** Up to 64 KiB of the most recent bytes; older chunks are dropped whole or trimmed. */
class Tail {
  private chunks: Array<Buffer> = []
  private size = 0
  push(chunk: Buffer) {
    this.chunks.push(chunk)
    this.size += chunk.length
    while (this.size - this.chunks[0].length >= STDERR_LIMIT) this.size -= this.chunks.shift()!.length
  }
  text(): string {
    const all = Buffer.concat(this.chunks)
    return all.subarray(Math.max(0, all.length - STDERR_LIMIT)).toString("utf8")
  }
}

const removeQuietly = (p: string) => {
  try {
    fs.rmSync(p, { force: true, recursive: true })
  } catch {
    // Best effort at release: a leftover file must not turn a clean close into a failure.
  }
}

/** The /dev/shm name is unique per launch so parallel machines never share guest RAM. */
const shmName = () => `devscope-qemu-${process.pid}-${randomBytes(6).toString("hex")}`

/**
 * The QEMU command line for a machine laid out in `dir` (exported for diagnostics and tests).
 * @since 0.1.0
 */
export const commandLine = (options: LaunchOptions, files: {
  readonly qtestBase: string
  readonly qmpFifoBase: string
  readonly qmpSocket: string
  readonly memPath: string
}): Array<string> => {
  const mib = options.memoryMiB ?? 64
  const accel = options.accel ?? "qtest"
  return [
    "-machine", "q35,memory-backend=ram0",
    "-accel", accel,
    ...(accel === "tcg" ? ["-S"] : []),
    "-qtest", `pipe:${files.qtestBase}`,
    "-qtest-log", "/dev/null",
    "-chardev", `socket,path=${files.qmpSocket},server=on,wait=off,id=qmp0`,
    "-mon", "chardev=qmp0,mode=control",
    "-chardev", `pipe,id=qmpsync,path=${files.qmpFifoBase}`,
    "-mon", "chardev=qmpsync,mode=control",
    "-display", "none",
    "-nodefaults",
    "-m", `${mib}M`,
    "-object", `memory-backend-file,id=ram0,size=${mib}M,mem-path=${files.memPath},share=on`,
    ...(options.args ?? [])
  ]
}

/**
 * Launches QEMU. The machine lives as long as the scope: closing it sends SIGTERM, waits up
 * to 2 s, sends SIGKILL, and removes the FIFOs, the temp dir and the /dev/shm file. QEMU's exit
 * (at any time, e.g. a SIGABRT from a device model's `hw_error`) completes `machine.exited`.
 * Launch does not wait for QEMU to answer: opening the qtest channel does.
 * @since 0.1.0
 */
export const launch = (options: LaunchOptions = {}): Effect.Effect<Machine, QemuError, Scope.Scope> =>
  Effect.acquireRelease(start(options), release)

const start = (options: LaunchOptions) =>
  Effect.gen(function*() {
    const mib = options.memoryMiB ?? 64
    if (!Number.isInteger(mib) || mib < 16 || mib > 3072) {
      return yield* new QemuStartFailed({ reason: `memoryMiB must be an integer in 16..3072, got ${mib}`, stderr: "" })
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-qemu-"))
    const qtestBase = path.join(dir, "qtest")
    const qmpFifoBase = path.join(dir, "qmpsync")
    const qmpSocket = path.join(dir, "qmp.sock")
    const memPath = path.join("/dev/shm", shmName())
    const cleanup = () => {
      removeQuietly(dir)
      removeQuietly(memPath)
    }
    // sun_path holds 108 bytes: a long TMPDIR would make QEMU fail with an obscure message.
    if (Buffer.byteLength(qmpSocket) > 100) {
      cleanup()
      return yield* new QemuStartFailed({ reason: `socket path too long: ${qmpSocket} (set TMPDIR)`, stderr: "" })
    }
    try {
      const fifos = [qtestBase, qmpFifoBase].flatMap((base) => [`${base}.in`, `${base}.out`])
      execFileSync("mkfifo", ["-m", "0600", ...fifos], { stdio: "pipe" })
    } catch (cause) {
      cleanup()
      return yield* new QemuStartFailed({ reason: "mkfifo failed", stderr: "", cause })
    }
    const binary = options.binary ?? "qemu-system-x86_64"
    const setpriv = options.setpriv === undefined ? "setpriv" : options.setpriv
    const qemuArgs = commandLine(options, { qtestBase, qmpFifoBase, qmpSocket, memPath })
    const [file, args] = setpriv === null
      ? [binary, qemuArgs]
      : [setpriv, ["--pdeathsig", "SIGKILL", "--", binary, ...qemuArgs]]
    const env = options.moduleDir === undefined ? process.env : { ...process.env, QEMU_MODULE_DIR: options.moduleDir }
    // Spawned from this (the main) thread: the parent-death signal follows the spawning thread.
    const child: ChildProcess = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], env })
    // Listening at once: a spawn failure (no such binary) is emitted on the next tick.
    const spawnError = yield* Deferred.make<unknown>()
    child.on("error", (e) => Deferred.unsafeDone(spawnError, Exit.succeed(e)))
    const stderr = new Tail()
    child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk))
    const exited = yield* Deferred.make<QemuExit>()
    let status: QemuExit | undefined
    // `close`, not `exit`: only then is stderr read to its end (an abort's message comes last).
    child.on("close", (code, signal) => {
      status = { code, signal, stderr: stderr.text() }
      Deferred.unsafeDone(exited, Exit.succeed(status))
    })
    if (child.pid === undefined) {
      const error = yield* Deferred.await(spawnError)
      cleanup()
      return yield* new QemuStartFailed({ reason: `cannot run ${file}: ${String(error)}`, stderr: "", cause: error })
    }
    const machine: Machine = {
      pid: child.pid,
      dir,
      qtestBase,
      qmpFifoBase,
      qmpSocket,
      memPath,
      memoryBytes: mib * 1024 * 1024,
      exited,
      exitStatus: () => status,
      stderr: () => stderr.text(),
      kill: (signal) => {
        if (status === undefined) child.kill(signal)
      },
      unlinkFiles: cleanup
    }
    return machine
  })

const release = (machine: Machine) =>
  Effect.gen(function*() {
    machine.kill("SIGTERM")
    // Finalizers are uninterruptible: the wait must be made interruptible for the timeout.
    const graceful = yield* Deferred.await(machine.exited).pipe(
      Effect.interruptible,
      Effect.timeout(Duration.seconds(2)),
      Effect.option
    )
    if (graceful._tag === "None") {
      machine.kill("SIGKILL")
      // SIGKILL cannot be refused; the bound only keeps a wedged kernel from wedging us too.
      yield* Deferred.await(machine.exited).pipe(Effect.interruptible, Effect.timeout(Duration.seconds(5)), Effect.ignore)
    }
    removeQuietly(machine.dir)
    removeQuietly(machine.memPath)
  })
