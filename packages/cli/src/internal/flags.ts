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
  demo: { valued: ["--seed", "--trace", "--report", "--junit"], switches: ["--json", "--quiet", "-q"] },
  run: { valued: ["--seed", "--trace", "--report", "--junit"], switches: ["--json", "--quiet", "-q"] },
  validate: { valued: [], switches: [] },
  schema: { valued: [], switches: [] },
  list: { valued: [], switches: ["--json"] }
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
