/**
 * `devscope list`: the catalogue is derived from the scenario schema and the kinds table,
 * checked here against the effect/Schema definitions themselves (their AST), not against a
 * hand-written list.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, SchemaAST } from "effect"
import { Scenario } from "@devscope/cli"
import { catalogue, catalogueText } from "../src/internal/list.js"

/** The struct members of a union schema: each one's tag value and its fields (name, required). */
const structs = (union: SchemaAST.AST, tag: string) =>
  (SchemaAST.isUnion(union) ? union.types : [union]).map((member) => {
    let ast = member
    while (SchemaAST.isRefinement(ast)) ast = ast.from
    if (!SchemaAST.isTypeLiteral(ast)) throw new Error(`not a struct: ${ast._tag}`)
    const tagField = ast.propertySignatures.find((p) => p.name === tag)!
    const literal = tagField.type as SchemaAST.Literal
    return {
      value: literal.literal as string,
      fields: ast.propertySignatures.filter((p) => p.name !== tag).map((p) => ({ name: String(p.name), required: !p.isOptional }))
    }
  })

const encoded = (schema: { readonly ast: SchemaAST.AST }) => SchemaAST.encodedAST(schema.ast)

describe("devscope list", () => {
  it("device kinds and drivers are the kinds table's, with each kind's fields from its schema", () => {
    const c = catalogue()
    expect(c.version).toBe(1)
    const kinds = Object.keys(Scenario.kinds) as Array<Scenario.Kind>
    expect(c.deviceKinds.map((k) => k.kind)).toEqual(kinds)
    expect(c.drivers.map((d) => d.kind)).toEqual(kinds)
    const devices = structs(encoded(Scenario.DeviceSpec), "kind")
    for (const k of c.deviceKinds) {
      expect(k.bus).toBe(Scenario.kinds[k.kind].bus)
      expect(k.irqLines).toBe(Scenario.kinds[k.kind].irqLines)
      expect(k.params.map((p) => ({ name: p.name, required: p.required }))).toEqual(devices.find((d) => d.value === k.kind)!.fields)
    }
    for (const d of c.drivers) {
      expect(d.bus).toBe(Scenario.kinds[d.kind].bus)
      expect(d.bugs).toEqual(Scenario.kinds[d.kind].bugs)
    }
  })

  it("planted bugs are the DriverSpec schema's, each with what it does and the drivers that have it", () => {
    const c = catalogue()
    let driver = Scenario.DriverSpec.ast
    while (SchemaAST.isRefinement(driver)) driver = driver.from
    const bugField = (driver as SchemaAST.TypeLiteral).propertySignatures.find((p) => p.name === "bug")!
    const literals = (bugField.type as SchemaAST.Union).types.map((t) => (t as SchemaAST.Literal).literal)
    expect(literals.length).toBeGreaterThanOrEqual(2)
    expect(c.bugs.map((b) => b.bug).sort()).toEqual([...literals].sort())
    for (const b of c.bugs) {
      expect(b.effect.length, b.bug).toBeGreaterThan(40)
      const having = (Object.keys(Scenario.kinds) as Array<Scenario.Kind>).filter((k) => (Scenario.kinds[k].bugs as ReadonlyArray<string>).includes(b.bug))
      expect(b.drivers).toEqual(having)
      // What the catalogue says a driver can have, a scenario can plant.
      for (const kind of b.drivers) {
        const ok = Scenario.decode({
          name: "x",
          duration: 5,
          devices: [{ name: "d0", kind }],
          drivers: [{ kind, bug: b.bug }]
        }, "x")
        expect(Either.isRight(ok), `${kind} ${b.bug}`).toBe(true)
      }
    }
  })

  it("fault kinds and timeline actions are the schema's union members, with their fields", () => {
    const c = catalogue()
    const faults = structs(encoded(Scenario.FaultRule), "kind")
    expect(c.faults.map((f) => f.kind)).toEqual(faults.map((f) => f.value))
    for (const f of c.faults) {
      expect(f.params.map((p) => ({ name: p.name, required: p.required }))).toEqual(faults.find((x) => x.value === f.kind)!.fields)
      expect(f.effect.length).toBeGreaterThan(20)
    }
    const actions = structs(encoded(Scenario.TimelineEvent), "action")
    expect(c.actions.map((a) => a.action)).toEqual(actions.map((a) => a.value))
    for (const a of c.actions) {
      expect(a.params.map((p) => ({ name: p.name, required: p.required }))).toEqual(actions.find((x) => x.value === a.action)!.fields)
    }
  })

  it("parameter types in words: times, names, literals, ranges", () => {
    const c = catalogue()
    const param = (kind: string, name: string) => c.faults.find((f) => f.kind === kind)!.params.find((p) => p.name === name)!.type
    expect(param("fail-nth", "request")).toBe(`"dma-alloc" | "dma-map" | "irq"`)
    expect(param("fail-nth", "n")).toBe("integer ≥ 1")
    expect(param("fail-nth", "device")).toBe("name")
    expect(param("irq-storm", "count")).toBe("integer 1..100000")
    expect(param("delay-completions", "by")).toBe(`time (ms or "150 millis")`)
    expect(param("delay-completions", "probability")).toBe("number 0..1")
    const unload = c.actions.find((a) => a.action === "unload")!.params
    expect(unload).toEqual([
      { name: "at", required: true, type: `time (ms or "150 millis")` },
      { name: "driver", required: true, type: `"nic" | "blk" | "sensor" | "edu" | "pci-testdev"` }
    ])
    for (const p of [...c.faults, ...c.actions, ...c.deviceKinds].flatMap((x) => x.params)) expect(p.type, p.name).not.toBe("value")
  })

  it("the text names every kind, driver, bug, fault and action with its fields", () => {
    const c = catalogue()
    const text = catalogueText(c)
    for (const k of c.deviceKinds) expect(text).toContain(`  ${k.kind} `)
    for (const b of c.bugs) expect(text).toContain(b.effect)
    for (const f of c.faults) {
      expect(text).toContain(`  ${f.kind} `)
      for (const p of f.params) expect(text).toContain(`${p.name}${p.required ? "" : "?"}: ${p.type}`)
    }
    for (const a of c.actions) expect(text).toContain(`  ${a.action} `)
    expect(text).toMatch(/sensor +platform bus, 1 interrupt line \(irq-storm line 0\); simulator only/)
    expect(text).toMatch(/edu +pci bus, 1 interrupt line \(irq-storm line 0\); also on QEMU \(--backend qemu: its edu\)/)
    expect(text).toMatch(/pci-testdev +pci bus, no interrupt line \(no irq-storm\); also on QEMU/)
    expect(text).toMatch(/pci-testdev +registers on the pci bus as "rust_driver_pci"; bugs: hang-in-remove/)
  })
})
