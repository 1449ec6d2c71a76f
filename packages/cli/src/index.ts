/**
 * The `devscope` command and its building blocks: scenario files, the scenario runner.
 * @since 0.1.0
 */

/**
 * The `devscope` command (`demo`, `run`, `validate`).
 * @since 0.1.0
 */
export * as Cli from "./Cli.js"

/**
 * Runs scenarios on the simulator in virtual time and judges them against the guarantees.
 * @since 0.1.0
 */
export * as Runner from "./Runner.js"

/**
 * Scenario files: schema, validation with field-naming errors.
 * @since 0.1.0
 */
export * as Scenario from "./Scenario.js"

/**
 * Machine-readable verdicts of a run: the JSON document of `--json`, the JUnit XML of `--junit`.
 * @since 0.1.0
 */
export * as Verdict from "./Verdict.js"

/**
 * The errors of the `devscope` command, each with its exit code.
 * @since 0.1.0
 */
export * as Errors from "./Errors.js"
