/**
 * Example devscope driver: a platform temperature sensor (compatible "acme,temp") with its
 * device model for the simulator.
 */
export * as SensorModel from "./model.js"
export {
  type AttributeName,
  Bar0,
  driver,
  Hwmon,
  HwmonLive,
  type HwmonRegistry,
  makeHwmon,
  type Options,
  type Probed,
  type Samples,
  Sensor,
  type SensorHandle
} from "./driver.js"
