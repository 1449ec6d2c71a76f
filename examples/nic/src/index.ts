/**
 * Example devscope driver: a PCI network card with TX/RX descriptor rings in coherent DMA
 * memory, a NAPI-like poll fiber and a net-device registry, with its device model for the
 * simulator (two cards linked by a virtual cable, or one in loopback).
 */
export * as NicModel from "./model.js"
export { BUFFER_SIZE, type Completions, type Datapath, type Pool, type Regs, type Ring } from "./datapath.js"
export { Bar0, driver, Nic, type Options, type Probed } from "./driver.js"
export {
  layer,
  makeNetDevices,
  type NetDevice,
  NetDevices,
  type NetDevicesRegistry,
  type NetStats,
  TxQueueFull
} from "./netdevice.js"
