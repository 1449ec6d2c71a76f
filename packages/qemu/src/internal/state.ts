/**
 * The backend's state, and what the register path does with it: MMIO windows over qtest that
 * read all-ones once their device is gone, INTx lines, and QEMU going away.
 * @internal
 */
import * as Data from "effect/Data"
import type * as Deferred from "effect/Deferred"
import type { Device, Hardware, Mmio } from "@devscope/core"
import type { Iommu } from "@devscope/sim"
import type { Booted, Slot } from "./boot.js"
import type * as Memory from "./memory.js"
import type * as Msi from "./msi.js"
import type * as Pci from "./pci.js"

/**
 * QEMU went away while devices were in use: it exited or was killed (a device model's
 * `hw_error` aborts it), or a request went unanswered past its deadline. Every device is then
 * gone: reads return all-ones, writes are dropped, and each is unbound as a surprise removal.
 * @internal
 */
export class QemuLost extends Data.TaggedError("QemuLost")<{
  readonly code: number | null
  readonly signal: string | null
  /** QEMU's last words on stderr. */
  readonly stderr: string
  /** What was going on: "the run", or the request that found QEMU gone. */
  readonly during: string
}> {
  override get message() {
    const how = this.signal !== null ? `killed by ${this.signal}` : this.code !== null ? `exited with code ${this.code}` : "stopped answering"
    const last = this.stderr.trim().split("\n").slice(-3).join(" | ")
    return `QEMU ${how} during ${this.during}${last === "" ? "" : `: ${last}`}`
  }
}

/**
 * One slot of the machine and the device in it.
 *
 * # Invariants
 * - `status` is `present` exactly while QEMU has the device in its slot and it has not been
 *   surprise-removed: only then do its windows reach QEMU (`gone` and `absent` read all-ones).
 * - `device` is set from `plug` until the bus has removed the device (its unbind is over).
 * - `port` is the DMA port of the current device in the slot (a new one per plug).
 */
export interface Entry {
  readonly slot: Slot
  fn: Pci.PciFunction | undefined
  bars: ReadonlyArray<Pci.Bar>
  route: Pci.IntxRoute | undefined
  /** MSI or MSI-X, when the description asks for them (else the device uses INTx). */
  readonly messages: Msi.Messages | undefined
  port: Memory.Port
  /** The lines handed out for the current device in the slot (INTx: line 0; MSI: one per vector). */
  lines: Array<Line | undefined>
  status: "absent" | "present" | "gone"
  device: Device.Device | undefined
  /** Set while an orderly removal runs (completed when it ends). */
  removal?: Deferred.Deferred<void> | undefined
  /**
   * After a surprise removal: QMP's event sequence number before the power cut. QEMU finishes
   * deleting the device (and lets go of its block nodes) in an RCU callback; the next plug
   * waits for its `DEVICE_DELETED` first.
   */
  deleting?: number | undefined
}

/** The backend's state. */
export interface State {
  readonly booted: Booted
  readonly entries: Map<string, Entry>
  /** The INTx lines on each IOAPIC input (shared lines have several). */
  readonly byPin: Map<number, Array<Line>>
  readonly dmaFaults: Array<Iommu.Fault>
  readonly problems: Array<string>
  /** Set once, when QEMU is found gone unasked. */
  lost: QemuLost | undefined
  /** QEMU's clock, ns, as its last `clock_step` answered. */
  qemuNs: bigint
}

/**
 * Marks QEMU lost (once) and every device gone. A loss found by a failed request before QEMU's
 * exit status was known gets the status when it comes (what it was doing is kept).
 */
export const lost = (state: State, error: QemuLost): void => {
  if (state.lost !== undefined) {
    if (state.lost.code === null && state.lost.signal === null) {
      state.lost = new QemuLost({ code: error.code, signal: error.signal, stderr: error.stderr, during: state.lost.during })
    }
    return
  }
  state.lost = error
  state.problems.push(error.message)
  for (const entry of state.entries.values()) {
    if (entry.status === "present") entry.status = "gone"
    entry.port.disconnect()
  }
}

/**
 * Runs a request on the qtest channel; if it throws (QEMU died, the watchdog killed it, a
 * reply that makes no sense), QEMU is lost and `fallback` is returned: the register path never
 * throws into driver code for a device that went away.
 */
export const guarded = <A>(state: State, during: string, request: () => A, fallback?: A): A | undefined => {
  try {
    return request()
  } catch (error) {
    const exit = state.booted.machine.exitStatus()
    lost(state, new QemuLost({
      code: exit?.code ?? null,
      signal: exit?.signal ?? null,
      stderr: (exit?.stderr ?? state.booted.machine.stderr()).slice(-4000),
      during: `${during} (${(error as Error).message ?? String(error)})`
    }))
    return fallback
  }
}

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const

/**
 * A BAR of a device as the `Mmio.Region` drivers map: qtest accesses at the BAR's address.
 * While the device is not present, reads are all-ones (as on real PCIe; QEMU itself returns 0
 * for a removed device) and writes are dropped. Before a write reaches the device, the CPU's
 * changes to the device's coherent DMA memory are written to guest RAM (it may be a doorbell).
 */
export const regionOf = (state: State, entry: Entry, base: number, size: number): Mmio.Region => {
  const { qtest } = state.booted
  const read = (width: 1 | 2 | 4, offset: number): number => {
    if (entry.status !== "present") return ALL_ONES[width]
    const addr = base + offset
    try {
      return width === 4 ? qtest.readl(addr) : width === 2 ? qtest.readw(addr) : qtest.readb(addr)
    } catch {
      guarded(state, `a read at 0x${addr.toString(16)}`, () => qtest.ping())
      return ALL_ONES[width]
    }
  }
  const write = (width: 1 | 2 | 4, offset: number, value: number): void => {
    if (entry.status !== "present") return
    const addr = base + offset
    guarded(state, `a write at 0x${addr.toString(16)}`, () => {
      entry.port.flush()
      if (width === 4) qtest.writel(addr, value >>> 0)
      else if (width === 2) qtest.writew(addr, value & 0xffff)
      else qtest.writeb(addr, value & 0xff)
    })
    // A write can make the device signal at once (edu's IRQ_RAISE, a doorbell): delivered
    // before the write returns, as INTx is.
    if (entry.messages !== undefined) pollMessages(entry)
  }
  return {
    size,
    read8: (offset) => read(1, offset),
    read16: (offset) => read(2, offset),
    read32: (offset) => read(4, offset),
    write8: (offset, value) => write(1, offset, value),
    write16: (offset, value) => write(2, offset, value),
    write32: (offset, value) => write(4, offset, value)
  }
}

/** Raises the lines of the vectors whose messages arrived (a vector nobody requested is dropped). */
export const pollMessages = (entry: Entry): void => {
  if (entry.status !== "present") return
  entry.messages!.poll((vector) => entry.lines[vector]?.raise())
}

/**
 * A device's interrupt line as an `IrqLine` (its INTx, or one MSI/MSI-X vector): `raise` is
 * called when its IOAPIC input rises or its message arrives; listeners run after the device's
 * coherent DMA memory is refreshed from guest RAM, so the handler sees what the device wrote.
 * A listener that throws is recorded as a problem; the others still run.
 */
export interface Line extends Hardware.IrqLine {
  raise(): void
}

export const deviceLine = (state: State, entry: Entry, device: string, line: number): Line => {
  const listeners = new Set<() => void>()
  let masked = false
  let pending = false
  const deliver = () => {
    entry.port.refresh()
    for (const listener of Array.from(listeners)) {
      try {
        listener()
      } catch (error) {
        state.problems.push(`${device}: an interrupt handler threw: ${(error as Error)?.message ?? String(error)}`)
      }
    }
  }
  return {
    device,
    line,
    listen: (listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    mask: () => {
      masked = true
    },
    unmask: () => {
      masked = false
      if (pending && entry.status === "present") {
        pending = false
        deliver()
      }
    },
    raise: () => {
      if (entry.status !== "present") return
      if (masked) pending = true
      else deliver()
    }
  }
}
