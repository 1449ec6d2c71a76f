/**
 * The simulated device: an "acme,temp-v2" platform temperature sensor.
 *
 * Setting `CTRL.ENABLE` starts a conversion at once; while it is set, the device converts a
 * new temperature every conversion period
 * (10 ms of virtual time) into `TEMP`, in milli-degrees Celsius. The temperature follows a
 * deterministic triangle wave (20 °C to 40 °C and back, one period every 100 ms) plus a little
 * noise from the simulator's seeded generator. When `CTRL.IRQ_ENABLE` is set and a conversion
 * crosses `THRESHOLD` upwards, the device sets `STATUS.ALERT` and raises interrupt line 0.
 * The driver acknowledges by writing 1 to `STATUS.ALERT` (W1C).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { RegisterMap } from "@devscope/core"
import { Model } from "@devscope/sim"

/**
 * Platform ids the model is plugged with: the most specific compatible string first.
 * @since 0.1.0
 */
export const ids = { compatible: ["acme,temp-v2", "acme,temp"] } as const

/**
 * What `ID` reads: "TMP" and version 2.
 * @since 0.1.0
 */
export const ID_VALUE = 0x544d5002

/**
 * Device-side conversion period.
 * @since 0.1.0
 */
export const CONVERSION_PERIOD = "10 millis"

/**
 * The lowest and highest temperatures of the waveform (without noise), milli-degrees.
 * @since 0.1.0
 */
export const TEMP_MIN = 20_000
/** @since 0.1.0 */
export const TEMP_MAX = 40_000
/**
 * Noise added to each conversion: [0, NOISE) milli-degrees.
 * @since 0.1.0
 */
export const NOISE = 100

/**
 * The register window (the platform device's `reg` resource 0).
 * @since 0.1.0
 */
export const registers = RegisterMap.make("acme-temp", 0x20, {
  ID: { offset: 0x00, access: "RO", reset: ID_VALUE, description: "\"TMP\" and the version" },
  CTRL: {
    offset: 0x04,
    access: "RW",
    fields: { ENABLE: { bit: 0 }, IRQ_ENABLE: { bit: 1 } },
    description: "ENABLE starts conversions; IRQ_ENABLE enables the threshold interrupt"
  },
  TEMP: { offset: 0x08, access: "RO", description: "last conversion, milli-degrees Celsius" },
  THRESHOLD: { offset: 0x0c, access: "RW", reset: 100_000, description: "alert threshold, milli-degrees Celsius" },
  STATUS: { offset: 0x10, access: "W1C", fields: { ALERT: { bit: 0 } }, description: "ALERT: TEMP crossed THRESHOLD" }
})

const CTRL_ENABLE = 1
const CTRL_IRQ_ENABLE = 2
const STATUS_ALERT = 1

/**
 * The noise-free waveform at conversion number `tick`: a triangle, 10 conversions a period.
 * @since 0.1.0
 */
export const waveform = (tick: number): number => {
  const phase = tick % 10
  const level = phase <= 5 ? phase : 10 - phase
  return TEMP_MIN + level * ((TEMP_MAX - TEMP_MIN) / 5)
}

/**
 * The device model.
 * @since 0.1.0
 */
export const model = () =>
  Model.make({
    kind: "acme-temp",
    regions: [registers],
    irqs: 1,
    start: (ctx) =>
      Effect.sync(() => {
        const [regs] = ctx.regions
        let tick = 0
        const convertNow = () => {
          const ctrl = regs.get("CTRL")
          if ((ctrl & CTRL_ENABLE) === 0) return
          const previous = regs.get("TEMP")
          const temp = waveform(tick++) + Math.floor(ctx.random() * NOISE)
          regs.set("TEMP", temp)
          const threshold = regs.get("THRESHOLD")
          if ((ctrl & CTRL_IRQ_ENABLE) !== 0 && previous < threshold && temp >= threshold) {
            regs.set("STATUS", regs.get("STATUS") | STATUS_ALERT)
            ctx.raise(0)
          }
        }
        const convert = Effect.sync(convertNow)
        // Enabling starts a conversion at once, so TEMP holds a reading from then on.
        regs.onWrite("CTRL", (value, previous) => {
          if ((value & CTRL_ENABLE) !== 0 && (previous & CTRL_ENABLE) === 0) convertNow()
        })
        // The conversion engine: device activity, stopped when the device is removed.
        ctx.spawn("temperature conversion", Effect.forever(Effect.zipRight(Effect.sleep(CONVERSION_PERIOD), convert)))
      })
  })
