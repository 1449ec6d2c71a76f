/**
 * The backend on a real QEMU: a driver written for the simulator (the port of Rust-for-Linux's
 * rust_driver_pci) bound to QEMU's pci-testdev, removed in order and by surprise, re-plugged;
 * QEMU killed under it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { VirtualTime } from "@devscope/sim"
import { Hardware } from "@devscope/core"
import { RustDma, RustDriverPci } from "@devscope/example-rust-samples"
import { Explore } from "@devscope/testing"
import { Qemu } from "@devscope/qemu"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { skipReason } from "./qemuAvailable.js"

// Without QEMU (outside CI) these are skipped, with the reason printed by qemuAvailable.ts.
const skip = skipReason !== undefined

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

describe.skipIf(skip)("QEMU lost under a manual clock", () => {
  it.live("QEMU killed while a VirtualTime world drives it: the device is unbound by surprise from inside the world, on its clock", () =>
    Effect.scoped(Effect.gen(function*() {
      const unbinds: Array<string> = []
      const q = yield* Qemu.make({
        devices: [{ name: "testdev0", model: "pci-testdev" }],
        clock: "manual",
        onLifecycle: (_, e) => void (e._tag === "Unbound" && unbinds.push(e.cause))
      })
      yield* q.pci.registerDriver(RustDriverPci.driver()).pipe(Effect.provideService(Hardware.Hardware, q.hardware))
      yield* q.plug("testdev0")
      const outcome = yield* VirtualTime.run(Effect.gen(function*() {
        yield* Effect.fork(q.runClock)
        yield* Effect.sleep("1 millis")
        q.machine.machine.kill("SIGKILL")
        // The next clock step finds QEMU gone; the unbind follows in this world.
        for (let i = 0; i < 2_000 && unbinds.length === 0; i++) yield* Effect.sleep("1 millis")
      }), { until: 10_000 })
      expect(outcome._tag).toBe("Done")
      expect(unbinds).toEqual(["surprise"])
      // Found by the clock step's request; how QEMU ended is added when its exit is seen.
      expect(q.lost()?._tag).toBe("QemuLost")
    })), 60_000)
})

describe.skipIf(skip)("removing an empty slot", () => {
  it.live("unplug and surprise removal of a device not in its slot fail with DeviceNotFound, as on the simulator", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({ devices: [{ name: "t0", model: "pci-testdev", present: false }, { name: "t1", model: "pci-testdev" }] })
      expect((yield* Effect.flip(q.unplug("t0")))._tag).toBe("DeviceNotFound")
      expect((yield* Effect.flip(q.surpriseRemove("t0")))._tag).toBe("DeviceNotFound")
      yield* q.plug("t1")
      yield* q.surpriseRemove("t1")
      expect((yield* Effect.flip(q.unplug("t1")))._tag).toBe("DeviceNotFound")
      yield* q.plug("t0")
      expect(yield* q.unplug("t0")).toBeUndefined() // no driver bound: no report
      expect(q.problems()).toEqual([])
    })), 60_000)
})

describe.skipIf(skip)("nothing left behind", () => {
  it.live("the FIFOs, the socket and the /dev/shm file are gone once the machine is up; registers still work", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({ devices: [{ name: "edu0", model: "edu" }] })
      expect(fs.existsSync(q.machine.machine.dir)).toBe(false)
      expect(fs.existsSync(q.machine.machine.memPath)).toBe(false)
      const device = yield* q.plug("edu0")
      const bar = yield* q.hardware.region(device, 0)
      expect(bar.read32(0) & 0xff).toBe(0xed)
    })), 60_000)

  it.live("the Node process that started QEMU killed with SIGKILL: QEMU dies too, no file is left", () =>
    Effect.gen(function*() {
      const root = path.resolve(__dirname, "../../..")
      // Node itself (tsx's loader in it), not the tsx command, which would be a parent of its own.
      const child = spawn(process.execPath, ["--import", "tsx", "--conditions=@devscope/source", path.join(__dirname, "fixtures/orphan.ts")], {
        cwd: root,
        stdio: ["ignore", "pipe", "inherit"]
      })
      const started = yield* Effect.async<{ readonly pid: number; readonly dir: string; readonly memPath: string }>((resume) => {
        let out = ""
        child.stdout!.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          if (out.includes("\n")) resume(Effect.succeed(JSON.parse(out.split("\n")[0]!)))
        })
      }).pipe(Effect.timeout("30 seconds"))
      // Running, not a zombie waiting for a reaper that is not there (PID 1 of a container).
      const alive = (pid: number) => {
        try {
          return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
        } catch {
          return false
        }
      }
      expect(alive(started.pid)).toBe(true)
      child.kill("SIGKILL")
      for (let i = 0; i < 100 && alive(started.pid); i++) yield* Effect.sleep("20 millis")
      expect(alive(started.pid)).toBe(false)
      expect(fs.existsSync(started.dir)).toBe(false)
      expect(fs.existsSync(started.memPath)).toBe(false)
    }), 60_000)
})

describe.skipIf(skip)("rust_dma on QEMU's pci-testdev", () => {
  it.live("probe writes the test values into guest RAM; orderly and surprise unbind check them, free and unmap, no leak, no fault", () =>
    Effect.gen(function*() {
      const q = yield* Qemu.Qemu
      const lines: Array<string> = []
      const probed: Array<Parameters<NonNullable<RustDma.Options["onProbe"]>>[0]> = []
      yield* q.pci.registerDriver(RustDma.driver({ log: (line) => lines.push(line), onProbe: (p) => probed.push(p) }))
      for (const removal of ["orderly", "surprise"] as const) {
        lines.length = 0
        yield* q.plug("testdev0")
        expect(lines).toEqual(["Probe DMA test driver."])
        const ca = probed.at(-1)!.ca.tryAccess()
        const sgt = probed.at(-1)!.sgt.tryAccess()
        if (ca._tag === "None" || sgt._tag === "None") return expect.unreachable()
        // The device sees the values in guest RAM at the coherent allocation's address, flushed
        // at the next sync point (a clock step: the clock fiber steps every 100 µs).
        yield* Effect.sleep("5 millis")
        const seen = new DataView(q.machine.memory.read(ca.value.iova, 40).buffer)
        RustDma.TEST_VALUES.forEach(([h, b], i) => {
          expect(seen.getUint32(i * 8, true)).toBe(h)
          expect(seen.getUint32(i * 8 + 4, true)).toBe(b)
        })
        const iova = sgt.value.iova
        const report = removal === "orderly" ? yield* q.unplug("testdev0") : yield* q.surpriseRemove("testdev0")
        expect(lines).toEqual(["Probe DMA test driver.", "Unload DMA test driver.", `Entry[0]: DMA address: 0x${iova.toString(16)}`])
        expect(report?.leaks).toEqual([])
        expect(report?.releaseFailures).toEqual([])
        expect(report?.removeFailure).toBeUndefined()
      }
      expect(q.dmaFaults()).toEqual([])
      expect(q.problems()).toEqual([])
    }).pipe(Effect.provide(machine([{ name: "testdev0", model: "pci-testdev" }]))), 60_000)
})

describe.skipIf(skip)("QEMU's clock under devscope's virtual time", () => {
  it.live("a backend made outside a VirtualTime world: edu's 100 ms DMA completes at 100 ms of virtual time, deterministically", () =>
    Effect.scoped(Effect.gen(function*() {
      const q = yield* Qemu.make({ devices: [{ name: "edu0", model: "edu" }], clock: "manual" })
      const device = yield* q.plug("edu0")
      const bar = yield* q.hardware.region(device, 0)
      const run = () => VirtualTime.run(Effect.gen(function*() {
        yield* Effect.fork(q.runClock)
        const started = q.qemuClock()
        // RAM to edu's buffer: 4 bytes from guest address 0x200000.
        bar.write32(0x80, 0x200000)
        bar.write32(0x88, 0x40000)
        bar.write32(0x90, 4)
        bar.write32(0x98, 1)
        const seen: Array<number> = []
        for (let i = 0; i < 120; i++) {
          yield* Effect.sleep("1 millis")
          if ((bar.read32(0x98) & 1) === 0) {
            seen.push(Number(q.qemuClock() - started) / 1e6)
            break
          }
        }
        return seen
      }))
      const first = yield* run()
      expect(first._tag).toBe("Done")
      const at = first._tag === "Done" && first.exit._tag === "Success" ? first.exit.value : []
      // QEMU truncates the start to whole milliseconds and adds 100 ms; the clock is stepped every 100 µs.
      expect(at.length).toBe(1)
      expect(at[0]!).toBeGreaterThanOrEqual(99)
      expect(at[0]!).toBeLessThanOrEqual(101.2)
      expect(first.virtualMillis).toBeLessThan(102)
    })), 60_000)
})

describe.skipIf(skip)("Explore and the oracle on QEMU", () => {
  it.live("rust_driver_pci on QEMU's pci-testdev: surprise and orderly removal at every suspension point (orderly unplug inside the virtual world), every case judged, none fails", () =>
    Effect.gen(function*() {
      const report = yield* Explore.exploreOn({
        name: "testdev-on-qemu",
        device: "testdev0",
        platform: Qemu.platform({ devices: [{ name: "testdev0", model: "pci-testdev" }] }),
        run: ({ platform }) =>
          Effect.gen(function*() {
            yield* Effect.provideService(platform.pci.registerDriver(RustDriverPci.driver()), Hardware.Hardware, platform.hardware)
            yield* platform.plug("testdev0")
            yield* Effect.sleep("1 millis")
            yield* Effect.ignore(platform.surpriseRemove("testdev0"))
          })
      }, { maxPoints: 6 })
      expect(report.failures).toEqual([])
      expect(report.points.bound).toBeGreaterThan(0)
      expect(report.modes.map((m) => m.mode)).toEqual(["surprise", "unplug", "surprise-in-remove"])
      for (const mode of report.modes.slice(0, 2)) {
        expect(mode.cases).toBeGreaterThan(0)
        expect(mode.injected).toBeGreaterThan(0)
      }
    }), 120_000)
})
