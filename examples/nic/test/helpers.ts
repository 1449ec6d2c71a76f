import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { expect } from "@effect/vitest"
import type { Hardware } from "@devscope/core"
import { Simulator } from "@devscope/sim"
import {
  makeNetDevices,
  type NetDevice,
  NetDevices,
  type NetDevicesRegistry,
  NicModel,
  type Probed
} from "../src/index.js"

/**
 * Runs `f` on a fresh simulator and net-device registry. Cards still bound at the end are
 * unplugged with the clock running: their `remove` may wait (bounded) for the hardware in
 * virtual time, which the simulator's own shutdown would never advance.
 */
export const withSim = <A, E>(
  f: (sim: Simulator.Service, devs: NetDevicesRegistry) => Effect.Effect<A, E, Hardware.Hardware | NetDevices>,
  options?: Simulator.Options
) => {
  const devs = makeNetDevices()
  const shutdown = (sim: Simulator.Service) =>
    Effect.gen(function*() {
      const unplugs = yield* Effect.fork(Effect.forEach(devs.devices(), (name) => Effect.ignore(sim.unplug(name))))
      yield* TestClock.adjust("5 millis")
      yield* Fiber.join(unplugs)
    })
  return Effect.flatMap(Simulator.Simulator, (sim) => Effect.onExit(f(sim, devs), () => shutdown(sim))).pipe(
    Effect.provide(Simulator.layer(options)),
    Effect.provideService(NetDevices, devs)
  )
}

/** Plugs a card on the PCI bus. */
export const plugNic = (sim: Simulator.Service, name: string, options: NicModel.ModelOptions = {}) =>
  sim.plug({ bus: "pci", name, ids: NicModel.ids, model: NicModel.model(options) })

/** Plugs nic0 and nic1 on both ends of a new cable. */
export const plugPair = (sim: Simulator.Service) =>
  Effect.gen(function*() {
    const cable = NicModel.cable()
    yield* plugNic(sim, "nic0", { cable, port: 0 })
    yield* plugNic(sim, "nic1", { cable, port: 1 })
    // Let both handlers take the link-up interrupt, so tests start from a quiet state.
    yield* Effect.repeatN(Effect.yieldNow(), 10)
    return cable
  })

export const lookup = (devs: NetDevicesRegistry, name: string): NetDevice => Option.getOrThrow(devs.lookup(name))

/** A recognisable frame: sender tag, sequence number, then a pattern; 60 to 1500 bytes. */
export const frame = (tag: number, seq: number, length = 60 + (seq * 37) % 200): Uint8Array => {
  const bytes = new Uint8Array(length)
  bytes[0] = tag
  bytes[1] = seq >> 8
  bytes[2] = seq & 0xff
  for (let i = 3; i < length; i++) bytes[i] = (tag * 31 + seq * 7 + i) & 0xff
  return bytes
}

/** Every resource the probe acquires, in reverse order of acquisition. */
export const RELEASED = [
  "netdev registration",
  "irq 0",
  "rx buffers",
  "rx ring",
  "tx buffers",
  "tx ring",
  "completions",
  "BAR0"
]

export interface Outcome {
  readonly op: "send" | "receive"
  readonly result: "ok" | "gone" | "full"
  /** Whether the rings had been released when the call resolved. */
  readonly afterRelease: boolean
  readonly error?: unknown
}

/** Calls started and their outcomes, recorded once each. */
export interface Load {
  started: number
  readonly outcomes: Array<Outcome>
}

const released = (probed: Probed | undefined) =>
  probed !== undefined && (probed.txRing.isReleased || probed.rxRing.isReleased)

/** Sends up to `max` frames, each awaited, until the device is gone. */
export const sender = (dev: NetDevice, probed: Probed | undefined, load: Load, tag: number, max = 100_000) =>
  Effect.gen(function*() {
    for (let seq = 0; seq < max; seq++) {
      load.started++
      const result = yield* Effect.either(dev.send(frame(tag, seq)))
      const afterRelease = released(probed)
      if (Either.isRight(result)) {
        load.outcomes.push({ op: "send", result: "ok", afterRelease })
      } else if (result.left._tag === "TxQueueFull") {
        load.outcomes.push({ op: "send", result: "full", afterRelease })
        yield* Effect.yieldNow()
      } else {
        load.outcomes.push({ op: "send", result: "gone", afterRelease, error: result.left })
        return
      }
    }
  })

/** Receives until the device is gone (or `max` frames). */
export const receiver = (dev: NetDevice, probed: Probed | undefined, load: Load, max = 100_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < max; i++) {
      load.started++
      const result = yield* Effect.either(dev.receive())
      const afterRelease = released(probed)
      if (Either.isRight(result)) {
        load.outcomes.push({ op: "receive", result: "ok", afterRelease })
      } else {
        load.outcomes.push({ op: "receive", result: "gone", afterRelease, error: result.left })
        return
      }
    }
  })

/** G4: every call started resolved exactly once; successes only before the rings went; the rest DeviceGone. */
export const checkResolvedOnce = (load: Load) => {
  expect(load.outcomes).toHaveLength(load.started)
  for (const o of load.outcomes) {
    if (o.result === "ok") expect(o.afterRelease).toBe(false)
    if (o.result === "gone") expect((o.error as { _tag: string })._tag).toBe("DeviceGone")
  }
}
