/**
 * The synchronous QMP channel against a real QEMU: pci-testdev behind a pcie-root-port with
 * native hotplug. Commands and error replies, the event log, an orderly removal whose
 * DEVICE_DELETED is found without leaving the thread, re-plug, QEMU killed or hung mid-command,
 * what QEMU could send that is not QMP, and the round-trip time.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { Deferred, Duration, Effect } from "effect"
import { locate } from "../src/internal/install.js"
import { ConfigSpace, enumerate, findFunctions } from "../src/internal/pci.js"
import { enableHotplugInterrupts, orderlyRemovalStep, powerOnSlot, slotState } from "../src/internal/pcie.js"
import { launch, type LaunchOptions, type Machine, QemuStartFailed } from "../src/internal/process.js"
import {
  openSync,
  type OpenSyncOptions,
  QmpError,
  QmpSyncBadArgument,
  QmpSyncClosed,
  QmpSyncProtocolError,
  QmpSyncTimeout
} from "../src/internal/qmpSync.js"
import { open, QtestClosed } from "../src/internal/qtest.js"

// With the qtest accelerator when `pnpm qemu:setup` built it, else under `-accel tcg -S`
// (nothing here needs the virtual clock); without QEMU, skip loudly (never under CI).
const found = locate()
const binary = found.binary
const runnable = binary !== undefined || process.env.CI !== undefined
if (!runnable) console.warn(`qmpSync tests skipped: ${found.available ? "" : `${found.reason}; ${found.hint}`}`)

const options: LaunchOptions = {
  ...(binary === undefined ? {} : { binary }),
  ...(found.available ? { accel: "qtest", moduleDir: found.moduleDir } : { accel: "tcg" }),
  args: [
    "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
    "-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1,addr=0x2",
    "-device", "pci-testdev,id=dev0,bus=rp0"
  ]
}

const ROOT_PORT = { bus: 0, device: 2, function: 0 }
const DEVICE = { bus: 1, device: 0, function: 0 }

const start = (qmp: OpenSyncOptions = {}) =>
  Effect.gen(function*() {
    const machine = yield* launch(options)
    const q = yield* open(machine)
    const qs = yield* openSync(machine, qmp)
    return { machine, q, qs }
  })

const exitOf = (machine: Machine) => Deferred.await(machine.exited).pipe(Effect.timeout(Duration.seconds(5)))

/** What `f` throws (it must throw). */
const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error("expected a throw")
}

describe.runIf(runnable)("synchronous QMP", () => {
  it.scopedLive("commands, error replies, arguments refused before sending, non-ASCII both ways", () =>
    Effect.gen(function*() {
      const { machine, qs } = yield* start()
      expect(qs.greeting).toMatchObject({ version: { qemu: { major: 7 } } })
      const status = qs.execute("query-status") as { status: string; running: boolean }
      expect(status.status).toBe(found.available ? "running" : "prelaunch")

      const unknown = thrown(() => qs.execute("no-such-command"))
      expect(unknown).toBeInstanceOf(QmpError)
      expect(unknown).toMatchObject({ command: "no-such-command", errorClass: "CommandNotFound" })
      const missing = thrown(() => qs.execute("device_del", { id: "nope-\u00e9\u{1f600}" }))
      expect(missing).toMatchObject({ _tag: "QmpError", errorClass: "DeviceNotFound" })
      expect((missing as QmpError).desc).toContain("nope-\u00e9\u{1f600}")

      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      for (const args of [{ id: 1n }, { id: NaN }, { id: Infinity }, cyclic, [] as never, null as never]) {
        expect(thrown(() => qs.execute("device_del", args))).toBeInstanceOf(QmpSyncBadArgument)
      }
      expect(thrown(() => qs.execute(""))).toBeInstanceOf(QmpSyncBadArgument)
      expect(thrown(() => qs.execute("device_del", { id: "x".repeat(1 << 20) }))).toBeInstanceOf(QmpSyncBadArgument)
      // Nothing half-sent: the next command gets its own reply.
      expect(qs.execute("query-status")).toEqual(status)
      expect(qs.issues()).toEqual([])
      expect(machine.exitStatus()).toBeUndefined()

      // Once per machine: QEMU greets once, so a second open would wait for nothing.
      const again = yield* Effect.flip(Effect.scoped(openSync(machine)))
      expect(again).toBeInstanceOf(QemuStartFailed)
    }))

  it.scopedLive("the event log: numbered, bounded, drops counted", () =>
    Effect.gen(function*() {
      const { qs } = yield* start({ eventBuffer: 3 })
      expect(qs.lastSeq()).toBe(0)
      qs.poll()
      expect(qs.events()).toEqual([])
      if (found.available) {
        for (let i = 0; i < 3; i++) {
          qs.execute("stop")
          qs.execute("cont")
        }
      } else {
        // Under -S the machine never ran: `cont` would start the BIOS; stop from prelaunch.
        for (let i = 0; i < 6; i++) qs.execute("stop")
      }
      // STOP and RESUME are emitted before the reply: no poll needed.
      const events = qs.events()
      expect(qs.lastSeq()).toBeGreaterThanOrEqual(found.available ? 6 : 0)
      expect(events.length).toBe(Math.min(3, qs.lastSeq()))
      expect(qs.droppedEvents()).toBe(qs.lastSeq() - events.length)
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => qs.lastSeq() - events.length + 1 + i))
      if (found.available) {
        expect(events.map((e) => e.event)).toEqual(["RESUME", "STOP", "RESUME"])
        expect(events[0].timestamp.seconds).toBeGreaterThan(0)
        expect(qs.waitForEvent("STOP", { after: 0 })?.seq).toBe(5)
        expect(qs.waitForEvent("STOP", { maxPolls: 3 })).toBeUndefined()
      }
    }))

  it.scopedLive("orderly removal: device_del, slot power-off over qtest, DEVICE_DELETED found synchronously; device_add", () =>
    Effect.gen(function*() {
      const { q, qs } = yield* start()
      const cfg = new ConfigSpace(q)
      expect(findFunctions(enumerate(cfg), 0x1b36, 0x0005).map((f) => f.address)).toEqual([DEVICE])
      enableHotplugInterrupts(cfg, ROOT_PORT)
      expect(orderlyRemovalStep(cfg, ROOT_PORT)._tag).toBe("NoRequest")
      // Twice: DEVICE_DELETED by query-status polls, then by one RCU drain.
      for (const drainRcu of [false, true]) {
        const after = qs.lastSeq()
        expect(qs.execute("device_del", { id: "dev0" })).toEqual({})
        // QEMU presses the attention button inside device_del: Slot Status shows it at once.
        expect(slotState(cfg, ROOT_PORT).attentionButtonPressed).toBe(true)
        expect(cfg.present(DEVICE)).toBe(true)
        const step = orderlyRemovalStep(cfg, ROOT_PORT)
        expect(step).toMatchObject({ _tag: "PoweredOff", removed: true, state: { powered: false } })
        expect(cfg.read32(DEVICE, 0)).toBe(0xffffffff)

        const t0 = performance.now()
        const deleted = qs.waitForEvent("DEVICE_DELETED", { after, drainRcu, where: (e) => e.data.device === "dev0" })
        const waited = performance.now() - t0
        console.log(`DEVICE_DELETED found ${waited.toFixed(1)} ms after the power-off (${drainRcu ? "one RCU drain" : "query-status polls"})`)
        expect(deleted?.data.path).toBe("/machine/peripheral/dev0")
        expect(qs.events().filter((e) => e.seq > after && e.event === "DEVICE_DELETED" && e.data.device === "dev0")).toHaveLength(1)
        // The next wait starts after it: nothing more comes.
        expect(qs.waitForEvent("DEVICE_DELETED", { where: (e) => e.data.device === "dev0", maxPolls: 2 })).toBeUndefined()

        // Re-plug into the powered-off slot, then power it on: the device answers again.
        expect(qs.execute("device_add", { driver: "pci-testdev", id: "dev0", bus: "rp0" })).toEqual({})
        expect(powerOnSlot(cfg, ROOT_PORT).present).toBe(true)
        expect(cfg.read32(DEVICE, 0)).toBe(0x0005_1b36)
      }
      const dup = thrown(() => qs.execute("device_add", { driver: "pci-testdev", id: "dev0", bus: "rp0" }))
      expect(dup).toMatchObject({ _tag: "QmpError", errorClass: "GenericError" })
      expect(qs.issues()).toEqual([])
    }))

  it.scopedLive("QEMU killed in the middle of a command: a typed error at once, on both channels", () =>
    Effect.gen(function*() {
      const { machine, q, qs } = yield* start()
      // Stopped, QEMU cannot answer; killed 200 ms later from another process, the blocked
      // read sees EOF (long before the 10 s watchdog deadline).
      process.kill(machine.pid, "SIGSTOP")
      spawn("sh", ["-c", `sleep 0.2; kill -KILL ${machine.pid}`], { stdio: "ignore" })
      const t0 = performance.now()
      const error = thrown(() => qs.execute("query-status"))
      const after = performance.now() - t0
      console.log(`QEMU SIGKILLed mid-command: ${(error as Error).message} after ${after.toFixed(0)} ms`)
      expect(error).toBeInstanceOf(QmpSyncClosed)
      expect(after).toBeGreaterThan(150)
      expect(after).toBeLessThan(3000)
      expect(qs.closed).toBe(true)
      const t1 = performance.now()
      expect(thrown(() => qs.poll())).toBeInstanceOf(QmpSyncClosed)
      expect(performance.now() - t1).toBeLessThan(50)
      expect(thrown(() => q.ping())).toBeInstanceOf(QtestClosed)
      expect((yield* exitOf(machine)).signal).toBe("SIGKILL")
    }))

  it.scopedLive("a hung QEMU: the shared watchdog kills it at the QMP channel's deadline", () =>
    Effect.gen(function*() {
      const { machine, q, qs } = yield* start({ deadlineMs: 400 })
      expect(qs.deadlineMs).toBe(400)
      expect(q.deadlineMs).toBe(10_000)
      q.ping()
      process.kill(machine.pid, "SIGSTOP")
      const t0 = performance.now()
      const error = thrown(() => qs.execute("query-status"))
      const elapsed = performance.now() - t0
      expect(error).toBeInstanceOf(QmpSyncTimeout)
      expect(error).toMatchObject({ command: "query-status", deadlineMs: 400 })
      expect(elapsed).toBeGreaterThanOrEqual(390)
      expect(elapsed).toBeLessThan(2000)
      // The qtest channel's own deadline did not fire: it only sees QEMU gone.
      expect(thrown(() => q.ping())).toBeInstanceOf(QtestClosed)
      expect((yield* exitOf(machine)).signal).toBe("SIGKILL")
    }))

  it.scopedLive("what is not QMP: malformed JSON and strays are kept as issues; an overlong line ends the channel", () =>
    Effect.gen(function*() {
      const { machine, qs } = yield* start()
      // Lines written into QEMU's output FIFO by hand, as if QEMU had sent them.
      const inject = (text: string) => {
        const fd = fs.openSync(`${machine.qmpFifoBase}.out`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
        fs.writeSync(fd, text)
        fs.closeSync(fd)
      }
      inject("not json\n[1,2]\n{\"return\": {}, \"id\": 999}\n{\"event\": \"FAKE\", \"data\": {\"n\": 1}}\n")
      expect((qs.execute("query-status") as { status: string }).status).toBeTypeOf("string")
      expect(qs.issues().map((i) => i.reason)).toEqual(["malformed JSON", "unexpected message", "unexpected message"])
      expect(qs.issues()[0].text).toBe("not json")
      expect(qs.events().map((e) => [e.seq, e.event, e.data])).toEqual([[1, "FAKE", { n: 1 }]])

      // 2.5 MB without a newline, from another process (the pipe holds 64 KiB). QEMU's reply
      // lands somewhere inside it, and more than 1 MiB lies on one side of it.
      spawn("sh", ["-c", `head -c 2500000 /dev/zero | tr '\\0' x > ${machine.qmpFifoBase}.out`], { stdio: "ignore" })
      yield* Effect.sleep("200 millis")
      const error = thrown(() => qs.execute("query-status"))
      expect(error).toBeInstanceOf(QmpSyncProtocolError)
      expect(qs.issues().at(-1)?.reason).toBe("line too long")
      expect(thrown(() => qs.poll())).toBeInstanceOf(QmpSyncClosed)
      expect(machine.exitStatus()).toBeUndefined()
    }))

  it.scopedLive("a QEMU that fails at start-up is reported with its exit and stderr", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(Effect.scoped(Effect.gen(function*() {
        const machine = yield* launch({ ...options, args: ["-device", "no-such-device"] })
        return yield* openSync(machine)
      })))
      expect(failed).toMatchObject({ _tag: "QemuExited", code: 1 })
      expect((failed as { stderr: string }).stderr).toContain("no-such-device")
    }))

  it.scopedLive("query-status round trip: 5,000 calls", () =>
    Effect.gen(function*() {
      const { q, qs } = yield* start()
      for (let i = 0; i < 500; i++) qs.poll()
      const n = 5000
      const times = new Float64Array(n)
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        qs.execute("query-status")
        times[i] = performance.now() - t
      }
      times.sort()
      const us = (f: number) => (times[Math.floor(n * f)] * 1000).toFixed(1)
      const pings = new Float64Array(n)
      for (let i = 0; i < n; i++) {
        const t = performance.now()
        q.ping()
        pings[i] = performance.now() - t
      }
      pings.sort()
      console.log(
        `query-status round trip over ${n} calls: median ${us(0.5)} µs, p99 ${us(0.99)} µs, max ${us(0.9999)} µs` +
          ` (qtest ping on the same machine: median ${(pings[n / 2] * 1000).toFixed(1)} µs)`
      )
      // A loose bound: the figure is reported; a loaded CI machine must not fail the run.
      expect(times[n / 2] * 1000).toBeLessThan(2000)
    }))
})
