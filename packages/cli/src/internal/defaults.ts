/**
 * What a scenario leaves out: the workload's defaults (used by the runner) and the devices'
 * default latencies (those of the example device models), in one place so the estimate of a
 * run's work reads the same numbers the run uses.
 * @internal
 */
import type { Workload } from "../Scenario.js"

/** The workload of a scenario with every field filled in (intervals in milliseconds). */
export const workloadDefaults = (workload: Workload | undefined) => ({
  nic: {
    window: workload?.nic?.window ?? 4,
    frameSize: workload?.nic?.frameSize ?? 256,
    interval: workload?.nic?.interval ?? 0.05
  },
  blk: {
    workers: workload?.blk?.workers ?? 4,
    writeRatio: workload?.blk?.writeRatio ?? 0.5,
    sectorsPerRequest: workload?.blk?.sectorsPerRequest ?? 2,
    interval: workload?.blk?.interval ?? 0.1,
    flushEvery: workload?.blk?.flushEvery ?? 16
  },
  sensor: { readers: workload?.sensor?.readers ?? 2, interval: workload?.sensor?.interval ?? 2 },
  edu: {
    workers: workload?.edu?.workers ?? 2,
    dmaBytes: workload?.edu?.dmaBytes ?? 256,
    interval: workload?.edu?.interval ?? 5
  }
})

/** The simulator's edu: a factorial's time, and a DMA transfer's (QEMU's edu takes 100 ms; the simulator is given the same). */
export const EDU_FACTORIAL = 1
export const EDU_DMA = 100

/** A NIC's or disk's time for one batch when the scenario gives no `latency` (20 µs, the models' default). */
export const DEVICE_LATENCY = 0.02

/** A disk's sectors when the scenario gives none. */
export const SECTORS = 4096

/** The sensor model converts a temperature every 10 ms, whatever the load. */
export const SENSOR_CONVERSION = 10

/** The bus's deadline for a driver's `remove` (a planted `hang-in-remove` waits it out). */
export const REMOVE_TIMEOUT = 5_000
