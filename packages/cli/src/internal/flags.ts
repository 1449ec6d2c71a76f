/**
 * A check of the command line before @effect/cli parses it, for what its parser reports in
 * confusing words: an unknown option after a sub-command is taken for the file argument
 * ("Path '--frobnicate' must exist"), and a repeated option is an "unknown argument".
 * @internal
 */

interface CommandFlags {
  /** Options that take a value (the next argument, or `--name=value`). */
  readonly valued: ReadonlyArray<string>
  /** Options that take none. */
  readonly switches: ReadonlyArray<string>
}

/** The sub-commands and their options (kept in step with Cli.ts; a test checks both). */
export const commands: Readonly<Record<string, CommandFlags>> = {
  demo: { valued: ["--seed", "--trace", "--report", "--junit", "--timeout"], switches: ["--json", "--quiet", "-q"] },
  run: { valued: ["--seed", "--trace", "--report", "--junit", "--timeout", "--backend"], switches: ["--json", "--quiet", "-q", "--allow-large"] },
  validate: { valued: [], switches: ["--allow-large"] },
  schema: { valued: [], switches: [] },
  list: { valued: [], switches: ["--json"] },
  explore: { valued: ["--seed", "--points", "--horizon", "--workers", "--shard", "--timeout"], switches: ["--json", "--quiet", "-q"] },
  fuzz: { valued: ["--seed", "--cases", "--workers", "--shard", "--timeout"], switches: ["--json", "--quiet", "-q"] },
  replay: { valued: [], switches: ["--json"] },
  merge: { valued: [], switches: ["--json"] },
  doctor: { valued: [], switches: ["--json", "--probe"] }
}

/** @effect/cli's own options, accepted everywhere. */
const builtIn: CommandFlags = { valued: ["--log-level", "--completions"], switches: ["--help", "-h", "--version", "--wizard"] }

const describe = (name: string, flags: CommandFlags): string => {
  const own = [...flags.valued, ...flags.switches]
  return own.length === 0 ? `${name} takes no options besides --help` : `${name} takes ${own.join(", ")} and --help`
}

/** What is wrong with the options of `args` (process.argv without node and the script), if anything. */
export const optionProblem = (args: ReadonlyArray<string>): string | undefined => {
  const at = args.findIndex((arg) => Object.hasOwn(commands, arg))
  if (at < 0) return undefined // no sub-command: @effect/cli shows the help or its own error
  const name = args[at]!
  const flags = commands[name]!
  const seen = new Set<string>()
  for (let i = at + 1; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") break
    if (!arg.startsWith("-") || arg === "-") continue
    const option = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    const valued = flags.valued.includes(option) || builtIn.valued.includes(option)
    if (!valued && !flags.switches.includes(option) && !builtIn.switches.includes(option)) {
      return `${name}: unknown option ${JSON.stringify(option).slice(1, -1).slice(0, 60)} (${describe(name, flags)})`
    }
    const canonical = option === "-q" ? "--quiet" : option === "-h" ? "--help" : option
    if (seen.has(canonical)) return `${name}: ${canonical} is given twice`
    seen.add(canonical)
    if (valued && !arg.includes("=")) i++ // its value
  }
  return undefined
}

/** The arguments before `--` (after it, everything is an argument). */
const options = (args: ReadonlyArray<string>) => (args.includes("--") ? args.slice(0, args.indexOf("--")) : args)

/**
 * `--wizard` asks its questions on the terminal; with standard input not a terminal (a pipe,
 * a file, end of file) it would wait forever, so it is refused.
 */
export const wizardProblem = (args: ReadonlyArray<string>, stdinIsTTY: boolean): string | undefined =>
  options(args).includes("--wizard") && !stdinIsTTY
    ? "--wizard asks its questions on a terminal, and standard input is not one (a pipe or a file); give the options on the command line"
    : undefined

/**
 * The arguments with which @effect/cli prints a sub-command's help under its full name: it
 * prefixes the parent's name (`$ devscope run ...`) only when the parent sees `--help` too;
 * from `devscope run --help` alone it prints `$ run ...`. So a `--help` after a sub-command
 * is also given to the parent.
 */
export const helpArgs = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const at = args.findIndex((arg) => Object.hasOwn(commands, arg))
  const before = options(args)
  const help = before.findIndex((arg, i) => i > at && (arg === "--help" || arg === "-h"))
  return at < 0 || help < 0 ? args : [...args.slice(0, at), "--help", ...args.slice(at)]
}
