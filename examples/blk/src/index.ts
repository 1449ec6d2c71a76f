/**
 * Example devscope driver: a PCI block device with a tagged submission/completion queue pair in
 * DMA memory, interrupt completions and a user API behind a Gate, with its device model for the
 * simulator. Every request resolves exactly once, across orderly unplug and surprise removal.
 */
export * as BlkModel from "./model.js"
export {
  type BlkStats,
  type BlockDevice,
  BlockDevices,
  type BlockDevicesRegistry,
  IoRefused,
  layer,
  makeBlockDevices,
  OutOfRange
} from "./BlockDevices.js"
export { Bar0, Blk, driver, type Options, type Probed, type Queue, QueueState } from "./driver.js"
export { BlkIoError, type Request, Requests, TagPool } from "./queue.js"
