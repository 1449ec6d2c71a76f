/**
 * A RunRecord from a real simulator run under TestClock, for the writer tests: two sensors on
 * the platform bus (one with a hostile name), two edu devices on PCI (one driven correctly
 * with streaming mappings, one that frees its DMA page while the device reads it, which is
 * an IOMMU fault, one whose probe fails), removed by hot-unplug, surprise removal, manual
 * unbind and driver unload.
 */
import { Clock, Context, Duration, Effect, Layer, Queue, TestClock } from "effect"
import { Bound, Devres, Dma, Driver, Hardware, Irq, type Lifecycle, type Mmio } from "@devscope/core"
import { Edu, Iommu, Simulator } from "@devscope/sim"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import type { DeviceSummary, RunRecord, TimelineEntry, Violation } from "../src/internal/record.js"

/** A device name that must come out escaped. */
export const HOSTILE = `<script>alert("x")</script>&'`

const EduDrv = Driver.brand("fixture-edu")
const Page = Dma.array(Dma.struct({ word: "u32" }), 16)
const START = 1
const TO_RAM = 2
const IRQ = 4

class Bar0 extends Context.Tag("fixture/Bar0")<
  Bar0,
  Devres.Devres<Mmio.Mmio<typeof Edu.registers.spec>, "fixture-edu">
>() {}
const Bar0Live = Layer.effect(Bar0, Hardware.iomap(EduDrv, Edu.registers, 0, { label: "BAR0" }))

/** An edu driver doing DMA round trips through streaming mappings; `buggy` devices free the page mid-transfer. */
const eduDriver = (buggy: (device: string) => boolean, rounds: number) =>
  Driver.make(EduDrv, {
    match: [{ vendor: Edu.ids.vendor, device: Edu.ids.device }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        const bound = yield* EduDrv.Bound
        const bar = (yield* Bar0).access(bound)
        const pageRes = yield* Dma.allocCoherent(EduDrv, Page, { label: "page" })
        const page = pageRes.access(bound)
        const done = yield* Queue.unbounded<number>()
        yield* Irq.request(
          EduDrv,
          0,
          Effect.sync((): Irq.Return => {
            const status = bar.read("IRQ_STATUS")
            if (status === 0 || status === 0xffffffff) return "none"
            bar.write("IRQ_ACK", status)
            Queue.unsafeOffer(done, status)
            return "handled"
          })
        )
        const start = (src: number, dst: number, count: number, toRam: boolean) => {
          bar.write("DMA_SRC", src)
          bar.write("DMA_DST", dst)
          bar.write("DMA_CNT", count)
          bar.write("DMA_CMD", START | IRQ | (toRam ? TO_RAM : 0))
        }
        const completion = Queue.take(done).pipe(Effect.timeoutOption("20 millis"))
        const worker = buggy(bound.device.name)
          ? Effect.gen(function*() {
            start(page.iova, Edu.BUFFER_ADDRESS, Page.size, false)
            yield* Devres.release(pageRes)
            yield* completion
          })
          : Effect.gen(function*() {
            for (let round = 0; round < rounds; round++) {
              const buffer = new Uint8Array(Page.size).fill(round + 1)
              const mapping = yield* Dma.map(EduDrv, buffer, "to-device", { label: "tx buffer" })
              start(mapping.access(bound).iova, Edu.BUFFER_ADDRESS, Page.size, false)
              yield* completion
              yield* Dma.unmap(mapping)
              start(Edu.BUFFER_ADDRESS, page.iova, Page.size, true)
              yield* completion
              yield* Effect.sleep("4 millis")
            }
          })
        yield* Bound.fork(bound, worker)
      })).pipe(Layer.provideMerge(Bar0Live)),
    remove: () =>
      Effect.gen(function*() {
        const bar = (yield* Bar0).access(yield* EduDrv.Bound)
        for (let i = 0; i < 10; i++) {
          const cmd = bar.read("DMA_CMD")
          if (cmd === 0xffffffff || (cmd & START) === 0) return
          yield* Effect.sleep("1 millis")
        }
      })
  })

const summarize = (record: Omit<RunRecord, "devices" | "violations" | "violationCount">, kinds: Map<string, [string, "pci" | "platform"]>) =>
  Array.from(kinds, ([device, [kind, bus]]): DeviceSummary => {
    const unbound = record.lifecycle.flatMap(({ event }) =>
      event._tag === "Unbound" && event.device.name === device ? [event] : []
    )
    const unbinds = unbound.map((e) => ({
      cause: e.cause,
      startedAt: e.at - e.report.durationMillis,
      at: e.at,
      virtualMillis: e.report.durationMillis,
      wallMillis: 0,
      released: e.report.released.length,
      leaks: e.report.leaks.length
    }))
    return {
      device,
      kind,
      bus,
      completed: record.trace.filter((e) => e.device === device && e._tag === "Irq" && e.kind === "raise").length,
      failedGone: 0,
      lost: 0,
      inFlight: 0,
      unbinds,
      released: unbinds.reduce((n, u) => n + u.released, 0),
      leaks: unbinds.reduce((n, u) => n + u.leaks, 0),
      iommuFaults: record.iommuFaults.filter((f) => f.device === device).length
    }
  })

/** An interrupt storm on sensor5, in the large run: drawn aggregated. */
const storm: Simulator.FaultRule = {
  kind: "irq-storm",
  device: "sensor5",
  line: 0,
  count: 200,
  at: Duration.millis(150),
  interval: Duration.millis(0.2)
}

/**
 * Runs the fixture scenario and returns its record. `large` adds devices and stretches the run
 * to about 500 ms (for the browser check). Uses TestClock: provide TestContext (it.effect does).
 */
export const makeRecord = (options: { readonly large?: boolean } = {}): Effect.Effect<RunRecord> =>
  Effect.gen(function*() {
    const sim = yield* Simulator.Simulator
    const timeline: Array<TimelineEntry> = []
    const kinds = new Map<string, [string, "pci" | "platform"]>()
    const act = <A, E, R>(action: string, target: string, effect: Effect.Effect<A, E, R>, detail?: string) =>
      Effect.gen(function*() {
        timeline.push({ at: yield* Clock.currentTimeMillis, action, target, detail })
        return yield* effect
      })
    const plugSensor = (name: string) => {
      kinds.set(name, ["sensor", "platform"])
      return act("plug", name, sim.plug({ bus: "platform", name, ids: SensorModel.ids, model: SensorModel.model() }))
    }
    const plugEdu = (name: string) => {
      kinds.set(name, ["edu", "pci"])
      return act("plug", name, sim.plug({ bus: "pci", name, ids: Edu.ids, model: Edu.model() }))
    }
    const rounds = options.large ? 12 : 3

    yield* sim.platform.registerDriver(sensorDriver())
    yield* sim.pci.registerDriver(eduDriver((name) => name === "edu1", rounds))
    yield* plugSensor("sensor0")
    yield* plugSensor(HOSTILE)
    yield* plugEdu("edu0")
    yield* TestClock.adjust("10 millis")
    yield* plugEdu("edu1")
    if (options.large) {
      for (let i = 2; i <= 5; i++) {
        yield* TestClock.adjust("15 millis")
        yield* plugSensor(`sensor${i}`)
      }
      yield* plugEdu("edu2")
      yield* plugEdu("edu3")
      yield* TestClock.adjust("20 millis")
    }
  yield* TestClock.adjust("10 millis")
    // Its interrupt request is refused: the probe fails and tears down what it had acquired.
    yield* plugEdu("edu9")
    yield* TestClock.adjust("15 millis")
    yield* act("unplug", "sensor0", sim.unplug("sensor0"))
    yield* TestClock.adjust("5 millis")
    yield* act("surprise", "edu0", sim.surpriseRemove("edu0"))
    yield* TestClock.adjust("10 millis")
    yield* act("unbind", HOSTILE, sim.platform.unbind(HOSTILE), "sysfs unbind")
    if (options.large) {
      yield* TestClock.adjust("60 millis")
      yield* act("bind", HOSTILE, sim.platform.bind(HOSTILE), "sysfs bind")
      yield* TestClock.adjust("90 millis")
      yield* act("surprise", "sensor3", sim.surpriseRemove("sensor3"))
      yield* TestClock.adjust("80 millis")
      yield* act("unplug", "edu2", sim.unplug("edu2"))
      yield* TestClock.adjust("70 millis")
      yield* act("unplug", "sensor4", sim.unplug("sensor4"))
      yield* TestClock.adjust("60 millis")
    }
    yield* TestClock.adjust("10 millis")
    yield* act("unload", "fixture-edu", sim.pci.unregisterDriver("fixture-edu"))
    yield* TestClock.adjust("2 millis")

    const lifecycle = [
      ...(yield* sim.pci.history).map((event) => ({ bus: "pci" as const, event })),
      ...(yield* sim.platform.history).map((event) => ({ bus: "platform" as const, event }))
    ].sort((a, b) => a.event.at - b.event.at)
    const base = {
      scenario: "fixture",
      seed: 7,
      endedAt: yield* Clock.currentTimeMillis,
      wallMillis: 12.5,
      lifecycle,
      trace: sim.trace.events(),
      iommuFaults: sim.iommuFaults(),
      timeline,
      failures: [],
      notes: [],
      stalls: [],
      dropped: { trace: sim.trace.dropped }
    }
    const violations: Array<Violation> = base.iommuFaults.map((f) => ({
      guarantee: "G5",
      device: f.device,
      message: Iommu.format(f)
    }))
    return { ...base, devices: summarize(base, kinds), violations, violationCount: violations.length }
  }).pipe(
    Effect.provide(Simulator.layer({
      seed: 7,
      faults: [
        { kind: "fail-nth", request: "irq", n: 1, device: "edu9" },
        ...(options.large ? [storm] : [])
      ]
    })),
    Effect.provideService(Hwmon, makeHwmon()),
    Effect.orDie
  )

/** The record's unbind reports by device, for cross-checks. */
export const unboundEvents = (record: RunRecord) =>
  record.lifecycle.flatMap(({ event }) =>
    event._tag === "Unbound" ? [event as Extract<Lifecycle.LifecycleEvent, { readonly _tag: "Unbound" }>] : []
  )

