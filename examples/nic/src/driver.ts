/**
 * The "nic" driver for the acme PCI network card (see `model.ts`), written the way devscope
 * drivers should be written:
 *
 * - resources are Devres of the binding: BAR0, the completions table, the TX/RX descriptor
 *   rings and buffer pools (coherent DMA), the interrupt and the netdev registration;
 * - a NAPI-like poll fiber (a binding fiber): the interrupt handler masks the card's
 *   interrupts and wakes it; it reaps up to `budget` completions per batch, yields between
 *   batches and unmasks once a batch comes in under budget;
 * - user calls go through a Gate, and never wait *inside* it: `send` queues a descriptor and
 *   registers a Deferred in the section, then waits outside; the poll fiber completes it, or
 *   the unbind fails it with `DeviceGone`, whichever comes first (G4: exactly once, no hang);
 * - `remove` stops the poll fiber (napi_disable), drains TX for a bounded time, stops the
 *   engines and waits (bounded) for them to go idle before any DMA memory is freed, unless
 *   the card reads all-ones (surprise removal), where it waits for nothing.
 *
 * @since 0.1.0
 */
import { Context, Deferred, Duration, Effect, Fiber, Layer, Option, Queue } from "effect"
import { Bound, DeviceError, Devres, Dma, Driver, Gate, Hardware, Irq } from "@devscope/core"
import {
  BUFFER_SIZE,
  Completions,
  Datapath,
  emptyStats,
  type Pool,
  poolLayout,
  type Regs,
  type Ring,
  ringLayout
} from "./datapath.js"
import * as NicModel from "./model.js"
import { type NetDevice, NetDevices, TxQueueFull } from "./netdevice.js"

/**
 * The brand: types the tokens `Bound<"nic">` and `Core<"nic">`.
 * @since 0.1.0
 */
export const Nic = Driver.brand("nic")

const ALL_ONES = 0xffffffff
const RUN = NicModel.CTRL_ENABLE | NicModel.CTRL_RX_ENABLE | NicModel.CTRL_TX_ENABLE
const IDLE = NicModel.STATUS_TX_IDLE | NicModel.STATUS_RX_IDLE
/** `remove`: TX drain and idle wait, each bounded (virtual time under TestClock). */
const DRAIN_STEP = "50 micros"
const DRAIN_STEPS = 20
const IDLE_STEP = "10 micros"
const IDLE_STEPS = 50

/**
 * BAR0: the register window, a Devres of the binding.
 * @since 0.1.0
 */
export class Bar0 extends Context.Tag("@devscope/example-nic/Bar0")<Bar0, Devres.Devres<Regs, "nic">>() {}

const Bar0Live = Layer.effect(Bar0, Hardware.iomap(Nic, NicModel.registers, 0, { label: "BAR0" }))

/**
 * What a probe acquired, for tests and debugging.
 * @since 0.1.0
 */
export interface Probed {
  readonly token: Bound.Bound<"nic">
  readonly bar: Devres.Devres<Regs, "nic">
  readonly completions: Devres.Devres<Completions, "nic">
  readonly txRing: Devres.Devres<Ring, "nic">
  readonly txBuffers: Devres.Devres<Pool, "nic">
  readonly rxRing: Devres.Devres<Ring, "nic">
  readonly rxBuffers: Devres.Devres<Pool, "nic">
  readonly irq: Devres.Devres<Irq.Registration, "nic">
  readonly gate: Gate.Gate<"nic">
  readonly poller: Fiber.RuntimeFiber<never>
  readonly datapath: Datapath
  readonly handle: NetDevice
}

/** The probed binding, for `remove`. */
class Binding extends Context.Tag("@devscope/example-nic/Binding")<Binding, Probed>() {}

/** @since 0.1.0 */
export interface Options {
  /** Completions (TX and RX together) the poll fiber handles per batch. Default 16. */
  readonly budget?: number | undefined
  /** Descriptors per ring (at most `ringSize - 1` in flight). Default 64. */
  readonly ringSize?: number | undefined
  /** Received frames kept for `receive` before they are dropped. Default 1024. */
  readonly backlog?: number | undefined
  /** Receives one line per notable driver event (remove, ...). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe. */
  readonly onProbe?: ((probed: Probed) => void) | undefined
  /**
   * A planted bug, for the injected-bug scenario: `remove` frees the RX ring and buffers
   * before stopping the device, which keeps receiving into the freed memory (IOMMU faults).
   */
  readonly bug?: "free-dma-before-stop" | undefined
}

/**
 * The nic driver, matching the acme card's PCI ids. Needs `Hardware` and `NetDevices` where it
 * is registered.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { driver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
 *
 * const devs = makeNetDevices()
 * const program = Effect.gen(function*() {
 *   const sim = yield* Simulator.Simulator
 *   yield* sim.pci.registerDriver(driver({ budget: 8 }))
 *   yield* sim.plug({ bus: "pci", name: "nic0", ids: NicModel.ids, model: NicModel.model({ loopback: true }) })
 *   const nic0 = Option.getOrThrow(devs.lookup("nic0"))
 *   yield* nic0.send(new Uint8Array([1, 2, 3]))
 * }).pipe(Effect.provide(Simulator.layer()), Effect.provideService(NetDevices, devs))
 * ```
 * @since 0.1.0
 */
export const driver = (options: Options = {}) => {
  const budget = options.budget ?? 16
  const ringSize = options.ringSize ?? 64
  const backlog = options.backlog ?? 1024
  const log = options.log ?? (() => {})
  if (!(budget >= 1) || !(ringSize >= 2) || ringSize > 0xffff) {
    throw new RangeError(`nic driver: budget ${budget} must be >= 1 and ringSize ${ringSize} in [2, 65535]`)
  }

  const probe = Layer.effect(
    Binding,
    Effect.gen(function*() {
      yield* Dma.setMask(yield* Nic.Core, 32)
      const token = yield* Nic.Bound
      const name = token.device.name
      const bar0 = yield* Bar0
      const bar = bar0.access(token)
      const id = bar.read("ID")
      if (id !== NicModel.ID_VALUE) return yield* Effect.dieMessage(`not an acme nic (ID 0x${id.toString(16)})`)
      bar.write("CTRL", NicModel.CTRL_RESET)
      const mac = bar.read("MAC_LO") + (bar.read("MAC_HI") & 0xffff) * 2 ** 32

      const gateName = `${name} netdev`
      const gone = new DeviceError.DeviceGone({ device: name, driver: Nic.name, gate: gateName })
      const stats = emptyStats()
      // Acquired before the rings, so released after them: a safety net that fails whatever is
      // still pending if `remove` did not get to it (it failed, or the probe did).
      const completions = yield* Devres.acquireRelease(
        Nic,
        Effect.sync(() => new Completions(gone, ringSize, backlog, stats)),
        (c) => Effect.sync(() => c.failAll()),
        { label: "completions" }
      )
      const txRing = yield* Dma.allocCoherent(Nic, ringLayout(ringSize), { label: "tx ring" })
      const txBuffers = yield* Dma.allocCoherent(Nic, poolLayout(ringSize), { label: "tx buffers" })
      const rxRing = yield* Dma.allocCoherent(Nic, ringLayout(ringSize), { label: "rx ring" })
      const rxBuffers = yield* Dma.allocCoherent(Nic, poolLayout(ringSize), { label: "rx buffers" })
      const datapath = new Datapath({ bar: bar0, txRing, txBuffers, rxRing, rxBuffers, completions }, ringSize, stats)
      datapath.setup(token)

      // Hard handler: mask the card, note link changes, wake the poll fiber.
      const wake = yield* Queue.dropping<void>(1)
      const irq = yield* Irq.request(
        Nic,
        0,
        Effect.sync((): Irq.Return => {
          const status = bar.read("INT_STATUS")
          if (status === ALL_ONES || (status & NicModel.INT_ALL) === 0) return "none"
          bar.write("INT_MASK", NicModel.INT_ALL)
          stats.interrupts++
          if ((status & NicModel.INT_LINK_CHANGE) !== 0) {
            bar.write("INT_STATUS", NicModel.INT_LINK_CHANGE)
            stats.linkChanges++
          }
          if ((status & (NicModel.INT_TX_DONE | NicModel.INT_RX)) !== 0) Queue.unsafeOffer(wake, undefined)
          else bar.write("INT_MASK", 0)
          return "handled"
        })
      )

      // The poll fiber (NAPI): a binding fiber, so it uses `access` with no check of its own.
      const poll = Effect.gen(function*() {
        for (;;) {
          yield* Queue.take(wake)
          while (datapath.poll(token, budget) >= budget) yield* Effect.yieldNow()
          // Under budget: done for now. A cause that arrived meanwhile raises on unmask.
          bar0.access(token).write("INT_MASK", 0)
        }
      })
      const poller = yield* Bound.fork(token, poll)

      const gate = yield* Gate.make(Nic, { name: gateName })
      const handle: NetDevice = {
        device: name,
        mac,
        send: (frame) =>
          frame.byteLength === 0 || frame.byteLength > BUFFER_SIZE
            ? Effect.dieMessage(`nic send: a frame is 1 to ${BUFFER_SIZE} bytes, got ${frame.byteLength}`)
            : Effect.flatMap(
              // In the section: claim, write, ring, register. The wait is outside, so the
              // unbind never waits for a completion that may never come.
              gate.enter((t) =>
                Effect.suspend(() => {
                  const done = datapath.queueTx(t, frame)
                  if (done !== undefined) return Effect.succeed(done)
                  stats.txQueueFull++
                  return Effect.fail(new TxQueueFull({ device: name, capacity: ringSize - 1 }))
                })
              ),
              Deferred.await
            ),
        receive: () =>
          Effect.flatMap(gate.enter((t) => Effect.sync(() => completions.access(t).take())), (next) =>
            next instanceof Uint8Array
              ? Effect.succeed(next)
              : Effect.onInterrupt(Deferred.await(next.deferred), () =>
                Effect.sync(() => Option.map(completions.tryAccess(), (c) => c.abandon(next))))),
        link: () =>
          Option.match(bar0.tryAccess(), {
            onNone: () => "down",
            onSome: (regs) => {
              const status = regs.read("STATUS")
              return status !== ALL_ONES && (status & NicModel.STATUS_LINK_UP) !== 0 ? "up" : "down"
            }
          }),
        stats: () => ({ ...stats })
      }

      const devs = yield* NetDevices
      yield* Devres.acquireRelease(
        Nic,
        Effect.sync(() => devs.register(handle)),
        () => Effect.sync(() => devs.unregister(handle)),
        { label: "netdev registration" }
      )

      // Start the card last: everything that handles its activity is in place.
      bar.write("INT_STATUS", NicModel.INT_ALL)
      bar.write("INT_MASK", 0)
      bar.write("CTRL", RUN)

      const probed: Probed = {
        token,
        bar: bar0,
        completions,
        txRing,
        txBuffers,
        rxRing,
        rxBuffers,
        irq,
        gate,
        poller,
        datapath,
        handle
      }
      options.onProbe?.(probed)
      return probed
    })
  ).pipe(Layer.provideMerge(Bar0Live))

  // Step 3: the gate is closed (no user call is inside), every resource is live.
  const remove = () =>
    Effect.gen(function*() {
      const p = yield* Binding
      const token = yield* Nic.Bound
      const bar = p.bar.access(token)
      const completions = p.completions.access(token)
      // napi_disable: nothing polls the rings from here on but this hook.
      yield* Fiber.interrupt(p.poller)
      const finish = (how: string) => {
        p.datapath.reapTx(token, Infinity)
        const failed = completions.failAll()
        log(`remove: ${how}; ${failed} pending operation(s) failed with DeviceGone`)
      }
      if (bar.read("STATUS") === ALL_ONES) return finish("device gone, nothing to stop")
      bar.write("INT_MASK", NicModel.INT_ALL)

      if (options.bug === "free-dma-before-stop") {
        // THE BUG: the card is still receiving into these.
        yield* Devres.release(p.rxRing)
        yield* Devres.release(p.rxBuffers)
        log("remove: rx ring and buffers freed (device still running)")
        // ...and it lets the card run a while longer before stopping it, so whatever the peer
        // sends meanwhile is received into the freed memory.
        yield* Effect.sleep(Duration.times(DRAIN_STEP, DRAIN_STEPS))
      }
      // Give frames already queued a bounded chance to go out, so their senders succeed.
      for (let i = 0; i < DRAIN_STEPS && p.datapath.txInFlight > 0; i++) {
        yield* Effect.sleep(DRAIN_STEP)
        p.datapath.reapTx(token, Infinity)
      }
      // Stop the engines and wait (bounded) until no DMA is in progress.
      bar.write("CTRL", 0)
      let idle = false
      for (let i = 0; i < IDLE_STEPS && !idle; i++) {
        const status = bar.read("STATUS")
        idle = status === ALL_ONES || (status & IDLE) === IDLE
        if (!idle) yield* Effect.sleep(IDLE_STEP)
      }
      p.datapath.readDropped(bar)
      finish(idle ? "device stopped" : "device did not go idle")
    })

  return Driver.make(Nic, {
    match: [{ vendor: NicModel.ids.vendor, device: NicModel.ids.device }],
    probe,
    remove
  })
}
