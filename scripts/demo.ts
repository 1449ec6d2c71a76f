/**
 * `pnpm demo`: the core device model at work, with real time and real output.
 *
 * Until the simulator lands (issue 5: simulated NICs, block device and sensor under load),
 * this runs two devices of one driver through the whole lifecycle on a plain bus: probe with
 * resources and a worker fiber, a surprise removal, a stale token caught as a defect, and a
 * driver unload. It exits non-zero if a guarantee of DESIGN.md section 5 was broken.
 */
import { Context, Duration, Effect, Exit, Layer, Option, Queue, Schedule } from "effect"
import { Bound, Bus, DeviceError, Devres, Driver, Leak, Lifecycle } from "@devscope/core"

const Edu = Driver.brand("edu")

class Regs extends Context.Tag("demo/Regs")<Regs, Devres.Devres<Uint32Array, "edu">>() {}

const released: Array<string> = []
const stolen = new Map<string, { regs: Devres.Devres<Uint32Array, "edu">; token: Bound.Bound<"edu"> }>()

const RegsLive = Layer.effect(
  Regs,
  Devres.acquireRelease(
    Edu,
    Effect.sync(() => new Uint32Array(16)),
    () => Effect.sync(() => void released.push("BAR0")),
    { label: "BAR0" }
  )
)

// A worker that bumps a counter register every millisecond while the device is bound.
const Worker = Layer.effectDiscard(Effect.gen(function*() {
  const regs = yield* Regs
  const token = yield* Edu.Bound
  stolen.set(token.device.name, { regs, token })
  yield* Bound.fork(token, Effect.repeat(Effect.sync(() => regs.access(token)[0]!++), Schedule.spaced("1 millis")))
}))

const EduDriver = Driver.make(Edu, {
  match: [{ vendor: 0x1234, device: 0x11e8 }],
  probe: () => Worker.pipe(Layer.provideMerge(RegsLive)),
  remove: (device) => Effect.log(`edu: remove(${device.name}): stopping the device while registers are live`)
})

const describe = Lifecycle.LifecycleEvent.$match({
  DeviceAdded: (e) => `device ${e.device.name} added`,
  DriverRegistered: (e) => `driver ${e.driver} registered`,
  DriverUnregistered: (e) => `driver ${e.driver} unregistered`,
  Probing: (e) => `probing ${e.device.name} with ${e.driver}`,
  Bound: (e) => `${e.device.name} bound to ${e.driver}`,
  ProbeDeferred: (e) => `${e.device.name} deferred: ${e.reason}`,
  ProbeFailed: (e) => `${e.device.name} probe failed`,
  Unbinding: (e) => `${e.device.name} unbinding (${e.cause})`,
  Unbound: (e) =>
    `${e.device.name} unbound (${e.cause}): ${e.report.fibersInterrupted} fiber(s) stopped, ` +
    `released [${e.report.released.join(", ")}], ${e.report.leaks.length} leak(s)`,
  DeviceRemoved: (e) => `${e.device.name} removed (${e.cause})`,
  LeakDetected: (e) => `LEAK: ${Leak.format(e.leak)}`
})

const program = Effect.gen(function*() {
  const bus = yield* Bus.Bus
  const events = yield* bus.subscribe
  yield* Effect.fork(Effect.forever(Effect.flatMap(Queue.take(events), (e) => Effect.log(describe(e)))))

  yield* bus.registerDriver(EduDriver)
  yield* bus.addDevice({ name: "edu0", ids: { vendor: 0x1234, device: 0x11e8 } })
  yield* bus.addDevice({ name: "edu1", ids: { vendor: 0x1234, device: 0x11e8 } })
  yield* Effect.sleep("30 millis")

  const edu0 = stolen.get("edu0")!
  const before = edu0.regs.access(edu0.token)[0]!
  const surprise = yield* bus.removeDevice("edu0", { cause: "surprise" })
  const stale = yield* Effect.exit(Effect.sync(() => edu0.regs.access(edu0.token)))
  const defect = Exit.isFailure(stale) ? Option.getOrUndefined(Exit.causeOption(stale).pipe(Option.flatMap((c) =>
    Option.fromNullable(c._tag === "Die" ? c.defect : undefined)))) : undefined
  const staleCaught = defect instanceof DeviceError.UseAfterUnbind
  yield* Effect.log(
    staleCaught
      ? `stale access after surprise removal was caught: ${(defect as Error).message}`
      : "BROKEN: a stale access returned a value"
  )
  const tryAfter = Option.isNone(edu0.regs.tryAccess())

  const unload = yield* bus.unregisterDriver("edu")
  yield* Effect.sleep(Duration.millis(5))

  const reports = [surprise!, ...unload]
  console.log("\ndevice  cause     fibers stopped  released  release failures  leaks")
  for (const r of reports) {
    console.log(
      `${r.device.padEnd(7)} ${r.cause.padEnd(9)} ${String(r.fibersInterrupted).padStart(14)}  ` +
        `${r.released.join(",").padEnd(8)}  ${String(r.releaseFailures.length).padStart(16)}  ${r.leaks.length}`
    )
  }
  const leaks = yield* bus.leaks
  const broken = [
    [!staleCaught, "G1: a revoked resource was accessed"],
    [!tryAfter, "G1: tryAccess returned a value after unbind"],
    [released.length !== 2, `G2: expected 2 releases, saw ${released.length}`],
    [reports.some((r) => r.releaseFailures.length > 0), "G2: a release failed"],
    [leaks.length > 0, `G3: ${leaks.length} leak(s)`],
    [before === 0, "the worker fiber never ran"]
  ].filter(([bad]) => bad).map(([, what]) => what as string)
  console.log(`\nworker ticks on edu0 before removal: ${before}`)
  console.log(broken.length === 0 ? "all guarantees held" : `BROKEN:\n  ${broken.join("\n  ")}`)
  console.log("(the simulator demo with NICs, a block device and a sensor under load arrives with issue 5)")
  return broken.length
})

Effect.runPromise(program.pipe(Effect.provide(Bus.layer({ name: "pci" })), Effect.scoped)).then(
  (broken) => {
    process.exitCode = broken === 0 ? 0 : 1
  },
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
