/**
 * The "sensor" driver for the acme,temp platform device, written the way devscope drivers
 * should be written:
 *
 * - resources are Layers and Devres of the binding (BAR0, the samples ring, the interrupt, the
 *   hwmon registration); the bound path uses `access(token)`, never an `Option`;
 * - a binding fiber samples `TEMP` every sampling period into the ring;
 * - the threshold interrupt's handler acks `STATUS.ALERT` (W1C) and counts alerts;
 * - user calls (`readTemperature`) enter a Gate, so they resolve exactly once: with a value, or
 *   with `DeviceGone` once the unbind has begun;
 * - attributes (`attribute(name)`) are read by code outside the binding with `tryAccess`, and
 *   are `None` once the binding has ended;
 * - `remove` disables the device, unless it reads all-ones (surprise removal).
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Option } from "effect"
import { Bound, Devres, DeviceError, Driver, Gate, Hardware, Irq, type Mmio } from "@devscope/core"
import * as SensorModel from "./model.js"

/**
 * The brand: types the tokens `Bound<"sensor">` and `Core<"sensor">`.
 * @since 0.1.0
 */
export const Sensor = Driver.brand("sensor")

type Regs = Mmio.Mmio<typeof SensorModel.registers.spec>

const ALL_ONES = 0xffffffff
const CTRL_ENABLE = 1
const CTRL_IRQ_ENABLE = 2
const STATUS_ALERT = 1

/**
 * The driver's memory: the latest samples and counters (the kernel's drvdata).
 * @since 0.1.0
 */
export interface Samples {
  /** Ring of the latest `capacity` samples, milli-degrees. */
  readonly ring: Array<number>
  readonly capacity: number
  /** Where the next sample goes. */
  next: number
  /** Samples taken since probe. */
  taken: number
  /** Threshold interrupts handled. */
  alerts: number
}

const latest = (s: Samples): Option.Option<number> =>
  s.taken === 0 ? Option.none() : Option.some(s.ring[(s.next + s.capacity - 1) % s.capacity]!)

/**
 * The attributes user code can read without a token (hwmon-style names).
 * @since 0.1.0
 */
export type AttributeName = "temp1_input" | "temp1_max" | "temp1_alarms" | "samples"

/**
 * What the driver hands to user code for one bound device.
 * @since 0.1.0
 */
export interface SensorHandle {
  readonly device: string
  /**
   * The latest temperature, milli-degrees, through the Gate. Fails with `DeviceGone` once the
   * device is being unbound; every call resolves exactly once.
   */
  readTemperature(): Effect.Effect<number, DeviceError.DeviceGone>
  /**
   * An attribute, read outside the binding with `tryAccess`: `None` once the binding has ended
   * (or the device no longer answers).
   */
  attribute(name: AttributeName): Option.Option<number>
}

/**
 * A hwmon-like class registry, provided where the driver is registered: bound sensors appear
 * here at probe and disappear at unbind. User code looks handles up by device name.
 * @since 0.1.0
 */
export interface HwmonRegistry {
  readonly register: (handle: SensorHandle) => void
  readonly unregister: (handle: SensorHandle) => void
  readonly lookup: (device: string) => Option.Option<SensorHandle>
  readonly devices: () => ReadonlyArray<string>
}

/** @since 0.1.0 */
export class Hwmon extends Context.Tag("@devscope/example-sensor/Hwmon")<Hwmon, HwmonRegistry>() {}

/**
 * A fresh registry.
 * @since 0.1.0
 */
export const makeHwmon = (): HwmonRegistry => {
  const handles = new Map<string, SensorHandle>()
  return {
    register: (handle) => void handles.set(handle.device, handle),
    unregister: (handle) => {
      if (handles.get(handle.device) === handle) handles.delete(handle.device)
    },
    lookup: (device) => Option.fromNullable(handles.get(device)),
    devices: () => [...handles.keys()]
  }
}

/**
 * `Hwmon` as a Layer.
 * @since 0.1.0
 */
export const HwmonLive = Layer.sync(Hwmon, makeHwmon)

/**
 * BAR0: the register window, a Devres of the binding.
 * @since 0.1.0
 */
export class Bar0 extends Context.Tag("@devscope/example-sensor/Bar0")<Bar0, Devres.Devres<Regs, "sensor">>() {}

const Bar0Live = Layer.effect(Bar0, Hardware.iomap(Sensor, SensorModel.registers, 0, { label: "BAR0" }))

/**
 * What a probe acquired, for tests and debugging.
 * @since 0.1.0
 */
export interface Probed {
  readonly token: Bound.Bound<"sensor">
  readonly bar: Devres.Devres<Regs, "sensor">
  readonly samples: Devres.Devres<Samples, "sensor">
  readonly irq: Devres.Devres<Irq.Registration, "sensor">
  readonly gate: Gate.Gate<"sensor">
  readonly handle: SensorHandle
}

/** @since 0.1.0 */
export interface Options {
  /** How often the sampling fiber reads `TEMP`. Default 10 ms. */
  readonly period?: Duration.DurationInput | undefined
  /** Samples kept in the ring. Default 16. */
  readonly capacity?: number | undefined
  /** Alert threshold, milli-degrees. Default 35 °C. */
  readonly threshold?: number | undefined
  /** Receives one line per notable driver event (remove, ...). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe. */
  readonly onProbe?: ((probed: Probed) => void) | undefined
}

/**
 * The sensor driver, matching any device compatible with "acme,temp".
 * @since 0.1.0
 */
export const driver = (options: Options = {}) => {
  const period = options.period ?? "10 millis"
  const capacity = options.capacity ?? 16
  const threshold = options.threshold ?? 35_000
  const log = options.log ?? (() => {})

  const probe = Layer.effectDiscard(Effect.gen(function*() {
    const token = yield* Sensor.Bound
    const bar0 = yield* Bar0
    const bar = bar0.access(token)
    const id = bar.read("ID")
    if (id !== SensorModel.ID_VALUE) {
      return yield* Effect.dieMessage(`not an acme,temp sensor (ID 0x${id.toString(16)})`)
    }

    const samples = yield* Devres.make(
      Sensor,
      { ring: new Array<number>(capacity).fill(0), capacity, next: 0, taken: 0, alerts: 0 } as Samples,
      { label: "samples" }
    )

    // Threshold interrupt: ack the alert (W1C) and count it.
    const irq = yield* Irq.request(
      Sensor,
      0,
      Effect.sync((): Irq.Return => {
        const status = bar.read("STATUS")
        if (status === ALL_ONES || (status & STATUS_ALERT) === 0) return "none"
        bar.write("STATUS", STATUS_ALERT)
        samples.access(token).alerts++
        return "handled"
      })
    )

    // The sampling fiber: a binding fiber, interrupted by the unbind before anything is
    // released, so it uses `access` with no check of its own.
    const sampleOnce = Effect.sync(() => {
      const temp = bar.read("TEMP")
      if (temp === ALL_ONES) return // the device is gone; the unbind is coming
      const s = samples.access(token)
      s.ring[s.next] = temp
      s.next = (s.next + 1) % s.capacity
      s.taken++
    })
    yield* Bound.fork(token, Effect.forever(Effect.zipRight(Effect.sleep(period), sampleOnce)))

    // User calls go through the gate: closed at unbind step 2, before remove and teardown.
    const gate = yield* Gate.make(Sensor, { name: `${token.device.name} hwmon` })

    // Taken at probe: code outside the binding holds these and has no token.
    const barDevres = bar0
    const handle: SensorHandle = {
      device: token.device.name,
      readTemperature: () =>
        gate.enter((t) =>
          Effect.gen(function*() {
            // A sleepable section: it may span yields, the close waits for it.
            yield* Effect.yieldNow()
            const value = latest(samples.access(t))
            if (Option.isSome(value)) return value.value
            // Nothing sampled yet: read the register directly.
            const temp = barDevres.access(t).read("TEMP")
            if (temp === ALL_ONES) {
              return yield* Effect.fail(
                new DeviceError.DeviceGone({ device: t.device.name, driver: t.driver, gate: "hardware (all-ones)" })
              )
            }
            return temp
          })
        ),
      attribute: (name) => {
        switch (name) {
          case "temp1_input":
            return Option.flatMap(samples.tryAccess(), latest)
          case "temp1_alarms":
            return Option.map(samples.tryAccess(), (s) => s.alerts)
          case "samples":
            return Option.map(samples.tryAccess(), (s) => s.taken)
          case "temp1_max":
            // A register read outside the binding: valid until this code yields.
            return Option.filter(Option.map(barDevres.tryAccess(), (b) => b.read("THRESHOLD")), (v) => v !== ALL_ONES)
        }
      }
    }

    // Start the device once everything that handles its activity is in place...
    bar.write("STATUS", STATUS_ALERT)
    bar.write("THRESHOLD", threshold)
    bar.write("CTRL", CTRL_ENABLE | CTRL_IRQ_ENABLE)

    // ...and only then publish the handle in the hwmon class: users never see a device that
    // has not produced a reading yet.
    // The registration is a resource of the binding.
    const hwmon = yield* Hwmon
    yield* Devres.acquireRelease(
      Sensor,
      Effect.sync(() => hwmon.register(handle)),
      () => Effect.sync(() => hwmon.unregister(handle)),
      { label: "hwmon registration" }
    )

    options.onProbe?.({ token, bar: bar0, samples, irq, gate, handle })
  })).pipe(Layer.provideMerge(Bar0Live))

  return Driver.make(Sensor, {
    match: [{ compatible: "acme,temp" }],
    probe,
    // Step 3: the gate is closed, every resource is live. Quiesce the device unless it is gone.
    remove: () =>
      Effect.gen(function*() {
        const bar = (yield* Bar0).access(yield* Sensor.Bound)
        if (bar.read("CTRL") === ALL_ONES) {
          log("remove: device gone, skipping disable")
          return
        }
        bar.write("CTRL", 0)
        bar.write("STATUS", STATUS_ALERT)
        log("remove: device disabled")
      })
  })
}
