/**
 * Every problem of a scenario in one pass: the schema's errors, and, even when the schema
 * failed, the cross-checks of the parts that decode on their own (element by element) and
 * the limits on the work of the run once the fields they need decoded. Issues are
 * deduplicated and ordered by path (the order of the fields, then of the elements). Arrays
 * longer than their limit (a million devices) are refused before anything is decoded.
 * @internal
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { DeviceSpec, DriverSpec, FaultRule, Issue, Scenario, TimelineEvent } from "../Scenario.js"
import { countIssues, limitIssues } from "./estimate.js"
import { crossCheck } from "./scenarioChecks.js"
import { issuesOf } from "./scenarioIssues.js"

/** The schemas the pass decodes with (passed in: Scenario.ts defines them and imports this module). */
export interface Schemas {
  readonly scenario: Schema.Struct<typeof Scenario.fields>
  readonly device: Schema.Schema<DeviceSpec, any>
  readonly driver: Schema.Schema<DriverSpec, any>
  readonly event: Schema.Schema<TimelineEvent, any>
  readonly fault: Schema.Schema<FaultRule, any>
}

export interface Options {
  /** Skip the limits on the run's work (`--allow-large`). */
  readonly allowLarge?: boolean | undefined
}

const strict = { errors: "all", onExcessProperty: "error" } as const

const decodes = <A>(schema: Schema.Schema<A, any>, value: unknown): A | undefined => {
  const result = Schema.decodeUnknownEither(schema, strict)(value)
  return Either.isRight(result) ? result.right : undefined
}

/** The elements of `value` (an array) decoded one by one, `undefined` where one does not. */
const elements = <A>(schema: Schema.Schema<A, any>, value: unknown): Array<A | undefined> | undefined =>
  Array.isArray(value) ? value.map((element) => decodes(schema, element)) : undefined

/** Sorts issues by their path's field (in the schema's order) and first index; stable otherwise. */
const byPath = (fields: ReadonlyArray<string>) => (issues: ReadonlyArray<Issue>): Array<Issue> => {
  const key = (path: string): [number, number] => {
    const match = /^([^.[]*)(?:\[(\d+)\])?/.exec(path)
    const field = match?.[1] ?? ""
    const rank = field.startsWith("(") ? -1 : fields.indexOf(field)
    return [rank < 0 && !field.startsWith("(") ? fields.length : rank, match?.[2] === undefined ? -1 : Number(match[2])]
  }
  const seen = new Set<string>()
  return issues
    .filter((i) => {
      const k = `${i.path}\u0000${i.message}`
      if (seen.has(k)) return false
      seen.add(k)
      return true
    })
    .map((issue, order) => ({ issue, order, key: key(issue.path) }))
    .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.order - b.order)
    .map((x) => x.issue)
}

/**
 * Decodes a scenario object: the scenario, or every issue found in one pass.
 */
export const decodeAll = (schemas: Schemas, input: object, options: Options = {}): Either.Either<Scenario, Array<Issue>> => {
  const sort = byPath(Object.keys(schemas.scenario.fields))
  const raw = input as Record<string, unknown>
  const length = (value: unknown) => (Array.isArray(value) ? value.length : 0)
  if (options.allowLarge !== true) {
    // Too many elements: said before decoding them, so a million devices cost nothing.
    const counts = countIssues(length(raw.devices), length(raw.timeline), length(raw.faults))
    if (counts.length > 0) return Either.left(counts)
  }
  const full = Schema.decodeUnknownEither(schemas.scenario, strict)(input)
  if (Either.isRight(full)) {
    const scenario = full.right
    const issues = [...crossCheck(scenario), ...(options.allowLarge === true ? [] : limitIssues(scenario))]
    return issues.length > 0 ? Either.left(sort(issues)) : Either.right(scenario)
  }
  // The schema failed: decode what can be decoded on its own and cross-check that.
  const field = <K extends keyof Scenario>(key: K): { readonly ok: boolean; readonly value: Scenario[K] | undefined } => {
    if (!(key in raw)) return { ok: true, value: undefined }
    const decoded = decodes(schemas.scenario.pick(key) as unknown as Schema.Schema<any, any>, { [key]: raw[key] })
    return decoded === undefined ? { ok: false, value: undefined } : { ok: true, value: decoded[key] }
  }
  const duration = field("duration")
  const workload = field("workload")
  const devices = elements(schemas.device, raw.devices)
  const drivers = elements(schemas.driver, raw.drivers)
  const timeline = elements(schemas.event, raw.timeline)
  const faults = elements(schemas.fault, raw.faults)
  // Names in elements that did not decode are not "unknown" (their element has its own error).
  const undecodedNames = new Set<string>()
  const rawArray = (value: unknown): ReadonlyArray<unknown> => (Array.isArray(value) ? value : [])
  rawArray(raw.devices).forEach((d, i) => {
    const name = (d as { readonly name?: unknown } | null)?.name
    if (devices?.[i] === undefined && typeof name === "string") undecodedNames.add(name)
  })
  rawArray(raw.drivers).forEach((d, i) => {
    const kind = (d as { readonly kind?: unknown } | null)?.kind
    if (drivers?.[i] === undefined && typeof kind === "string") undecodedNames.add(kind)
  })
  const cross = crossCheck({
    duration: duration.value,
    devices: devices ?? [],
    drivers: drivers ?? [],
    timeline,
    faults,
    undecodedNames
  })
  const issues = [...issuesOf(full.left), ...cross]
  if (options.allowLarge !== true) {
    const whole = <A>(list: Array<A | undefined> | undefined): list is Array<A> => list !== undefined && list.every((x) => x !== undefined)
    const absentOrWhole = <A>(key: string, list: Array<A | undefined> | undefined) => !(key in raw) || whole(list)
    if (
      duration.ok && duration.value !== undefined && workload.ok && whole(devices) && whole(drivers) &&
      absentOrWhole("timeline", timeline) && absentOrWhole("faults", faults)
    ) {
      // Everything the estimate needs decoded: the limits are checked in this pass too.
      issues.push(...limitIssues({
        name: "",
        duration: duration.value,
        devices,
        drivers,
        ...(workload.value === undefined ? {} : { workload: workload.value }),
        ...(timeline === undefined ? {} : { timeline: timeline as Array<TimelineEvent> }),
        ...(faults === undefined ? {} : { faults: faults as Array<FaultRule> })
      } as Scenario))
    }
  }
  return Either.left(sort(issues))
}
