/**
 * A synchronous QMP client, for code that runs inside devscope's VirtualTime worlds (the
 * hotplug path: `device_del`, `device_add`, `DEVICE_DELETED`), where a fiber waiting on
 * external I/O looks like a stall and a virtual timeout races wall time. It talks to a second
 * QMP monitor on a FIFO pair chardev (`-chardev pipe,path=<base>`: QEMU reads `<base>.in`,
 * writes `<base>.out`; process.ts always adds it) exactly as qtest.ts talks to qtest:
 * `fs.writeSync` of one JSON line, then blocking `fs.readSync` until the reply with its id,
 * on the main thread. What keeps that safe is the same:
 * - our read end is O_RDONLY, so QEMU's death (it holds the only other write end) reads as EOF;
 * - the watchdog (shared with the qtest channel: one worker per QEMU) SIGKILLs a QEMU that
 *   stays silent past the deadline, which again ends in EOF;
 * - only well-formed JSON is sent: arguments that JSON cannot carry exactly are refused first.
 *
 * Events met while reading go into a bounded, numbered log. There is no way to learn of an
 * event without reading, so `poll` is a round trip (see there).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Machine, type QemuError, QemuExited, QemuStartFailed } from "./process.js"
import { QmpError, type QmpEvent, type QmpIssue } from "./qmp.js"
import { closeQuietly, Encoder, LineReader, openFifoPair } from "./qtestWire.js"
import { startWatchdog, type Watchdog } from "./watchdog.js"

export { QmpError, type QmpEvent, type QmpIssue } from "./qmp.js"

/**
 * A command was refused before anything was sent (arguments JSON cannot carry exactly).
 * @since 0.1.0
 * @category errors
 */
export class QmpSyncBadArgument extends Data.TaggedError("QmpSyncBadArgument")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `QMP ${this.command}: ${this.reason} (not sent)`
  }
}

/**
 * The channel is gone: QEMU exited or was killed, or the channel was closed.
 * @since 0.1.0
 * @category errors
 */
export class QmpSyncClosed extends Data.TaggedError("QmpSyncClosed")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `QMP ${this.command}: ${this.reason}`
  }
}

/**
 * QEMU did not answer within the watchdog's deadline; the watchdog killed it.
 * @since 0.1.0
 * @category errors
 */
export class QmpSyncTimeout extends Data.TaggedError("QmpSyncTimeout")<{
  readonly command: string
  readonly deadlineMs: number
}> {
  override get message() {
    return `QMP ${this.command}: no answer within ${this.deadlineMs} ms; QEMU was killed`
  }
}

/**
 * QEMU sent what the channel cannot get past (a line over 1 MiB, no greeting first); the
 * channel is then unusable.
 * @since 0.1.0
 * @category errors
 */
export class QmpSyncProtocolError extends Data.TaggedError("QmpSyncProtocolError")<{
  readonly command: string
  readonly line: string
}> {
  override get message() {
    return `QMP ${this.command}: unexpected line from QEMU: ${JSON.stringify(this.line)}`
  }
}

/**
 * What the channel's methods throw (synchronously). `QmpError` is QEMU's own error reply.
 * @since 0.1.0
 * @category errors
 */
export type QmpSyncError = QmpError | QmpSyncBadArgument | QmpSyncClosed | QmpSyncTimeout | QmpSyncProtocolError

/**
 * Options of `openSync`.
 * @since 0.1.0
 * @category models
 */
export interface OpenSyncOptions {
  /** How long one command may go unanswered before the watchdog kills QEMU (10 s). */
  readonly deadlineMs?: number
  /** How long QEMU may take to open the FIFOs, greet, and accept `qmp_capabilities` (10 s). */
  readonly startTimeout?: Duration.DurationInput
  /** How many recent events to keep (256); older ones are dropped and counted. */
  readonly eventBuffer?: number
}

/** The longest line sent or accepted. QEMU 7.2's longest reply, `query-qmp-schema`, is ~186 KB. */
const MAX_LINE = 1024 * 1024
const ISSUES_KEPT = 32
/** `waitForEvent`'s default bound: 1-1.5 s of `query-status` round trips (see `poll`). */
const DEFAULT_MAX_POLLS = 5000
/** A device model no QEMU has: `device_add` of it fails, which is what `drainRcu` wants. */
const NO_SUCH_DRIVER = "devscope-drain-rcu"

/** QEMU greets once per monitor, so a machine's synchronous channel can be opened once. */
const openedOnce = new WeakSet<Machine>()

/**
 * Opens the machine's synchronous QMP channel: the FIFOs off the main thread, then the
 * greeting and `qmp_capabilities` as blocking requests under the watchdog, each with the
 * start-up deadline. Closing the scope closes our FIFO ends and releases the watchdog slot
 * (QEMU keeps running: the machine's scope stops it). Once per machine: QEMU greets once.
 * @since 0.1.0
 */
export const openSync = (machine: Machine, options: OpenSyncOptions = {}): Effect.Effect<QmpSync, QemuError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(10))
      const deadlineMs = options.deadlineMs ?? 10_000
      const eventBuffer = options.eventBuffer ?? 256
      const refuse = (reason: string) => new QemuStartFailed({ reason, stderr: "" })
      if (!isU(deadlineMs, 2 ** 31 - 1) || deadlineMs === 0) return yield* refuse(`deadlineMs must be an integer in 1..2^31-1, got ${deadlineMs}`)
      if (!isU(eventBuffer, 2 ** 20) || eventBuffer === 0) return yield* refuse(`eventBuffer must be an integer in 1..2^20, got ${eventBuffer}`)
      if (openedOnce.has(machine)) return yield* refuse("the synchronous QMP channel was already opened (QEMU greets once)")
      openedOnce.add(machine)
      const [input, output] = yield* openFifoPair(machine, machine.qmpFifoBase, "synchronous QMP", startTimeout)
      const watchdog = yield* Effect.promise(() => startWatchdog({ pid: machine.pid, deadlineMs })).pipe(
        Effect.onError(() => Effect.sync(() => [input, output].forEach(closeQuietly)))
      )
      const channel = new QmpSync(machine.pid, input, output, watchdog, eventBuffer)
      watchdog.setDeadline(Math.min(2 ** 31 - 1, Math.max(1, Math.round(Duration.toMillis(startTimeout)))))
      const failure = yield* Effect.try({ try: () => channel.handshake(), catch: (e) => e as QmpSyncError }).pipe(
        Effect.ensuring(Effect.sync(() => watchdog.setDeadline(deadlineMs))),
        Effect.as(undefined),
        Effect.catchAll((error) =>
          Effect.gen(function*() {
            yield* Effect.promise(() => channel.close())
            // A QEMU that died during start-up is best reported by its exit and stderr.
            const exit = yield* Deferred.await(machine.exited).pipe(Effect.interruptible, Effect.timeout(Duration.seconds(2)), Effect.option)
            return exit._tag === "Some" && error._tag !== "QmpSyncTimeout"
              ? new QemuExited(exit.value)
              : new QemuStartFailed({ reason: `no QMP handshake: ${error.message}`, stderr: machine.stderr(), cause: error })
          })
        )
      )
      if (failure !== undefined) return yield* failure
      return channel
    }),
    (channel) => Effect.promise(() => channel.close())
  )

const isU = (n: unknown, max: number): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= max

/** JSON.stringify would turn these into `null` silently: refuse them instead. */
const exactJson = (_key: string, value: unknown) => {
  if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`)
  return value
}

/** Non-ASCII as \u escapes (only possible inside JSON strings), so the line is ASCII. */
const asciiJson = (text: string) => text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/**
 * A synchronous QMP channel to one QEMU (made by `openSync`). Every method is synchronous and
 * throws a `QmpSyncError`; after a `QmpSyncBadArgument` nothing was sent.
 * @since 0.1.0
 * @category models
 */
export class QmpSync {
  /** The greeting's `QMP` member (version, capabilities). */
  greeting: unknown = undefined
  private readonly enc = new Encoder()
  private readonly reader: LineReader
  private nextId = 1
  /** The last `eventBuffer` events in arrival order; `dropped` counts the ones evicted. */
  private readonly log: Array<QmpEvent> = []
  private dropped = 0
  private seq = 0
  private readonly issueList: Array<QmpIssue> = []
  /** Why the channel is unusable. Set once (only `close` overrides it); never cleared. */
  private dead: QmpSyncError | undefined
  private fdsClosed = false

  /** @internal */
  constructor(
    /** QEMU's pid. */
    readonly pid: number,
    private readonly input: number,
    private readonly output: number,
    private readonly watchdog: Watchdog,
    private readonly eventBuffer: number
  ) {
    this.reader = new LineReader(output, MAX_LINE)
  }

  /** True once QEMU is gone or the channel was closed; every command then throws. */
  get closed(): boolean {
    return this.dead !== undefined
  }
  /** The watchdog's deadline for one command, in ms. */
  get deadlineMs(): number {
    return this.watchdog.deadlineMs
  }
  set deadlineMs(ms: number) {
    if (!isU(ms, 2 ** 31 - 1) || ms === 0) throw new QmpSyncBadArgument({ command: "deadline", reason: `${ms} ms` })
    this.watchdog.setDeadline(ms)
  }

  /**
   * Runs a command and returns its `return` member; QEMU's error reply throws `QmpError`.
   * Every event line read on the way (and behind the reply, if already received) is logged.
   */
  execute(command: string, args?: Record<string, unknown>): unknown {
    const name = typeof command === "string" ? command.slice(0, 64) : "(no command)"
    if (this.dead !== undefined) throw new QmpSyncClosed({ command: name, reason: `channel unusable: ${this.dead.message}` })
    if (typeof command !== "string" || command === "") throw new QmpSyncBadArgument({ command: name, reason: "the command is not a non-empty string" })
    if (args !== undefined && (args === null || typeof args !== "object" || Array.isArray(args))) {
      throw new QmpSyncBadArgument({ command: name, reason: "the arguments are not an object" })
    }
    const id = this.nextId++
    let line: string
    try {
      line = asciiJson(JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }, exactJson))
    } catch (e) {
      // Cycles, bigints (JSON numbers are doubles here), non-finite numbers.
      throw new QmpSyncBadArgument({ command: name, reason: `no exact JSON form: ${(e as Error).message}` })
    }
    if (line.length > MAX_LINE) throw new QmpSyncBadArgument({ command: name, reason: `the request is over ${MAX_LINE} bytes` })
    this.enc.start(line)
    const reply = this.roundTrip(name, id)
    if ("return" in reply) return reply.return
    const error = reply.error as { class?: unknown; desc?: unknown } | null
    throw new QmpError({ command: name, errorClass: String(error?.class ?? "unknown"), desc: String(error?.desc ?? JSON.stringify(reply.error)) })
  }
  /**
   * Collects the events QEMU has emitted so far. A blocking read cannot ask "is there
   * anything?" and a non-blocking one cannot tell an event not yet written from none, so this
   * is a `query-status` round trip: it blocks only for QEMU's answer (tens of µs; never for an
   * event), and QEMU writes every event it emitted before handling the command ahead of the
   * reply, so afterwards the log holds all of them (rate-limited events QEMU holds back on a
   * timer excepted; DEVICE_DELETED is not one). QEMU 7.2 reads a monitor's input one byte per
   * main-loop iteration (`monitor_can_read` answers 0 or 1), so a command costs ~4 µs per
   * byte sent: this one, ~35 bytes, 0.2-0.3 ms.
   */
  poll(): void {
    this.execute("query-status")
  }
  /**
   * Runs QEMU's pending RCU callbacks, then collects events as `poll` does. A device removed
   * by a slot power-off is finalized (and DEVICE_DELETED emitted) only from an RCU callback,
   * which QEMU's RCU thread batches for up to 50 ms; QEMU 7.2's `device_add` drains them
   * (`drain_call_rcu`) whenever it fails, so this is a `device_add` of a device model that
   * does not exist: one round trip that waits in QEMU (up to ~50 ms) instead of hundreds of
   * polls. QEMU's main loop stands still meanwhile (qtest requests wait too).
   */
  drainRcu(): void {
    try {
      this.execute("device_add", { driver: NO_SUCH_DRIVER })
    } catch (e) {
      if (e instanceof QmpError && e.errorClass === "GenericError") return
      throw e
    }
    this.protocol("device_add", `device_add of ${NO_SUCH_DRIVER} succeeded`)
  }
  /**
   * The first event named `event` (and matching `where`) with a `seq` above `after` (by
   * default: the latest at the call): from the log, else by up to `maxPolls` `poll`s (5000 by
   * default, 1-1.5 s), or `drainRcu`s if `drainRcu` is set (DEVICE_DELETED after a slot
   * power-off: ~50 ms either way, ~240 polls or one drain). Undefined if none came, so the
   * caller decides what a missing event means. Events evicted from the log are not found.
   */
  waitForEvent(event: string, options: {
    readonly after?: number
    readonly where?: (event: QmpEvent) => boolean
    readonly maxPolls?: number
    readonly drainRcu?: boolean
  } = {}): QmpEvent | undefined {
    const after = options.after ?? this.seq
    const maxPolls = options.maxPolls ?? DEFAULT_MAX_POLLS
    if (!isU(maxPolls, 2 ** 31 - 1)) throw new QmpSyncBadArgument({ command: "waitForEvent", reason: `maxPolls ${maxPolls}` })
    const matches = (e: QmpEvent) => e.seq > after && e.event === event && (options.where === undefined || options.where(e))
    let found = this.log.find(matches)
    for (let i = 0; found === undefined && i < maxPolls; i++) {
      const before = this.seq
      if (options.drainRcu === true) this.drainRcu()
      else this.poll()
      if (this.seq !== before) found = this.log.find((e) => e.seq > before && matches(e))
    }
    return found
  }
  /** The logged events, oldest first (at most `eventBuffer`). */
  events(): ReadonlyArray<QmpEvent> {
    return this.log.slice()
  }
  /** The `seq` of the latest event (0 before any): pass it as `after` to `waitForEvent`. */
  lastSeq(): number {
    return this.seq
  }
  /** How many events fell out of the log. */
  droppedEvents(): number {
    return this.dropped
  }
  /** What QEMU sent that could not be used, most recent last (at most 32). */
  issues(): ReadonlyArray<QmpIssue> {
    return this.issueList.slice()
  }

  /** Reads the greeting (the first line QEMU writes) and negotiates. @internal */
  handshake(): void {
    const command = "(the QMP greeting)"
    this.watchdog.begin()
    let message: Record<string, unknown> | undefined
    try {
      if (!this.reader.next()) this.die(command)
      message = this.parse()
    } finally {
      this.watchdog.end()
    }
    if (message === undefined || !("QMP" in message)) this.protocol(command, this.reader.utf8())
    this.greeting = message.QMP
    this.execute("qmp_capabilities")
  }
  /** Closes our FIFO ends and releases the watchdog slot (QEMU is the machine's to stop). @internal */
  close(): Promise<void> {
    this.dead ??= new QmpSyncClosed({ command: "close", reason: "the channel was closed" })
    this.closeFds()
    return this.watchdog.stop()
  }

  /** Sends the encoded request and reads up to the reply with `id`, logging events on the way. */
  private roundTrip(command: string, id: number): Record<string, unknown> {
    let reply: Record<string, unknown> | undefined
    this.watchdog.begin()
    try {
      if (!this.enc.send(this.input)) this.die(command)
      while (reply === undefined) {
        if (!this.reader.next()) this.die(command)
        reply = this.take(id)
      }
    } finally {
      this.watchdog.end()
    }
    // Events already received behind the reply are logged now, not after some later command.
    while (this.reader.nextBuffered()) this.take(undefined)
    return reply
  }
  /** Handles the current line: an event is logged; the reply to `id` is returned. */
  private take(id: number | undefined): Record<string, unknown> | undefined {
    const message = this.parse()
    if (message === undefined) return undefined
    if (typeof message.event === "string") {
      this.logEvent(message)
      return undefined
    }
    if (("return" in message || "error" in message) && id !== undefined) {
      // QEMU leaves the id out only when it could not read the request: the answer is ours.
      if (message.id === id || (!("id" in message) && "error" in message)) return message
    }
    this.issue("unexpected message", this.reader.utf8())
    return undefined
  }
  /** The current line as a JSON object, or undefined (and an issue) if it is not one. */
  private parse(): Record<string, unknown> | undefined {
    const text = this.reader.utf8()
    let message: unknown
    try {
      message = JSON.parse(text)
    } catch {
      // Kept and skipped, as qmp.ts does: if it was the reply, the watchdog ends the wait.
      this.issue("malformed JSON", text)
      return undefined
    }
    if (message !== null && typeof message === "object" && !Array.isArray(message)) return message as Record<string, unknown>
    this.issue("unexpected message", text)
    return undefined
  }
  private logEvent(message: Record<string, unknown>) {
    const data = message.data
    const timestamp = message.timestamp as QmpEvent["timestamp"] | undefined
    this.log.push({
      seq: ++this.seq,
      event: message.event as string,
      data: data !== null && typeof data === "object" ? data as Record<string, unknown> : {},
      timestamp: timestamp ?? { seconds: 0, microseconds: 0 }
    })
    if (this.log.length > this.eventBuffer) {
      this.log.shift()
      this.dropped++
    }
  }
  private issue(reason: QmpIssue["reason"], text: string) {
    this.issueList.push({ reason, text: text.slice(0, 200) })
    if (this.issueList.length > ISSUES_KEPT) this.issueList.shift()
  }
  private protocol(command: string, line: string): never {
    throw (this.dead = new QmpSyncProtocolError({ command, line: line.slice(0, 200) }))
  }
  /** EOF, an overlong line or a failed write: the channel is over; the watchdog says why. */
  private die(command: string): never {
    if (this.reader.overlong) this.issue("line too long", `(a line over ${MAX_LINE} bytes)`)
    this.dead = this.reader.overlong
      ? new QmpSyncProtocolError({ command, line: `(a line over ${MAX_LINE} bytes)` })
      : this.watchdog.fired()
      ? new QmpSyncTimeout({ command, deadlineMs: this.watchdog.deadlineMs })
      : new QmpSyncClosed({ command, reason: "QEMU closed the QMP channel (it exited or was killed)" })
    this.closeFds()
    throw this.dead
  }
  /** Once only: a second close could hit an fd number since reused by another open. */
  private closeFds() {
    if (this.fdsClosed) return
    this.fdsClosed = true
    closeQuietly(this.input)
    closeQuietly(this.output)
  }
}
