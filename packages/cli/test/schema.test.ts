/**
 * `devscope schema`: the JSON Schema generated from the scenario schema, the committed copy of
 * it, and the example scenarios checked against it by a real JSON Schema validator (ajv).
 */
import { describe, expect, it } from "@effect/vitest"
import { Ajv2020 } from "ajv/dist/2020.js"
import { Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Scenario } from "@devscope/cli"

const root = path.resolve(__dirname, "../../..")
const scenariosDir = path.join(root, "examples/scenarios")
const schemaFile = path.join(scenariosDir, "scenario.schema.json")

const examples = fs.readdirSync(scenariosDir).filter((f) => f.endsWith(".json") && !f.endsWith(".schema.json"))
const read = (file: string) => JSON.parse(fs.readFileSync(path.join(scenariosDir, file), "utf8")) as Record<string, unknown>

const validator = () => {
  // Strict, but for strictTypes: effect writes `{ "$ref": "#/$defs/Int", "minimum": 0 }`,
  // where the type comes with the reference (valid JSON Schema; ajv's lint wants it repeated).
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false })
  return ajv.compile(Scenario.jsonSchema())
}

const base = read("demo.json")

describe("devscope schema", () => {
  it("examples/scenarios/scenario.schema.json is the generated schema (regenerate: pnpm devscope schema > examples/scenarios/scenario.schema.json)", () => {
    expect(fs.readFileSync(schemaFile, "utf8")).toBe(`${JSON.stringify(Scenario.jsonSchema(), null, 2)}\n`)
  })

  it("is a JSON Schema 2020-12 that ajv compiles in strict mode; times are a number or a duration string", () => {
    const schema = Scenario.jsonSchema() as Record<string, any>
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema")
    expect(schema.type).toBe("object")
    expect(schema.additionalProperties).toBe(false)
    expect(schema.properties.$schema).toEqual({ type: "string" })
    const millis = schema.$defs.Millis
    expect(millis.anyOf.map((s: { type: string }) => s.type)).toEqual(["number", "string"])
    expect(millis.anyOf[0].minimum).toBe(0)
    expect(typeof millis.anyOf[1].pattern).toBe("string")
    expect(schema.properties.duration.anyOf[0]).toEqual({ type: "number", exclusiveMinimum: 0 })
    expect(validator()).toBeTypeOf("function")
  })

  it("every example scenario names the committed schema in \"$schema\" and is valid by it (and by Scenario.decode)", () => {
    const validate = validator()
    expect(examples.length).toBeGreaterThanOrEqual(5)
    for (const file of examples) {
      const scenario = read(file)
      expect(scenario.$schema, file).toBe("./scenario.schema.json")
      expect(validate(scenario), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true)
      expect(Either.isRight(Scenario.decode(scenario, file)), file).toBe(true)
    }
  })

  it("the JSON Schema and Scenario.decode agree on valid and invalid variants", () => {
    const validate = validator()
    const valid: ReadonlyArray<Record<string, unknown>> = [
      { ...base, duration: 0.5, timeline: [] },
      { ...base, duration: "40 micros", timeline: [] },
      { ...base, duration: "0.3 seconds" },
      { ...base, $schema: "https://example.com/any.json" },
      { ...base, duration: 5, timeline: [], workload: { nic: { interval: "10 micros" }, sensor: { interval: 0.01 } } }
    ]
    for (const scenario of valid) {
      expect(validate(scenario), JSON.stringify(validate.errors)).toBe(true)
      expect(Either.isRight(Scenario.decode(scenario, "valid")), JSON.stringify(scenario).slice(0, 200)).toBe(true)
    }
    const invalid: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
      ["unknown field", { ...base, frobnicate: 1 }],
      ["a duration in words", { ...base, duration: "soon" }],
      ["a negative duration string", { ...base, duration: "-5 millis" }],
      ["a duration of 0", { ...base, duration: 0 }],
      ["a negative time", { ...base, timeline: [{ at: -1, action: "unplug", device: "disk0" }] }],
      ["a unit effect does not know", { ...base, duration: "5 fortnights" }],
      ["no devices", { ...base, devices: [] }],
      ["an unknown kind", { ...base, devices: [{ name: "fd0", kind: "floppy" }] }],
      ["an interval of 0", { ...base, workload: { nic: { interval: 0 } } }],
      ["an interval under 1 µs", { ...base, workload: { blk: { interval: 0.0005 } } }],
      ["a seed out of range", { ...base, seed: -1 }],
      ["a fractional seed", { ...base, seed: 1.5 }],
      ["a $schema that is not a string", { ...base, $schema: 5 }],
      ["a bad name", { ...base, devices: [{ name: "9lives", kind: "sensor" }] }],
      ["a missing name", (({ name: _, ...rest }) => rest)(base)]
    ]
    for (const [what, scenario] of invalid) {
      expect(validate(scenario), what).toBe(false)
      expect(Either.isLeft(Scenario.decode(scenario, "invalid")), what).toBe(true)
    }
  })

  it("a \"$schema\" key is accepted and ignored: the scenario is the same without it", () => {
    const { $schema: _, ...without } = base
    const withKey = Either.getOrThrow(Scenario.decode(base, "demo.json"))
    const withoutKey = Either.getOrThrow(Scenario.decode(without, "demo.json"))
    expect(withKey.$schema).toBe("./scenario.schema.json")
    expect({ ...withKey, $schema: undefined }).toEqual({ ...withoutKey, $schema: undefined })
  })
})
