/**
 * What the scenario format knows of each kind of device.
 * @internal
 */
import type { Bug } from "../Scenario.js"
import { echo } from "./input.js"

/** @internal */
export const kinds = {
  nic: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"] },
  blk: { bus: "pci", irqLines: 1, bugs: ["free-dma-before-stop", "hang-in-remove"] },
  sensor: { bus: "platform", irqLines: 1, bugs: ["hang-in-remove"] }
} as const satisfies Record<string, { bus: "pci" | "platform"; irqLines: number; bugs: ReadonlyArray<Bug> }>

/**
 * A value as the scenario file would spell it, for messages.
 * @internal
 */
export const show = (value: unknown): string => echo(value)
