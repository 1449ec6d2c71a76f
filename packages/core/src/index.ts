/**
 * @since 0.1.0
 */

/**
 * The Bound token: proof that code runs inside a live binding of a driver.
 * @since 0.1.0
 */
export * as Bound from "./Bound.js"

/**
 * Devices, drivers and the bind/unbind sequences.
 * @since 0.1.0
 */
export * as Bus from "./Bus.js"

/**
 * Child devices (Linux's auxiliary bus): a binding registers devices bound by other drivers,
 * removed before the parent's binding ends.
 * @since 0.1.0
 */
export * as Auxiliary from "./Auxiliary.js"

/**
 * The Core token: proof that code runs inside probe/remove with the device lock held.
 * @since 0.1.0
 */
export * as Core from "./Core.js"

/**
 * Device identity and state.
 * @since 0.1.0
 */
export * as Device from "./Device.js"

/**
 * Typed errors and defects of the device model.
 * @since 0.1.0
 */
export * as DeviceError from "./DeviceError.js"

/**
 * Resources whose lifetime is a binding.
 * @since 0.1.0
 */
export * as Devres from "./Devres.js"

/**
 * DMA: coherent allocations with typed layouts, streaming mappings, masks.
 * @since 0.1.0
 */
export * as Dma from "./Dma.js"

/**
 * Driver brands and definitions.
 * @since 0.1.0
 */
export * as Driver from "./Driver.js"

/**
 * Interrupt handlers as binding fibers.
 * @since 0.1.0
 */
export * as Irq from "./Irq.js"

/**
 * Leak reports and tracked driver-lifetime objects.
 * @since 0.1.0
 */
export * as Leak from "./Leak.js"

/**
 * Data reachable only with proof that an outer lock is held.
 * @since 0.1.0
 */
export * as LockedBy from "./LockedBy.js"

/**
 * Lifecycle events and unbind reports.
 * @since 0.1.0
 */
export * as Lifecycle from "./Lifecycle.js"

/**
 * User-facing handle tables (character-device-like) behind a Gate; zombie handles at unbind.
 * @since 0.1.0
 */
export * as Registration from "./Registration.js"

/**
 * Standalone revocable values.
 * @since 0.1.0
 */
export * as Revocable from "./Revocable.js"

/**
 * Typed register access over a register window.
 * @since 0.1.0
 */
export * as Mmio from "./Mmio.js"

/**
 * Register maps as data.
 * @since 0.1.0
 */
export * as RegisterMap from "./RegisterMap.js"

/**
 * The hardware service drivers run on.
 * @since 0.1.0
 */
export * as Hardware from "./Hardware.js"

/**
 * Gates: SRCU-like entry gates for user-facing calls, closed at unbind.
 * @since 0.1.0
 */
export * as Gate from "./Gate.js"
