import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import type { HwmonRegistry, SensorHandle } from "@devscope/example-sensor"
import { VirtualTime } from "@devscope/sim"
import { Oracle } from "@devscope/testing"
import type { Violation } from "../src/internal/record.js"
import * as Workloads from "../src/internal/workloads.js"

/**
 * Runs the sensor load against one handle for 10 ms, ends its binding (the registry drops it,
 * the Unbound count goes up), runs 10 ms more, and returns what the load reported.
 */
const sensorRun = (attribute: (live: boolean) => Option.Option<number>) =>
  Effect.gen(function*() {
    let live = true
    const handle: SensorHandle = {
      device: "temp0",
      readTemperature: () => Effect.succeed(30_000),
      attribute: () => attribute(live)
    }
    const registry: HwmonRegistry = {
      register: () => {},
      unregister: () => {},
      lookup: () => (live ? Option.some(handle) : Option.none()),
      devices: () => (live ? ["temp0"] : [])
    }
    const ops = Oracle.makeOps()
    const violations: Array<Violation> = []
    const context: Workloads.LoadContext = {
      ops,
      busy: new Workloads.Busy(),
      bindingsEnded: () => (live ? 0 : 1),
      violation: (v) => void violations.push(v)
    }
    const outcome = yield* VirtualTime.run(Effect.gen(function*() {
      const load = yield* Effect.fork(Workloads.sensorLoad(context, registry, "temp0", 3, { readers: 2, interval: 1 }))
      yield* Effect.sleep(10)
      live = false
      yield* Effect.sleep(10)
      ops.stopping = true
      yield* Fiber.join(load)
    }))
    expect(outcome._tag).toBe("Done")
    return { violations, ops: ops.of("temp0") }
  })

describe("the sensor load", () => {
  it.effect("an attribute read outside the binding that returns a value after the binding ended breaks G1", () =>
    Effect.gen(function*() {
      // A handle whose tryAccess never revokes: a stale value after unbind.
      const stale = yield* sensorRun(() => Option.some(31_000))
      expect(stale.violations.length).toBeGreaterThan(0)
      expect(stale.violations[0]).toEqual({
        guarantee: "G1",
        device: "temp0",
        message: expect.stringMatching(/^attribute temp1_input read outside the binding returned 31000 after the binding had ended/)
      })
      // A correct handle (None once the binding ended) breaks nothing, and its values were checked.
      const correct = yield* sensorRun((live) => (live ? Option.some(31_000) : Option.none()))
      expect(correct.violations).toEqual([])
      expect(correct.ops.corrupt).toBe(0)
      const outOfRange = yield* sensorRun((live) => (live ? Option.some(99_000) : Option.none()))
      expect(outOfRange.ops.problems).toContain("attribute temp1_input 99000 out of the model's range")
    }))

  it("pauses are random around the interval (no lockstep), bounded", () => {
    const rand = Workloads.random(1)
    const pauses = Array.from({ length: 2_000 }, () => Workloads.pauseMillis(0.1, rand))
    const mean = pauses.reduce((a, b) => a + b, 0) / pauses.length
    expect(mean).toBeGreaterThan(0.08)
    expect(mean).toBeLessThan(0.12)
    expect(Math.max(...pauses)).toBeLessThanOrEqual(0.5)
    expect(new Set(pauses.map((p) => p.toFixed(4))).size).toBeGreaterThan(1_000)
  })
})
