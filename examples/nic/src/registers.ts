/**
 * The card's register map (BAR0), its bits, and the descriptor layout: one definition shared by
 * the device model and the driver's typed accessors.
 *
 * @since 0.1.0
 */
import { Dma, RegisterMap } from "@devscope/core"

/**
 * PCI ids the card answers to (class 0x020000: Ethernet controller).
 * @since 0.1.0
 */
export const ids = { vendor: 0x1d0f, device: 0x0e70, class: 0x020000 } as const

/**
 * What `ID` reads: "NIC" and version 1.
 * @since 0.1.0
 */
export const ID_VALUE = 0x4e494301

/**
 * BAR0, the register window.
 * @since 0.1.0
 */
export const registers = RegisterMap.make("acme-nic", 0x100, {
  ID: { offset: 0x00, access: "RO", reset: ID_VALUE, description: "\"NIC\" and the version" },
  CTRL: {
    offset: 0x04,
    access: "RW",
    fields: { ENABLE: { bit: 0 }, RX_ENABLE: { bit: 1 }, TX_ENABLE: { bit: 2 }, RESET: { bit: 3 } },
    description: "ENABLE powers the port (link); RX/TX_ENABLE start the engines; RESET (self-clearing) resets the card"
  },
  STATUS: {
    offset: 0x08,
    access: "RO",
    reset: 0b110,
    fields: { LINK_UP: { bit: 0 }, TX_IDLE: { bit: 1 }, RX_IDLE: { bit: 2 } },
    description: "TX_IDLE/RX_IDLE: the engine has no DMA in progress (safe to free its memory once disabled)"
  },
  INT_STATUS: {
    offset: 0x0c,
    access: "W1C",
    fields: { TX_DONE: { bit: 0 }, RX: { bit: 1 }, LINK_CHANGE: { bit: 2 } },
    description: "interrupt causes; write 1 to acknowledge"
  },
  INT_MASK: {
    offset: 0x10,
    access: "RW",
    reset: 0b111,
    fields: { TX_DONE: { bit: 0 }, RX: { bit: 1 }, LINK_CHANGE: { bit: 2 } },
    description: "a set bit masks that cause; unmasking a pending cause raises the line"
  },
  TX_RING_BASE: { offset: 0x20, access: "RW", description: "IOVA of the TX descriptor ring" },
  TX_RING_SIZE: { offset: 0x24, access: "RW", description: "descriptors in the TX ring" },
  TX_HEAD: { offset: 0x28, access: "RO", description: "next descriptor the device will send (device-owned)" },
  TX_TAIL: { offset: 0x2c, access: "RW", description: "one past the last descriptor the driver queued (doorbell)" },
  RX_RING_BASE: { offset: 0x30, access: "RW", description: "IOVA of the RX descriptor ring" },
  RX_RING_SIZE: { offset: 0x34, access: "RW", description: "descriptors in the RX ring" },
  RX_HEAD: { offset: 0x38, access: "RO", description: "next descriptor the device will fill (device-owned)" },
  RX_TAIL: { offset: 0x3c, access: "RW", description: "one past the last buffer the driver posted" },
  MAC_LO: { offset: 0x40, access: "RW", description: "MAC address, low 32 bits (loaded from the EEPROM at reset)" },
  MAC_HI: { offset: 0x44, access: "RW", fields: { ADDR: { bits: [0, 15] } }, description: "MAC address, high 16 bits" },
  TX_FRAMES: { offset: 0x50, access: "RO", description: "frames sent" },
  TX_BYTES: { offset: 0x54, access: "RO", description: "bytes sent" },
  RX_FRAMES: { offset: 0x58, access: "RO", description: "frames received into the RX ring" },
  RX_BYTES: { offset: 0x5c, access: "RO", description: "bytes received into the RX ring" },
  RX_DROPPED: { offset: 0x60, access: "RO", description: "frames dropped: RX disabled, no free descriptor, FIFO full" }
})

/**
 * The register map's spec, for typed `Mmio` access.
 * @since 0.1.0
 */
export type Registers = typeof registers.spec

/**
 * `CTRL` bits.
 * @since 0.1.0
 */
export const CTRL_ENABLE = 0b0001
/** @since 0.1.0 */
export const CTRL_RX_ENABLE = 0b0010
/** @since 0.1.0 */
export const CTRL_TX_ENABLE = 0b0100
/** @since 0.1.0 */
export const CTRL_RESET = 0b1000
/**
 * `STATUS` bits.
 * @since 0.1.0
 */
export const STATUS_LINK_UP = 0b001
/** @since 0.1.0 */
export const STATUS_TX_IDLE = 0b010
/** @since 0.1.0 */
export const STATUS_RX_IDLE = 0b100
/**
 * `INT_STATUS` / `INT_MASK` bits.
 * @since 0.1.0
 */
export const INT_TX_DONE = 0b001
/** @since 0.1.0 */
export const INT_RX = 0b010
/** @since 0.1.0 */
export const INT_LINK_CHANGE = 0b100
/** @since 0.1.0 */
export const INT_ALL = 0b111

/**
 * A descriptor, TX and RX alike (8 bytes): the frame buffer's IOVA, its length (TX: the frame;
 * RX: the buffer when posted, the frame once `DONE`) and flags.
 * @since 0.1.0
 */
export const Desc = Dma.struct({ addr: "u32", len: "u16", flags: "u16" })
/**
 * Descriptor flags: the device owns it / the device is done with it / it failed.
 * @since 0.1.0
 */
export const DESC_OWN = 0b001
/** @since 0.1.0 */
export const DESC_DONE = 0b010
/** @since 0.1.0 */
export const DESC_ERR = 0b100
