/**
 * B7, the QEMU backend (`@devscope/qemu`): what its register path, its start-up and its DMA
 * sync points cost, each against a baseline measured in the same run.
 *
 * 1. One 32-bit MMIO read of edu's ID register (BAR0 + 0) as a driver does it
 *    (`Qemu.make`, `plug`, `hardware.region(device, 0)`, `region.read32(0)`), against a small C
 *    qtest client (scripts/bench/qtest-client.c, compiled with `cc -O2` into a temp dir) that
 *    starts its own QEMU the same way (the backend's command line, edu behind a pcie-root-port)
 *    and times `readl` round trips of the same register. Both time each read with the monotonic
 *    clock, the same number of reads after the same warm-up; rounds alternate the order, and the
 *    ratio is the median of the rounds' ratios. Target: at most 1.3x the C client.
 * 2. Start-up: `Qemu.make` to the first register read (plug and region included), against the
 *    C client's fork of QEMU to its first ID read.
 * 3. DMA: the backend's sync points on a 4 KiB buffer (a coherent allocation's `flush` and
 *    `refresh`, a streaming map+unmap), against plain positional `fs.writeSync`/`fs.readSync`
 *    of 4 KiB on the same /dev/shm guest RAM file.
 *
 * Without QEMU and its qtest accelerator (`pnpm qemu:setup`), or without a C compiler, the
 * section says it was skipped and why; the other benches are unaffected.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { Effect, Exit, Scope } from "effect"
import type { Hardware, Mmio } from "@devscope/core"
// The QEMU backend is a workspace package the root does not depend on: import its sources.
import { Qemu } from "../../packages/qemu/src/index.js"
import { locate } from "../../packages/qemu/src/internal/install.js"
import { measure, median, ratio, sink, type Task } from "./harness.js"
import type { Row, Section } from "./report.js"

const READS = Number(process.env.B7_READS ?? 20_000)
const WARMUP = Number(process.env.B7_WARMUP ?? 2_000)
const ROUNDS = Number(process.env.B7_ROUNDS ?? 11)
const STARTS = Number(process.env.B7_STARTS ?? 7)
const DMA_ROUNDS = Number(process.env.B7_DMA_ROUNDS ?? 7)
const EDU_ID = 0x010000ed
const DEVICES = [{ name: "edu0", model: "edu" }] as const
const SITE = "b7"
const KIB4 = 4096

interface Reads {
  readonly median: number
  readonly p99: number
  readonly mean: number
}

interface CResult extends Reads {
  readonly startFirstReply: number
  readonly startFirstRead: number
}

const skipped = (reason: string): Section => ({
  id: "b7",
  title: "B7: the QEMU backend (register round trip, start-up, DMA sync)",
  intro: "MMIO reads of QEMU's edu over qtest against a C qtest client, QEMU's start-up, DMA sync points on 4 KiB.",
  tables: [`*Skipped: ${reason}*`]
})

/** Median, p99 and mean of per-read times (µs). */
const stats = (samples: Float64Array): Reads => {
  const sorted = Float64Array.from(samples).sort()
  let sum = 0
  for (const s of samples) sum += s
  return { median: median(Array.from(sorted)), p99: sorted[Math.floor((sorted.length - 1) * 0.99)]!, mean: sum / samples.length }
}

/** `READS` reads of edu's ID register through the backend's region, each timed (µs). */
const tsReads = (region: Mmio.Region): Reads => {
  let check = 0
  for (let i = 0; i < WARMUP; i++) check |= region.read32(0) ^ EDU_ID
  const samples = new Float64Array(READS)
  for (let i = 0; i < READS; i++) {
    const a = performance.now()
    check |= region.read32(0) ^ EDU_ID
    samples[i] = (performance.now() - a) * 1000
  }
  if (check !== 0) throw new Error("b7: edu's ID register did not read 0x010000ed")
  return stats(samples)
}

/** One run of the C client: its own QEMU, `n` timed reads. Synchronous: our own QEMU idles meanwhile. */
const cRun = (exe: string, binary: string, moduleDir: string, n: number): CResult => {
  const run = spawnSync(exe, [binary, String(n), String(n > 0 ? WARMUP : 0)], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, QEMU_MODULE_DIR: moduleDir },
    stdio: ["ignore", "pipe", "pipe"]
  })
  if (run.status !== 0) throw new Error(`b7: the C qtest client failed (${run.status ?? run.signal}): ${run.stderr.trim()}`)
  const r = JSON.parse(run.stdout) as { startFirstReplyUs: number; startFirstReadUs: number; medianUs: number; p99Us: number; meanUs: number }
  return { median: r.medianUs, p99: r.p99Us, mean: r.meanUs, startFirstReply: r.startFirstReplyUs / 1000, startFirstRead: r.startFirstReadUs / 1000 }
}

/** Runs an effect in `scope`, so that what it acquires outlives the call. */
const inScope = <A, E>(scope: Scope.CloseableScope, effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Scope.extend(effect, scope))

/** A backend with edu plugged, and its BAR0. */
const boot = (scope: Scope.CloseableScope) =>
  inScope(scope, Effect.gen(function*() {
    const qemu = yield* Qemu.make({ devices: DEVICES })
    const device = yield* qemu.plug("edu0")
    const region = yield* qemu.hardware.region(device, 0)
    return { qemu, device, region }
  }))

/** `Qemu.make` to the first read of edu's ID register (ms); the backend is stopped afterwards (not timed). */
const tsStart = async (): Promise<number> => {
  const scope = Effect.runSync(Scope.make())
  try {
    const t0 = performance.now()
    const { region } = await boot(scope)
    const id = region.read32(0)
    const ms = performance.now() - t0
    if (id !== EDU_ID) throw new Error(`b7: edu's ID register reads 0x${id.toString(16)}`)
    return ms
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** The DMA port's sync points (memory.ts's `Port`; `Hardware.DmaPort` does not show them). */
interface SyncPort extends Hardware.DmaPort {
  flush(): void
  refresh(): void
}

const measureDma = async (port: SyncPort, memPath: string) => {
  // The baseline: the same guest RAM file, at an offset the port's allocator never reaches
  // in this run (it hands out pages from 1 MiB up; 63 MiB of the 64 is far above).
  const fd = fs.openSync(memPath, "r+")
  const OFFSET = 63 * 1024 * 1024
  const plain = new Uint8Array(KIB4).fill(0x5a)
  const { memory } = Effect.runSync(port.allocCoherent(KIB4, SITE))
  const stream = new Uint8Array(KIB4).fill(0xa5)
  // Streaming map+unmap as a driver yields them, 64 to one runSync (its own cost amortised).
  const BATCH = 64
  const mapUnmap = Effect.repeatN(
    Effect.flatMap(port.map(stream, "bidirectional", SITE), (iova) => Effect.sync(() => port.unmap(iova, SITE))),
    BATCH - 1
  )
  let fill = 0
  const tasks: Array<Task> = [
    { name: "write", ops: 1, run: () => (sink.value += fs.writeSync(fd, plain, 0, KIB4, OFFSET)) },
    { name: "read", ops: 1, run: () => (sink.value += fs.readSync(fd, plain, 0, KIB4, OFFSET)) },
    { name: "write+read", ops: 1, run: () => (sink.value += fs.writeSync(fd, plain, 0, KIB4, OFFSET) + fs.readSync(fd, plain, 0, KIB4, OFFSET)) },
    {
      name: "flush dirty",
      ops: 1,
      run: () => {
        memory.fill(++fill & 0xff)
        port.flush()
      }
    },
    { name: "flush clean", ops: 1, run: () => port.flush() },
    { name: "refresh", ops: 1, run: () => port.refresh() },
    { name: "map+unmap", ops: BATCH, run: () => Effect.runSync(mapUnmap) }
  ]
  try {
    const m = await measure(tasks, { rounds: DMA_ROUNDS, timeMs: 150 })
    return Object.fromEntries(m.map((x) => [x.name, x]))
  } finally {
    fs.closeSync(fd)
  }
}

export const run = async (): Promise<Section> => {
  const found = locate()
  if (!found.available) return skipped(`QEMU with its qtest accelerator is not available: ${found.reason} (${found.hint})`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-b7-"))
  try {
    const exe = path.join(dir, "qtest-client")
    const cc = spawnSync("cc", ["-O2", "-o", exe, "scripts/bench/qtest-client.c"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
    if (cc.error !== undefined || cc.status !== 0) {
      return skipped(`the C qtest client did not compile (\`cc -O2\`): ${cc.error?.message ?? cc.stderr.trim()}`)
    }
    try {
      return await measureAll(exe, found.binary, found.moduleDir)
    } catch (error) {
      // A QEMU that is found but does not run here (no /dev/shm, a sandbox) must not cost the
      // other benches their report.
      console.error(error)
      return skipped(`QEMU did not run: ${(error as Error)?.message ?? String(error)}`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(", ")

const measureAll = async (exe: string, binary: string, moduleDir: string): Promise<Section> => {
  const loadBefore = loadavg()
  console.log(`  load average ${loadBefore}`)
  // --- 2. start-up (first, while no other backend runs: its clock fiber would compete) -----
  const locateMs: Array<number> = []
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    locate()
    locateMs.push(performance.now() - t0)
  }
  const tsStarts: Array<number> = []
  const cStarts: Array<number> = []
  const cReplies: Array<number> = []
  const startRatios: Array<number> = []
  await tsStart() // untimed: the modules' first load and JIT
  cRun(exe, binary, moduleDir, 0)
  for (let round = 0; round < STARTS; round++) {
    let ts = 0
    let c: CResult | undefined
    for (const side of round % 2 === 0 ? ["ts", "c"] : ["c", "ts"]) {
      if (side === "ts") ts = await tsStart()
      else c = cRun(exe, binary, moduleDir, 0)
    }
    tsStarts.push(ts)
    cStarts.push(c!.startFirstRead)
    cReplies.push(c!.startFirstReply)
    startRatios.push(ts / c!.startFirstRead)
    console.log(`  start ${round + 1}: backend ${ts.toFixed(1)} ms, C client ${c!.startFirstRead.toFixed(1)} ms (first reply ${c!.startFirstReply.toFixed(1)} ms)`)
  }

  // --- 1. register round trip, and 3. DMA, on one backend ------------------------------------
  const scope = Effect.runSync(Scope.make())
  try {
    const { device, qemu, region } = await boot(scope)
    const ts: Array<Reads> = []
    const c: Array<Reads> = []
    const readRatios: Array<number> = []
    for (let round = 0; round < ROUNDS; round++) {
      let t: Reads | undefined
      let b: Reads | undefined
      for (const side of round % 2 === 0 ? ["ts", "c"] : ["c", "ts"]) {
        if (side === "ts") t = tsReads(region)
        else b = cRun(exe, binary, moduleDir, READS)
      }
      ts.push(t!)
      c.push(b!)
      readRatios.push(t!.median / b!.median)
      console.log(
        `  reads ${round + 1}: backend ${t!.median.toFixed(2)} µs (p99 ${t!.p99.toFixed(1)}), C client ${b!.median.toFixed(2)} µs (p99 ${b!.p99.toFixed(1)})`
      )
    }
    const dma = await measureDma(qemu.hardware.dma(device) as SyncPort, qemu.machine.machine.memPath)
    console.log(`  load average ${loadavg()}; locate() ${median(locateMs).toFixed(1)} ms; C client's first reply ${median(cReplies).toFixed(1)} ms`)
    const us = (ns: number) => ns / 1000
    const of = (xs: ReadonlyArray<Reads>, k: keyof Reads) => median(xs.map((x) => x[k]))
    const within = (k: keyof Reads) => median(ts.map((t, i) => t[k] / c[i]![k]))
    const dmaRow = (name: string, task: string, base: string): Row => ({
      name,
      figure: us(dma[task]!.ns),
      baseline: us(dma[base]!.ns),
      ratio: ratio(dma[task]!, dma[base]!)
    })
    return {
      id: "b7",
      title: "B7: the QEMU backend (register round trip, start-up, DMA sync)",
      intro: `
QEMU's edu (\`${binary}\`, \`-accel qtest\`) driven by \`@devscope/qemu\` as a driver does it (\`Qemu.make\`, \`plug\`,
\`hardware.region(device, 0)\`), against a minimal C qtest client (scripts/bench/qtest-client.c, built with \`cc -O2\` at
bench time) that starts its own QEMU with the backend's command line (q35, qtest over two FIFOs, guest RAM in /dev/shm,
edu behind a pcie-root-port), does the minimal enumeration itself (bridge window, BAR0 at 0xc0000000, memory decoding)
and times \`readl\` round trips with \`clock_gettime\`. Register reads: edu's ID register (BAR0 + 0), ${READS.toLocaleString("en-US")}
reads per side and round after ${WARMUP.toLocaleString("en-US")} untimed ones, each read timed on its own; ${ROUNDS} rounds in
alternating order, each side's figure the median over rounds of its per-round median (or p99, mean), the ratio the median of the
rounds' ratios. The C client runs while the backend's QEMU idles (and the other way round). Start-up: ${STARTS} starts per side
in alternating order; the backend's from \`Qemu.make\` (QEMU located, launched, qtest and QMP opened, enumeration and BAR
assignment, \`plug\`, \`region\`) to the first read's value, the C client's from before its \`mkfifo\`/fork to its first ID read
(first reply: ${median(cReplies).toFixed(1)} ms); \`locate()\` alone (a \`--version\` run and a stamp scan of the binary) takes
${median(locateMs).toFixed(1)} ms of the backend's. DMA: the port's sync points on one 4 KiB coherent allocation and a 4 KiB
bidirectional streaming mapping (64 map+unmap to an \`Effect.runSync\`), against positional \`fs.writeSync\`/\`fs.readSync\` of
4 KiB on the same guest RAM file, measured with the harness (${DMA_ROUNDS} rounds). Load average (1, 5, 15 min) at the start
of B7: ${loadBefore}; at its end: ${loadavg()} (${os.cpus().length} CPUs).`,
      tables: [
        {
          title: "B7: 32-bit MMIO read of edu's ID register",
          unit: "µs/read",
          ratioLabel: "TS / C",
          rows: [
            { name: "C qtest client, median (baseline)", figure: of(c, "median"), baseline: of(c, "median"), ratio: 1 },
            { name: "`region.read32(0)`, median", figure: of(ts, "median"), baseline: of(c, "median"), ratio: median(readRatios), target: { op: "<=", value: 1.3 } },
            { name: "`region.read32(0)`, mean", figure: of(ts, "mean"), baseline: of(c, "mean"), ratio: within("mean") },
            { name: "`region.read32(0)`, p99", figure: of(ts, "p99"), baseline: of(c, "p99"), ratio: within("p99") }
          ]
        },
        {
          title: "B7: QEMU start-up to the first register read",
          unit: "ms",
          ratioLabel: "TS / C",
          digits: 1,
          rows: [
            { name: "C qtest client: fork of QEMU to its first ID read (baseline)", figure: median(cStarts), baseline: median(cStarts), ratio: 1 },
            { name: "`Qemu.make` + `plug` + `region` to the first `read32`", figure: median(tsStarts), baseline: median(cStarts), ratio: median(startRatios) }
          ]
        },
        {
          title: "B7: DMA sync points on 4 KiB",
          unit: "µs/op",
          ratioLabel: "ratio",
          rows: [
            { name: "`fs.writeSync` 4 KiB (baseline)", figure: us(dma.write!.ns), baseline: us(dma.write!.ns), ratio: 1 },
            { name: "`fs.readSync` 4 KiB (baseline)", figure: us(dma.read!.ns), baseline: us(dma.read!.ns), ratio: 1 },
            dmaRow("coherent `flush`, 4 KiB written by the CPU (vs writeSync)", "flush dirty", "write"),
            dmaRow("coherent `flush`, nothing written (vs writeSync)", "flush clean", "write"),
            dmaRow("coherent `refresh` (vs readSync)", "refresh", "read"),
            dmaRow("streaming `map` + `unmap`, bidirectional (vs writeSync + readSync)", "map+unmap", "write+read")
          ]
        }
      ]
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
