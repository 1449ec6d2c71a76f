/**
 * The record of one scenario run, as the runner produces it and the writers (Perfetto trace,
 * HTML report) consume it. Plain data: everything the writers show is derived from it. The
 * types are the public ones of `Runner`, re-exported here for the writers.
 */
import type { RunRecord } from "../Runner.js"

export type {
  DeviceSummary,
  DriverFailure,
  Guarantee,
  Note,
  RunRecord,
  Stall,
  TimelineEntry,
  UnbindSummary,
  Violation
} from "../Runner.js"

/** A run passed when no guarantee was broken and no driver code failed. */
export const passed = (record: RunRecord): boolean => record.violations.length === 0 && record.failures.length === 0
