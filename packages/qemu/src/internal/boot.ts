/**
 * Boots a QEMU machine for a devscope machine description, as firmware would: QEMU started
 * (q35, `-accel qtest`, each device behind its own `pcie-root-port`, native PCIe hotplug), the
 * qtest channel and QMP opened, the IOAPIC intercepted, the PCI hierarchy enumerated, BARs and
 * bridge windows assigned, decoding and bus mastering turned on, guest RAM opened.
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import { locateCached } from "./install.js"
import { GuestMemory, PAGE } from "./memory.js"
import * as Pci from "./pci.js"
import { launch, type Machine, type QemuError } from "./process.js"
import * as Qmp from "./qmp.js"
import * as QmpSync from "./qmpSync.js"
import * as Qtest from "./qtest.js"

/**
 * QEMU with its qtest accelerator cannot be started here: `reason` says what is missing,
 * `hint` what to do (usually `pnpm qemu:setup`).
 * @internal
 */
export class QemuUnavailable extends Data.TaggedError("QemuUnavailable")<{
  readonly reason: string
  readonly hint: string
}> {
  override get message() {
    return `QEMU is not available: ${this.reason} (${this.hint})`
  }
}

/**
 * The machine description is wrong (an unknown model, a bad name, too many devices), or the
 * booted machine is not what it describes (a device QEMU did not put where it was asked).
 * @internal
 */
export class MachineInvalid extends Data.TaggedError("MachineInvalid")<{ readonly reason: string }> {
  override get message() {
    return `invalid QEMU machine: ${this.reason}`
  }
}

/** One device of a machine description. */
export interface DeviceSpec {
  /** The device's name on devscope's bus (1-64 characters: letters, digits, `-`, `_`, `.`). */
  readonly name: string
  /** QEMU's device model: `edu`, `pci-testdev`, `nvme`, ... (`-device help` lists them). */
  readonly model: string
  /** Properties of the `-device` option (`serial` for nvme, ...), checked like the name. */
  readonly properties?: Readonly<Record<string, string | number | boolean>> | undefined
  /** More QEMU arguments the device needs (an nvme's `-drive`). */
  readonly args?: ReadonlyArray<string> | undefined
  /** In its slot at the start (default `true`); else its slot is powered off after boot and `plug` `device_add`s it. */
  readonly present?: boolean | undefined
  /**
   * How the device interrupts (default `intx`): `msi` or `msix` are programmed by the backend
   * when the device comes into its slot, the platform's choice as `pci_alloc_irq_vectors` makes
   * it, so a driver requests line `i` for vector `i` whatever the kind.
   */
  readonly interrupts?: "intx" | "msi" | "msix" | undefined
  /** Vectors of `msix` (1-32, default 1); `msi` has one (several share one message address). */
  readonly vectors?: number | undefined
}

/** One root port and what sits below it. */
export interface Slot {
  readonly index: number
  readonly spec: DeviceSpec
  /** QEMU's id of the device (`dev<index>`) and of its root port (`rp<index>`). */
  readonly qemuId: string
  readonly portId: string
  /** The root port, on bus 0. */
  readonly port: Pci.PciFunction
  /** The bus number behind the root port. */
  readonly bus: number
}

/** A booted machine. */
export interface Booted {
  readonly machine: Machine
  readonly qtest: Qtest.Qtest
  readonly qmp: Qmp.Qmp
  /** QMP over a FIFO pair, synchronous like qtest: the hotplug path uses it (no real I/O wait in a virtual world). */
  readonly qmpSync: QmpSync.QmpSync
  readonly cfg: Pci.ConfigSpace
  readonly memory: GuestMemory
  readonly slots: ReadonlyArray<Slot>
  /** Every function found at boot. */
  readonly functions: ReadonlyArray<Pci.PciFunction>
  readonly resources: Pci.Resources
  /** Guest RAM below `memory.base` the backend keeps for itself: MSI mailboxes, one dword each. */
  readonly mailboxes: { readonly base: number; readonly count: number }
}

/** Options of {@link boot}. */
export interface BootOptions {
  readonly devices: ReadonlyArray<DeviceSpec>
  /** Guest RAM, MiB (default 64). */
  readonly memoryMiB?: number | undefined
  /** A request's deadline before the watchdog kills QEMU, ms (default 10 s). */
  readonly deadlineMs?: number | undefined
}

/** The most devices a machine has: root ports take bus 0's slots 2-31. */
export const MAX_DEVICES = 30

/** The most MSI-X vectors of one device (its mailboxes: 30 devices of 32 fit in one page). */
export const MAX_VECTORS = 32

/** Guest RAM below this address is the backend's (mailboxes); allocations start here. */
export const RESERVED = 0x100000

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const VALUE = /^[A-Za-z0-9_.:/-]{1,128}$/

/** Checks a description; the first problem, or `undefined`. */
export const problemOf = (devices: ReadonlyArray<DeviceSpec>): string | undefined => {
  if (devices.length === 0) return "no devices"
  if (devices.length > MAX_DEVICES) return `${devices.length} devices, at most ${MAX_DEVICES}`
  const names = new Set<string>()
  for (const d of devices) {
    if (!NAME.test(d.name)) return `device name ${JSON.stringify(d.name).slice(0, 80)}: 1-64 letters, digits, '-', '_' or '.'`
    if (names.has(d.name)) return `device name "${d.name}" is given twice`
    names.add(d.name)
    if (!NAME.test(d.model)) return `${d.name}: model ${JSON.stringify(d.model).slice(0, 80)} is not a QEMU device name`
    for (const [key, value] of Object.entries(d.properties ?? {})) {
      if (!NAME.test(key) || key === "id" || key === "bus" || key === "addr") return `${d.name}: property ${JSON.stringify(key).slice(0, 80)} cannot be set`
      if (!VALUE.test(String(value))) return `${d.name}: property ${key} = ${JSON.stringify(String(value)).slice(0, 80)} has characters QEMU's option parser treats specially`
    }
    const interrupts = d.interrupts ?? "intx"
    if (interrupts !== "intx" && interrupts !== "msi" && interrupts !== "msix") {
      return `${d.name}: interrupts ${JSON.stringify(String(interrupts)).slice(0, 80)} is not intx, msi or msix`
    }
    if (d.vectors !== undefined) {
      if (!Number.isInteger(d.vectors) || d.vectors < 1 || d.vectors > MAX_VECTORS) return `${d.name}: vectors ${String(d.vectors).slice(0, 40)} is not an integer in 1-${MAX_VECTORS}`
      if (interrupts !== "msix" && d.vectors !== 1) return `${d.name}: ${d.vectors} vectors need msix (${interrupts} has one)`
    }
  }
  return undefined
}

/** The `-device` option of a slot's device (also what `device_add` is given). */
export const deviceArguments = (spec: DeviceSpec, index: number): Record<string, string | number | boolean> => ({
  driver: spec.model,
  id: `dev${index}`,
  bus: `rp${index}`,
  ...spec.properties
})

const option = (args: Record<string, string | number | boolean>) => {
  const { driver, ...rest } = args
  return [String(driver), ...Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "boolean" ? (v ? "on" : "off") : v}`)].join(",")
}

/** QEMU's arguments for the devices: a root port per device, then the device in it. */
export const machineArguments = (devices: ReadonlyArray<DeviceSpec>): Array<string> => [
  // Native PCIe hotplug (pciehp) on the root ports, not ACPI's.
  "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
  ...devices.flatMap((spec, i) => [
    "-device", `pcie-root-port,id=rp${i},bus=pcie.0,chassis=${i + 1},slot=${i + 1},addr=0x${(i + 2).toString(16)}`,
    ...(spec.args ?? []),
    // Every device starts in its slot, so that BARs and bridge windows are sized for it; one
    // not present at the start is powered off right after boot (and `device_add`ed on plug).
    "-device", option(deviceArguments(spec, i))
  ])
]

/** Boots the machine; everything is let go (QEMU stopped, files removed) when the scope closes. */
export const boot = (
  options: BootOptions
): Effect.Effect<Booted, QemuUnavailable | MachineInvalid | QemuError | Qmp.QmpConnectFailed | Qmp.QmpError | Qmp.QmpClosed, Scope.Scope> =>
  Effect.gen(function*() {
    const problem = problemOf(options.devices)
    if (problem !== undefined) return yield* new MachineInvalid({ reason: problem })
    const found = locateCached()
    if (!found.available) return yield* new QemuUnavailable({ reason: found.reason, hint: found.hint })
    const machine = yield* launch({
      binary: found.binary,
      moduleDir: found.moduleDir,
      setpriv: found.setpriv ?? null,
      memoryMiB: options.memoryMiB ?? 64,
      args: machineArguments(options.devices)
    })
    const qtest = yield* Qtest.open(machine, { deadlineMs: options.deadlineMs ?? 10_000 })
    const qmp = yield* Qmp.connect(machine)
    const qmpSync = yield* QmpSync.openSync(machine, { deadlineMs: options.deadlineMs ?? 10_000 })
    qtest.irqInterceptIn("ioapic")
    const cfg = new Pci.ConfigSpace(qtest)
    const functions = Pci.enumerate(cfg)
    const resources = yield* Effect.try({
      try: () => Pci.assignResources(cfg, functions),
      catch: (e) => new MachineInvalid({ reason: `BAR assignment: ${(e as Error).message}` })
    })
    const slots: Array<Slot> = []
    for (const [index, spec] of options.devices.entries()) {
      const port = functions.find((f) => f.address.bus === 0 && f.address.device === index + 2 && f.address.function === 0)
      if (port === undefined || port.secondaryBus === undefined) {
        return yield* new MachineInvalid({ reason: `no root port for ${spec.name} at 00:${(index + 2).toString(16).padStart(2, "0")}.0` })
      }
      slots.push({ index, spec, qemuId: `dev${index}`, portId: `rp${index}`, port, bus: port.secondaryBus })
    }
    for (const f of functions) Pci.enable(cfg, f, { memory: true, io: true, busMaster: true })
    const fd = yield* Effect.acquireRelease(
      Effect.try({
        try: () => fs.openSync(machine.memPath, "r+"),
        catch: (e) => new MachineInvalid({ reason: `guest RAM ${machine.memPath}: ${(e as Error).message}` })
      }),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )
    const memory = new GuestMemory(fd, machine.memoryBytes, RESERVED)
    // Every channel and the guest RAM are open on both sides: their names can go.
    machine.unlinkFiles()
    return { machine, qtest, qmp, qmpSync, cfg, memory, slots, functions, resources, mailboxes: { base: PAGE * 16, count: PAGE / 4 } }
  })
