/**
 * The backend on a real QEMU: a driver written for the simulator (the port of Rust-for-Linux's
 * rust_driver_pci) bound to QEMU's pci-testdev, removed in order and by surprise, re-plugged;
 * QEMU killed under it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { RustDriverPci } from "@devscope/example-rust-samples"
import { Qemu } from "@devscope/qemu"
import { locate } from "../src/internal/install.js"

const qemu = locate()
const skip = !qemu.available && process.env.CI === undefined
if (skip) console.warn(`skipping the QEMU backend tests: ${qemu.available ? "" : `${qemu.reason} (${qemu.hint})`}`)
if (!qemu.available && process.env.CI !== undefined) throw new Error(`CI must run the QEMU tests: ${qemu.reason}`)

const machine = (devices: Qemu.Options["devices"]) => Qemu.layer({ devices })

describe.skipIf(skip)("the QEMU backend", () => {
  it.live("rust_driver_pci binds to QEMU's pci-testdev, unplugs in order, re-plugs, is surprise-removed", () =>
    Effect.gen(function*() {
      const q = yield* Qemu.Qemu
      const counts: Array<number> = []
      yield* q.pci.registerDriver(RustDriverPci.driver({ onProbe: (n) => counts.push(n) }))
      const device = yield* q.plug("testdev0")
      expect(device.ids).toMatchObject({ vendor: 0x1b36, device: 0x0005 })
      expect(device.state).toBe("bound")
      expect(counts).toEqual([1])

      const orderly = yield* q.unplug("testdev0")
      expect(orderly?.cause).toBe("hot-unplug")
      expect(orderly?.released).toContain(RustDriverPci.BAR0_LABEL)
      expect(orderly?.leaks).toEqual([])
      expect(q.device("testdev0").pipe((o) => o._tag === "Some" ? o.value.state : "none")).toBe("absent")

      yield* q.plug("testdev0")
      expect(counts).toEqual([1, 1])
      const surprise = yield* q.surpriseRemove("testdev0")
      expect(surprise?.cause).toBe("surprise")
      expect(surprise?.leaks).toEqual([])
      yield* q.plug("testdev0")
      expect(counts).toEqual([1, 1, 1])
      expect(q.problems()).toEqual([])
      expect(q.lost()).toBeUndefined()
    }).pipe(Effect.provide(machine([{ name: "testdev0", model: "pci-testdev" }]))), 60_000)

  it.live("QEMU killed under a bound driver: lost, the device unbound by surprise, reads all-ones", () =>
    Effect.gen(function*() {
      const q = yield* Qemu.Qemu
      yield* q.pci.registerDriver(RustDriverPci.driver())
      yield* q.plug("testdev0")
      q.machine.machine.kill("SIGKILL")
      // The exit is seen asynchronously; the unbind follows.
      for (let i = 0; i < 100 && q.lost() === undefined; i++) yield* Effect.sleep("20 millis")
      expect(q.lost()?._tag).toBe("QemuLost")
      expect(q.lost()?.signal).toBe("SIGKILL")
      for (let i = 0; i < 100 && q.device("testdev0").pipe((o) => o._tag === "Some" && o.value.device !== undefined && o.value.device.state !== "removed"); i++) {
        yield* Effect.sleep("20 millis")
      }
      const region = yield* q.hardware.region({ name: "testdev0" } as never, 0)
      expect(region.read32(0)).toBe(0xffffffff)
      const again = yield* Effect.flip(q.plug("testdev0"))
      expect(again._tag).toBe("QemuLost")
    }).pipe(Effect.provide(machine([{ name: "testdev0", model: "pci-testdev" }]))), 60_000)
})
