/**
 * B1, bound access. B1a: `devres.access(token)` over 1,024 Devres of one live binding (so no
 * read is hoisted out of the loop) against a direct property read, with the other ways to
 * guard a value alongside. B1b: typed register reads through `Mmio`, polled on 16 devices in
 * turn, against a raw `Uint32Array` read.
 */
import { Effect, Layer, Option, Scope } from "effect"
import { type Bound, Bus, Devres, Driver, Mmio, RegisterMap } from "@devscope/core"
import { RegisterFile } from "@devscope/sim"
import { measure, type Measured, type Options, ratio, sink, type Task } from "./harness.js"
import type { Row, Section, Target } from "./report.js"

const N = 1024
const Edu = Driver.brand("edu")

const liveDevres = (scope: Scope.Scope) =>
  Effect.runSync(Effect.gen(function*() {
    let out: { devres: Array<Devres.Devres<number, "edu">>; token: Bound.Bound<"edu"> } | undefined
    const bus = yield* Bus.make()
    yield* bus.registerDriver(Driver.make(Edu, {
      match: [{ vendor: 1 }],
      probe: () =>
        Layer.effectDiscard(Effect.gen(function*() {
          const devres: Array<Devres.Devres<number, "edu">> = []
          for (let i = 0; i < N; i++) devres.push(yield* Devres.make(Edu, i, { label: `r${i}` }))
          out = { devres, token: yield* Edu.Bound }
        }))
    }))
    yield* bus.addDevice({ name: "edu0", ids: { vendor: 1 } })
    return out!
  }).pipe(Scope.extend(scope)))

const rows = (
  measured: ReadonlyArray<Measured>,
  extra: Record<string, { readonly target?: Target; readonly expected?: string }>
): Array<Row> => {
  const base = measured[0]!
  return measured.map((m) => ({
    name: m.name,
    figure: m.ns,
    baseline: base.ns,
    ratio: ratio(m, base),
    target: extra[m.name]?.target,
    expected: extra[m.name]?.expected
  }))
}

const b1a = async (options: Options): Promise<Array<Row>> => {
  const scope = Effect.runSync(Scope.make())
  const { devres, token } = liveDevres(scope)
  const plain = Array.from({ length: N }, (_, i) => ({ value: i }))
  const flagged = Array.from({ length: N }, (_, i) => {
    let revoked = false
    return { get: () => (revoked ? undefined : i), revoke: () => (revoked = true) }
  })
  const proxies = Array.from({ length: N }, (_, i) => Proxy.revocable({ value: i }, {}).proxy)
  const weak = Array.from({ length: N }, (_, i) => new WeakRef(plain[i]!))
  const loop = (name: string, read: (i: number) => number): Task => ({
    name,
    ops: N,
    run: () => {
      let s = 0
      for (let i = 0; i < N; i++) s += read(i)
      sink.value += s
    }
  })
  // Each loop is written out, not built from `loop`, where inlining matters: a shared loop
  // body would see every reader and turn polymorphic.
  const tasks: Array<Task> = [
    {
      name: "direct property read (baseline)",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += plain[i]!.value
        sink.value += s
      }
    },
    {
      name: "devres.access(token)",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += devres[i]!.access(token)
        sink.value += s
      }
    },
    loop("devres.tryAccess() (Option)", (i) => Option.getOrElse(devres[i]!.tryAccess(), () => 0)),
    {
      name: "closure with a revoked flag",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += flagged[i]!.get() ?? 0
        sink.value += s
      }
    },
    {
      name: "Proxy.revocable",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += proxies[i]!.value
        sink.value += s
      }
    },
    {
      name: "WeakRef.deref",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += weak[i]!.deref()!.value
        sink.value += s
      }
    }
  ]
  const measured = await measure(tasks, options)
  await Effect.runPromise(Scope.close(scope, Effect.void as never))
  return rows(measured, {
    "devres.access(token)": { target: { op: "<=", value: 1.5 } },
    "Proxy.revocable": { expected: "about 16x" },
    "WeakRef.deref": { expected: "about 23x" }
  })
}

const Regs = RegisterMap.make("bench", 0x10, {
  ID: { offset: 0x0, access: "RO" },
  STATUS: { offset: 0x4, access: "RW" },
  CTRL: { offset: 0x8, access: "RW" }
})

const b1b = async (options: Options): Promise<Array<Row>> => {
  const DEVICES = 16
  const raws = Array.from({ length: DEVICES }, (_, i) => Uint32Array.of(0, i, 0, 0))
  const memory = Array.from({ length: DEVICES }, (_, i) => {
    const mmio = Mmio.unsafeMake(Regs, Mmio.memoryRegion(0x10))
    mmio.write("STATUS", i)
    return mmio
  })
  const simulated = Array.from({ length: DEVICES }, (_, i) => {
    const mmio = Mmio.unsafeMake(Regs, RegisterFile.make(Regs, { device: `bench${i}` }))
    mmio.write("STATUS", i)
    return mmio
  })
  const memoryStatus = memory.map((mmio) => mmio.register("STATUS"))
  const simulatedStatus = simulated.map((mmio) => mmio.register("STATUS"))
  const tasks: Array<Task> = [
    {
      name: "raw Uint32Array read (baseline)",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += raws[i & 15]![1]!
        sink.value += s
      }
    },
    {
      name: "status.read(), handle from mmio.register(\"STATUS\"), plain memory",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += memoryStatus[i & 15]!.read()
        sink.value += s
      }
    },
    {
      name: "mmio.read(\"STATUS\"), plain memory",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += memory[i & 15]!.read("STATUS")
        sink.value += s
      }
    },
    {
      name: "mmio.read32(4) (dynamic offset, checked), plain memory",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += memory[i & 15]!.read32(4)
        sink.value += s
      }
    },
    {
      name: "status.read(), simulated register file (sim, not the target)",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += simulatedStatus[i & 15]!.read()
        sink.value += s
      }
    },
    {
      name: "mmio.read(\"STATUS\"), simulated register file (sim, not the target)",
      ops: N,
      run: () => {
        let s = 0
        for (let i = 0; i < N; i++) s += simulated[i & 15]!.read("STATUS")
        sink.value += s
      }
    }
  ]
  return rows(await measure(tasks, options), {
    "status.read(), handle from mmio.register(\"STATUS\"), plain memory": { target: { op: "<=", value: 1.2 } },
    "mmio.read(\"STATUS\"), plain memory": { expected: "by name: a lookup per read" }
  })
}

export const run = async (): Promise<Section> => {
  const options: Options = { rounds: Number(process.env.BENCH_ROUNDS ?? 7), timeMs: 250 }
  const access = await b1a(options)
  const registers = await b1b(options)
  return {
    id: "b1",
    title: "B1: bound access and register reads",
    intro: `
B1a: each operation reads one of 1,024 distinct objects and sums the values, so no read is
hoisted out of the loop. \`devres.access(token)\` checks that the token belongs to the same
binding and that nothing was revoked with one identity compare (a live token's key is its
binding; revocation swaps it for a sentinel; a released Devres swaps its owner), so the live
path has one branch and no allocation. Target: at most 1.5x a direct property read.

B1b: a typed register read polled over 16 devices in turn, against a raw \`Uint32Array\` read
of the same word. \`mmio.register("STATUS")\` resolves the register once (at probe) into a
handle holding the region's typed array and the word index, so \`status.read()\` is one load;
revocation swaps the handle's region and class, so the live path has no check. The
simulated register file applies access semantics and tracing on every access (a callback per
access), so its rows are slower by design and carry no target. Target: at most 1.2x.`,
    tables: [
      {
        title: "B1a: bound access, 1,024 objects",
        unit: "ns/read",
        ratioLabel: "ratio",
        rows: access
      },
      {
        title: "B1b: register reads, 16 devices",
        unit: "ns/read",
        ratioLabel: "ratio",
        rows: registers
      }
    ]
  }
}
