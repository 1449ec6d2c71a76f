/**
 * A devscope driver for QEMU's educational PCI device (`edu`, 1234:11e8): factorial,
 * interrupt raise/acknowledge and DMA through a coherent buffer, published to user code as
 * `EduDevice`s in the `EduDevices` registry.
 */
export * from "./driver.js"
export * from "./EduDevices.js"
