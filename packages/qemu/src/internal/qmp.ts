/**
 * A QMP client over QEMU's monitor socket: asynchronous (device_del and friends are not on
 * the register path), one JSON object per line. Commands carry an id and are matched to their
 * reply by it; events go to subscribers and into a bounded buffer of recent events, numbered,
 * so that a caller can wait for an event that may already have arrived.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { type Machine, QemuExited } from "./process.js"

/**
 * A command failed: QEMU's `error.class` and `error.desc`.
 * @since 0.1.0
 * @category errors
 */
export class QmpError extends Data.TaggedError("QmpError")<{
  readonly command: string
  readonly errorClass: string
  readonly desc: string
}> {
  override get message() {
    return `QMP ${this.command}: ${this.errorClass}: ${this.desc}`
  }
}

/**
 * The monitor could not be reached, or did not greet us as QMP does.
 * @since 0.1.0
 * @category errors
 */
export class QmpConnectFailed extends Data.TaggedError("QmpConnectFailed")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `QMP at ${this.path}: ${this.reason}`
  }
}

/**
 * The connection closed (QEMU exited) before the answer or the event came.
 * @since 0.1.0
 * @category errors
 */
export class QmpClosed extends Data.TaggedError("QmpClosed")<{
  readonly waitingFor: string
}> {
  override get message() {
    return `QMP connection closed while waiting for ${this.waitingFor}`
  }
}

/**
 * No matching event within the time given.
 * @since 0.1.0
 * @category errors
 */
export class QmpEventTimeout extends Data.TaggedError("QmpEventTimeout")<{
  readonly waitingFor: string
  readonly timeout: Duration.Duration
}> {
  override get message() {
    return `no QMP event ${this.waitingFor} within ${Duration.format(this.timeout)}`
  }
}

/**
 * A QMP event. `seq` numbers events from 1 in arrival order.
 * @since 0.1.0
 * @category models
 */
export interface QmpEvent {
  readonly seq: number
  readonly event: string
  readonly data: Record<string, unknown>
  readonly timestamp: { readonly seconds: number; readonly microseconds: number }
}

/**
 * What the monitor sent that we could not use (kept, counted, and logged as a warning).
 * @since 0.1.0
 * @category models
 */
export interface QmpIssue {
  readonly reason: "malformed JSON" | "line too long" | "unexpected message"
  /** The start of the offending line. */
  readonly text: string
}

/**
 * Options of `connect`.
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions {
  /** How long to keep trying to reach the socket and get the greeting (10 s). */
  readonly timeout?: Duration.DurationInput
  /** How many recent events to keep (256); older ones are dropped and counted. */
  readonly eventBuffer?: number
  /** The longest line accepted (1 MiB); a longer one is reported and skipped. */
  readonly maxLineBytes?: number
}

/**
 * A connected QMP client (made by `connect`).
 * @since 0.1.0
 * @category models
 */
export interface Qmp {
  /** The greeting's `QMP` member (version, capabilities). */
  readonly greeting: unknown
  /** Runs a command; its `return`, or `QmpError` with QEMU's class and description. */
  execute<A = unknown>(command: string, args?: Record<string, unknown>): Effect.Effect<A, QmpError | QmpClosed>
  /** Calls `listener` with every later event; returns the function that unsubscribes it. */
  subscribe(listener: (event: QmpEvent) => void): () => void
  /** The buffered recent events, oldest first. */
  recentEvents(): ReadonlyArray<QmpEvent>
  /** The `seq` of the latest event (0 before any): pass it as `after` to `waitForEvent`. */
  lastSeq(): number
  /** How many events fell out of the recent buffer. */
  droppedEvents(): number
  /**
   * The first event named `event` (and matching `where`) with a `seq` above `after` (by
   * default: the latest at the call), from the buffer or as it arrives.
   */
  waitForEvent(event: string, options: {
    readonly after?: number
    readonly where?: (event: QmpEvent) => boolean
    readonly timeout: Duration.DurationInput
  }): Effect.Effect<QmpEvent, QmpEventTimeout | QmpClosed>
  /** What the monitor sent that could not be used, most recent last (at most 32). */
  issues(): ReadonlyArray<QmpIssue>
}

type Reply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly class: string; readonly desc: string }

/** One attempt to reach the socket; interruption destroys the half-open socket. */
const attempt = (path: string) =>
  Effect.async<net.Socket, NodeJS.ErrnoException>((resume) => {
    const socket = net.createConnection(path)
    socket.once("connect", () => {
      socket.removeAllListeners("error")
      resume(Effect.succeed(socket))
    })
    socket.once("error", (e) => {
      socket.destroy()
      resume(Effect.fail(e))
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * Connects to the machine's QMP socket (retrying until QEMU has made it), reads the greeting
 * and negotiates capabilities. The connection closes with the scope.
 * @since 0.1.0
 */
export const connect = (
  machine: Machine,
  options: ConnectOptions = {}
): Effect.Effect<Qmp, QmpConnectFailed | QemuExited | QmpError | QmpClosed, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(10))
    const path = machine.qmpSocket
    const socket = yield* Effect.acquireRelease(
      attempt(path).pipe(
        // QEMU makes the socket during start-up; until then there is nothing or no listener.
        Effect.retry({ schedule: Schedule.spaced("10 millis"), while: (e) => e.code === "ENOENT" || e.code === "ECONNREFUSED" }),
        Effect.mapError((e) => new QmpConnectFailed({ path, reason: e.message })),
        Effect.raceFirst(Deferred.await(machine.exited).pipe(Effect.flatMap((exit) => new QemuExited(exit)))),
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new QmpConnectFailed({ path, reason: `not reachable within ${Duration.format(timeout)}` }) }),
        Effect.interruptible
      ),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const client = new Client(socket, yield* Effect.runtime<never>(), options)
    yield* Effect.addFinalizer(() => Effect.sync(() => client.shutdown()))
    yield* Deferred.await(client.greeted).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new QmpConnectFailed({ path, reason: "no QMP greeting" }) })
    )
    yield* client.execute("qmp_capabilities")
    return client as Qmp
  })

/** Issues kept for `issues()`; the count of all of them is in the log. */
const ISSUES_KEPT = 32

class Client implements Qmp {
  greeting: unknown = undefined
  /** Completed by the greeting line, or failed when the connection closes first. */
  readonly greeted = Deferred.unsafeMake<void, QmpConnectFailed | QmpClosed>(FiberId.none)
  private nextId = 1
  /** Commands sent and not answered, by id; each is completed exactly once. */
  private readonly pending = new Map<string, { command: string; done: (reply: Reply | undefined) => void }>()
  private readonly listeners = new Set<(event: QmpEvent) => void>()
  /** `waitForEvent`s in progress; unlike listeners they also hear of the close (undefined). */
  private readonly waiters = new Set<(event: QmpEvent | undefined) => void>()
  /** The last `eventBuffer` events in arrival order; `dropped` counts the ones evicted. */
  private readonly recent: Array<QmpEvent> = []
  private dropped = 0
  private seq = 0
  private readonly issueList: Array<QmpIssue> = []
  /** Received bytes not yet split into lines; `skipping` while discarding an overlong line. */
  private partial = ""
  private skipping = false
  private ended = false
  private readonly eventBuffer: number
  private readonly maxLine: number

  constructor(
    private readonly socket: net.Socket,
    private readonly runtime: Runtime.Runtime<never>,
    options: ConnectOptions
  ) {
    this.eventBuffer = options.eventBuffer ?? 256
    this.maxLine = options.maxLineBytes ?? 1024 * 1024
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => this.receive(chunk))
    socket.on("close", () => this.shutdown())
    socket.on("error", () => {
      // Followed by `close`, which fails whatever is waiting.
    })
  }

  execute<A>(command: string, args?: Record<string, unknown>): Effect.Effect<A, QmpError | QmpClosed> {
    return Effect.async<A, QmpError | QmpClosed>((resume) => {
      if (this.ended) return resume(Effect.fail(new QmpClosed({ waitingFor: command })))
      const id = `devscope-${this.nextId++}`
      this.pending.set(id, {
        command,
        done: (reply) =>
          resume(
            reply === undefined
              ? Effect.fail(new QmpClosed({ waitingFor: command }))
              : reply.ok
              ? Effect.succeed(reply.value as A)
              : Effect.fail(new QmpError({ command, errorClass: reply.class, desc: reply.desc }))
          )
      })
      this.socket.write(`${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\n`)
      // An interrupted command still runs in QEMU; its reply is then ignored.
      return Effect.sync(() => this.pending.delete(id))
    })
  }
  subscribe(listener: (event: QmpEvent) => void) {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }
  recentEvents() {
    return this.recent.slice()
  }
  lastSeq() {
    return this.seq
  }
  droppedEvents() {
    return this.dropped
  }
  issues() {
    return this.issueList.slice()
  }
  waitForEvent(event: string, options: {
    readonly after?: number
    readonly where?: (event: QmpEvent) => boolean
    readonly timeout: Duration.DurationInput
  }): Effect.Effect<QmpEvent, QmpEventTimeout | QmpClosed> {
    const timeout = Duration.decode(options.timeout)
    const after = options.after ?? this.seq
    const matches = (e: QmpEvent) => e.seq > after && e.event === event && (options.where === undefined || options.where(e))
    return Effect.async<QmpEvent, QmpClosed>((resume) => {
      const found = this.recent.find(matches)
      if (found !== undefined) return resume(Effect.succeed(found))
      if (this.ended) return resume(Effect.fail(new QmpClosed({ waitingFor: `event ${event}` })))
      const listener = (e: QmpEvent | undefined) => {
        if (e === undefined) resume(Effect.fail(new QmpClosed({ waitingFor: `event ${event}` })))
        else if (matches(e)) resume(Effect.succeed(e))
        else return
        this.waiters.delete(listener)
      }
      this.waiters.add(listener)
      return Effect.sync(() => this.waiters.delete(listener))
    }).pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => new QmpEventTimeout({ waitingFor: event, timeout }) }))
  }

  /** Fails everything that waits; idempotent. */
  shutdown() {
    if (this.ended) return
    this.ended = true
    this.socket.destroy()
    Deferred.unsafeDone(this.greeted, Exit.fail(new QmpClosed({ waitingFor: "the QMP greeting" })))
    for (const { done } of this.pending.values()) done(undefined)
    this.pending.clear()
    for (const waiter of Array.from(this.waiters)) waiter(undefined)
  }

  private receive(chunk: string) {
    let text = this.partial + chunk
    let nl: number
    while ((nl = text.indexOf("\n")) >= 0) {
      const line = text.slice(0, nl)
      text = text.slice(nl + 1)
      if (this.skipping) this.skipping = false
      else if (line.length > this.maxLine) this.issue("line too long", line)
      else if (line.trim() !== "") this.handle(line)
    }
    if (text.length > this.maxLine) {
      if (!this.skipping) this.issue("line too long", text)
      this.skipping = true
      text = ""
    }
    this.partial = text
  }
  private handle(line: string) {
    let message: any
    try {
      message = JSON.parse(line)
    } catch {
      return this.issue("malformed JSON", line)
    }
    if (message === null || typeof message !== "object") return this.issue("unexpected message", line)
    if ("QMP" in message) {
      this.greeting = message.QMP
      Deferred.unsafeDone(this.greeted, Exit.void)
    } else if (typeof message.event === "string") {
      this.event(message)
    } else if ("return" in message || "error" in message) {
      const waiter = typeof message.id === "string" ? this.pending.get(message.id) : undefined
      if (waiter === undefined) return this.issue("unexpected message", line)
      this.pending.delete(message.id)
      waiter.done("return" in message
        ? { ok: true, value: message.return }
        : { ok: false, class: String(message.error?.class ?? "unknown"), desc: String(message.error?.desc ?? line) })
    } else {
      this.issue("unexpected message", line)
    }
  }
  private event(message: any) {
    const event: QmpEvent = {
      seq: ++this.seq,
      event: message.event,
      data: message.data ?? {},
      timestamp: message.timestamp ?? { seconds: 0, microseconds: 0 }
    }
    this.recent.push(event)
    if (this.recent.length > this.eventBuffer) {
      this.recent.shift()
      this.dropped++
    }
    for (const waiter of Array.from(this.waiters)) waiter(event)
    for (const listener of Array.from(this.listeners)) listener(event)
  }
  private issue(reason: QmpIssue["reason"], text: string) {
    const issue = { reason, text: text.slice(0, 200) }
    this.issueList.push(issue)
    if (this.issueList.length > ISSUES_KEPT) this.issueList.shift()
    Runtime.runFork(this.runtime)(Effect.logWarning(`QMP: ${reason}: ${issue.text}`))
  }
}
