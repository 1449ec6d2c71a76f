/**
 * B5, memory: retained heap per bound device with 10 resources (against a hand-written Effect
 * scope holding 10 finalizers), and the soak: 100,000 bind/unbind cycles, heap after warm-up
 * against heap at the end. Needs a full GC between readings (`--expose-gc`, as `pnpm bench`
 * runs; otherwise it is enabled at run time).
 */
import { Effect, Exit, Layer, Scope } from "effect"
import { Bound, Bus, Devres, Driver } from "@devscope/core"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import type { Section } from "./report.js"

const Dev = Driver.brand("b5")
const DEVICES = 1000
const CYCLES = Number(process.env.SOAK_CYCLES ?? 100_000)
const WARMUP = 5000
const labels = Array.from({ length: 10 }, (_, i) => `r${i}`)
const release = () => Effect.void

const fullGc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => {
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()

/** Heap used after full collections (a tick between them lets WeakRefs and timers settle). */
const heap = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0))
    fullGc()
  }
  return process.memoryUsage().heapUsed
}

const driver = (fibers: number) =>
  Driver.make(Dev, {
    match: [{ vendor: 5 }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* Devres.acquireRelease(Dev, Effect.succeed(i), release, { label: labels[i] })
        const token = yield* Dev.Bound
        for (let i = 0; i < fibers; i++) yield* Bound.fork(token, Effect.never)
      }))
  })

const perDevice = async (): Promise<{ devscope: number; raw: number }> => {
  const scope = Effect.runSync(Scope.make())
  const bus = Effect.runSync(Scope.extend(Bus.make({ autoBind: false, historySize: 100 }), scope))
  Effect.runSync(bus.registerDriver(driver(0)))
  for (let i = 0; i < DEVICES; i++) Effect.runSync(bus.addDevice({ name: `d${i}`, ids: { vendor: 5 } }))
  const before = await heap()
  for (let i = 0; i < DEVICES; i++) await Effect.runPromise(bus.bind(`d${i}`))
  const devscope = ((await heap()) - before) / DEVICES
  await Effect.runPromise(Scope.close(scope, Exit.void))

  const scopes: Array<Scope.CloseableScope> = []
  const rawBefore = await heap()
  for (let i = 0; i < DEVICES; i++) {
    scopes.push(Effect.runSync(Effect.gen(function*() {
      const s = yield* Scope.make()
      for (let r = 0; r < 10; r++) {
        yield* Effect.uninterruptible(Effect.flatMap(Effect.succeed(r), () => Scope.addFinalizer(s, release())))
      }
      return s
    })))
  }
  const raw = ((await heap()) - rawBefore) / DEVICES
  for (const s of scopes) Effect.runSync(Scope.close(s, Exit.void))
  return { devscope, raw }
}

const soak = async (): Promise<{ warm: number; end: number; seconds: number }> => {
  const scope = Effect.runSync(Scope.make())
  const bus = Effect.runSync(Scope.extend(Bus.make({ autoBind: false }), scope))
  Effect.runSync(bus.registerDriver(driver(2)))
  Effect.runSync(bus.addDevice({ name: "soak0", ids: { vendor: 5 } }))
  const cycles = (n: number) =>
    Effect.runPromise(Effect.orDie(Effect.repeatN(Effect.zipRight(bus.bind("soak0"), bus.unbind("soak0")), n - 1)))
  // Warm-up fills the bus's event history (10,000 events by default) and the JIT's caches.
  await cycles(WARMUP)
  const warm = await heap()
  const started = performance.now()
  for (let done = 0; done < CYCLES; done += 1000) await cycles(1000)
  const seconds = (performance.now() - started) / 1000
  const end = await heap()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return { warm, end, seconds }
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`

export const run = async (): Promise<Section> => {
  const device = await perDevice()
  const s = await soak()
  const growth = s.end - s.warm
  return {
    id: "b5",
    title: "B5: memory and the soak",
    intro: `
Heap per bound device: ${DEVICES.toLocaleString("en-US")} devices bound at once, each probe
acquiring 10 \`Devres\` (no fibers), heap used after full GCs before and after, divided by
the number of devices; the baseline is ${DEVICES.toLocaleString("en-US")} hand-written Effect scopes holding 10
finalizers each. A bound device also holds its binding, tokens, supervisor, probe context and
the bus's bookkeeping, so it is larger; there is no target for it.

Soak: ${CYCLES.toLocaleString("en-US")} bind/unbind cycles of one device (10 \`Devres\`, 2 binding fibers), after
${WARMUP.toLocaleString("en-US")} cycles of warm-up (which fill the bus's bounded event history). Heap used after full
GCs at the end against after the warm-up. Target: less than 1 MiB of growth. CI runs the
same cycle 3,000 times (packages/core/test/soak.test.ts) with structural checks: every
resource released once, every fiber interrupted, bounded history, no leak reports, and every
ended binding's token and gate collected.`,
    tables: [
      {
        title: "B5: heap per bound device, 10 resources",
        unit: "bytes",
        ratioLabel: "ratio",
        digits: 0,
        rows: [
          { name: "hand-written Effect scope, 10 finalizers (baseline)", figure: device.raw, baseline: device.raw, ratio: 1 },
          { name: "devscope bound device, 10 Devres", figure: device.devscope, baseline: device.raw, ratio: device.devscope / device.raw }
        ]
      },
      [
        "| B5: soak | cycles | heap after warm-up | heap at the end | growth | target | met? |",
        "|---|---:|---:|---:|---:|---|---|",
        `| bind + unbind, 10 Devres, 2 fibers (${s.seconds.toFixed(0)} s, ${(s.seconds * 1e6 / CYCLES).toFixed(0)} µs/cycle) | ${
          CYCLES.toLocaleString("en-US")
        } | ${mb(s.warm)} | ${mb(s.end)} | ${growth >= 0 ? "+" : ""}${kb(growth)} | < 1 MiB | ${growth < 2 ** 20 ? "yes" : "**no**"} |`
      ].join("\n")
    ]
  }
}
