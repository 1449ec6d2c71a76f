import * as Effect from "effect/Effect"
import type * as Trace from "../Trace.js"

/** @internal */
export const faultKinds: ReadonlyArray<Trace.FaultKind> = [
  "write-to-read-only",
  "read-of-write-only",
  "reserved-bits",
  "unimplemented",
  "bad-width",
  "disconnected-access"
]

/** Field order of each kind in JSON lines, after `seq`, `at`, `device`, `_tag`. */
const jsonFields: { readonly [K in Trace.Kind]: ReadonlyArray<string> } = {
  MmioRead: ["region", "register", "offset", "width", "value"],
  MmioWrite: ["region", "register", "offset", "width", "value"],
  Fault: ["fault", "region", "register", "offset", "width", "value", "detail"],
  Lifecycle: ["event", "detail"],
  Irq: ["line", "kind"],
  Dma: ["op", "direction", "iova", "length"],
  IommuFault: ["iova", "access", "reason"]
}

const DEFAULT_LIMIT = 100_000

const zero = () => 0

const toJson = (event: Trace.TraceEvent): string => {
  const source = event as unknown as Readonly<Record<string, unknown>>
  const out: Record<string, unknown> = { seq: event.seq, at: event.at, device: event.device, _tag: event._tag }
  for (const key of jsonFields[event._tag]) {
    const value = source[key]
    if (value !== undefined) out[key] = value
  }
  return JSON.stringify(out)
}

/** @internal */
export class TraceImpl implements Trace.Service {
  enabled: boolean
  readonly limit: number
  private readonly now: () => number
  private buffer: Array<Trace.TraceEvent> = []
  private trimmed = 0
  private seq = 0
  /** How far past `limit` the buffer grows before the oldest events are cut in one go. */
  private readonly slack: number

  constructor(options?: Trace.Options) {
    const limit = options?.limit ?? DEFAULT_LIMIT
    if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 0))) {
      throw new RangeError(`trace limit must be a non-negative integer or Infinity, got ${limit}`)
    }
    this.limit = limit
    this.slack = Math.max(64, Math.min(limit, 4096))
    this.enabled = options?.enabled ?? true
    this.now = options?.now ?? zero
  }

  get dropped(): number {
    return this.trimmed + Math.max(0, this.buffer.length - this.limit)
  }

  record(event: Trace.Input): void {
    if (!this.enabled) return
    // Stamped in place (callers pass fresh literals): an object spread per event cost
    // microseconds, more than the access being traced.
    const full = event as Trace.TraceEvent & { seq: number; at: number }
    full.seq = this.seq++
    full.at = this.now()
    const buffer = this.buffer
    buffer.push(full)
    if (buffer.length > this.limit + this.slack) {
      const cut = buffer.length - this.limit
      buffer.splice(0, cut)
      this.trimmed += cut
    }
  }

  events(): ReadonlyArray<Trace.TraceEvent> {
    const buffer = this.buffer
    return buffer.length > this.limit ? buffer.slice(buffer.length - this.limit) : buffer.slice()
  }

  filter(selector: Trace.Selector | ((event: Trace.TraceEvent) => boolean)): ReadonlyArray<any> {
    const events = this.events()
    if (typeof selector === "function") return events.filter(selector)
    const kind = selector.kind
    const device = selector.device
    const kinds: ReadonlyArray<string> | undefined = kind === undefined ? undefined : typeof kind === "string" ? [kind] : kind
    return events.filter((e) => (kinds === undefined || kinds.includes(e._tag)) && (device === undefined || e.device === device))
  }

  clear(): void {
    this.buffer = []
    this.trimmed = 0
  }

  toJsonLines(): string {
    let out = ""
    for (const event of this.events()) out += toJson(event) + "\n"
    return out
  }
}

/** @internal */
export const fromClock = (options?: Omit<Trace.Options, "now">): Effect.Effect<Trace.Service> =>
  Effect.map(Effect.clock, (clock) =>
    new TraceImpl({
      enabled: options?.enabled,
      limit: options?.limit,
      now: () => clock.unsafeCurrentTimeMillis()
    }))
