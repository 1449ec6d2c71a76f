/**
 * The NVMe controller's registers (NVM Express Base Specification 1.4, section 3.1, "Register
 * Definition"), as a devscope register map. 64-bit registers (CAP, ASQ, ACQ) are two 32-bit
 * halves: the map's accessors are 8, 16 and 32 bits wide, and the specification allows 32-bit
 * accesses to them (low half first).
 *
 * Doorbells follow the registers at 0x1000, one 32-bit register per queue and direction,
 * `4 << CAP.DSTRD` bytes apart: they are written with `write32(offset)` at the offsets
 * {@link sqTailDoorbell} and {@link cqHeadDoorbell} compute.
 *
 * @since 0.1.0
 */
import { RegisterMap } from "@devscope/core"

/**
 * QEMU's NVMe controller: `PCI_VENDOR_ID_REDHAT` (0x1b36), `PCI_DEVICE_ID_REDHAT_NVME`
 * (0x0010); class 0x010802 (mass storage, NVM, NVM Express).
 * @since 0.1.0
 */
export const ids = { vendor: 0x1b36, device: 0x0010 } as const

/**
 * The register window the driver maps: the registers and the doorbells of the admin queue
 * and the I/O queues it creates (QEMU's BAR0 is larger: it also holds the MSI-X table).
 * @since 0.1.0
 */
export const WINDOW = 0x2000

/**
 * The registers, section 3.1.
 * @since 0.1.0
 */
export const registers = RegisterMap.make("nvme", WINDOW, {
  /** Controller Capabilities, low half. */
  CAP_LO: {
    offset: 0x00,
    access: "RO",
    fields: {
      /** Maximum Queue Entries Supported, 0's based. */
      MQES: { bits: [0, 15] },
      /** Contiguous Queues Required. */
      CQR: { bit: 16 },
      /** Arbitration Mechanism Supported. */
      AMS: { bits: [17, 18] },
      /** Timeout: worst-case time to CSTS.RDY after CC.EN changes, in 500 ms units. */
      TO: { bits: [24, 31] }
    }
  },
  /** Controller Capabilities, high half. */
  CAP_HI: {
    offset: 0x04,
    access: "RO",
    fields: {
      /** Doorbell Stride: doorbells are 2^(2 + DSTRD) bytes apart. */
      DSTRD: { bits: [0, 3] },
      /** NVM Subsystem Reset Supported. */
      NSSRS: { bit: 4 },
      /** Command Sets Supported (bit 0: the NVM command set). */
      CSS: { bits: [5, 12] },
      /** Memory Page Size Minimum: 2^(12 + MPSMIN). */
      MPSMIN: { bits: [16, 19] },
      /** Memory Page Size Maximum. */
      MPSMAX: { bits: [20, 23] }
    }
  },
  /** Version: major, minor, tertiary. */
  VS: { offset: 0x08, access: "RO", fields: { TER: { bits: [0, 7] }, MNR: { bits: [8, 15] }, MJR: { bits: [16, 31] } } },
  /** Interrupt Mask Set (pin-based and MSI only; MSI-X masks in its table). */
  INTMS: { offset: 0x0c, access: "WO" },
  /** Interrupt Mask Clear. */
  INTMC: { offset: 0x10, access: "WO" },
  /** Controller Configuration. */
  CC: {
    offset: 0x14,
    access: "RW",
    fields: {
      EN: { bit: 0 },
      /** I/O Command Set Selected (0: NVM). */
      CSS: { bits: [4, 6] },
      /** Memory Page Size: 2^(12 + MPS). */
      MPS: { bits: [7, 10] },
      /** Arbitration Mechanism Selected (0: round robin). */
      AMS: { bits: [11, 13] },
      /** Shutdown Notification: 01 normal, 10 abrupt. */
      SHN: { bits: [14, 15] },
      /** I/O Submission Queue Entry Size: 2^IOSQES (6: 64 bytes). */
      IOSQES: { bits: [16, 19] },
      /** I/O Completion Queue Entry Size: 2^IOCQES (4: 16 bytes). */
      IOCQES: { bits: [20, 23] }
    }
  },
  /** Controller Status. */
  CSTS: {
    offset: 0x1c,
    access: "RO",
    fields: {
      RDY: { bit: 0 },
      /** Controller Fatal Status. */
      CFS: { bit: 1 },
      /** Shutdown Status: 00 normal operation, 01 occurring, 10 complete. */
      SHST: { bits: [2, 3] },
      /** NVM Subsystem Reset Occurred. */
      NSSRO: { bit: 4 },
      /** Processing Paused. */
      PP: { bit: 5 }
    }
  },
  /** Admin Queue Attributes: sizes (0's based) of the admin SQ (low) and CQ (high). */
  AQA: { offset: 0x24, access: "RW", fields: { ASQS: { bits: [0, 11] }, ACQS: { bits: [16, 27] } } },
  /** Admin Submission Queue Base Address (page aligned), low and high halves. */
  ASQ_LO: { offset: 0x28, access: "RW" },
  ASQ_HI: { offset: 0x2c, access: "RW" },
  /** Admin Completion Queue Base Address, low and high halves. */
  ACQ_LO: { offset: 0x30, access: "RW" },
  ACQ_HI: { offset: 0x34, access: "RW" }
})

/** @since 0.1.0 */
export type Spec = typeof registers.spec

/**
 * `CC` for an enabled controller with the NVM command set, 4 KiB pages, round-robin
 * arbitration, 64-byte SQ entries and 16-byte CQ entries.
 * @since 0.1.0
 */
export const CC_ENABLE = (1 << 0) | (0 << 4) | (0 << 7) | (0 << 11) | (6 << 16) | (4 << 20)

/** `CC.SHN = 01`: normal shutdown. @since 0.1.0 */
export const CC_SHN_NORMAL = 1 << 14

/** `CSTS` bits. @since 0.1.0 */
export const CSTS_RDY = 1 << 0
/** @since 0.1.0 */
export const CSTS_CFS = 1 << 1
/** `CSTS.SHST = 10`: shutdown processing complete. @since 0.1.0 */
export const CSTS_SHST_MASK = 3 << 2
/** @since 0.1.0 */
export const CSTS_SHST_COMPLETE = 2 << 2

/**
 * The memory page size the driver uses (`CC.MPS = 0`): PRP entries describe 4 KiB pages.
 * @since 0.1.0
 */
export const PAGE = 4096

/**
 * Offset of submission queue `qid`'s tail doorbell (section 3.1.24: `0x1000 + (2y) * (4 << DSTRD)`).
 * @since 0.1.0
 */
export const sqTailDoorbell = (qid: number, dstrd: number) => 0x1000 + 2 * qid * (4 << dstrd)

/**
 * Offset of completion queue `qid`'s head doorbell (`0x1000 + (2y + 1) * (4 << DSTRD)`).
 * @since 0.1.0
 */
export const cqHeadDoorbell = (qid: number, dstrd: number) => 0x1000 + (2 * qid + 1) * (4 << dstrd)

/** What a removed PCIe device reads as. @since 0.1.0 */
export const ALL_ONES = 0xffffffff
