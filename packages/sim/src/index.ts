/**
 * @since 0.1.0
 */

/**
 * The device-model side of a register map: a register window with device semantics.
 * @since 0.1.0
 */
export * as RegisterFile from "./RegisterFile.js"

/**
 * A structured trace of simulator events.
 * @since 0.1.0
 */
export * as Trace from "./Trace.js"

/**
 * A QEMU-edu-like reference device: MMIO, a factorial unit, interrupts, a DMA engine.
 * @since 0.1.0
 */
export * as Edu from "./Edu.js"

/**
 * The simulated IOMMU: per-device DMA windows, permissions, faults with provenance.
 * @since 0.1.0
 */
export * as Iommu from "./Iommu.js"

/**
 * Device models: register windows, interrupt lines and device-side behaviour.
 * @since 0.1.0
 */
export * as Model from "./Model.js"

/**
 * A QEMU-pci-testdev-like reference device.
 * @since 0.1.0
 */
export * as PciTestdev from "./PciTestdev.js"

/**
 * The hardware simulation service.
 * @since 0.1.0
 */
export * as Simulator from "./Simulator.js"

/**
 * Runs a program in virtual time, as fast as its computation allows, deterministically.
 * @since 0.1.0
 */
export * as VirtualTime from "./VirtualTime.js"
