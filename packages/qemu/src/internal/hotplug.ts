/**
 * Removal and re-plug through the root ports' native PCIe hotplug, as the platform (pciehp)
 * does it. Every step is synchronous (qtest and QMP over FIFO pairs, bounded polls, the
 * watchdog's deadline), so a removal inside a VirtualTime world waits on no real I/O. Each sequence runs to its end once started, even if its caller is interrupted: a
 * half-done removal would leave QEMU and the bus disagreeing about the device.
 * @internal
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type { Bus, Lifecycle } from "@devscope/core"
import { deviceArguments } from "./boot.js"
import * as Pci from "./pci.js"
import * as Pcie from "./pcie.js"
import { QmpError } from "./qmp.js"
import { type Entry, guarded, type QemuLost, type State } from "./state.js"

/**
 * A hotplug step did not happen as PCIe and QEMU say it does (QMP refused `device_del` or
 * `device_add`, the attention button was not pressed, `DEVICE_DELETED` did not come).
 * @internal
 */
export class HotplugFailed extends Data.TaggedError("HotplugFailed")<{
  readonly device: string
  readonly step: string
  readonly reason: string
}> {
  override get message() {
    return `hotplug of ${this.device} failed at ${this.step}: ${this.reason}`
  }
}

/** A QMP command: QEMU's refusal is returned (not a loss); anything else loses QEMU. */
const qmpCall = (state: State, during: string, command: () => unknown): unknown => {
  try {
    return command()
  } catch (error) {
    if (error instanceof QmpError) return error
    return guarded(state, during, () => {
      throw error
    })
  }
}

/** QEMU's loss, if it happened (a call, so that no earlier check narrows it away). */
const lostOf = (state: State): QemuLost | undefined => state.lost

/** Most qtest round trips spent waiting for a slot to change (each lets QEMU's main loop run). */
const POLLS = 2000

/** Polls the slot until `done` (a bounded number of round trips); whether it happened. */
const pollSlot = (state: State, entry: Entry, done: (s: Pcie.SlotState) => boolean): boolean => {
  const { cfg } = state.booted
  for (let i = 0; i < POLLS; i++) {
    const s = guarded(state, "a hotplug poll", () => Pcie.slotState(cfg, entry.slot.port.address))
    if (s === undefined) return false
    if (done(s)) return true
  }
  return false
}

/** The device leaves the register path: reads all-ones, writes dropped, its DMA stopped. */
const gone = (entry: Entry) => {
  if (entry.status === "present") entry.status = "gone"
  entry.port.disconnect()
}

/**
 * Orderly removal: `device_del` (QEMU presses the slot's attention button), the driver unbinds
 * while the device still works, then the slot is powered off (QEMU removes the device) and
 * `DEVICE_DELETED` is awaited. Returns the unbind report if a driver was bound.
 */
export const orderlyRemoval = (
  state: State,
  entry: Entry,
  pci: Bus.Service
): Effect.Effect<Lifecycle.UnbindReport | undefined, HotplugFailed | QemuLost> =>
  Effect.suspend(() => {
    // One orderly removal at a time: a second one waits for the first (and has nothing to report).
    const running = entry.removal
    if (running !== undefined) return Effect.as(Deferred.await(running), undefined)
    const done = Deferred.unsafeMake<void>(FiberId.none)
    entry.removal = done
    return Effect.ensuring(orderly(state, entry, pci), Effect.sync(() => {
      entry.removal = undefined
      Deferred.unsafeDone(done, Exit.void)
    }))
  })

/** Takes the device off the bus (a device the bus already removed, or is removing, is left to that). */
const offTheBus = (pci: Bus.Service, entry: Entry, cause: "hot-unplug" | "surprise") =>
  Effect.suspend(() => {
    const device = entry.device
    entry.device = undefined
    return device === undefined ? Effect.succeed(undefined) : Effect.catchAll(pci.removeDevice(device, { cause }), () => Effect.succeed(undefined))
  })

const orderly = (
  state: State,
  entry: Entry,
  pci: Bus.Service
): Effect.Effect<Lifecycle.UnbindReport | undefined, HotplugFailed | QemuLost> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const { qmpSync, cfg } = state.booted
    const name = entry.slot.spec.name
    const report = entry.status !== "present"
      ? undefined
      : yield* Effect.gen(function*() {
        const after = qmpSync.lastSeq()
        const asked = qmpCall(state, "device_del", () => qmpSync.execute("device_del", { id: entry.slot.qemuId }))
        if (lostOf(state) !== undefined) return yield* lostOf(state)!
        if (asked instanceof QmpError) return yield* new HotplugFailed({ device: name, step: "device_del", reason: asked.message })
        if (!pollSlot(state, entry, (s) => s.attentionButtonPressed)) {
          if (lostOf(state) !== undefined) return yield* lostOf(state)!
          return yield* new HotplugFailed({ device: name, step: "attention button", reason: "Slot Status never showed the button pressed" })
        }
        // The platform's answer to the button: the driver lets go while the device works...
        const unbound = yield* offTheBus(pci, entry, "hot-unplug")
        // ...then the slot's power goes off and QEMU removes the device.
        const step = guarded(state, "the slot power-off", () => Pcie.orderlyRemovalStep(cfg, entry.slot.port.address))
        gone(entry)
        if (lostOf(state) !== undefined) return yield* lostOf(state)!
        if (step?._tag !== "PoweredOff") {
          return yield* new HotplugFailed({ device: name, step: "slot power-off", reason: `the attention button was no longer pressed (${step?._tag})` })
        }
        // QEMU sends DEVICE_DELETED from a batched RCU callback, about 50 ms of wall time after
        // the power-off; `drainRcu` has QEMU run its pending callbacks so one round trip sees it.
        const deleted = guarded(state, "DEVICE_DELETED", () =>
          qmpSync.waitForEvent("DEVICE_DELETED", {
            after,
            where: (e) => (e.data as { readonly device?: unknown } | undefined)?.device === entry.slot.qemuId,
            drainRcu: true
          }))
        if (lostOf(state) !== undefined) return yield* lostOf(state)!
        if (deleted === undefined) return yield* new HotplugFailed({ device: name, step: "DEVICE_DELETED", reason: "QEMU did not report the device deleted" })
        return unbound
      })
    // A device already gone (surprise-removed, QEMU lost) is only taken off the bus.
    const late = yield* offTheBus(pci, entry, "surprise")
    entry.status = "absent"
    return report ?? late
  }))

/**
 * Surprise removal: one Slot Control write cuts the slot's power (QEMU removes the device at
 * once, with no warning to anyone), then the normal unbind runs against a device that reads
 * all-ones. Returns the unbind report if a driver was bound.
 */
export const surpriseRemoval = (
  state: State,
  entry: Entry,
  pci: Bus.Service
): Effect.Effect<Lifecycle.UnbindReport | undefined> =>
  Effect.uninterruptible(Effect.gen(function*() {
    if (entry.status === "present") {
      entry.deleting = state.booted.qmpSync.lastSeq()
      guarded(state, "the slot power cut", () => Pcie.powerOffSlot(state.booted.cfg, entry.slot.port.address))
      gone(entry)
    }
    const report = yield* offTheBus(pci, entry, "surprise")
    // (An orderly removal running meanwhile finishes its own sequence and leaves the slot empty.)
    if (entry.removal === undefined) entry.status = "absent"
    return report
  }))

/**
 * Puts a device back in its empty slot: power on, `device_add`, wait for presence and the
 * link, then the BARs the device had at boot programmed again (the bridge window above was
 * sized for them) and decoding and bus mastering turned on.
 */
export const plugIn = (state: State, entry: Entry): Effect.Effect<void, HotplugFailed | QemuLost> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const { qmpSync, cfg } = state.booted
    const name = entry.slot.spec.name
    const port = entry.slot.port.address
    // After a surprise removal QEMU may still be deleting the device: a device_add before its
    // DEVICE_DELETED finds the old device holding its backends (a block node's write permission).
    // The wait is bounded (QEMU does not always report it): then device_add says what is wrong.
    const deleting = entry.deleting
    entry.deleting = undefined
    if (deleting !== undefined) {
      const deleted = (after: number) =>
        guarded(state, "DEVICE_DELETED", () =>
          qmpSync.waitForEvent("DEVICE_DELETED", {
            after,
            where: (e) => (e.data as { readonly device?: unknown } | undefined)?.device === entry.slot.qemuId,
            drainRcu: true,
            maxPolls: 20
          }))
      if (deleted(deleting) === undefined && lostOf(state) === undefined) {
        // QEMU 7.2 now and then keeps the device through the power cut: power the slot on and
        // off once more, which it does act on.
        const again = qmpSync.lastSeq()
        guarded(state, "the slot power cycle", () => {
          Pcie.powerOnSlot(cfg, port)
          Pcie.powerOffSlot(cfg, port)
        })
        deleted(again)
      }
      if (lostOf(state) !== undefined) return yield* lostOf(state)!
    }
    const powered = guarded(state, "the slot power-on", () => Pcie.slotState(cfg, port).powered || Pcie.powerOnSlot(cfg, port).powered)
    if (lostOf(state) !== undefined) return yield* lostOf(state)!
    if (powered !== true) return yield* new HotplugFailed({ device: name, step: "slot power-on", reason: "the slot stayed off" })
    const added = qmpCall(state, "device_add", () => qmpSync.execute("device_add", deviceArguments(entry.slot.spec, entry.slot.index)))
    if (lostOf(state) !== undefined) return yield* lostOf(state)!
    if (added instanceof QmpError) return yield* new HotplugFailed({ device: name, step: "device_add", reason: added.message })
    if (!pollSlot(state, entry, (s) => s.present)) {
      if (lostOf(state) !== undefined) return yield* lostOf(state)!
      return yield* new HotplugFailed({ device: name, step: "presence", reason: "Presence Detect State never showed the device" })
    }
    guarded(state, "the slot's events", () => Pcie.acknowledgeSlotEvents(cfg, port))
    const address = Pci.bdf(entry.slot.bus, 0, 0)
    guarded(state, "the BARs", () => {
      for (const bar of entry.bars) {
        cfg.write32(address, bar.offset, bar.address >>> 0)
        if (bar.kind === "memory64") cfg.write32(address, bar.offset + 4, 0)
      }
    })
    if (entry.fn !== undefined) guarded(state, "the command register", () => Pci.enable(cfg, entry.fn!, { memory: true, io: true, busMaster: true }))
    if (lostOf(state) !== undefined) return yield* lostOf(state)!
  }))
