/**
 * NVMe commands and completions (NVM Express Base Specification 1.4, sections 4.2, 4.6, 5
 * and 6; the NVM command set): the 64-byte submission queue entry and the 16-byte completion
 * queue entry as DMA layouts, the opcodes the driver issues, how it fills their dwords, the
 * status field, and the Identify data it reads.
 *
 * @since 0.1.0
 */
import { Dma } from "@devscope/core"

/**
 * A submission queue entry (section 4.2): command dword 0 (opcode, fused, PSDT, command id),
 * the namespace id, the metadata pointer, the data pointer (PRP entry 1 and 2), command
 * dwords 10-15. Every field is 32 bits; 64-bit values are two little-endian dwords.
 * @since 0.1.0
 */
export const Sqe = Dma.struct({
  cdw0: "u32",
  nsid: "u32",
  cdw2: "u32",
  cdw3: "u32",
  mptrLo: "u32",
  mptrHi: "u32",
  prp1Lo: "u32",
  prp1Hi: "u32",
  prp2Lo: "u32",
  prp2Hi: "u32",
  cdw10: "u32",
  cdw11: "u32",
  cdw12: "u32",
  cdw13: "u32",
  cdw14: "u32",
  cdw15: "u32"
})

/**
 * A completion queue entry (section 4.6): dword 0 (command specific), dword 1 (reserved),
 * the SQ head pointer and SQ id, the command id, and the status field with the phase tag in
 * bit 0.
 * @since 0.1.0
 */
export const Cqe = Dma.struct({ dw0: "u32", dw1: "u32", sqhd: "u16", sqid: "u16", cid: "u16", status: "u16" })

/** @since 0.1.0 */
export type SqeFields = typeof Sqe.fields

/**
 * Admin command opcodes (section 5).
 * @since 0.1.0
 */
export const AdminOp = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09
} as const

/**
 * NVM command set opcodes (NVM Command Set Specification, section 3).
 * @since 0.1.0
 */
export const IoOp = { FLUSH: 0x00, WRITE: 0x01, READ: 0x02 } as const

/** Identify's CNS values (section 5.15.1). @since 0.1.0 */
export const Cns = { NAMESPACE: 0x00, CONTROLLER: 0x01 } as const

/** Set Features' feature ids (section 5.21.1). @since 0.1.0 */
export const Feature = { NUMBER_OF_QUEUES: 0x07 } as const

/** A command's fields, dword by dword; what is not given is 0. @since 0.1.0 */
export interface Command {
  readonly opcode: number
  readonly nsid?: number | undefined
  readonly prp1?: number | undefined
  readonly prp2?: number | undefined
  readonly cdw10?: number | undefined
  readonly cdw11?: number | undefined
  readonly cdw12?: number | undefined
}

const lo = (address: number) => address >>> 0
const hi = (address: number) => Math.floor(address / 0x1_0000_0000) >>> 0

/**
 * Writes `command` with command id `cid` into submission queue slot `index`, every dword
 * (a slot is reused: nothing of the previous command may remain).
 * @since 0.1.0
 */
export const writeSqe = (ring: Dma.ArrayView<SqeFields>, index: number, cid: number, command: Command): void => {
  ring.set(index, "cdw0", (command.opcode & 0xff) | ((cid & 0xffff) << 16))
  ring.set(index, "nsid", command.nsid ?? 0)
  ring.set(index, "cdw2", 0)
  ring.set(index, "cdw3", 0)
  ring.set(index, "mptrLo", 0)
  ring.set(index, "mptrHi", 0)
  ring.set(index, "prp1Lo", lo(command.prp1 ?? 0))
  ring.set(index, "prp1Hi", hi(command.prp1 ?? 0))
  ring.set(index, "prp2Lo", lo(command.prp2 ?? 0))
  ring.set(index, "prp2Hi", hi(command.prp2 ?? 0))
  ring.set(index, "cdw10", command.cdw10 ?? 0)
  ring.set(index, "cdw11", command.cdw11 ?? 0)
  ring.set(index, "cdw12", command.cdw12 ?? 0)
  ring.set(index, "cdw13", 0)
  ring.set(index, "cdw14", 0)
  ring.set(index, "cdw15", 0)
}

/** Identify (CNS 1: the controller; CNS 0: namespace `nsid`) into the page at `prp1`. @since 0.1.0 */
export const identify = (cns: number, nsid: number, prp1: number): Command => ({ opcode: AdminOp.IDENTIFY, nsid, prp1, cdw10: cns })

/** Set Features, Number of Queues: `n` I/O submission and `n` completion queues (0's based). @since 0.1.0 */
export const setNumberOfQueues = (n: number): Command => ({
  opcode: AdminOp.SET_FEATURES,
  cdw10: Feature.NUMBER_OF_QUEUES,
  cdw11: (((n - 1) << 16) | (n - 1)) >>> 0
})

/**
 * Create I/O Completion Queue (section 5.3): physically contiguous (PC), interrupts enabled
 * (IEN) on MSI-X vector `vector`.
 * @since 0.1.0
 */
export const createIoCq = (qid: number, entries: number, prp1: number, vector: number): Command => ({
  opcode: AdminOp.CREATE_IO_CQ,
  prp1,
  cdw10: (((entries - 1) << 16) | qid) >>> 0,
  cdw11: ((vector << 16) | (1 << 1) | 1) >>> 0
})

/** Create I/O Submission Queue (section 5.4), physically contiguous, completing on `cqid`. @since 0.1.0 */
export const createIoSq = (qid: number, entries: number, prp1: number, cqid: number): Command => ({
  opcode: AdminOp.CREATE_IO_SQ,
  prp1,
  cdw10: (((entries - 1) << 16) | qid) >>> 0,
  cdw11: ((cqid << 16) | 1) >>> 0
})

/**
 * Read or Write (NVM Command Set, sections 3.2.4 and 3.2.6): starting LBA in CDW10/11, the
 * number of logical blocks (0's based) in CDW12.
 * @since 0.1.0
 */
export const readWrite = (opcode: number, nsid: number, lba: number, blocks: number, prp1: number, prp2: number): Command => ({
  opcode,
  nsid,
  prp1,
  prp2,
  cdw10: lo(lba),
  cdw11: hi(lba),
  cdw12: (blocks - 1) & 0xffff
})

/** Flush (NVM Command Set, section 3.2.2). @since 0.1.0 */
export const flush = (nsid: number): Command => ({ opcode: IoOp.FLUSH, nsid })

// ---------------------------------------------------------------------------------------------
// The status field (section 4.6.1.2)
// ---------------------------------------------------------------------------------------------

/** Status Code Types. @since 0.1.0 */
export const Sct = { GENERIC: 0x0, COMMAND_SPECIFIC: 0x1, MEDIA: 0x2, PATH: 0x3, VENDOR: 0x7 } as const

/** Generic command status codes the driver names (section 4.6.1.2.1, figure 128). @since 0.1.0 */
export const GenericSc: Readonly<Record<number, string>> = {
  0x00: "Successful Completion",
  0x01: "Invalid Command Opcode",
  0x02: "Invalid Field in Command",
  0x03: "Command ID Conflict",
  0x04: "Data Transfer Error",
  0x06: "Internal Error",
  0x07: "Command Abort Requested",
  0x08: "Command Aborted due to SQ Deletion",
  0x0b: "Invalid Namespace or Format",
  0x13: "PRP Offset Invalid",
  0x80: "LBA Out of Range",
  0x81: "Capacity Exceeded",
  0x82: "Namespace Not Ready"
}

/** The status field of a completion (its phase tag shifted out). @since 0.1.0 */
export interface Status {
  readonly sct: number
  readonly sc: number
  /** More: more status information in the error log page. */
  readonly more: boolean
  /** Do Not Retry. */
  readonly dnr: boolean
}

/** Decodes a completion's 16-bit status field (bit 0 is the phase tag). @since 0.1.0 */
export const decodeStatus = (field: number): Status => ({
  sc: (field >>> 1) & 0xff,
  sct: (field >>> 9) & 0x7,
  more: ((field >>> 14) & 1) === 1,
  dnr: ((field >>> 15) & 1) === 1
})

/** Whether a status field says "successful completion". @since 0.1.0 */
export const isSuccess = (field: number) => (field & 0xfffe) === 0

/** A readable name of a status. @since 0.1.0 */
export const statusName = (status: Pick<Status, "sct" | "sc">): string =>
  status.sct === Sct.GENERIC && GenericSc[status.sc] !== undefined
    ? GenericSc[status.sc]!
    : `status code type 0x${status.sct.toString(16)}, code 0x${status.sc.toString(16)}`

// ---------------------------------------------------------------------------------------------
// Identify data (sections 5.15.2.1 and 5.15.2.2)
// ---------------------------------------------------------------------------------------------

/** What the driver keeps of Identify Controller. @since 0.1.0 */
export interface ControllerInfo {
  /** PCI Vendor ID (VID). */
  readonly vendor: number
  /** Serial Number (SN), Model Number (MN), Firmware Revision (FR), trailing spaces trimmed. */
  readonly serial: string
  readonly model: string
  readonly firmware: string
  /** Maximum Data Transfer Size: 2^MDTS pages (0: no limit). */
  readonly mdts: number
  /** Number of Namespaces (NN). */
  readonly namespaces: number
  /** Volatile Write Cache present (VWC bit 0): a Flush is meaningful. */
  readonly volatileWriteCache: boolean
}

/** What the driver keeps of Identify Namespace. @since 0.1.0 */
export interface NamespaceInfo {
  readonly nsid: number
  /** Namespace Size (NSZE), in logical blocks. */
  readonly blocks: number
  /** Namespace Capacity (NCAP), in logical blocks. */
  readonly capacity: number
  /** The format in use (FLBAS bits 0-3) and its LBA data size, 2^LBADS bytes. */
  readonly lbaFormat: number
  readonly blockSize: number
  /** Metadata bytes per block of that format (MS); the driver takes namespaces with 0. */
  readonly metadataSize: number
}

const text = (bytes: Uint8Array, offset: number, length: number) =>
  new TextDecoder().decode(bytes.subarray(offset, offset + length)).replace(/[\s\0]+$/, "")

const u64 = (view: DataView, offset: number) => view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 0x1_0000_0000

/** Parses Identify Controller data (4096 bytes). @since 0.1.0 */
export const parseController = (bytes: Uint8Array): ControllerInfo => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return {
    vendor: view.getUint16(0, true),
    serial: text(bytes, 4, 20),
    model: text(bytes, 24, 40),
    firmware: text(bytes, 64, 8),
    mdts: bytes[77]!,
    namespaces: view.getUint32(516, true),
    volatileWriteCache: (bytes[525]! & 1) === 1
  }
}

/** Parses Identify Namespace data (4096 bytes) of namespace `nsid`. @since 0.1.0 */
export const parseNamespace = (nsid: number, bytes: Uint8Array): NamespaceInfo => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const lbaFormat = bytes[26]! & 0xf
  const format = 128 + 4 * lbaFormat
  return {
    nsid,
    blocks: u64(view, 0),
    capacity: u64(view, 8),
    lbaFormat,
    blockSize: 2 ** bytes[format + 2]!,
    metadataSize: view.getUint16(format, true)
  }
}
