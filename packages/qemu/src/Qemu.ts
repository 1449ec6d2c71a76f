/**
 * QEMU's device models as devscope hardware: a machine of QEMU devices (edu, pci-testdev,
 * nvme...) each behind its own PCIe root port, driven over QEMU's qtest protocol with no guest
 * OS. Drivers see the same `Hardware` service and PCI `Bus` as on the simulator, so a driver
 * runs unchanged on both; only the Layer differs.
 *
 * - MMIO is synchronous (a qtest round trip over a FIFO pair, about 15 µs); a device that is
 *   gone reads all-ones and drops writes, as on real PCIe.
 * - INTx arrives through the IOAPIC intercept; an interrupt handler runs right after the
 *   request during which QEMU raised the line, or at the next clock step.
 * - DMA memory lives in guest RAM shared with this process, synchronised at MMIO writes,
 *   clock steps and interrupts (see docs/qemu.md).
 * - QEMU's virtual clock follows devscope's (Effect's `Clock`): every `quantum` of virtual
 *   time it is stepped to devscope's time.
 * - `unplug` is PCIe's orderly hot-unplug (attention button, unbind, slot power off);
 *   `surpriseRemove` cuts the slot's power with no warning; `plug` hot-adds again.
 * - QEMU exiting or killed unasked makes every device gone (`lost`), never a hung test.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Hardware, type Lifecycle } from "@devscope/core"
import * as boot from "./internal/boot.js"
import * as backend from "./internal/backend.js"
import type { MachineInvalid, QemuUnavailable } from "./internal/boot.js"
import type { QemuError } from "./internal/process.js"
import type { QmpClosed, QmpConnectFailed, QmpError } from "./internal/qmp.js"

export {
  /**
   * The machine description is wrong, or the booted machine is not what it describes.
   * @since 0.1.0
   * @category errors
   */
  MachineInvalid,
  /**
   * QEMU with its qtest accelerator is not installed here (`pnpm qemu:setup` installs it).
   * @since 0.1.0
   * @category errors
   */
  QemuUnavailable
} from "./internal/boot.js"

export {
  /**
   * A hotplug step did not happen as PCIe and QEMU say it does.
   * @since 0.1.0
   * @category errors
   */
  HotplugFailed
} from "./internal/hotplug.js"

export {
  /**
   * QEMU went away while devices were in use: every device is then gone.
   * @since 0.1.0
   * @category errors
   */
  QemuLost
} from "./internal/state.js"

/**
 * One device of a machine: its name on the bus and QEMU's model.
 * @since 0.1.0
 * @category models
 */
export type DeviceSpec = import("./internal/boot.js").DeviceSpec

/**
 * The most devices one machine has (each behind its own root port, bus 0 slots 2-31).
 *
 * @example
 * ```ts
 * import { Qemu } from "@devscope/qemu"
 *
 * const fits = (devices: ReadonlyArray<Qemu.DeviceSpec>) => devices.length <= Qemu.MAX_DEVICES
 * ```
 * @since 0.1.0
 * @category constants
 */
export const MAX_DEVICES: number = boot.MAX_DEVICES

/**
 * @since 0.1.0
 * @category models
 */
export type Options = backend.Options

/**
 * @since 0.1.0
 * @category models
 */
export type Service = backend.Service

/**
 * @since 0.1.0
 * @category models
 */
export type QemuDevice = backend.QemuDevice

/**
 * What starting the machine can fail with.
 * @since 0.1.0
 * @category errors
 */
export type StartError = QemuUnavailable | MachineInvalid | QemuError | QmpConnectFailed | QmpError | QmpClosed

/**
 * @since 0.1.0
 * @category tags
 */
export class Qemu extends Context.Tag("@devscope/qemu/Qemu")<Qemu, Service>() {}

/**
 * Starts QEMU for the machine in the current scope; closing the scope unbinds every device
 * and stops QEMU.
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Service, StartError, Scope.Scope> = backend.make

/**
 * The machine as the `Hardware` drivers run on, with the `Qemu` service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Qemu } from "@devscope/qemu"
 *
 * const program = Effect.gen(function*() {
 *   const qemu = yield* Qemu.Qemu
 *   // qemu.pci.registerDriver(...), then qemu.plug("edu0")
 * }).pipe(Effect.provide(Qemu.layer({ devices: [{ name: "edu0", model: "edu" }] })))
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Qemu | Hardware.Hardware, StartError> =>
  Layer.scopedContext(
    Effect.map(backend.make(options), (qemu) => Context.make(Qemu, qemu).pipe(Context.add(Hardware.Hardware, qemu.hardware)))
  )

/**
 * The machine as an exploration platform (`Explore.exploreOn` of `@devscope/testing`): each
 * case boots a fresh QEMU outside its virtual world, drives QEMU's clock from the world's, and
 * removes the device with `surpriseRemove` or `unplug`; the oracle judges the backend's trace
 * and DMA faults.
 *
 * @example
 * ```ts
 * import { Qemu } from "@devscope/qemu"
 *
 * const platform = Qemu.platform({ devices: [{ name: "testdev0", model: "pci-testdev" }] })
 * // Explore.exploreOn({ name: "testdev", device: "testdev0", platform, run: ({ platform, oracle }) => ... })
 * ```
 * @since 0.1.0
 * @category exploring
 */
export const platform = (options: Omit<Options, "clock" | "onLifecycle">) => ({
  outside: true as const,
  make: (ctx: { readonly onLifecycle: (bus: "pci" | "platform", event: Lifecycle.LifecycleEvent) => void }) =>
    backend.make({ ...options, clock: "manual", onLifecycle: ctx.onLifecycle }),
  inWorld: (qemu: Service) => qemu.runClock,
  surpriseRemove: (qemu: Service, device: string) => qemu.surpriseRemove(device),
  unplug: (qemu: Service, device: string) => qemu.unplug(device),
  evidence: (qemu: Service) => qemu
})
