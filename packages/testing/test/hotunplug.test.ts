/**
 * The hot-unplug matrix of IGT's `core_hotunplug` (the DRM test suite's standard), applied to
 * every example driver: an orderly unbind and a surprise removal, each
 * - with a user handle still open (used after the removal: it fails with `DeviceGone`),
 * - with the handle closed only after a rebind ("late close": the old handle is used once the
 *   device is bound again; it must fail and never touch the new binding's resources),
 * - with load in flight (operations running when the device goes: each resolves, none lost);
 * then a health check: the device bound again, a fresh handle does I/O, and the oracle finds
 * no broken guarantee in the whole run.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Exit, Fiber, Option } from "effect"
import { Hardware } from "@devscope/core"
import { BlkModel, BlockDevices, driver as blkDriver, makeBlockDevices } from "@devscope/example-blk"
import { driver as nicDriver, makeNetDevices, NetDevices, NicModel } from "@devscope/example-nic"
import { driver as sensorDriver, Hwmon, makeHwmon, SensorModel } from "@devscope/example-sensor"
import { Simulator, VirtualTime } from "@devscope/sim"
import { Oracle } from "@devscope/testing"

/** One example driver, as the matrix drives it. */
interface Subject {
  readonly name: string
  readonly device: string
  readonly bus: "pci" | "platform"
  /** Registers the driver and plugs the device; returns how to reach its user handle. */
  readonly setup: (sim: Simulator.Service) => Effect.Effect<World>
}

interface World {
  /** Plugs the device again after a surprise removal. */
  readonly replug: Effect.Effect<void>
  /** The user handle of the bound device, if any. */
  readonly open: () => Option.Option<unknown>
  /** One operation through `handle`; `tag` tells this call's data apart. */
  readonly io: (handle: unknown, tag: number) => Effect.Effect<unknown, unknown>
  /** After a late close: the new binding still has what its own handle wrote, if it keeps data. */
  readonly check?: (handle: unknown, tag: number) => Effect.Effect<boolean, unknown>
}

const sensor: Subject = {
  name: "sensor",
  device: "temp0",
  bus: "platform",
  setup: (sim) =>
    Effect.gen(function*() {
      const hwmon = makeHwmon()
      const context = Context.make(Hwmon, hwmon).pipe(Context.add(Hardware.Hardware, sim.hardware))
      yield* Effect.orDie(Effect.provide(sim.platform.registerDriver(sensorDriver({ period: "1 millis" })), context))
      const plug = Effect.asVoid(Effect.orDie(sim.plug({ bus: "platform", name: "temp0", ids: SensorModel.ids, model: SensorModel.model() })))
      yield* plug
      return {
        replug: plug,
        open: () => hwmon.lookup("temp0"),
        io: (h) => (h as ReturnType<typeof hwmon.lookup> extends Option.Option<infer H> ? H : never).readTemperature()
      }
    })
}

const nic: Subject = {
  name: "nic",
  device: "eth0",
  bus: "pci",
  setup: (sim) =>
    Effect.gen(function*() {
      const net = makeNetDevices()
      const context = Context.make(Hardware.Hardware, sim.hardware).pipe(Context.add(NetDevices, net))
      yield* Effect.orDie(Effect.provide(sim.pci.registerDriver(nicDriver({ ringSize: 8 })), context))
      const cable = NicModel.cable()
      const plug = (name: string, port: 0 | 1) =>
        Effect.asVoid(Effect.orDie(sim.plug({ bus: "pci", name, ids: NicModel.ids, model: NicModel.model({ cable, port }) })))
      yield* plug("eth0", 0)
      yield* plug("eth1", 1)
      type Net = ReturnType<typeof net.lookup> extends Option.Option<infer H> ? H : never
      return {
        replug: plug("eth0", 0),
        open: () => net.lookup("eth0"),
        io: (h, tag) => (h as Net).send(new Uint8Array(64).fill(tag & 0xff))
      }
    })
}

const blk: Subject = {
  name: "blk",
  device: "disk0",
  bus: "pci",
  setup: (sim) =>
    Effect.gen(function*() {
      const disks = makeBlockDevices()
      const context = Context.make(Hardware.Hardware, sim.hardware).pipe(Context.add(BlockDevices, disks))
      yield* Effect.orDie(Effect.provide(sim.pci.registerDriver(blkDriver({ queueDepth: 4 })), context))
      const store = BlkModel.store(64)
      const plug = Effect.asVoid(Effect.orDie(sim.plug({ bus: "pci", name: "disk0", ids: BlkModel.ids, model: BlkModel.model({ store }) })))
      yield* plug
      type Disk = ReturnType<typeof disks.lookup> extends Option.Option<infer H> ? H : never
      return {
        replug: plug,
        open: () => disks.lookup("disk0"),
        io: (h, tag) => (h as Disk).write(tag % 8, new Uint8Array(512).fill(tag & 0xff)),
        // The sector the new binding's handle wrote still holds its data, not the old one's.
        check: (h, tag) => Effect.map((h as Disk).read(tag % 8, 1), (data) => data[0] === (tag & 0xff))
      }
    })
}

type Removal = "unbind" | "surprise"
type Situation = "open handle" | "late close" | "load"

const remove = (sim: Simulator.Service, subject: Subject, removal: Removal) =>
  removal === "surprise"
    ? Effect.asVoid(Effect.orDie(sim.surpriseRemove(subject.device)))
    : Effect.asVoid(Effect.orDie(sim[subject.bus].unbind(subject.device)))

const rebind = (sim: Simulator.Service, subject: Subject, world: World, removal: Removal) =>
  removal === "surprise" ? world.replug : Effect.orDie(sim[subject.bus].bind(subject.device))

const isGone = (result: Either.Either<unknown, unknown>) =>
  Either.isLeft(result) && typeof result.left === "object" && result.left !== null &&
  (result.left as { _tag?: unknown })._tag === "DeviceGone"

/** One cell of the matrix; returns what the oracle and the checks found. */
const cell = (subject: Subject, removal: Removal, situation: Situation) =>
  Effect.gen(function*() {
    const oracle = Oracle.make()
    const problems: Array<string> = []
    let sim: Simulator.Service | undefined
    const outcome = yield* VirtualTime.run(Effect.scoped(Effect.gen(function*() {
      const s = yield* Simulator.make({ seed: 9, onLifecycle: oracle.onLifecycle })
      sim = s
      const world = yield* subject.setup(s)
      const old = Option.getOrThrow(world.open())
      // Works before the removal.
      const first = yield* Effect.either(world.io(old, 1))
      if (Either.isLeft(first)) problems.push(`I/O before the removal failed: ${String(first.left)}`)
      let load: Fiber.RuntimeFiber<ReadonlyArray<Either.Either<unknown, unknown>>> | undefined
      if (situation === "load") {
        const loop = (n: number) =>
          Effect.forEach(Array.from({ length: 20 }, (_, i) => n * 100 + i), (tag) => Effect.either(world.io(old, tag)))
        load = yield* Effect.fork(Effect.map(Effect.all([loop(1), loop(2), loop(3)], { concurrency: "unbounded" }), (r) => r.flat()))
        yield* Effect.sleep("200 micros")
      }
      yield* remove(s, subject, removal)
      if (situation === "open handle") {
        const after = yield* Effect.either(world.io(old, 2))
        if (!isGone(after)) problems.push(`the open handle after the removal: ${String(Either.isLeft(after) ? after.left : "succeeded")}`)
      }
      if (load !== undefined) {
        const results = yield* Fiber.join(load)
        const bad = results.filter((r) => Either.isLeft(r) && !isGone(r))
        if (bad.length > 0) problems.push(`${bad.length} operation(s) in flight ended neither done nor DeviceGone`)
      }
      yield* rebind(s, subject, world, removal)
      const fresh = world.open()
      if (Option.isNone(fresh) || fresh.value === old) {
        problems.push("no fresh handle after the rebind")
        return
      }
      const NEW_TAG = 5
      const own = yield* Effect.either(world.io(fresh.value, NEW_TAG))
      if (Either.isLeft(own)) problems.push(`health check: I/O through the fresh handle failed: ${String(own.left)}`)
      if (situation === "late close") {
        // The old handle, used (closed) only now: it fails, and touches nothing of the new binding.
        const late = yield* Effect.either(world.io(old, NEW_TAG + 8))
        if (!isGone(late)) problems.push(`the late close reached something: ${String(Either.isLeft(late) ? late.left : "succeeded")}`)
        if (world.check !== undefined && !(yield* Effect.orDie(world.check(fresh.value, NEW_TAG)))) {
          problems.push("the late close changed the new binding's data")
        }
      }
      const again = yield* Effect.either(world.io(fresh.value, NEW_TAG + 1))
      if (Either.isLeft(again)) problems.push(`health check: the fresh handle stopped working: ${String(again.left)}`)
    })), { until: 60_000 })
    const verdict = oracle.judge(sim!, outcome._tag)
    if (outcome._tag !== "Done" || (outcome.exit !== undefined && Exit.isFailure(outcome.exit))) {
      problems.push(`the run ended ${outcome._tag}`)
    }
    return { problems, violations: verdict.violations.map((v) => `${v.guarantee} ${v.device}: ${v.message}`) }
  })

const removals: ReadonlyArray<Removal> = ["unbind", "surprise"]
const situations: ReadonlyArray<Situation> = ["open handle", "late close", "load"]

describe("core_hotunplug matrix on every example driver", () => {
  for (const subject of [sensor, nic, blk]) {
    for (const removal of removals) {
      for (const situation of situations) {
        it.effect(`${subject.name}: ${removal} with ${situation}, then a health check`, () =>
          Effect.gen(function*() {
            const found = yield* cell(subject, removal, situation)
            expect(found.problems).toEqual([])
            expect(found.violations).toEqual([])
          }), 120_000)
      }
    }
  }
})
