/**
 * `pnpm bench`: hot-path costs measured against baselines in the same process, written to
 * docs/benchmarks.md. Issue 6 extends this with lifecycle, gate, throughput and memory suites.
 *
 * B1a, bound access: each sample reads 1,024 distinct objects (so nothing is hoisted out of
 * the loop) and sums their values; the figure is nanoseconds per read.
 */
import { Effect, Layer, Option, Scope, STM, TReentrantLock } from "effect"
import { type Bound, Bus, Devres, Driver, Gate, Mmio, RegisterMap } from "@devscope/core"
import { RegisterFile } from "@devscope/sim"
import { Bench } from "tinybench"
import * as fs from "node:fs"
import * as os from "node:os"

const N = 1024
const Edu = Driver.brand("edu")

// A real binding holding 1,024 Devres, built through the bus like any driver's. The scope
// stays open for the whole run, so the binding is live.
const scope = Effect.runSync(Scope.make())
const { devres, token, gate } = Effect.runSync(Effect.gen(function*() {
  let out: { devres: Array<Devres.Devres<number, "edu">>; token: Bound.Bound<"edu">; gate: Gate.Gate<"edu"> } | undefined
  const bus = yield* Bus.make()
  yield* bus.registerDriver(Driver.make(Edu, {
    match: [{ vendor: 1 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const devres: Array<Devres.Devres<number, "edu">> = []
        for (let i = 0; i < N; i++) devres.push(yield* Devres.make(Edu, i, { label: `r${i}` }))
        out = { devres, token: yield* Edu.Bound, gate: yield* Gate.make(Edu) }
      }))
  }))
  yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
  return out!
}).pipe(Scope.extend(scope)))

// Baselines over the same values.
const plain = Array.from({ length: N }, (_, i) => ({ value: i }))
const flagged = Array.from({ length: N }, (_, i) => {
  let revoked = false
  return { get: () => (revoked ? undefined : i), revoke: () => (revoked = true) }
})
const proxies = Array.from({ length: N }, (_, i) => Proxy.revocable({ value: i }, {}).proxy)
const weak = Array.from({ length: N }, (_, i) => new WeakRef(plain[i]!))

let sink = 0
const bench = new Bench({ time: 1000, warmup: true, warmupTime: 200 })
bench
  .add("direct property read (baseline)", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += plain[i]!.value
    sink += s
  })
  .add("devres.access(token)", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += devres[i]!.access(token)
    sink += s
  })
  .add("devres.tryAccess() (Option)", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += Option.getOrElse(devres[i]!.tryAccess(), () => 0)
    sink += s
  })
  .add("closure with a revoked flag", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += flagged[i]!.get() ?? 0
    sink += s
  })
  .add("Proxy.revocable", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += proxies[i]!.value
    sink += s
  })
  .add("WeakRef.deref", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += weak[i]!.deref()!.value
    sink += s
  })

await bench.run()

// B1b: typed register reads, the way driver code does them: a literal register name at the
// call site, here polled on 16 devices in turn (so no read can be hoisted out of the loop).
const Regs = RegisterMap.make("bench", 0x10, {
  ID: { offset: 0x0, access: "RO" },
  STATUS: { offset: 0x4, access: "RW" },
  CTRL: { offset: 0x8, access: "RW" }
})
const raws = Array.from({ length: 16 }, (_, i) => Uint32Array.of(0, i, 0, 0))
const memoryMmios = Array.from({ length: 16 }, (_, i) => {
  const mmio = Mmio.unsafeMake(Regs, Mmio.memoryRegion(0x10))
  mmio.write("STATUS", i)
  return mmio
})
const simMmios = Array.from({ length: 16 }, (_, i) => {
  const mmio = Mmio.unsafeMake(Regs, RegisterFile.make(Regs, { device: `bench${i}` }))
  mmio.write("STATUS", i)
  return mmio
})
const registers = new Bench({ time: 1000, warmup: true, warmupTime: 200 })
registers
  .add("raw Uint32Array read (baseline)", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += raws[i & 15]![1]!
    sink += s
  })
  .add("mmio.read(\"STATUS\"), plain memory region", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += memoryMmios[i & 15]!.read("STATUS")
    sink += s
  })
  .add("mmio.read32(4), plain memory region", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += memoryMmios[i & 15]!.read32(4)
    sink += s
  })
  .add("mmio.read(\"STATUS\"), simulated register file", () => {
    let s = 0
    for (let i = 0; i < N; i++) s += simMmios[i & 15]!.read("STATUS")
    sink += s
  })
await registers.run()

const nsPerRead = (name: string, suite: Bench = bench): number => {
  const task = suite.tasks.find((t) => t.name === name)!
  const result = task.result as unknown as { latency: { p50: number } }
  return (result.latency.p50 * 1e6) / N
}
const base = nsPerRead("direct property read (baseline)")
const rows = bench.tasks.map((t) => {
  const ns = nsPerRead(t.name)
  return { name: t.name, ns, ratio: ns / base }
})

// Gates: 1,000 sections per sample, run back to back in one fiber; the figure is µs/section.
const SECTIONS = 1000
const semaphore = Effect.runSync(Effect.makeSemaphore(1))
const rwLock = Effect.runSync(STM.commit(TReentrantLock.make))
const body = Effect.sync(() => sink++)
const sections = (label: string, section: Effect.Effect<unknown, unknown>) =>
  [label, () => Effect.runSync(Effect.repeatN(section, SECTIONS - 1))] as const
const gates = new Bench({ time: 1000, warmup: true, warmupTime: 200 })
for (
  const [label, run] of [
    sections("Semaphore.withPermits(1) (baseline)", semaphore.withPermits(1)(body)),
    sections("gate.enter", gate.enter(() => body)),
    sections("Gate.enterWith (token in context)", Gate.enterWith(gate, body)),
    sections("TReentrantLock.withReadLock", TReentrantLock.withReadLock(rwLock)(body)),
    sections("no section (the body alone)", body)
  ] as const
) gates.add(label, run)
await gates.run()

const usPerSection = (suite: Bench, name: string) => {
  const task = suite.tasks.find((t) => t.name === name)!
  return ((task.result as unknown as { latency: { p50: number } }).latency.p50 * 1000) / SECTIONS
}
const gateBase = usPerSection(gates, "Semaphore.withPermits(1) (baseline)")
const gateHeader = "| B3 (first cut): read sections, body is one Effect.sync | µs/section | speed-up over the semaphore |\n|---|---:|---:|"
const gateTable = gates.tasks.map((t) => {
  const us = usPerSection(gates, t.name)
  return `| ${t.name} | ${us.toFixed(3)} | ${(gateBase / us).toFixed(2)}x |`
}).join("\n")
console.log(`\n${gateHeader}\n${gateTable}`)

const registerBase = nsPerRead("raw Uint32Array read (baseline)", registers)
const registerRows = registers.tasks.map((t) => {
  const ns = nsPerRead(t.name, registers)
  return { name: t.name, ns, ratio: ns / registerBase }
})
const registerHeader = "| B1b: register reads | ns/read | ratio to raw Uint32Array |\n|---|---:|---:|"
const registerTable = registerRows.map((r) => `| ${r.name} | ${r.ns.toFixed(2)} | ${r.ratio.toFixed(2)}x |`).join("\n")
console.log(`\n${registerHeader}\n${registerTable}`)

const cpu = os.cpus()[0]?.model ?? "unknown CPU"
const header = "| B1a: bound access, 1,024 objects | ns/read | ratio to direct read |\n|---|---:|---:|"
const table = rows.map((r) => `| ${r.name} | ${r.ns.toFixed(2)} | ${r.ratio.toFixed(2)}x |`).join("\n")
console.log(`${header}\n${table}`)
console.log(`(sink ${sink > 0 ? "ok" : "?"}; target for devres.access: <= 1.5x)`)

const doc = `# Benchmarks

Regenerate with \`pnpm bench\` (writes this file). Figures are medians of the per-sample times
(tinybench, about 1 s of samples per task), as ratios against baselines measured in the same
process and run; absolute numbers vary with the machine, and on this shared 2-core machine
ratios move by about ±20% from run to run.

Machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.

## B1a: bound access

\`devres.access(token)\` checks that the token belongs to the same binding and that nothing was
revoked with a single identity compare (a live token's key is its binding; revocation swaps
the key for a sentinel, and a released Devres swaps its owner for another), so the live path has
one branch and no allocation. Target: at most 1.5x a direct property read.

${header}
${table}

## B1b: register reads (first measurement)

A typed read by register name through \`Mmio\`, over plain memory and over the simulator's
register file (which applies access semantics and tracing checks), against a raw
\`Uint32Array\` read. Target for the plain-memory case: at most 1.2x (issue 6 works on it).

${registerHeader}
${registerTable}

## B3 (first cut): gate sections

\`gate.enter(f)\` costs a counter change and a map entry per section (for nesting and for
interrupting stragglers at the deadline), against \`Semaphore.withPermits(1)\` and a
\`TReentrantLock\` read lock, each running 1,000 sections back to back in one fiber.
Target (issue 6): at least 3x faster than the semaphore.

${gateHeader}
${gateTable}

Still to come (issue 6): B2 bind/unbind against hand-written Effect
scope code, B3 gates, B4 example-driver throughput, B5 memory and the 100,000-cycle soak.
`
fs.mkdirSync("docs", { recursive: true })
fs.writeFileSync("docs/benchmarks.md", doc)
await Effect.runPromise(Scope.close(scope, Effect.void as never))
