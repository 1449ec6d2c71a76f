/**
 * An edu driver written the way we want users to write drivers, with switchable bugs for the
 * tests: BAR0 through Hardware.iomap, a coherent DMA page, an interrupt whose handler acks
 * and signals completions, and a worker fiber that does DMA round trips through the device.
 */
import { Context, Duration, Effect, Layer, Option, Queue } from "effect"
import { Bound, Devres, Dma, Driver, Hardware, Irq } from "@devscope/core"
import { Edu as SimEdu } from "@devscope/sim"

export const Edu = Driver.brand("edu")

export const Page = Dma.array(Dma.struct({ word: "u32" }), 64)

export class Bar0 extends Context.Tag("edu/Bar0")<
  Bar0,
  Devres.Devres<import("@devscope/core").Mmio.Mmio<typeof SimEdu.registers.spec>, "edu">
>() {}

const Bar0Live = Layer.effect(Bar0, Hardware.iomap(Edu, SimEdu.registers, 0, { label: "BAR0" }))

export interface Probed {
  readonly irq: Irq.Registration
  readonly page: Devres.Devres<Dma.Coherent<typeof Page>, "edu">
}

export interface Options {
  readonly transfers: number
  readonly results: Array<string>
  readonly bug?: "free-while-running" | "leak-mapping" | undefined
  readonly onProbe?: ((probed: Probed) => void) | undefined
  readonly stormThreshold?: number | undefined
}

const START = 1
const TO_RAM = 2
const IRQ = 4

export const driver = (options: Options) =>
  Driver.make(Edu, {
    match: [{ vendor: SimEdu.ids.vendor, device: SimEdu.ids.device }],
    probe: () =>
      Layer.effectDiscard(Effect.gen(function*() {
        yield* Dma.setMask(yield* Edu.Core, 32)
        const bound = yield* Edu.Bound
        const bar = (yield* Bar0).access(bound)
        if (bar.read("ID") !== 0x010000ed) return yield* Effect.dieMessage("not an edu device")
        const page = yield* Dma.allocCoherent(Edu, Page, { label: "dma page" })
        if (options.bug === "leak-mapping") {
          yield* Dma.map(Edu, new Uint8Array(128), "to-device", { label: "forgotten buffer" })
        }
        const done = yield* Queue.unbounded<number>()
        const irq = yield* Irq.request(
          Edu,
          0,
          Effect.sync(() => {
            const status = bar.read("IRQ_STATUS")
            if (status === 0 || status === 0xffffffff) return "none" as const
            bar.write("IRQ_ACK", status)
            Queue.unsafeOffer(done, status)
            return "handled" as const
          }),
          { stormThreshold: options.stormThreshold }
        )
        options.onProbe?.({ irq: irq.access(bound), page })

        // Programs one transfer and waits for its interrupt, with a timeout: a device that
        // vanished mid-transfer never interrupts.
        const start = (src: number, dst: number, toRam: boolean) => {
          bar.write("DMA_SRC", src)
          bar.write("DMA_DST", dst)
          bar.write("DMA_CNT", Page.length * 4)
          bar.write("DMA_CMD", START | IRQ | (toRam ? TO_RAM : 0))
        }
        const completion = Queue.take(done).pipe(Effect.timeoutOption(Duration.millis(50)))
        const transfer = (src: number, dst: number, toRam: boolean) =>
          Effect.zipRight(Effect.sync(() => start(src, dst, toRam)), completion)

        const worker = Effect.gen(function*() {
          for (let round = 0; round < options.transfers; round++) {
            const coherent = page.access(bound)
            for (let i = 0; i < Page.length; i++) coherent.view.set(i, "word", round * 1000 + i)
            if (options.bug === "free-while-running") {
              // The bug: the memory goes back while the device is still reading it.
              start(coherent.iova, SimEdu.BUFFER_ADDRESS, false)
              yield* Devres.release(page)
              options.results.push("freed early")
              yield* completion
              return
            }
            const out = yield* transfer(coherent.iova, SimEdu.BUFFER_ADDRESS, false)
            if (Option.isNone(out)) return options.results.push(`round ${round}: timeout`)
            for (let i = 0; i < Page.length; i++) coherent.view.set(i, "word", 0)
            const back = yield* transfer(SimEdu.BUFFER_ADDRESS, coherent.iova, true)
            if (Option.isNone(back)) return options.results.push(`round ${round}: timeout`)
            let ok = true
            for (let i = 0; i < Page.length; i++) ok &&= coherent.view.get(i, "word") === round * 1000 + i
            options.results.push(`round ${round}: ${ok ? "ok" : "corrupt"}`)
          }
        })
        yield* Bound.fork(bound, worker)
      })).pipe(Layer.provideMerge(Bar0Live)),
    // Stop the device before its resources go: wait for the DMA engine to be idle, unless the
    // device is gone (all-ones), in which case there is nothing to wait for.
    remove: () =>
      Effect.gen(function*() {
        const bar = (yield* Bar0).access(yield* Edu.Bound)
        for (let i = 0; i < 100; i++) {
          const cmd = bar.read("DMA_CMD")
          if (cmd === 0xffffffff) {
            options.results.push("remove: device gone")
            return
          }
          if ((cmd & START) === 0) return
          yield* Effect.sleep("100 micros")
        }
      })
  })
