/**
 * MSI and MSI-X under qtest: each vector's message address is a dword of guest RAM the backend
 * keeps for itself (a mailbox), as QEMU's own qtest tests observe messages. A device that
 * signals a vector writes its message data there; the backend reads the mailboxes of a device
 * after every MMIO write to it and after every clock step (where timers, DMA completions and
 * device threads' work become visible), clears the ones written, then raises their lines.
 *
 * Clearing before raising is what keeps a cause from being lost: a message the device sends
 * between the read and the clear is folded into the delivery that follows, and the handler,
 * which runs after the clear, reads the device's status with that cause in it (the same
 * coalescing as two edges of one line while its handler runs).
 * @internal
 */
import type { Booted } from "./boot.js"
import * as Pci from "./pci.js"

/** The device cannot signal the way the description asks (too few MSI-X entries). */
export class MessagesUnavailable extends Error {}

/** The mailboxes one device has (its slot index picks them: no two devices share one). */
const PER_DEVICE = 32

/** The message data of vector `v` (never 0: 0 is an empty mailbox). */
const dataOf = (vector: number) => vector + 1

/**
 * A device's message-signalled interrupts: how they are programmed and where they land.
 *
 * # Invariants
 * - `base + 4 * v` is vector `v`'s mailbox, inside `booted.mailboxes`, for `v < vectors`.
 * - A mailbox holds 0 until the device writes its vector's data there; `poll` clears it before
 *   the vector's line is raised.
 */
export interface Messages {
  readonly kind: "msi" | "msix"
  readonly vectors: number
  /** Programs the function behind the slot (at boot and after each re-plug) and turns INTx off. */
  program(fn: Pci.PciFunction, bars: ReadonlyArray<Pci.Bar>): void
  /** Reads the mailboxes; calls `raise(v)` for each vector whose message arrived. */
  poll(raise: (vector: number) => void): void
}

/** The mailboxes and programming of slot `index`'s device. */
export const make = (booted: Booted, index: number, kind: "msi" | "msix", vectors: number): Messages => {
  const { mailboxes, memory, cfg, qtest } = booted
  if (vectors < 1 || vectors > PER_DEVICE || (index + 1) * PER_DEVICE > mailboxes.count) {
    throw new Error(`no mailboxes for slot ${index} with ${vectors} vector(s)`)
  }
  const base = mailboxes.base + 4 * PER_DEVICE * index
  // Read and cleared in place: the register path allocates nothing.
  const seen = new Uint8Array(4 * vectors)
  const words = new Uint32Array(seen.buffer)
  const zero = new Uint8Array(4)
  const clearAll = () => memory.write(base, new Uint8Array(4 * vectors))

  return {
    kind,
    vectors,
    program: (fn, bars) => {
      clearAll()
      if (kind === "msi") {
        Pci.programMsi(cfg, fn.address, { address: base, data: dataOf(0), vectors: 1 })
      } else {
        const info = Pci.msixInfo(cfg, fn.address)
        if (vectors > info.tableSize) throw new MessagesUnavailable(`MSI-X has ${info.tableSize} entries; ${vectors} vectors asked for`)
        const table = Pci.msixTableAddress(info, bars)
        Pci.setMsix(cfg, fn.address, { enable: true, functionMask: true })
        for (let v = 0; v < vectors; v++) Pci.programMsixEntry(qtest, info, table, v, { address: base + 4 * v, data: dataOf(v) })
        Pci.setMsix(cfg, fn.address, { functionMask: false })
      }
      Pci.setIntxDisabled(cfg, fn.address, true)
    },
    poll: (raise) => {
      memory.read(base, seen.length, seen)
      let any = false
      for (let v = 0; v < vectors; v++) {
        if (words[v] === 0) continue
        any = true
        memory.write(base + 4 * v, zero)
      }
      if (!any) return
      for (let v = 0; v < vectors; v++) if (words[v] !== 0) raise(v)
    }
  }
}
