/**
 * @since 0.1.0
 */

/**
 * QEMU's device models as devscope hardware, over the qtest protocol.
 * @since 0.1.0
 */
export * as Qemu from "./Qemu.js"

/**
 * Whether this machine can run the QEMU backend: `locate` and `probe`.
 * @since 0.1.0
 */
export * as Install from "./Install.js"
