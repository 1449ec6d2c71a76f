/**
 * `devscope list`: what a scenario can name (device kinds, drivers, planted bugs, fault kinds,
 * timeline actions), each with its parameters, derived from the scenario schema (through its
 * JSON Schema) and the kinds table, so it cannot drift from what `run` accepts.
 * @internal
 */
import * as Scenario from "../Scenario.js"
import { kinds } from "./kinds.js"

/** A field of a device, fault rule or timeline action. */
export interface Param {
  readonly name: string
  readonly required: boolean
  /** Its type in words: `time`, `name`, `integer 1..100000`, `"dma-alloc" | "dma-map" | "irq"`. */
  readonly type: string
}

export interface Catalogue {
  /** The format of this document (`devscope list --json`). */
  readonly version: 1
  readonly deviceKinds: ReadonlyArray<{
    readonly kind: Scenario.Kind
    readonly bus: "pci" | "platform"
    readonly irqLines: number
    /** QEMU's model of it (`run --backend qemu`), or `null` if QEMU has none. */
    readonly qemu: string | null
    readonly params: ReadonlyArray<Param>
  }>
  readonly drivers: ReadonlyArray<{
    readonly kind: Scenario.Kind
    readonly bus: "pci" | "platform"
    /** Its name on the bus. */
    readonly name: string
    readonly bugs: ReadonlyArray<Scenario.Bug>
  }>
  readonly bugs: ReadonlyArray<{
    readonly bug: Scenario.Bug
    readonly drivers: ReadonlyArray<Scenario.Kind>
    readonly effect: string
  }>
  readonly faults: ReadonlyArray<{
    readonly kind: Scenario.FaultRule["kind"]
    readonly effect: string
    readonly params: ReadonlyArray<Param>
  }>
  readonly actions: ReadonlyArray<{
    readonly action: Scenario.TimelineEvent["action"]
    readonly effect: string
    readonly params: ReadonlyArray<Param>
  }>
}

/** What each planted bug does (a record over `Bug`: a new bug without a line is a type error). */
const bugEffects: { readonly [B in Scenario.Bug]: string } = {
  "free-dma-before-stop":
    "remove frees the driver's DMA memory before stopping the device, which still reads and writes it: G5 IOMMU faults " +
    "(the block driver's interrupt handler then also dies with UseAfterUnbind, a driver failure)",
  "hang-in-remove":
    "remove does its work, then waits for an interrupt that never comes: the unbind hangs (G4, reported with its wait site) " +
    "until the bus cuts remove at its deadline"
}

const faultEffects: { readonly [K in Scenario.FaultRule["kind"]]: string } = {
  "fail-nth": "the n-th request of that kind (counted from 1, per device if device is given, else across the simulator) is refused",
  "delay-completions": "device completions take `by` longer (with probability, default 1)",
  "drop-completions": "device completions never happen (with probability, default 1)",
  "irq-storm": "from `at` (default 0 after plug) the device raises interrupt `line` `count` times, one every `interval` (default 1 µs)",
  "all-ones-reads":
    "from `at` on the device's link is down: reads return all-ones, writes are dropped, DMA and interrupts stop; it stays on its bus"
}

const actionEffects: { readonly [A in Scenario.TimelineEvent["action"]]: string } = {
  plug: "the device appears on its bus; its driver binds",
  unplug: "orderly removal: the device is unbound, then removed",
  surprise: "surprise removal: the device is gone at once, then unbound",
  unbind: "the device's driver is unbound (sysfs-like); the device stays",
  bind: "the device is bound to its driver again",
  unload: "the driver is unregistered, unbinding its devices",
  load: "the driver is registered again, binding its devices"
}

/** A JSON Schema fragment, read loosely. */
type Json = { readonly [key: string]: unknown }

/** The JSON Schema of the scenario format, and a resolver of its `$ref`s. */
const schema = () => {
  const root = Scenario.jsonSchema() as unknown as Json & { readonly $defs?: Readonly<Record<string, Json>> }
  const resolve = (s: Json): Json => {
    const ref = s.$ref
    if (typeof ref !== "string") return s
    const target = root.$defs?.[ref.replace("#/$defs/", "")]
    return target === undefined ? s : { ...resolve(target), ...s, $ref: undefined }
  }
  const property = (s: Json, name: string): Json => resolve(((s.properties ?? {}) as Record<string, Json>)[name]!)
  return { root, resolve, property }
}

const range = (s: Json): string => {
  const lo = typeof s.minimum === "number" ? s.minimum : typeof s.exclusiveMinimum === "number" ? s.exclusiveMinimum : undefined
  const strict = typeof s.minimum !== "number" && typeof s.exclusiveMinimum === "number"
  const hi = typeof s.maximum === "number" ? s.maximum : undefined
  if (lo !== undefined && hi !== undefined) return strict && s.type === "integer" ? ` ${lo + 1}..${hi}` : ` ${lo}..${hi}`
  if (lo !== undefined) return strict ? (s.type === "integer" ? ` ≥ ${lo + 1}` : ` > ${lo}`) : ` ≥ ${lo}`
  if (hi !== undefined) return ` ≤ ${hi}`
  return ""
}

/** A JSON Schema fragment in words. */
const typeOf = (resolve: (s: Json) => Json, fragment: Json): string => {
  const s = resolve(fragment)
  if (Array.isArray(s.anyOf)) {
    const members = (s.anyOf as Array<Json>).map(resolve)
    const number = members.find((m) => m.type === "number")
    if (number !== undefined && members.some((m) => m.type === "string" && typeof m.pattern === "string")) {
      const bound = range(number) === " ≥ 0" ? "" : `${range(number)} ms`
      return `time${bound} (ms or "150 millis")`
    }
    return members.map((m) => typeOf(resolve, m)).join(" | ")
  }
  if (Array.isArray(s.enum)) return (s.enum as Array<unknown>).map((v) => JSON.stringify(v)).join(" | ")
  if (Array.isArray(s.allOf) && s.type === undefined) return typeOf(resolve, { ...(s.allOf[0] as Json), ...s, allOf: undefined })
  switch (s.type) {
    case "string":
      return typeof s.pattern === "string" ? "name" : "string"
    case "integer":
    case "number":
      return `${s.type}${range(s)}`
    case "boolean":
      return "boolean"
    default:
      return "value"
  }
}

/** The members of a union of objects told apart by `tag`, each with its other fields. */
const members = (union: Json, tag: string, resolve: (s: Json) => Json) =>
  ((union.anyOf ?? [union]) as Array<Json>).map(resolve).map((member) => {
    const properties = (member.properties ?? {}) as Record<string, Json>
    const required = new Set((member.required ?? []) as Array<string>)
    const value = (resolve(properties[tag]!).enum as Array<string>)[0]!
    const params = Object.entries(properties).filter(([name]) => name !== tag).map(([name, p]): Param => ({
      name,
      required: required.has(name),
      type: typeOf(resolve, p)
    }))
    return { value, params }
  })

/** Everything `devscope list` shows. */
export const catalogue = (): Catalogue => {
  const { property, resolve, root } = schema()
  const items = (name: string) => resolve(property(root, name).items as Json)
  const devices = members(items("devices"), "kind", resolve)
  const kindNames = Object.keys(kinds) as Array<Scenario.Kind>
  const bugs = Object.keys(bugEffects) as Array<Scenario.Bug>
  return {
    version: 1,
    deviceKinds: kindNames.map((kind) => ({
      kind,
      bus: kinds[kind].bus,
      irqLines: kinds[kind].irqLines,
      qemu: kinds[kind].qemu ?? null,
      params: devices.find((d) => d.value === kind)?.params ?? []
    })),
    drivers: kindNames.map((kind) => ({ kind, bus: kinds[kind].bus, name: kinds[kind].driver, bugs: kinds[kind].bugs })),
    bugs: bugs.map((bug) => ({
      bug,
      drivers: kindNames.filter((kind) => (kinds[kind].bugs as ReadonlyArray<Scenario.Bug>).includes(bug)),
      effect: bugEffects[bug]
    })),
    faults: members(items("faults"), "kind", resolve).map(({ params, value }) => ({
      kind: value as Scenario.FaultRule["kind"],
      effect: faultEffects[value as Scenario.FaultRule["kind"]],
      params
    })),
    actions: members(items("timeline"), "action", resolve).map(({ params, value }) => ({
      action: value as Scenario.TimelineEvent["action"],
      effect: actionEffects[value as Scenario.TimelineEvent["action"]],
      params
    }))
  }
}

const params = (list: ReadonlyArray<Param>) => list.map((p) => `${p.name}${p.required ? "" : "?"}: ${p.type}`).join(", ")

/** The catalogue as text, one section per table. */
export const catalogueText = (c: Catalogue = catalogue()): string => {
  const width = (names: ReadonlyArray<string>) => Math.max(...names.map((n) => n.length)) + 2
  const section = (title: string, rows: ReadonlyArray<readonly [string, ReadonlyArray<string>]>) => {
    const w = width(rows.map(([name]) => name))
    return [title, ...rows.flatMap(([name, lines]) => lines.map((line, i) => `  ${(i === 0 ? name : "").padEnd(w)}${line}`))].join("\n")
  }
  return [
    section(
      "Device kinds (devices[].kind), with their fields (? = optional):",
      c.deviceKinds.map((k) => [k.kind, [
        `${k.bus} bus, ${
          k.irqLines === 0
            ? "no interrupt line (no irq-storm)"
            : `${k.irqLines} interrupt line${k.irqLines === 1 ? "" : "s"} (irq-storm line 0${k.irqLines > 1 ? `..${k.irqLines - 1}` : ""})`
        }; ${k.qemu === null ? "simulator only" : `also on QEMU (--backend qemu: its ${k.qemu})`}`,
        params(k.params)
      ]])
    ),
    section(
      "Drivers (drivers[].kind), with the bugs they can have planted (drivers[].bug):",
      c.drivers.map((d) => [d.kind, [`registers on the ${d.bus} bus as "${d.name}"; bugs: ${d.bugs.join(", ") || "none"}`]])
    ),
    section(
      "Planted bugs (drivers[].bug):",
      c.bugs.map((b) => [b.bug, [`drivers: ${b.drivers.join(", ")}`, b.effect]])
    ),
    section(
      "Fault kinds (faults[].kind), with their fields:",
      c.faults.map((f) => [f.kind, [f.effect, params(f.params)]])
    ),
    section(
      "Timeline actions (timeline[].action), with their fields:",
      c.actions.map((a) => [a.action, [a.effect, params(a.params)]])
    )
  ].join("\n\n")
}
