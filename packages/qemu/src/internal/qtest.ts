/**
 * The qtest channel: QEMU's line protocol over the FIFOs `<base>.in` (we write) and
 * `<base>.out` (we read). The register path is synchronous, as a driver's MMIO accessors are:
 * `fs.writeSync` then a blocking `fs.readSync` on the main thread (13-16 µs per `readl` on
 * the machines we measured; every asynchronous transport was slower). What keeps that safe:
 * - our read end is O_RDONLY, so when QEMU dies (it holds the only write end) the read
 *   returns EOF instead of blocking forever;
 * - a watchdog worker SIGKILLs a QEMU that stays silent past a deadline, which again ends in
 *   EOF (see watchdog.ts);
 * - only well-formed lines are sent: QEMU aborts on a malformed one, so every argument is
 *   checked before anything is written.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type Machine, type QemuError, QemuExited, QemuStartFailed } from "./process.js"
import { type Address, closeQuietly, Encoder, fitsAddressSpace, type IrqEvent, isAddress, LineReader, openFifoPair } from "./qtestWire.js"
import { QtestBadArgument, QtestClosed, type QtestError, QtestFailed, QtestProtocolError, QtestTimeout } from "./qtestWire.js"
import { startWatchdog, type Watchdog } from "./watchdog.js"

export { type Address, type IrqEvent, QtestBadArgument, QtestClosed, type QtestError } from "./qtestWire.js"
export { QtestFailed, QtestProtocolError, QtestTimeout } from "./qtestWire.js"

/**
 * Options of `open`.
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions {
  /** How long one request may go unanswered before the watchdog kills QEMU (10 s). */
  readonly deadlineMs?: number
  /** How long QEMU may take to open the FIFOs and answer a first request (10 s). */
  readonly startTimeout?: Duration.DurationInput
}

/**
 * Opens the qtest channel of a launched machine and checks that QEMU answers. Closing the
 * scope closes the FIFOs and stops the watchdog (it does not stop QEMU: the machine's scope
 * does). A QEMU that exits first fails with `QemuExited` (with its stderr).
 * @since 0.1.0
 */
export const open = (machine: Machine, options: OpenOptions = {}): Effect.Effect<Qtest, QemuError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const startTimeout = Duration.decode(options.startTimeout ?? Duration.seconds(10))
      const deadlineMs = options.deadlineMs ?? 10_000
      if (!Number.isInteger(deadlineMs) || deadlineMs < 1 || deadlineMs > 2 ** 31 - 1) {
        return yield* new QemuStartFailed({ reason: `deadlineMs must be an integer in 1..2^31-1, got ${deadlineMs}`, stderr: "" })
      }
      const [input, output] = yield* openFifoPair(machine, machine.qtestBase, "qtest", startTimeout)
      const opened = [input, output]
      const watchdog = yield* Effect.promise(() =>
        startWatchdog({ pid: machine.pid, deadlineMs })
      ).pipe(Effect.onError(() => Effect.sync(() => opened.forEach(closeQuietly))))
      const channel = new Qtest(machine.pid, input, output, watchdog)
      // The first answer proves QEMU got through its start-up, so it gets the start-up
      // deadline; if QEMU died there instead, the useful report is its exit status and
      // stderr, not "channel closed".
      watchdog.setDeadline(Math.min(2 ** 31 - 1, Math.max(1, Math.round(Duration.toMillis(startTimeout)))))
      const first = yield* Effect.try({ try: () => channel.ping(), catch: (e) => e as QtestError }).pipe(
        Effect.ensuring(Effect.sync(() => watchdog.setDeadline(deadlineMs))),
        Effect.as(undefined),
        Effect.catchAll((error) =>
          Effect.gen(function*() {
            yield* Effect.promise(() => channel.close())
            const exit = yield* Deferred.await(machine.exited).pipe(
              Effect.interruptible,
              Effect.timeout(Duration.seconds(2)),
              Effect.option
            )
            return exit._tag === "Some" && error._tag !== "QtestTimeout"
              ? new QemuExited(exit.value)
              : new QemuStartFailed({ reason: `no first qtest answer: ${error.message}`, stderr: machine.stderr(), cause: error })
          })
        )
      )
      if (first !== undefined) return yield* first
      return channel
    }),
    (channel) => Effect.promise(() => channel.close())
  )

const MAX_TRANSFER = 1 << 20
const MAX_MEMSET = 1 << 28
const WIDTH_MAX = [0, 0xff, 0xffff, 0, 0xffffffff] as const

const isU = (n: number, max: number) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= max
const isNs = (n: number | bigint) => typeof n === "bigint" ? n >= 0n && n < 2n ** 63n : Number.isSafeInteger(n) && n >= 0

/**
 * A qtest channel to one QEMU (made by `open`). Every method is synchronous and throws a
 * `QtestError`; after a `QtestBadArgument` nothing was sent. Accessors are little-endian;
 * addresses are safe integers or bigints below 2^64. `readl` allocates nothing on success.
 * @since 0.1.0
 * @category models
 */
export class Qtest {
  private readonly enc = new Encoder()
  private readonly reader: LineReader
  /** IRQ events received and not yet delivered or taken, in arrival order. */
  private irqs: Array<IrqEvent> = []
  private listener: ((event: IrqEvent) => void) | undefined
  /** True while `finish` calls the listener: its own requests must not re-enter the loop. */
  private delivering = false
  /** Why the channel is unusable. Set once (only `close` overrides it); never cleared. */
  private dead: QtestError | undefined
  private fdsClosed = false

  /** @internal */
  constructor(
    /** QEMU's pid. */
    readonly pid: number,
    private readonly input: number,
    private readonly output: number,
    private readonly watchdog: Watchdog
  ) {
    this.reader = new LineReader(output)
  }

  /** True once QEMU is gone or the channel was closed; every request then throws. */
  get closed(): boolean {
    return this.dead !== undefined
  }
  /** The watchdog's deadline for one request, in ms. */
  get deadlineMs(): number {
    return this.watchdog.deadlineMs
  }
  set deadlineMs(ms: number) {
    if (!isU(ms, 2 ** 31 - 1) || ms === 0) throw new QtestBadArgument({ request: "deadline", reason: `${ms} ms` })
    this.watchdog.setDeadline(ms)
  }

  /** `readb`: a byte of guest memory or MMIO. */
  readb(addr: Address): number {
    return this.readN("readb ", addr, 1)
  }
  /** `readw`. */
  readw(addr: Address): number {
    return this.readN("readw ", addr, 2)
  }
  /** `readl`: the hot path. */
  readl(addr: Address): number {
    return this.readN("readl ", addr, 4)
  }
  /** `readq`. */
  readq(addr: Address): bigint {
    this.addressed("readq ", addr, 8)
    this.roundTrip()
    const value = this.reader.hex64(3)
    if (value < 0n) this.protocol()
    this.finish()
    return value
  }
  /** `writeb`. */
  writeb(addr: Address, value: number): void {
    this.writeN("writeb ", addr, value, 1)
  }
  /** `writew`. */
  writew(addr: Address, value: number): void {
    this.writeN("writew ", addr, value, 2)
  }
  /** `writel`. */
  writel(addr: Address, value: number): void {
    this.writeN("writel ", addr, value, 4)
  }
  /** `writeq`. */
  writeq(addr: Address, value: bigint | number): void {
    if (!isAddress(value)) throw this.bad("writeq", `value ${String(value)} is not an integer in 0..2^64-1`)
    this.addressed("writeq ", addr, 8).space().hex(value)
    this.simple()
  }
  /** `inb`: an I/O port read. */
  inb(port: number): number {
    return this.inN("inb ", port)
  }
  /** `inw`. */
  inw(port: number): number {
    return this.inN("inw ", port)
  }
  /** `inl`. */
  inl(port: number): number {
    return this.inN("inl ", port)
  }
  /** `outb`: an I/O port write. */
  outb(port: number, value: number): void {
    this.outN("outb ", port, value, 1)
  }
  /** `outw`. */
  outw(port: number, value: number): void {
    this.outN("outw ", port, value, 2)
  }
  /** `outl`. */
  outl(port: number, value: number): void {
    this.outN("outl ", port, value, 4)
  }
  /** Reads `length` bytes of guest memory (`b64read`; at most 1 MiB; 0 sends nothing). */
  read(addr: Address, length: number): Uint8Array {
    this.checkLength("b64read", length, MAX_TRANSFER)
    if (length === 0) return new Uint8Array(0)
    this.addressed("b64read ", addr, length).space().hex(length)
    this.roundTrip()
    const data = Buffer.from(this.reader.text(3), "base64")
    if (data.length !== length) this.protocol()
    this.finish()
    return new Uint8Array(data.buffer, data.byteOffset, data.length)
  }
  /** Writes guest memory (`b64write`; at most 1 MiB; empty sends nothing). */
  write(addr: Address, data: Uint8Array): void {
    this.checkLength("b64write", data.length, MAX_TRANSFER)
    if (data.length === 0) return
    // QEMU writes LEN bytes from however many it decoded: the two must agree exactly.
    const b64 = Buffer.from(data.buffer, data.byteOffset, data.length).toString("base64")
    this.addressed("b64write ", addr, data.length).space().hex(data.length).space().ascii(b64)
    this.simple()
  }
  /** Fills `length` bytes (at most 256 MiB) of guest memory with `byte`. */
  memset(addr: Address, length: number, byte: number): void {
    this.checkLength("memset", length, MAX_MEMSET)
    if (!isU(byte, 0xff)) throw this.bad("memset", `byte ${byte} is not an integer in 0..255`)
    this.addressed("memset ", addr, Math.max(length, 1)).space().hex(length).space().hex(byte)
    this.simple()
  }
  /**
   * Advances the virtual clock by `ns`, or without an argument to the next timer deadline;
   * returns the new clock in ns. Needs `-accel qtest` (else `QtestFailed`, Unknown command).
   */
  clockStep(ns?: number | bigint): bigint {
    if (ns !== undefined && !isNs(ns)) throw this.bad("clock_step", `${String(ns)} ns is not in 0..2^63-1`)
    const e = this.enc.start("clock_step")
    if (ns !== undefined) e.space().decimal(ns)
    return this.clockReply()
  }
  /** Sets the virtual clock (it only moves forward); returns the new clock in ns. */
  clockSet(ns: number | bigint): bigint {
    if (!isNs(ns)) throw this.bad("clock_set", `${String(ns)} ns is not in 0..2^63-1`)
    this.enc.start("clock_set ").decimal(ns)
    return this.clockReply()
  }
  /** Reports the input pins of the device at a QOM path (`ioapic` on q35) as IRQ events. */
  irqInterceptIn(path: string): void {
    this.intercept("irq_intercept_in ", path)
  }
  /** Reports a device's output pins as IRQ events. QEMU allows one intercept per process. */
  irqInterceptOut(path: string): void {
    this.intercept("irq_intercept_out ", path)
  }
  /** A round trip that changes nothing (`endianness`): collects the IRQ lines sent so far. */
  ping(): void {
    this.enc.start("endianness")
    this.simple()
  }
  /** The IRQ events received and not yet taken, oldest first; empties the queue. */
  takeIrqEvents(): Array<IrqEvent> {
    const taken = this.irqs
    this.irqs = []
    return taken
  }
  /**
   * Calls `listener` with each IRQ event once the request that received it has completed
   * (never while a reply is parsed, so it may make requests itself; what it throws propagates
   * from that request, and later events stay queued). While registered, the queue drains into
   * it. Returns the function that unregisters it.
   */
  onIrq(listener: (event: IrqEvent) => void): () => void {
    this.listener = listener
    this.finish()
    return () => {
      if (this.listener === listener) this.listener = undefined
    }
  }

  /** Closes our FIFO ends and stops the watchdog (QEMU is the machine's to stop). @internal */
  close(): Promise<void> {
    this.dead ??= new QtestClosed({ request: "close", reason: "the channel was closed" })
    this.closeFds()
    return this.watchdog.stop()
  }

  private readN(op: string, addr: Address, width: number) {
    this.addressed(op, addr, width)
    this.roundTrip()
    return this.value32()
  }
  private writeN(op: string, addr: Address, value: number, width: 1 | 2 | 4) {
    if (!isU(value, WIDTH_MAX[width])) throw this.bad(op, `value ${value} does not fit in ${width * 8} bits`)
    this.addressed(op, addr, width).space().hex(value)
    this.simple()
  }
  private inN(op: string, port: number) {
    if (!isU(port, 0xffff)) throw this.bad(op, `port ${port} is not an integer in 0..0xffff`)
    this.enc.start(op).hex(port)
    this.roundTrip()
    return this.value32()
  }
  private outN(op: string, port: number, value: number, width: 1 | 2 | 4) {
    if (!isU(port, 0xffff)) throw this.bad(op, `port ${port} is not an integer in 0..0xffff`)
    if (!isU(value, WIDTH_MAX[width])) throw this.bad(op, `value ${value} does not fit in ${width * 8} bits`)
    this.enc.start(op).hex(port).space().hex(value)
    this.simple()
  }
  private intercept(op: string, path: string) {
    // QEMU splits a request on single spaces and asserts on what it cannot parse.
    if (typeof path !== "string" || !/^[A-Za-z0-9_./[\]-]{1,256}$/.test(path)) {
      throw this.bad(op, `QOM path ${JSON.stringify(path)} is not a plain path`)
    }
    this.enc.start(op).ascii(path)
    this.simple()
  }
  private value32() {
    const value = this.reader.hex32(3)
    if (value < 0) this.protocol()
    this.finish()
    return value
  }
  private clockReply() {
    this.roundTrip()
    const text = this.reader.text(3)
    if (!/^\d+$/.test(text)) this.protocol()
    this.finish()
    return BigInt(text)
  }
  private checkLength(op: string, length: number, max: number) {
    if (!isU(length, max)) throw this.bad(op, `length ${length} is not an integer in 0..${max}`)
  }
  private simple() {
    this.roundTrip()
    this.finish()
  }
  /** Starts a request whose address operand covers `span` bytes, checking it first. */
  private addressed(op: string, addr: Address, span: number): Encoder {
    if (!isAddress(addr) || !fitsAddressSpace(addr, span)) {
      throw this.bad(op, `address ${String(addr)} (+${span}) is not within the 64-bit address space`)
    }
    return this.enc.start(op).hex(addr)
  }
  private bad(op: string, reason: string) {
    return new QtestBadArgument({ request: op.trimEnd(), reason })
  }

  /**
   * Sends the encoded request and reads lines up to its reply, queueing the IRQ lines met on
   * the way; the reply stays current in the reader. FAIL/ERR throw `QtestFailed`.
   */
  private roundTrip() {
    if (this.dead !== undefined) {
      throw new QtestClosed({ request: this.enc.describe(), reason: `channel unusable: ${this.dead.message}` })
    }
    const reader = this.reader
    this.watchdog.begin()
    try {
      if (!this.enc.send(this.input)) this.die()
      do if (!reader.next()) this.die()
      while (this.takeIrqLine())
    } finally {
      this.watchdog.end()
    }
    if (reader.byte(0) === 0x4f && reader.byte(1) === 0x4b && (reader.byte(2) === 0x20 || reader.byte(2) === -1)) return
    const line = reader.line()
    if (!/^(FAIL|ERR)\b/.test(line)) this.protocol()
    const error = new QtestFailed({ request: this.enc.describe(), reply: line })
    this.finish()
    throw error
  }
  private takeIrqLine(): boolean {
    const r = this.reader
    if (r.byte(0) !== 0x49 || r.byte(1) !== 0x52 || r.byte(2) !== 0x51 || r.byte(3) !== 0x20) return false
    const m = /^IRQ (raise|lower) (\d+)$/.exec(r.line())
    if (m === null) this.protocol()
    this.irqs.push({ level: m[1] as "raise" | "lower", line: Number(m[2]) })
    return true
  }
  /** The current line is not what the protocol allows: the channel cannot be trusted again. */
  private protocol(): never {
    throw (this.dead = new QtestProtocolError({ request: this.enc.describe(), line: this.reader.line().slice(0, 200) }))
  }
  /** EOF, an overlong line or a failed write: the channel is over; the watchdog says why. */
  private die(): never {
    const request = this.enc.describe()
    this.dead = this.reader.overlong
      ? new QtestProtocolError({ request, line: "(a line over 4 MiB)" })
      : this.watchdog.fired()
      ? new QtestTimeout({ request, deadlineMs: this.watchdog.deadlineMs })
      : new QtestClosed({ request, reason: "QEMU closed the qtest channel (it exited or was killed)" })
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
  /**
   * Ends a request once its reply is parsed: queues the IRQ lines already buffered behind
   * the reply (so a listener hears of them now, not after some later request), then
   * delivers the queue to the listener.
   */
  private finish() {
    while (this.reader.nextBuffered()) {
      if (!this.takeIrqLine()) this.protocol()
    }
    if (this.listener === undefined || this.delivering || this.irqs.length === 0) return
    this.delivering = true
    try {
      while (this.irqs.length > 0 && this.listener !== undefined) this.listener(this.irqs.shift()!)
    } finally {
      this.delivering = false
    }
  }
}
