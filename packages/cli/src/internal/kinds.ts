/**
 * What the scenario format knows of each kind of device.
 * @internal
 */
import type { Bug } from "../Scenario.js"
import { echo } from "./input.js"

/** @internal */
export const kinds = {
  nic: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"], driver: "nic", qemu: undefined },
  blk: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"], driver: "blk", qemu: undefined },
  sensor: { bus: "platform", irqLines: 1, bugs: ["hang-in-remove"], driver: "sensor", qemu: undefined },
  edu: { bus: "pci", irqLines: 1, bugs: ["hang-in-remove"], driver: "edu", qemu: "edu" },
  "pci-testdev": { bus: "pci", irqLines: 0, bugs: ["hang-in-remove"], driver: "rust_driver_pci", qemu: "pci-testdev" }
} as const satisfies Record<string, {
  bus: "pci" | "platform"
  irqLines: number
  bugs: ReadonlyArray<Bug>
  driver: string
  qemu: string | undefined
}>

/**
 * A value as the scenario file would spell it, for messages.
 * @internal
 */
export const show = (value: unknown): string => echo(value)
