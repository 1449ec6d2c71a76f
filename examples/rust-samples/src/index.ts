/**
 * Ports of two Rust-for-Linux samples to devscope, both bound to the simulator's
 * `pci-testdev`: `rust_driver_pci` (BAR0 and a dynamic-offset MMIO write) and `rust_dma`
 * (a coherent allocation and a streaming mapping).
 */
export * as RustDriverPci from "./driverPci.js"
export * as RustDma from "./dma.js"
