/**
 * B3, gates: a gate's read section against `Semaphore.withPermits(1)` (and a `TReentrantLock`
 * read lock), 1,000 sections back to back in one fiber per operation batch. Synchronous
 * sections (the body is one `Effect.sync`) and effectful ones (the body yields to the
 * scheduler, as a section waiting for I/O does).
 */
import { Effect, Layer, Scope, STM, TReentrantLock } from "effect"
import { Bus, Driver, Gate } from "@devscope/core"
import { measure, type Measured, ratio, sink, stepsOf, type Task } from "./harness.js"
import type { Row, Section } from "./report.js"

const SECTIONS = 1000
const Dev = Driver.brand("b3")

const liveGate = (scope: Scope.Scope): Gate.Gate<"b3"> =>
  Effect.runSync(Effect.gen(function*() {
    let gate: Gate.Gate<"b3"> | undefined
    const bus = yield* Bus.make()
    yield* bus.registerDriver(Driver.make(Dev, {
      match: [{ vendor: 3 }],
      probe: () => Layer.effectDiscard(Effect.map(Gate.make(Dev), (g) => void (gate = g)))
    }))
    yield* bus.addDevice({ name: "b3", ids: { vendor: 3 } })
    return gate!
  }).pipe(Scope.extend(scope)))

const speedUps = (measured: ReadonlyArray<Measured>, bodyOnly: Measured): Array<Row> => {
  const base = measured[0]!
  const rows: Array<Row> = measured.map((m) => ({
    name: m.name,
    figure: m.ns / 1000,
    baseline: base.ns / 1000,
    ratio: 1 / ratio(m, base)
  }))
  // What the section itself costs, without its body.
  const gate = measured.find((m) => m.name === "gate.enter")!
  const overhead = (m: Measured) => m.rounds.map((ns, i) => Math.max(ns - bodyOnly.rounds[i]!, 1e-3))
  const gateOverhead = overhead(gate)
  const baseOverhead = overhead(base)
  const perRound = gateOverhead.map((g, i) => baseOverhead[i]! / g).sort((a, b) => a - b)
  rows.push({
    name: "gate.enter, the guard's own cost (time minus the body alone; baseline likewise)",
    figure: gateOverhead.sort((a, b) => a - b)[gateOverhead.length >> 1]! / 1000,
    baseline: baseOverhead.sort((a, b) => a - b)[baseOverhead.length >> 1]! / 1000,
    ratio: perRound[perRound.length >> 1]!,
    target: { op: ">=", value: 3 }
  })
  return rows
}

const suite = async (
  body: Effect.Effect<unknown>,
  async: boolean,
  gate: Gate.Gate<"b3">
): Promise<Array<Row>> => {
  const semaphore = Effect.runSync(Effect.makeSemaphore(1))
  const rwLock = Effect.runSync(STM.commit(TReentrantLock.make))
  const run = (section: Effect.Effect<unknown, unknown>) => {
    const program = Effect.repeatN(section, SECTIONS - 1)
    return async ? () => Effect.runPromise(program) : () => Effect.runSync(program)
  }
  const task = (name: string, section: Effect.Effect<unknown, unknown>): Task => ({ name, ops: SECTIONS, async, run: run(section) })
  const tasks = [
    task("Semaphore.withPermits(1) (baseline)", semaphore.withPermits(1)(body)),
    task("gate.enter", gate.enter(() => body)),
    task("Gate.enterWith (token in context)", Gate.enterWith(gate, body)),
    task("TReentrantLock.withReadLock", TReentrantLock.withReadLock(rwLock)(body)),
    task("no section (the body alone)", body)
  ]
  const measured = await measure(tasks, { rounds: 7, timeMs: 250 })
  return speedUps(measured.slice(0, 4), measured[4]!).concat([{
    name: measured[4]!.name,
    figure: measured[4]!.ns / 1000,
    baseline: measured[0]!.ns / 1000,
    ratio: 1 / ratio(measured[4]!, measured[0]!)
  }])
}

export const run = async (): Promise<Section> => {
  const scope = Effect.runSync(Scope.make())
  const gate = liveGate(scope)
  const semaphore = Effect.runSync(Effect.makeSemaphore(1))
  const one = Effect.sync(() => sink.value++)
  const stepsOfBody = await stepsOf(one)
  const guardSteps = {
    semaphore: (await stepsOf(semaphore.withPermits(1)(one))) - stepsOfBody,
    gate: (await stepsOf(gate.enter(() => one))) - stepsOfBody
  }
  const synchronous = await suite(Effect.sync(() => sink.value++), false, gate)
  const effectful = await suite(Effect.zipRight(Effect.yieldNow(), Effect.sync(() => sink.value++)), true, gate)
  await Effect.runPromise(Scope.close(scope, Effect.void as never))
  return {
    id: "b3",
    title: "B3: gate sections",
    intro: `
\`gate.enter(f)\` costs a counter change and a slot for the section's fiber (for nesting and
for interrupting stragglers at the deadline), against \`Semaphore.withPermits(1)\` and a
\`TReentrantLock\` read lock, each running ${SECTIONS.toLocaleString("en-US")} sections back to back in one fiber.
Synchronous sections: the body is one \`Effect.sync\` (run with \`runSync\`). Effectful
sections: the body yields to the scheduler first (\`Effect.yieldNow\`, as a section that
waits for I/O), run with \`runPromise\`; the yield costs the same under every guard, so the
speed-up on the whole section is smaller there, and the overhead row shows the guard alone.
The ratio column is the speed-up over the semaphore (higher is better).

Target: at least 3x, on the guard's own cost: the row that subtracts, round by round, the time
of the body run alone (the same for every guard). The whole-section rows above it include the
body; with an effectful body (a scheduler hop, about a microsecond) no guard can be 3x faster
than the semaphore on the whole section. Run-loop steps of the guard alone (counted by an
op-supervising supervisor, independent of the machine's load): \`Semaphore.withPermits(1)\`
${guardSteps.semaphore.toFixed(0)}, \`gate.enter\` ${guardSteps.gate.toFixed(0)}.`,
    tables: [
      { title: "B3: synchronous sections", unit: "µs/section", ratioLabel: "speed-up", rows: synchronous, digits: 3 },
      { title: "B3: effectful sections (body yields)", unit: "µs/section", ratioLabel: "speed-up", rows: effectful, digits: 3 }
    ]
  }
}
