import { describe, expectTypeOf, it } from "vitest"
import type { Effect, Option } from "effect"
import { type Bound, type DeviceError, Devres, Driver, type Mmio } from "@devscope/core"
import { type AttributeName, Sensor, type SensorHandle, SensorModel } from "@devscope/example-sensor"

declare const handle: SensorHandle
declare const bar: Mmio.Mmio<typeof SensorModel.registers.spec>
declare const samples: Devres.Devres<{ readonly taken: number }, "sensor">
declare const sensorToken: Bound.Bound<"sensor">

const Other = Driver.brand("other")
declare const otherToken: Bound.Bound<"other">

describe("sensor example types", () => {
  it("user calls resolve with a value or DeviceGone, nothing else", () => {
    expectTypeOf(handle.readTemperature()).toEqualTypeOf<Effect.Effect<number, DeviceError.DeviceGone>>()
    expectTypeOf(handle.attribute("temp1_input")).toEqualTypeOf<Option.Option<number>>()
    expectTypeOf<AttributeName>().toEqualTypeOf<"temp1_input" | "temp1_max" | "temp1_alarms" | "samples">()
    // @ts-expect-error: no such attribute
    handle.attribute("fan1_input")
  })

  it("the register map types the driver's accesses", () => {
    expectTypeOf(bar.read("TEMP")).toEqualTypeOf<number>()
    bar.write("THRESHOLD", 30_000)
    // @ts-expect-error: TEMP is read-only
    bar.write("TEMP", 1)
    // @ts-expect-error: no such register
    bar.read("HUMIDITY")
    // @ts-expect-error: CTRL has no such field
    bar.readField("CTRL", "TURBO")
  })

  it("the sensor's resources take the sensor's token only", () => {
    expectTypeOf(samples.access(sensorToken).taken).toEqualTypeOf<number>()
    // @ts-expect-error: another driver's token does not fit
    samples.access(otherToken)
    expectTypeOf(Sensor.Bound).not.toEqualTypeOf(Other.Bound)
    expectTypeOf(Devres.make).toBeFunction()
  })
})
