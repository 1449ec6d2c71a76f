/**
 * The hardware a driver runs on, as a service: where a device's register windows are. The
 * simulator (`@devscope/sim`) provides the default implementation; a real backend could
 * provide the same service. Interrupts and DMA join this interface with the simulator.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Bound from "./Bound.js"
import type { Device } from "./Device.js"
import type * as Devres from "./Devres.js"
import type * as Driver from "./Driver.js"
import * as Mmio from "./Mmio.js"
import type { RegisterMap, Spec } from "./RegisterMap.js"

/**
 * The device has no register window with that index (no such BAR or `reg` resource).
 * @since 0.1.0
 * @category errors
 */
export class NoSuchRegion extends Data.TaggedError("NoSuchRegion")<{
  readonly device: string
  readonly index: number
}> {
  override get message() {
    return `Device "${this.device}" has no register window ${this.index}`
  }
}

/**
 * The device has no interrupt line with that index.
 * @since 0.1.0
 * @category errors
 */
export class NoSuchIrq extends Data.TaggedError("NoSuchIrq")<{
  readonly device: string
  readonly line: number
}> {
  override get message() {
    return `Device "${this.device}" has no interrupt line ${this.line}`
  }
}

/**
 * The platform refused a request (no memory, no IOVA space, an injected fault...).
 * @since 0.1.0
 * @category errors
 */
export class HardwareRefused extends Data.TaggedError("HardwareRefused")<{
  readonly device: string
  readonly request: "irq" | "dma-alloc" | "dma-map"
  readonly reason: string
}> {
  override get message() {
    return `${this.request} for "${this.device}" refused: ${this.reason}`
  }
}

/**
 * One interrupt line of a device, as the platform delivers it. Listeners are called
 * synchronously when the device raises the line (unless it is masked: then the interrupt
 * stays pending until `unmask`).
 * @since 0.1.0
 * @category models
 */
export interface IrqLine {
  readonly device: string
  readonly line: number
  /** Registers a listener; returns the function that removes it. */
  listen(listener: () => void): () => void
  mask(): void
  unmask(): void
}

/**
 * DMA transfer direction, from the device's point of view of memory.
 * @since 0.1.0
 * @category models
 */
export type DmaDirection = "to-device" | "from-device" | "bidirectional"

/**
 * Where a driver made a DMA request: a string, or an object that formats the site when it is
 * converted (`String(site)`). devscope passes sites that are formatted only when read, so that
 * a mapping per request does not cost a formatted stack per request: a `DmaPort` keeps the
 * site as it is and converts it only when it reports it (a fault, a window snapshot).
 * @since 0.1.0
 * @category models
 */
export type DmaSite = string | { toString(): string }

/**
 * A device's path to memory (through its IOMMU). Every call names the site that made it, so
 * faults the device later hits can say who mapped and who unmapped the memory.
 * @since 0.1.0
 * @category models
 */
export interface DmaPort {
  readonly device: string
  /** Addressing limit of the device, in bits (default 32). */
  setMask(bits: number): void
  /** Memory both CPU and device see; `iova` is the device address. */
  allocCoherent(size: number, site: DmaSite): Effect.Effect<{ readonly memory: Uint8Array; readonly iova: number }, HardwareRefused>
  freeCoherent(iova: number, site: DmaSite): void
  /** Maps a CPU buffer for the device; returns its device address. */
  map(buffer: Uint8Array, direction: DmaDirection, site: DmaSite): Effect.Effect<number, HardwareRefused>
  unmap(iova: number, site: DmaSite): void
  /** Ownership of a streaming mapping goes to the device... */
  syncForDevice(iova: number): void
  /** ...and back to the CPU. */
  syncForCpu(iova: number): void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The register window `index` of a device (a PCI BAR, a platform `reg` resource). */
  region(device: Device, index: number): Effect.Effect<Mmio.Region, NoSuchRegion>
  /** Interrupt line `line` of a device (a PCI vector, a platform `interrupts` entry). */
  irq(device: Device, line: number): Effect.Effect<IrqLine, NoSuchIrq | HardwareRefused>
  /** The device's DMA port. */
  dma(device: Device): DmaPort
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Hardware extends Context.Tag("@devscope/core/Hardware")<Hardware, Service>() {}

/**
 * Maps register window `index` of the bound device with a register map, as a Devres of the
 * binding (see `Mmio.iomap`).
 *
 * @example
 * ```ts
 * import { Context, Layer } from "effect"
 * import { type Devres, Driver, Hardware, type Mmio, RegisterMap } from "@devscope/core"
 *
 * const Edu = Driver.brand("edu")
 * const EduRegs = RegisterMap.make("edu", 0x100, { ID: { offset: 0x00, access: "RO" } })
 * class Bar0 extends Context.Tag("edu/Bar0")<Bar0, Devres.Devres<Mmio.Mmio<typeof EduRegs.spec>, "edu">>() {}
 *
 * const Bar0Live = Layer.effect(Bar0, Hardware.iomap(Edu, EduRegs, 0))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const iomap = <D extends string, S extends Spec>(
  driver: Driver.Brand<D>,
  map: RegisterMap<S>,
  index: number,
  options?: { readonly label?: string | undefined }
): Effect.Effect<Devres.Devres<Mmio.Mmio<S>, D>, NoSuchRegion, Hardware | Bound.Bound<D>> =>
  Effect.flatMap(Effect.zip(Hardware, driver.Bound), ([hardware, bound]) =>
    Mmio.iomap(driver, map, hardware.region(bound.device, index), {
      label: options?.label ?? `${map.name}@${index}`
    }))
