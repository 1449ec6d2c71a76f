/**
 * The hostile-input catalogue (issue 12's acceptance): malformed and hostile-valid scenario
 * files, each with the command it is given to and the verdict it must end with. The small
 * files are checked in under `files/`; the large ones (over the 1 MiB limit, or floods just
 * under it) are written at test time by `generate` so the repository carries no megabytes.
 *
 * Every entry, run by `harness.ts` as its own process, must end within 10 s of wall time with
 * max RSS under 500 MB, the exit code given here, every `fields` path named in its refusal
 * (an issue line `  <path>: ...`), and no internal error, stack trace or ANSI escape.
 *
 * Expectations follow issue 12 and docs/contract.md, not what the code happens to do today.
 */

/** The exit codes of `devscope` (docs/cli.md): 0 passed, 1 a guarantee broken, 2 refused. */
export type Exit = 0 | 1 | 2

export interface Entry {
  /** The file: under `files/` unless `generate` writes it. */
  readonly file: string
  readonly command: "validate" | "run"
  /** Flags after the file. */
  readonly flags?: ReadonlyArray<string>
  /** Flags between the command and the file (an option before the positional argument). */
  readonly before?: ReadonlyArray<string>
  /** The acceptable exit codes; more than one where the issue allows either verdict (refused or run within bounds). */
  readonly exit: Exit | ReadonlyArray<Exit>
  /** Field paths the refusal must name, every one (when the exit is 2). */
  readonly fields?: ReadonlyArray<string>
  /** When refused, at least one of these field paths must be named (a work limit may name any of them). */
  readonly anyField?: ReadonlyArray<string>
  /** Text the output (stdout and stderr) must contain. */
  readonly mentions?: ReadonlyArray<string>
  /** Text the output must not contain. */
  readonly never?: ReadonlyArray<string>
  /** The path is left absent (`"missing"`) or made a directory (`"directory"`). */
  readonly path?: "missing" | "directory"
  /** Writes the file at test time (large or generated input). */
  readonly generate?: () => string | Uint8Array
  /** Why it is here and what the verdict means. */
  readonly why: string
}

const base = (name: string) => ({
  name,
  seed: 1,
  duration: "20 millis",
  devices: [
    { name: "eth0", kind: "nic", cable: "c0" },
    { name: "eth1", kind: "nic", cable: "c0" },
    { name: "disk0", kind: "blk", sectors: 256 },
    { name: "temp0", kind: "sensor" }
  ] as Array<Record<string, unknown>>,
  drivers: [{ kind: "nic" }, { kind: "blk" }, { kind: "sensor" }]
})

const MiB = 1024 * 1024

/** `count` sensors named s0, s1, ... (about 36 bytes each). */
const sensors = (count: number) => {
  const parts: Array<string> = []
  for (let i = 0; i < count; i++) parts.push(`{"name":"s${i}","kind":"sensor"}`)
  return parts.join(",\n")
}

/** A valid scenario's text padded with spaces to exactly `size` bytes. */
const padded = (size: number) => {
  const text = JSON.stringify(base("padded"))
  return text.slice(0, -1) + " ".repeat(size - text.length) + "}"
}

/** `levels` nested arrays as the value of `description`. */
const nested = (levels: number) => `{"name":"deep","description":${"[".repeat(levels)}${"]".repeat(levels)},"duration":10}`

/** The fields a work estimate may name when it refuses a run. */
const workFields: ReadonlyArray<string> = [
  "duration",
  "devices",
  "workload",
  ...["window", "interval"].map((f) => `workload.nic.${f}`),
  ...["workers", "interval"].map((f) => `workload.blk.${f}`),
  ...["readers", "interval"].map((f) => `workload.sensor.${f}`)
]

const refused = (file: string, fields: ReadonlyArray<string>, why: string, command: "validate" | "run" = "validate"): Entry => ({
  file,
  command,
  exit: 2,
  fields,
  why
})

export const catalogue: ReadonlyArray<Entry> = [
  // --- bytes, encodings, syntax
  refused("syntax-double-comma.json", ["(root)"], "a syntax error"),
  refused("syntax-trailing-comma.json", ["(root)"], "a trailing comma (not JSON)"),
  refused("syntax-comments.json", ["(root)"], "a // comment (JSON has none)"),
  refused("syntax-single-quotes.json", ["(root)"], "single-quoted strings"),
  refused("truncated.json", ["(root)"], "a file cut in the middle of a string"),
  refused("empty.json", ["(root)"], "an empty file"),
  refused("whitespace-only.json", ["(root)"], "only whitespace"),
  { file: "bom-utf8-valid.json", command: "run", exit: 0, why: "a UTF-8 byte-order mark is fine" },
  refused("utf16le-bom.json", ["(file)"], "UTF-16 LE with its mark: refused with a hint", "run"),
  refused("utf16be-bom.json", ["(file)"], "UTF-16 BE with its mark"),
  refused("utf16le-no-bom.json", ["(file)"], "UTF-16 LE without a mark (zero bytes)"),
  refused("utf32le-no-bom.json", ["(file)"], "UTF-32 LE without a mark"),
  { ...refused("latin1-description.json", ["(file)"], "Latin-1 bytes are named with their offset, not replaced"), mentions: ["offset"] },
  refused("cesu-surrogate-bytes.json", ["(file)"], "a UTF-8-encoded surrogate (CESU-8) is not UTF-8"),
  refused("nul-byte-raw.json", ["(root)"], "a raw NUL byte inside a string (a control character JSON refuses)"),
  refused("nul-escaped-device-name.json", ["devices[3].name"], "an escaped NUL inside a device name"),
  { ...refused("deep-arrays-10000.json", ["(root)"], "10,000 nested arrays: no stack overflow", "run"), generate: () => nested(10_000) },
  {
    ...refused("deep-arrays-10000-validate.json", ["(root)"], "the same through validate (the issue's RangeError)"),
    generate: () => nested(10_000)
  },
  {
    ...refused("deep-objects-100000.json", ["(root)"], "100,000 nested objects at the top level"),
    generate: () => `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`
  },
  {
    ...refused("deep-33.json", ["(root)"], "one level past the nesting limit (32)"),
    generate: () => nested(32)
  },
  // --- size
  {
    ...refused("file-2-mb.json", ["(file)"], "2 MB of valid JSON: over 1 MiB, refused from its size before reading"),
    generate: () => padded(2 * 1000 * 1000)
  },
  {
    ...refused("file-1-mib-plus-1.json", ["(file)"], "one byte over the limit"),
    generate: () => padded(MiB + 1)
  },
  { file: "file-1-mib-exactly.json", command: "validate", exit: 0, generate: () => padded(MiB), why: "exactly 1 MiB is allowed" },
  {
    ...refused("devices-1e6.json", ["(file)"], "one million devices (about 34 MB): refused by size, nothing parsed", "run"),
    generate: () => `{"name":"million","duration":10,"drivers":[{"kind":"sensor"}],"devices":[\n${sensors(1_000_000)}]}`
  },
  {
    ...refused("description-50-mb.json", ["(file)"], "a 50 MB description: refused by size, never printed", "run"),
    generate: () => JSON.stringify({ ...base("description-50-mb"), description: "d".repeat(50 * 1000 * 1000) })
  },
  {
    file: "description-900-kb.json",
    command: "run",
    exit: 0,
    generate: () => JSON.stringify({ ...base("description-900-kb"), description: "d".repeat(900 * 1000) }),
    why: "a 900 KB description under the size limit: runs, and the run header does not print it in full"
  },
  {
    ...refused("bad-value-900-kb.json", ["duration"], "a 900 KB bad value: named, echoed cut to 120 characters"),
    generate: () => JSON.stringify({ ...base("bad-value-900-kb"), duration: "x".repeat(900 * 1000) })
  },
  {
    file: "devices-20000.json",
    command: "validate",
    exit: [0, 2],
    anyField: ["devices"],
    generate: () => `{"name":"many","duration":"10 millis","drivers":[{"kind":"sensor"}],"devices":[\n${sensors(20_000)}]}`,
    why: "20,000 devices in about 700 KB: validate ends fast (refused by the device/work limit, or valid)"
  },
  {
    file: "devices-20000-run.json",
    command: "run",
    exit: [0, 2],
    anyField: ["devices", "duration"],
    generate: () => `{"name":"many","duration":"10 millis","drivers":[{"kind":"sensor"}],"devices":[\n${sensors(20_000)}]}`,
    why: "20,000 devices run: refused by the work limit, or run within 10 s and 500 MB"
  },
  {
    file: "timeline-20000-events.json",
    command: "run",
    exit: [0, 2],
    anyField: ["timeline"],
    generate: () => {
      const s = { ...base("timeline-20000"), timeline: [] as Array<unknown> }
      s.devices[3] = { name: "t", kind: "sensor" }
      const at = (ms: number) => Number(ms.toFixed(4))
      for (let i = 0; i < 10_000; i++) {
        s.timeline.push({ at: at(1 + i * 0.0018), action: "unbind", device: "t" }, { at: at(1.0009 + i * 0.0018), action: "bind", device: "t" })
      }
      return JSON.stringify(s)
    },
    why: "20,000 unbind/bind events in about 940 KB: refused by a limit, or run within bounds"
  },
  // --- top level
  refused("top-array.json", ["(root)"], "a top-level array: one issue, no schema dump"),
  refused("top-array-of-scenario.json", ["(root)"], "a scenario wrapped in an array"),
  refused("top-number.json", ["(root)"], "a top-level number"),
  refused("top-null.json", ["(root)"], "a top-level null"),
  refused("top-string.json", ["(root)"], "a top-level string"),
  refused("top-true.json", ["(root)"], "a top-level boolean"),
  // --- numbers and times
  { ...refused("duration-1e309.json", ["duration"], "1e309 is Infinity in a double: named, not \"got null\""), never: ["got null"] },
  refused("duration-nan-string.json", ["duration"], "\"NaN\""),
  refused("duration-infinity-string.json", ["duration"], "\"Infinity\""),
  refused("duration-infinity-millis.json", ["duration"], "\"Infinity millis\""),
  refused("duration-1e308.json", ["duration"], "1e308 ms of virtual time: cannot finish, refused by the work limit"),
  refused("duration-10-years.json", ["duration"], "\"10 years\" (not a unit of the format)"),
  refused("duration-5000-weeks.json", ["duration"], "5000 weeks of virtual time: refused by the work limit"),
  refused("duration-negative-string.json", ["duration"], "\"-5 millis\""),
  refused("duration-negative-number.json", ["duration"], "-5"),
  refused("duration-zero.json", ["duration"], "0"),
  refused("duration-boolean.json", ["duration"], "true"),
  refused("interval-zero-nic.json", ["workload.nic.interval"], "a workload interval of 0: virtual time would never move", "run"),
  refused("interval-1e-9-blk.json", ["workload.blk.interval"], "a workload interval of 1e-9 ms"),
  refused("interval-denormal-sensor.json", ["workload.sensor.interval"], "a denormal workload interval (5e-324)"),
  refused("interval-1-nanos-string.json", ["workload.nic.interval"], "\"1 nanos\" as a workload interval"),
  {
    file: "irq-storm-interval-zero.json",
    command: "run",
    exit: [0, 1, 2],
    anyField: ["faults[0].interval", "faults[0].count"],
    why: "100,000 interrupts at one instant: refused as degenerate, or run within bounds"
  },
  {
    file: "irq-storm-interval-1e-9.json",
    command: "run",
    exit: [0, 1, 2],
    anyField: ["faults[0].interval", "faults[0].count"],
    why: "100,000 interrupts 1e-9 ms apart: refused, or run within bounds"
  },
  {
    file: "irq-storm-interval-denormal.json",
    command: "run",
    exit: [0, 1, 2],
    anyField: ["faults[0].interval", "faults[0].count"],
    why: "a denormal storm interval: refused, or run within bounds"
  },
  {
    file: "irq-storm-cap-1ns.json",
    command: "run",
    exit: [0, 1, 2],
    anyField: ["faults[0].interval", "faults[0].count"],
    why: "the storm count at its cap (100,000) with 1 ns between interrupts, at time 0"
  },
  refused("irq-storm-count-over-cap.json", ["faults[0].count"], "one interrupt over the storm cap"),
  refused("irq-line-out-of-range.json", ["faults[0].line"], "an interrupt line the device does not have"),
  refused("fail-nth-n-zero.json", ["faults[0].n"], "fail-nth with n = 0"),
  refused("probability-above-one.json", ["faults[0].probability"], "a probability of 1.5"),
  refused("probability-negative.json", ["faults[0].probability"], "a probability of -0.1"),
  refused("write-ratio-two.json", ["workload.blk.writeRatio"], "a write ratio of 2"),
  refused("sectors-over-limit.json", ["devices[2].sectors"], "2^21 sectors (the limit is 2^20)"),
  refused("seed-out-of-range.json", ["seed"], "a seed of 2^32"),
  refused("seed-negative.json", ["seed"], "a negative seed"),
  refused("seed-float.json", ["seed"], "a seed of 1.5"),
  refused("seed-string.json", ["seed"], "a seed as a string"),
  // --- flags
  {
    file: "valid-base.json",
    command: "run",
    flags: ["--seed", "0x10"],
    exit: 2,
    mentions: ["--seed"],
    why: "--seed in hex is refused naming the flag"
  },
  {
    file: "valid-base.json",
    command: "run",
    flags: ["--seed", "1e3"],
    exit: 2,
    mentions: ["--seed"],
    why: "--seed with an exponent"
  },
  {
    file: "valid-base.json",
    command: "run",
    flags: ["--seed", "4294967296"],
    exit: 2,
    mentions: ["--seed"],
    why: "--seed out of range"
  },
  {
    file: "valid-base.json",
    command: "run",
    before: ["--frobnicate"],
    exit: 2,
    mentions: ["--frobnicate"],
    never: ["must exist"],
    why: "an unknown option is named as one, not taken for the file"
  },
  {
    file: "valid-base.json",
    command: "validate",
    before: ["--seed", "3"],
    exit: 2,
    mentions: ["--seed"],
    never: ["must exist"],
    why: "validate takes no --seed"
  },
  { file: "valid-base.json", command: "run", flags: ["--seed", "4294967295"], exit: 0, why: "the largest seed runs" },
  // --- structure and names
  refused("devices-missing.json", ["devices"], "no devices field"),
  refused("devices-empty.json", ["devices"], "an empty device list"),
  refused("devices-object.json", ["devices"], "devices as an object"),
  refused("drivers-missing.json", ["drivers"], "no drivers field"),
  refused("timeline-string.json", ["timeline"], "timeline as a string"),
  refused("name-empty.json", ["name"], "an empty scenario name"),
  refused("device-name-too-long.json", ["devices[0].name"], "a 33-character device name"),
  refused("device-name-10k.json", ["devices[1].name"], "a 10,000-character device name: named, echoed cut"),
  refused("device-name-unicode.json", ["devices[2].name"], "a device name with non-ASCII letters and an emoji"),
  {
    file: "unicode-scenario-name-valid.json",
    command: "run",
    exit: 0,
    why: "a scenario name and description in Japanese, Hebrew, Arabic, combining marks, emoji and bidi controls"
  },
  {
    file: "ansi-escape-in-description.json",
    command: "run",
    exit: 0,
    why: "escape sequences, BEL and CR in the description: the run goes, and no escape reaches a non-terminal output"
  },
  { ...refused("duplicate-keys.json", ["duration"], "a key given twice: the last (\"-1 millis\") is the one checked") },
  refused("proto-key-top.json", ["__proto__"], "a __proto__ key at the top: an unknown field, nothing polluted"),
  refused("proto-key-in-device.json", ["devices[3].__proto__"], "a __proto__ key in a device"),
  refused("constructor-key.json", ["constructor"], "a constructor key"),
  refused("hasownproperty-in-workload.json", ["workload.hasOwnProperty", "workload.nic.toString"], "Object.prototype names as keys"),
  refused("unknown-field-top.json", ["colour"], "an unknown top-level field"),
  refused("unknown-field-device.json", ["devices[1].speed"], "an unknown device field"),
  // --- cross-checks
  refused("timeline-unknown-device.json", ["timeline[3].device"], "the fourth event names a device that does not exist"),
  refused("timeline-after-end.json", ["timeline[0].at"], "an event after the end"),
  { ...refused("timeline-just-after-end.json", ["timeline[0].at"], "50.000001 with a duration of 50"), mentions: ["50.000001"] },
  { file: "timeline-at-end-valid.json", command: "run", exit: 0, why: "an event exactly at the end runs" },
  refused("timeline-unknown-action.json", ["timeline[0].action"], "an unknown action"),
  refused("timeline-unknown-driver.json", ["timeline[0].driver"], "unloading a driver that is not in drivers"),
  refused("unknown-kind.json", ["devices[2].kind"], "an unknown device kind"),
  refused("unknown-bug.json", ["drivers[0].bug"], "an unknown planted bug"),
  refused("bug-on-wrong-driver.json", ["drivers[2].bug"], "a bug the sensor driver does not have"),
  refused("cable-three-ends.json", ["devices[2].cable"], "three NICs on one cable"),
  refused("loopback-on-cable.json", ["devices[0].loopback"], "loopback on a NIC that is on a cable"),
  refused("store-shared.json", ["devices[3].store"], "two disks on one store"),
  refused("driver-listed-twice.json", ["drivers[3].kind"], "a driver listed twice"),
  refused("device-name-duplicate.json", ["devices[3].name"], "two devices with one name"),
  refused("fault-unknown-device.json", ["faults[0].device"], "a fault on a device that does not exist"),
  refused("fault-at-after-end.json", ["faults[0].at"], "a fault after the end"),
  refused(
    "many-problems-one-pass.json",
    ["duration", "devices[1].kind", "timeline[0].device", "drivers[3].kind"],
    "schema and cross-check errors together: every one reported in one pass"
  ),
  // --- missing or odd paths
  {
    file: "does-not-exist.json",
    command: "validate",
    path: "missing",
    exit: 2,
    mentions: ["does-not-exist.json"],
    why: "a file that does not exist"
  },
  {
    file: "a-directory.json",
    command: "run",
    path: "directory",
    exit: 2,
    mentions: ["a-directory.json"],
    why: "a directory given as the file"
  },
  // --- hostile but valid: these must run and end with their verdict
  { file: "valid-base.json", command: "run", exit: 0, why: "the plain base scenario (a control)" },
  {
    file: "hang-in-remove.json",
    command: "run",
    exit: 1,
    mentions: ["hung"],
    why: "remove hangs in two drivers: the bus cuts each at its deadline, the run ends and reports them (exit 1)"
  },
  { file: "surprise-all-at-zero.json", command: "run", exit: 0, why: "every device surprise-removed at time 0" },
  { file: "many-events-one-instant.json", command: "run", exit: 0, why: "1,000 plug/unplug events at one instant (most refused)" },
  { file: "unplug-plug-storm.json", command: "run", exit: 0, why: "120 unplug/plug pairs, 50 µs apart, over every device in 12 ms" },
  {
    file: "unplug-plug-storm-one-device.json",
    command: "run",
    exit: 0,
    why: "150 unplug/plug pairs of one sensor in 7.5 ms: runs, and the summary does not grow a line per unbind cause"
  },
  { file: "surprise-plug-storm.json", command: "run", exit: 0, why: "60 surprise removals and re-plugs of a disk in 12 ms under the default load" },
  {
    file: "surprise-plug-storm-under-load.json",
    command: "run",
    exit: [0, 2],
    anyField: workFields,
    why: "the same storm under a heavy load (before the limits: 14 s, 380 MB): refused by the work limit, or run within bounds"
  },
  { file: "all-ones-reads-at-zero.json", command: "run", exit: 0, why: "every device reads all ones from time 0" },
  {
    file: "drop-completions-probability-one.json",
    command: "run",
    exit: [0, 1],
    why: "every completion dropped, then unplugs: the run ends (a hung action is a verdict too)"
  },
  {
    file: "delay-completions-past-end.json",
    command: "run",
    exit: [0, 1],
    why: "every completion delayed 10 s, far past the 20 ms end: the run ends"
  },
  { file: "fail-nth-everything-first.json", command: "run", exit: 0, why: "the first DMA allocation, mapping and IRQ request all fail, then binds" },
  {
    file: "busy-2-seconds.json",
    command: "run",
    exit: [0, 2],
    anyField: workFields,
    why: "2 s of virtual time under the busiest workload (before the limits: over 30 s): refused by the work limit, or run within 10 s"
  },
  {
    file: "minimum-intervals-50-millis.json",
    command: "run",
    exit: [0, 2],
    anyField: workFields,
    why: "every workload at the 1 µs minimum for 50 ms (before the limits: 19 s): refused by the work limit, or run within 10 s"
  },
  { file: "duration-one-nanosecond.json", command: "run", exit: 0, why: "a run of 1 ns of virtual time" },
  { file: "huge-latency.json", command: "run", exit: [0, 1], why: "device latencies of 10 s and an hour in a 20 ms run" },
  { file: "absent-devices-never-plugged.json", command: "run", exit: 0, why: "no device is ever present; the actions on them are refused" },
  { file: "unload-everything-at-zero.json", command: "run", exit: 0, why: "every driver unloaded, loaded and unloaded at time 0" }
]
