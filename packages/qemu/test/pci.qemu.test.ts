/**
 * pci.ts and pcie.ts against a real QEMU q35: edu, pci-testdev and nvme each behind its own
 * pcie-root-port, native PCIe hotplug. Enumeration, BAR assignment seen through MMIO, MSI
 * observed as a RAM write, INTx on the predicted IOAPIC input, surprise and orderly removal.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { locate } from "../src/internal/install.js"
import { launch, type LaunchOptions } from "../src/internal/process.js"
import { connect } from "../src/internal/qmp.js"
import { open } from "../src/internal/qtest.js"
import {
  assignResources,
  barsOf,
  ConfigSpace,
  disableMsi,
  enable,
  enumerate,
  findFunctions,
  formatBdf,
  intxRoute,
  msiInfo,
  msixInfo,
  type PciFunction,
  programMsi,
  Q35_IO_WINDOW,
  Q35_MEMORY_WINDOW,
  setIntxDisabled
} from "../src/internal/pci.js"
import { enableHotplugInterrupts, orderlyRemovalStep, powerOffSlot, slotCapabilities, slotState } from "../src/internal/pcie.js"

// With the qtest accelerator when `pnpm qemu:setup` built it, else under `-accel tcg -S`
// (nothing here needs the virtual clock); without QEMU, skip loudly (never under CI).
const found = locate()
const binary = found.binary
const runnable = binary !== undefined || process.env.CI !== undefined
if (!runnable) console.warn(`pci QEMU tests skipped: ${found.available ? "" : `${found.reason}; ${found.hint}`}`)

const options: LaunchOptions = {
  ...(binary === undefined ? {} : { binary }),
  ...(found.available ? { accel: "qtest", moduleDir: found.moduleDir } : { accel: "tcg" }),
  args: [
    "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
    "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1,addr=0x3",
    "-device", "edu,id=dev1,bus=rp1",
    "-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2,addr=0x4",
    "-device", "pci-testdev,id=dev2,bus=rp2",
    "-device", "pcie-root-port,id=rp3,bus=pcie.0,chassis=3,slot=3,addr=0x5",
    "-device", "nvme,id=dev3,bus=rp3,serial=devscope"
  ]
}

/** A machine enumerated, assigned and enabled, as firmware would leave it. */
const boot = Effect.gen(function*() {
  const machine = yield* launch(options)
  const q = yield* open(machine)
  const cfg = new ConfigSpace(q)
  const functions = enumerate(cfg)
  const resources = assignResources(cfg, functions)
  const one = (vendor: number, device: number): PciFunction => {
    const list = findFunctions(functions, vendor, device)
    expect(list).toHaveLength(1)
    return list[0]
  }
  const edu = one(0x1234, 0x11e8)
  const testdev = one(0x1b36, 0x0005)
  const nvme = one(0x1b36, 0x0010)
  for (const f of [edu, testdev, nvme]) enable(cfg, f, { memory: true, io: true, busMaster: true })
  return { machine, q, cfg, functions, resources, edu, testdev, nvme }
})

/** Polls `check` every 5 ms for up to 5 s (hotplug events arrive from QMP asynchronously). */
const poll = (what: string, check: () => boolean) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5000
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep(Duration.millis(5))
    }
  })

describe.runIf(runnable)("pci on QEMU q35", () => {
  it.scopedLive("enumerates the real ids behind their root ports", () =>
    Effect.gen(function*() {
      const { functions, edu, testdev, nvme } = yield* boot
      const names = functions.map((f) => `${f.name} ${f.vendorId.toString(16)}:${f.deviceId.toString(16)}`)
      expect(names).toEqual(expect.arrayContaining([
        "00:00.0 8086:29c0", "00:03.0 1b36:c", "01:00.0 1234:11e8", "00:04.0 1b36:c", "02:00.0 1b36:5",
        "00:05.0 1b36:c", "03:00.0 1b36:10", "00:1f.0 8086:2918"
      ]))
      expect(edu.path.map(formatBdf)).toEqual(["00:03.0", "01:00.0"])
      expect(testdev.path.map(formatBdf)).toEqual(["00:04.0", "02:00.0"])
      expect(nvme.path.map(formatBdf)).toEqual(["00:05.0", "03:00.0"])
      expect(nvme.classCode).toBe(0x010802)
      expect(edu.interruptPin).toBe(1)
      expect(functions.find((f) => f.name === "00:03.0")).toMatchObject({ headerType: 1, secondaryBus: 1, subordinateBus: 1 })
    }))

  it.scopedLive("assigns BARs inside the q35 windows, readable through MMIO", () =>
    Effect.gen(function*() {
      const { q, resources, edu, testdev, nvme } = yield* boot
      const [eduBar] = barsOf(resources, edu)
      expect(eduBar).toMatchObject({ kind: "memory32", size: 0x100000 })
      expect(q.readl(eduBar.address)).toBe(0x010000ed)
      q.writel(eduBar.address + 4, 0x12345678)
      expect(q.readl(eduBar.address + 4)).toBe(~0x12345678 >>> 0)
      const [nvmeBar] = barsOf(resources, nvme)
      expect(nvmeBar).toMatchObject({ kind: "memory64", size: 0x4000 })
      expect(q.readl(nvmeBar.address + 0x08)).toBe(0x00010400) // VS 1.4.0
      expect(q.readl(nvmeBar.address) & 0xffff).toBe(0x07ff) // CAP.MQES
      const testdevBars = barsOf(resources, testdev)
      expect(testdevBars.map((b) => [b.kind, b.size])).toEqual([["memory32", 0x1000], ["io", 0x100]])
      for (const [, bars] of resources.bars) {
        for (const b of bars) {
          const w = b.kind === "io" ? Q35_IO_WINDOW : Q35_MEMORY_WINDOW
          expect(b.address >= w.base && b.address + b.size - 1 <= w.limit && b.address % b.size === 0).toBe(true)
        }
      }
      // The root ports' own MSI-X BARs are assigned too (from bus 0, outside their windows).
      expect(barsOf(resources, { bus: 0, device: 3, function: 0 })).toMatchObject([{ kind: "memory32", size: 0x1000 }])
    }))

  it.scopedLive("finds MSI on edu and MSI-X on nvme; an MSI arrives as a write to guest RAM", () =>
    Effect.gen(function*() {
      const { q, cfg, resources, edu, nvme } = yield* boot
      const msi = msiInfo(cfg, edu.address)
      expect(msi).toMatchObject({ offset: 0x40, is64: true, vectorsCapable: 1, enabled: false })
      const msix = msixInfo(cfg, nvme.address)
      expect(msix.tableBar).toBe(0)
      expect(msix.tableSize).toBeGreaterThan(1)
      const target = 0x0010_0000 // guest RAM, not the LAPIC window
      q.writel(target, 0)
      programMsi(cfg, edu.address, { address: target, data: 0x4242 })
      setIntxDisabled(cfg, edu.address, true)
      const [bar] = barsOf(resources, edu)
      q.writel(bar.address + 0x60, 1)
      expect(q.readl(target)).toBe(0x4242)
      q.writel(bar.address + 0x64, 1)
      disableMsi(cfg, edu.address)
      expect(msiInfo(cfg, edu.address).enabled).toBe(false)
    }))

  it.scopedLive("INTx arrives on the IOAPIC input intxRoute predicts", () =>
    Effect.gen(function*() {
      const { q, resources, edu } = yield* boot
      const route = intxRoute(edu)!
      expect(route).toEqual({ pin: 1, rootPin: 1, rootDevice: 3, pirq: 7, ioapicPin: 23 })
      q.irqInterceptIn("ioapic")
      q.takeIrqEvents()
      const [bar] = barsOf(resources, edu)
      q.writel(bar.address + 0x60, 1)
      q.ping()
      expect(q.takeIrqEvents()).toEqual([{ level: "raise", line: route.ioapicPin }])
      q.writel(bar.address + 0x64, 1)
      q.ping()
      expect(q.takeIrqEvents()).toEqual([{ level: "lower", line: route.ioapicPin }])
    }))

  it.scopedLive("a surprise slot power-off removes the device: its config reads all-ones", () =>
    Effect.gen(function*() {
      const { cfg, testdev } = yield* boot
      const port = testdev.path[0]
      expect(slotCapabilities(cfg, port)).toMatchObject({ hotPlugCapable: true, powerController: true, attentionButton: true, physicalSlot: 2 })
      expect(slotState(cfg, port)).toMatchObject({ present: true, linkActive: true, powered: true })
      const after = powerOffSlot(cfg, port)
      expect(after).toMatchObject({ present: false, linkActive: false, powered: false, presenceDetectChanged: true })
      expect(cfg.read32(testdev.address, 0)).toBe(0xffffffff)
      expect(cfg.present(testdev.address)).toBe(false)
      // The others are untouched.
      expect(cfg.read16({ bus: 1, device: 0, function: 0 }, 0)).toBe(0x1234)
    }))

  it.scopedLive("orderly removal: device_del, attention button, platform power-off, DEVICE_DELETED", () =>
    Effect.gen(function*() {
      const { machine, q, cfg, edu } = yield* boot
      const qmp = yield* connect(machine)
      const port = edu.path[0]
      const control = enableHotplugInterrupts(cfg, port)
      expect(control & 0x29).toBe(0x29) // HPIE, PDCE, ABPE
      q.irqInterceptIn("ioapic")
      const portRoute = intxRoute({ interruptPin: cfg.read8(port, 0x3d), path: [port] })!
      expect(orderlyRemovalStep(cfg, port)._tag).toBe("NoRequest")
      const after = qmp.lastSeq()
      yield* qmp.execute("device_del", { id: "dev1" })
      yield* poll("attention button", () => slotState(cfg, port).attentionButtonPressed)
      q.ping()
      expect(q.takeIrqEvents()).toContainEqual({ level: "raise", line: portRoute.ioapicPin })
      expect(cfg.present(edu.address)).toBe(true)
      const step = orderlyRemovalStep(cfg, port)
      expect(step).toMatchObject({ _tag: "PoweredOff", removed: true, state: { powered: false, events: 0 } })
      const deleted = yield* qmp.waitForEvent("DEVICE_DELETED", { after, where: (e) => e.data.device === "dev1", timeout: "5 seconds" })
      expect(deleted.data.path).toBe("/machine/peripheral/dev1")
      expect(cfg.read32(edu.address, 0)).toBe(0xffffffff)
      q.ping()
      expect(q.takeIrqEvents().at(-1)).toEqual({ level: "lower", line: portRoute.ioapicPin })
    }))
})
