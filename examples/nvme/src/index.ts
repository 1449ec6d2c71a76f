/**
 * A devscope driver for QEMU's NVMe controller (1b36:0010): admin and I/O queues in coherent
 * DMA memory, Identify, read/write/flush with PRP lists, completions by MSI-X, a tagged
 * request table with deadlines, published to user code as `NvmeDevice`s in the `NvmeDevices`
 * registry.
 *
 * @since 0.1.0
 */
export * from "./driver.js"
export * from "./NvmeDevices.js"
/** @since 0.1.0 */
export * as Commands from "./commands.js"
/** @since 0.1.0 */
export * as Registers from "./registers.js"
/** @since 0.1.0 */
export * as Queues from "./queues.js"
