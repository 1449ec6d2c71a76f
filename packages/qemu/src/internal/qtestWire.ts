/**
 * The vocabulary and the byte level of the qtest channel: its errors and IRQ events, the
 * FIFOs opened without blocking the main thread, requests encoded into one reused buffer and
 * replies parsed in place (so that a `readl` round trip creates no object). qtest.ts holds
 * the protocol proper and re-exports what is public here.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type Machine, QemuExited, QemuStartFailed } from "./process.js"

/**
 * A request was refused before anything was sent (an argument out of range, say).
 * @since 0.1.0
 * @category errors
 */
export class QtestBadArgument extends Data.TaggedError("QtestBadArgument")<{
  readonly request: string
  readonly reason: string
}> {
  override get message() {
    return `qtest ${this.request}: ${this.reason} (not sent)`
  }
}

/**
 * QEMU answered `FAIL ...` or `ERR ...`.
 * @since 0.1.0
 * @category errors
 */
export class QtestFailed extends Data.TaggedError("QtestFailed")<{
  readonly request: string
  readonly reply: string
}> {
  override get message() {
    return `qtest ${this.request}: QEMU answered "${this.reply}"`
  }
}

/**
 * The channel is gone: QEMU exited or was killed, or the channel was closed.
 * @since 0.1.0
 * @category errors
 */
export class QtestClosed extends Data.TaggedError("QtestClosed")<{
  readonly request: string
  readonly reason: string
}> {
  override get message() {
    return `qtest ${this.request}: ${this.reason}`
  }
}

/**
 * QEMU did not answer within the watchdog's deadline; the watchdog killed it.
 * @since 0.1.0
 * @category errors
 */
export class QtestTimeout extends Data.TaggedError("QtestTimeout")<{
  readonly request: string
  readonly deadlineMs: number
}> {
  override get message() {
    return `qtest ${this.request}: no answer within ${this.deadlineMs} ms; QEMU was killed`
  }
}

/**
 * QEMU sent a line that is not a reply we can read (the channel is then unusable).
 * @since 0.1.0
 * @category errors
 */
export class QtestProtocolError extends Data.TaggedError("QtestProtocolError")<{
  readonly request: string
  readonly line: string
}> {
  override get message() {
    return `qtest ${this.request}: unexpected line from QEMU: ${JSON.stringify(this.line)}`
  }
}

/**
 * What the channel's methods throw (synchronously).
 * @since 0.1.0
 * @category errors
 */
export type QtestError = QtestBadArgument | QtestFailed | QtestClosed | QtestTimeout | QtestProtocolError

/**
 * An `IRQ raise N` / `IRQ lower N` line: an intercepted interrupt pin changed level.
 * @since 0.1.0
 * @category models
 */
export interface IrqEvent {
  readonly level: "raise" | "lower"
  readonly line: number
}

/** Closes an fd, ignoring an error (release must not fail on what is already gone). @internal */
export const closeQuietly = (fd: number): void => {
  try {
    fs.closeSync(fd)
  } catch {
    // Already closed: nothing left to release.
  }
}

/** A guest physical address: a safe non-negative integer, or a bigint below 2^64. @internal */
export type Address = number | bigint

const U64_MAX = 2n ** 64n - 1n

/** True for an integer in 0..2^64-1 (numbers must be safe integers). @internal */
export const isAddress = (a: unknown): a is Address =>
  typeof a === "number" ? Number.isSafeInteger(a) && a >= 0 : typeof a === "bigint" && a >= 0n && a <= U64_MAX

/** True if `[a, a + span)` lies within the 64-bit address space. @internal */
export const fitsAddressSpace = (a: Address, span: number): boolean =>
  typeof a === "number" ? a + span <= Number.MAX_SAFE_INTEGER : a + BigInt(span) - 1n <= U64_MAX

/** ASCII codes of the hex digits QEMU parses (qemu_strtou64, base 0: "0x" then hex). */
const HEX = Buffer.from("0123456789abcdef", "latin1")

/**
 * One request line being encoded. State: `buf[0, len)` is the line so far, without its
 * newline; `buf` only grows (so a hot path reuses it) and always has a spare byte for "\n".
 * @internal
 */
export class Encoder {
  private buf = Buffer.allocUnsafe(256)
  private len = 0

  start(op: string): this {
    this.len = 0
    return this.ascii(op)
  }
  /** Appends text known to be plain ASCII (command names, base64, decimal digits). */
  ascii(text: string): this {
    this.room(text.length)
    this.len += this.buf.write(text, this.len, "latin1")
    return this
  }
  space(): this {
    this.room(1)
    this.buf[this.len++] = 0x20
    return this
  }
  /** Appends `0x<hex>` of a checked non-negative integer; below 2^32 without allocating. */
  hex(n: number | bigint): this {
    if (typeof n === "bigint" || n > 0xffffffff) return this.ascii(`0x${n.toString(16)}`)
    this.room(10)
    const b = this.buf
    let p = this.len
    b[p++] = 0x30
    b[p++] = 0x78
    let digits = 1
    for (let t = n >>> 4; t !== 0; t >>>= 4) digits++
    for (let i = digits - 1, v = n; i >= 0; i--, v >>>= 4) b[p + i] = HEX[v & 15]
    this.len = p + digits
    return this
  }
  decimal(n: number | bigint): this {
    return this.ascii(n.toString(10))
  }
  /** Writes the line and its newline; false if QEMU's end is gone (EPIPE and the like). */
  send(fd: number): boolean {
    this.buf[this.len] = 0x0a
    const total = this.len + 1
    let done = 0
    while (done < total) {
      try {
        done += fs.writeSync(fd, this.buf, done, total - done)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN" || (e as NodeJS.ErrnoException).code === "EINTR") continue
        return false
      }
    }
    return true
  }
  /** The request as text, for error messages (long payloads cut). */
  describe(): string {
    const text = this.buf.toString("latin1", 0, Math.min(this.len, 120))
    return this.len > 120 ? `${text}...` : text
  }
  private room(n: number) {
    if (this.len + n + 1 <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n + 1))
    this.buf.copy(bigger, 0, 0, this.len)
    this.buf = bigger
  }
}

/** The longest qtest line we accept: a 1 MiB `b64read` answer is ~1.4 MB. */
const MAX_LINE = 4 * 1024 * 1024

/**
 * Reads QEMU's lines from a blocking fd. State: `buf[start, end)` are received bytes not yet
 * consumed; the current line is `buf[ls, le)` (without "\n") and stays valid until the next
 * `next`/`nextBuffered`. `scanned` (start <= scanned <= end) is how far the search for "\n"
 * has got, so a long line arriving in pieces is not searched again from its start.
 * @internal
 */
export class LineReader {
  private buf = Buffer.allocUnsafe(64 * 1024)
  private start = 0
  private end = 0
  private scanned = 0
  private ls = 0
  private le = 0
  /** Set when a line exceeded `maxLine`: `next` then fails like EOF. */
  overlong = false

  /** `maxLine`: the longest line accepted (qtest's 4 MiB by default; QMP uses 1 MiB). */
  constructor(private readonly fd: number, private readonly maxLine: number = MAX_LINE) {}

  /** Makes the next line current, reading (blocking) as needed; false on EOF or error. */
  next(): boolean {
    for (;;) {
      if (this.nextBuffered()) return true
      if (this.start > 0) {
        // Keep the partial line at the front; after a whole reply this moves nothing.
        this.buf.copyWithin(0, this.start, this.end)
        this.end -= this.start
        this.scanned -= this.start
        this.start = 0
      }
      if (this.end === this.buf.length) {
        if (this.buf.length >= this.maxLine) {
          this.overlong = true
          return false
        }
        const bigger = Buffer.allocUnsafe(this.buf.length * 2)
        this.buf.copy(bigger, 0, 0, this.end)
        this.buf = bigger
      }
      let n: number
      try {
        n = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === "EAGAIN" || code === "EINTR") continue
        return false
      }
      if (n === 0) return false
      this.end += n
    }
  }
  /** Makes the next complete line already received current, without reading. */
  nextBuffered(): boolean {
    const b = this.buf
    let i = this.scanned
    while (i < this.end && b[i] !== 0x0a) i++
    if (i === this.end) {
      this.scanned = i
      return false
    }
    this.ls = this.start
    this.le = i
    this.start = this.scanned = i + 1
    return true
  }
  /** The current line's byte at `i`, or -1 past its end. */
  byte(i: number): number {
    return this.ls + i < this.le ? this.buf[this.ls + i] : -1
  }
  line(): string {
    return this.buf.toString("latin1", this.ls, this.le)
  }
  /** The current line decoded as UTF-8 (QMP's JSON). */
  utf8(): string {
    return this.buf.toString("utf8", this.ls, this.le)
  }
  /** The current line from byte `from` on, as text. */
  text(from: number): string {
    return this.buf.toString("latin1", Math.min(this.ls + from, this.le), this.le)
  }
  /** Parses `0x<hex>` at `from` as a value below 2^32; -1 if it is not one. */
  hex32(from: number): number {
    const b = this.buf
    let p = this.ls + from
    if (p + 2 >= this.le || b[p] !== 0x30 || b[p + 1] !== 0x78) return -1
    p += 2
    let v = 0
    for (; p < this.le; p++) {
      const d = hexDigit(b[p])
      if (d < 0) return -1
      v = v * 16 + d
    }
    return v <= 0xffffffff ? v : -1
  }
  /** Parses `0x<hex>` at `from` as a value below 2^64; -1n if it is not one. */
  hex64(from: number): bigint {
    const text = this.text(from)
    return /^0x[0-9a-fA-F]{1,16}$/.test(text) ? BigInt(text) : -1n
  }
}

const hexDigit = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1

const O_NONBLOCK = fs.constants.O_NONBLOCK

/**
 * Opens one FIFO end on the libuv thread pool (a FIFO open blocks until the other end is
 * opened, and must not block the main thread). Interrupting it unblocks the pool thread by
 * opening the other end non-blocking, repeatedly until the pending open has returned.
 * Opened fds are pushed on `opened`, for the caller to close if the whole open fails.
 * @internal
 */
export const openFifo = (file: string, flags: number, opened: Array<number>) =>
  Effect.async<number, QemuStartFailed>((resume) => {
    let settled = false
    let abandoned = false
    fs.open(file, flags, (error, fd) => {
      settled = true
      if (abandoned) {
        if (!error) fs.close(fd, () => {})
        return
      }
      if (error) resume(Effect.fail(new QemuStartFailed({ reason: `cannot open ${file}`, stderr: "", cause: error })))
      else {
        opened.push(fd)
        resume(Effect.succeed(fd))
      }
    })
    return Effect.sync(() => {
      if (settled) return
      abandoned = true
      const other = (flags & fs.constants.O_WRONLY) !== 0 ? fs.constants.O_RDONLY : fs.constants.O_WRONLY
      const poke = () => {
        try {
          fs.closeSync(fs.openSync(file, other | O_NONBLOCK))
        } catch {
          // ENXIO (no reader yet) or the file is gone: try again on the next tick of the timer.
        }
      }
      poke()
      let tries = 0
      const timer = setInterval(() => (settled || ++tries > 250 ? clearInterval(timer) : poke()), 20)
      timer.unref()
    })
  })

/**
 * Opens a FIFO pair chardev's two ends (`<base>.in` write-only, `<base>.out` read-only, the
 * latter so that QEMU's death reads as EOF) off the main thread, racing QEMU's exit (then
 * `QemuExited`, with its stderr) and a deadline. Whatever was opened is closed on failure.
 * `what` names the channel in the timeout message.
 * @internal
 */
export const openFifoPair = (machine: Machine, base: string, what: string, timeout: Duration.Duration) => {
  const opened: Array<number> = []
  return Effect.all([
    openFifo(`${base}.in`, fs.constants.O_WRONLY, opened),
    openFifo(`${base}.out`, fs.constants.O_RDONLY, opened)
  ], { concurrency: 2 }).pipe(
    Effect.raceFirst(Deferred.await(machine.exited).pipe(Effect.flatMap((exit) => new QemuExited(exit)))),
    // Acquisition is uninterruptible; the race and the deadline must be able to interrupt.
    Effect.interruptible,
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new QemuStartFailed({
          reason: `QEMU did not open its ${what} FIFOs within ${Duration.format(timeout)}`,
          stderr: machine.stderr()
        })
    }),
    Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => opened.forEach(closeQuietly)))
  )
}
