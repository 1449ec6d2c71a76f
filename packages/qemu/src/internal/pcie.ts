/**
 * PCI Express root port slots: the slot registers of the express capability, hotplug
 * interrupts, slot power, and the platform's half of an orderly removal. What QEMU 7.2 does
 * with them (hw/pci/pcie.c), measured on q35 with pcie-root-port and
 * `-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off`:
 * - Slot Control accepts ABPE, PDCE, CCIE, HPIE, the indicators and PCC; DLLSCE, PFDE and
 *   MRLSCE are read-only 0 (QEMU reports neither link nor MRL changes as slot events).
 * - Every Slot Control write completes at once and sets Command Completed, so with HPIE and
 *   CCIE both on, every write raises the port's interrupt: CCIE stays off here.
 * - A Slot Control write with PCC = 1 and the power indicator off, while a device is present
 *   and the slot was not already off, unplugs everything below at once (surprise removal),
 *   clears Presence Detect State and Data Link Layer Link Active, sets Presence Detect
 *   Changed, and QEMU emits DEVICE_DELETED for a device that was `device_del`ed.
 * - QMP `device_del` sets Attention Button Pressed (and with HPIE+ABPE raises the port's
 *   INTx/MSI): the platform is expected to power the slot off, which completes the removal.
 * - Powering the slot back on does not bring a removed device back.
 *
 * @internal
 */
import {
  type Bdf,
  CapabilityId,
  type ConfigSpace,
  findCapability,
  formatBdf,
  PciBadArgument,
  PciCapabilityMissing
} from "./pci.js"

/** Offsets within the PCI Express capability. @internal */
export const ExpressReg = {
  Flags: 0x02,
  LinkCapabilities: 0x0c,
  LinkStatus: 0x12,
  SlotCapabilities: 0x14,
  SlotControl: 0x18,
  SlotStatus: 0x1a
} as const

/** Slot Control bits. @internal */
export const SlotControl = {
  AttentionButtonPressedEnable: 0x0001,
  PowerFaultDetectedEnable: 0x0002,
  MrlSensorChangedEnable: 0x0004,
  PresenceDetectChangedEnable: 0x0008,
  CommandCompletedInterruptEnable: 0x0010,
  HotPlugInterruptEnable: 0x0020,
  AttentionIndicatorMask: 0x00c0,
  PowerIndicatorMask: 0x0300,
  /** 1 = power off. */
  PowerControllerControl: 0x0400,
  ElectromechanicalInterlockControl: 0x0800,
  DataLinkLayerStateChangedEnable: 0x1000
} as const

/** Slot Status bits; the event bits (all but MRLSS, PDS, EIS) are write-1-to-clear. @internal */
export const SlotStatus = {
  AttentionButtonPressed: 0x0001,
  PowerFaultDetected: 0x0002,
  MrlSensorChanged: 0x0004,
  PresenceDetectChanged: 0x0008,
  CommandCompleted: 0x0010,
  MrlSensorState: 0x0020,
  PresenceDetectState: 0x0040,
  ElectromechanicalInterlockStatus: 0x0080,
  DataLinkLayerStateChanged: 0x0100
} as const

/** Every write-1-to-clear event bit of Slot Status. @internal */
export const SLOT_EVENTS = 0x011f

/** Indicator states, as the two-bit fields of Slot Control encode them (0 is reserved). @internal */
export type Indicator = "on" | "blink" | "off"
const INDICATOR_CODE = { on: 1, blink: 2, off: 3 } as const
const INDICATOR_NAME = ["reserved", "on", "blink", "off"] as const

const LINK_STATUS_DLLLA = 0x2000
const LINK_CAP_DLLLARC = 0x100000
/** Attention indicator bits 7:6, power indicator 9:8. */
const AIC_SHIFT = 6
const PIC_SHIFT = 8

/** The express capability's offset (throws `PciCapabilityMissing` without one). @internal */
export const expressCapability = (cfg: ConfigSpace, port: Bdf): number => {
  const offset = findCapability(cfg, port, CapabilityId.Express)
  if (offset === undefined) throw new PciCapabilityMissing({ address: formatBdf(port), capability: "PCI Express" })
  return offset
}

/** Slot Capabilities, decoded. @internal */
export interface SlotCapabilities {
  readonly raw: number
  readonly attentionButton: boolean
  readonly powerController: boolean
  readonly mrlSensor: boolean
  readonly attentionIndicator: boolean
  readonly powerIndicator: boolean
  readonly hotPlugSurprise: boolean
  readonly hotPlugCapable: boolean
  readonly electromechanicalInterlock: boolean
  readonly noCommandCompleted: boolean
  /** Physical Slot Number: QEMU's `slot=` property. */
  readonly physicalSlot: number
  /** Link Capabilities' Data Link Layer Link Active Reporting Capable (set on QEMU 7.2's pcie-root-port: LNKCAP 0x300604). */
  readonly linkActiveReporting: boolean
}

/**
 * Reads and decodes Slot Capabilities; throws `PciBadArgument` when the port's express
 * capability has no slot (Slot Implemented clear: not a root or downstream port with a slot).
 * @internal
 */
export const slotCapabilities = (cfg: ConfigSpace, port: Bdf): SlotCapabilities => {
  const exp = slotCapability(cfg, port, "slotCapabilities")
  const raw = cfg.read32(port, exp + ExpressReg.SlotCapabilities)
  const link = cfg.read32(port, exp + ExpressReg.LinkCapabilities)
  return {
    raw,
    attentionButton: (raw & 0x1) !== 0,
    powerController: (raw & 0x2) !== 0,
    mrlSensor: (raw & 0x4) !== 0,
    attentionIndicator: (raw & 0x8) !== 0,
    powerIndicator: (raw & 0x10) !== 0,
    hotPlugSurprise: (raw & 0x20) !== 0,
    hotPlugCapable: (raw & 0x40) !== 0,
    electromechanicalInterlock: (raw & 0x20000) !== 0,
    noCommandCompleted: (raw & 0x40000) !== 0,
    physicalSlot: raw >>> 19,
    linkActiveReporting: (link & LINK_CAP_DLLLARC) !== 0
  }
}

/** The express capability's offset, checked to have a slot (Flags bit 8). */
const slotCapability = (cfg: ConfigSpace, port: Bdf, operation: string): number => {
  const exp = expressCapability(cfg, port)
  if ((cfg.read16(port, exp + ExpressReg.Flags) & 0x100) === 0) {
    throw new PciBadArgument({ operation, reason: `${formatBdf(port)} has no slot (Slot Implemented is clear)` })
  }
  return exp
}

/** Slot Control, raw. @internal */
export const slotControl = (cfg: ConfigSpace, port: Bdf): number =>
  cfg.read16(port, slotCapability(cfg, port, "slotControl") + ExpressReg.SlotControl)

/** Slot Status, raw. @internal */
export const slotStatus = (cfg: ConfigSpace, port: Bdf): number =>
  cfg.read16(port, slotCapability(cfg, port, "slotStatus") + ExpressReg.SlotStatus)

/** A slot's state, decoded from Slot Control, Slot Status and Link Status. @internal */
export interface SlotState {
  readonly control: number
  readonly status: number
  /** Presence Detect State. */
  readonly present: boolean
  /** Data Link Layer Link Active. */
  readonly linkActive: boolean
  /** Power Controller Control = 0 (the slot is powered). */
  readonly powered: boolean
  readonly powerIndicator: Indicator | "reserved"
  readonly attentionIndicator: Indicator | "reserved"
  readonly attentionButtonPressed: boolean
  readonly presenceDetectChanged: boolean
  /** The pending write-1-to-clear event bits. */
  readonly events: number
}

/** Reads a slot's state. @internal */
export const slotState = (cfg: ConfigSpace, port: Bdf): SlotState => {
  const exp = slotCapability(cfg, port, "slotState")
  const control = cfg.read16(port, exp + ExpressReg.SlotControl)
  const status = cfg.read16(port, exp + ExpressReg.SlotStatus)
  const link = cfg.read16(port, exp + ExpressReg.LinkStatus)
  return {
    control,
    status,
    present: (status & SlotStatus.PresenceDetectState) !== 0,
    linkActive: (link & LINK_STATUS_DLLLA) !== 0,
    powered: (control & SlotControl.PowerControllerControl) === 0,
    powerIndicator: INDICATOR_NAME[(control >>> PIC_SHIFT) & 3],
    attentionIndicator: INDICATOR_NAME[(control >>> AIC_SHIFT) & 3],
    attentionButtonPressed: (status & SlotStatus.AttentionButtonPressed) !== 0,
    presenceDetectChanged: (status & SlotStatus.PresenceDetectChanged) !== 0,
    events: status & SLOT_EVENTS
  }
}

/**
 * Writes Slot Control as one 16-bit access at its own offset: one write is one hotplug
 * command, QEMU reads the power-off condition from the written value itself, and a wider
 * access would also hit Slot Status, whose event bits a stray 1 clears. The interlock
 * toggle (EIC) is never written by accident: it is cleared from what is written back.
 */
const writeControl = (cfg: ConfigSpace, port: Bdf, exp: number, value: number) =>
  cfg.write16(port, exp + ExpressReg.SlotControl, value & ~SlotControl.ElectromechanicalInterlockControl & 0xffff)

/**
 * Turns on hotplug interrupts: HPIE, ABPE and PDCE (and DLLSCE, which QEMU 7.2 ignores);
 * CCIE only if asked (every Slot Control write would interrupt otherwise). Returns Slot
 * Control as it then reads, so a caller sees which bits the port implements.
 * @internal
 */
export const enableHotplugInterrupts = (
  cfg: ConfigSpace,
  port: Bdf,
  options: { readonly commandCompleted?: boolean } = {}
): number => {
  const exp = slotCapability(cfg, port, "enableHotplugInterrupts")
  const control = cfg.read16(port, exp + ExpressReg.SlotControl)
  const bits = SlotControl.HotPlugInterruptEnable | SlotControl.AttentionButtonPressedEnable |
    SlotControl.PresenceDetectChangedEnable | SlotControl.DataLinkLayerStateChangedEnable |
    (options.commandCompleted === true ? SlotControl.CommandCompletedInterruptEnable : 0)
  writeControl(cfg, port, exp, control | bits)
  return cfg.read16(port, exp + ExpressReg.SlotControl)
}

/** Turns every hotplug interrupt enable off. @internal */
export const disableHotplugInterrupts = (cfg: ConfigSpace, port: Bdf): void => {
  const exp = slotCapability(cfg, port, "disableHotplugInterrupts")
  const control = cfg.read16(port, exp + ExpressReg.SlotControl)
  writeControl(cfg, port, exp, control & ~0x103f)
}

/**
 * Acknowledges slot events (write-1-to-clear; all pending ones by default) and returns the
 * bits that were pending among those asked for. Only pending bits are written: QEMU undoes
 * a write that clears an event bit it had not set (a guard against racy guests).
 * @internal
 */
export const acknowledgeSlotEvents = (cfg: ConfigSpace, port: Bdf, bits: number = SLOT_EVENTS): number => {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) {
    throw new PciBadArgument({ operation: "acknowledgeSlotEvents", reason: `bits ${bits} is not a 16-bit mask` })
  }
  const exp = slotCapability(cfg, port, "acknowledgeSlotEvents")
  const pending = cfg.read16(port, exp + ExpressReg.SlotStatus) & SLOT_EVENTS & bits
  if (pending !== 0) cfg.write16(port, exp + ExpressReg.SlotStatus, pending)
  return pending
}

/** Sets the power and/or attention indicator. @internal */
export const setIndicators = (
  cfg: ConfigSpace,
  port: Bdf,
  indicators: { readonly power?: Indicator; readonly attention?: Indicator }
): void => {
  const exp = slotCapability(cfg, port, "setIndicators")
  let control = cfg.read16(port, exp + ExpressReg.SlotControl)
  if (indicators.power !== undefined) control = (control & ~SlotControl.PowerIndicatorMask) | (INDICATOR_CODE[indicators.power] << PIC_SHIFT)
  if (indicators.attention !== undefined) {
    control = (control & ~SlotControl.AttentionIndicatorMask) | (INDICATOR_CODE[indicators.attention] << AIC_SHIFT)
  }
  writeControl(cfg, port, exp, control)
}

/**
 * Powers the slot off: PCC = 1 with the power and attention indicators off, in one write.
 * On QEMU, with a device present, that is a surprise removal: the device is gone (config
 * reads all-ones; MMIO reads 0) when this returns. Returns the slot's state afterwards.
 * @internal
 */
export const powerOffSlot = (cfg: ConfigSpace, port: Bdf): SlotState => {
  const exp = slotCapability(cfg, port, "powerOffSlot")
  const control = cfg.read16(port, exp + ExpressReg.SlotControl)
  writeControl(
    cfg,
    port,
    exp,
    (control & ~(SlotControl.PowerIndicatorMask | SlotControl.AttentionIndicatorMask)) |
      SlotControl.PowerControllerControl | (INDICATOR_CODE.off << PIC_SHIFT) | (INDICATOR_CODE.off << AIC_SHIFT)
  )
  return slotState(cfg, port)
}

/** Powers the slot on: PCC = 0, power indicator on. @internal */
export const powerOnSlot = (cfg: ConfigSpace, port: Bdf): SlotState => {
  const exp = slotCapability(cfg, port, "powerOnSlot")
  const control = cfg.read16(port, exp + ExpressReg.SlotControl)
  writeControl(
    cfg,
    port,
    exp,
    (control & ~(SlotControl.PowerControllerControl | SlotControl.PowerIndicatorMask)) | (INDICATOR_CODE.on << PIC_SHIFT)
  )
  return slotState(cfg, port)
}

/**
 * What one `orderlyRemovalStep` did.
 * - `NoRequest`: the attention button was not pressed; nothing was written.
 * - `PoweredOff`: the press was acknowledged and the slot powered off; `removed` says whether
 *   presence went away (on QEMU it does, and DEVICE_DELETED follows on QMP).
 * @internal
 */
export type OrderlyRemovalStep =
  | { readonly _tag: "NoRequest"; readonly state: SlotState }
  | { readonly _tag: "PoweredOff"; readonly removed: boolean; readonly state: SlotState }

/**
 * The platform's answer to an unplug request, for a backend that sees Attention Button
 * Pressed (the port's interrupt, or polling): acknowledge ABP, power the slot off (PCC = 1,
 * indicators off, one write; a slot already off is powered on first, since QEMU only removes
 * on the transition), then acknowledge the Presence Detect Changed and Command Completed that
 * the removal sets, so the port's interrupt line settles low. pciehp would blink the power
 * indicator and wait 5 s for a cancelling second press first; nothing here waits.
 * @internal
 */
export const orderlyRemovalStep = (cfg: ConfigSpace, port: Bdf): OrderlyRemovalStep => {
  const before = slotState(cfg, port)
  if (!before.attentionButtonPressed) return { _tag: "NoRequest", state: before }
  acknowledgeSlotEvents(cfg, port, SlotStatus.AttentionButtonPressed)
  if (!before.powered && before.powerIndicator === "off") powerOnSlot(cfg, port)
  powerOffSlot(cfg, port)
  acknowledgeSlotEvents(
    cfg,
    port,
    SlotStatus.PresenceDetectChanged | SlotStatus.CommandCompleted | SlotStatus.DataLinkLayerStateChanged
  )
  const state = slotState(cfg, port)
  return { _tag: "PoweredOff", removed: !state.present, state }
}
