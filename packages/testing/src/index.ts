/**
 * Test helpers for devscope drivers.
 * @since 0.1.0
 */

/**
 * The invariant oracle: guarantees G1-G5 checked from a run's evidence.
 * @since 0.1.0
 */
export * as Oracle from "./Oracle.js"

/**
 * Removal injected at every suspension point of a scenario, with replay tokens.
 * @since 0.1.0
 */
export * as Explore from "./Explore.js"

/**
 * Property-based lifecycle fuzzing with shrinking.
 * @since 0.1.0
 */
export * as Fuzz from "./Fuzz.js"

/**
 * Hostile-driver fuzzing: misbehaving drivers against the unbind contract.
 * @since 0.1.0
 */
export * as Hostile from "./Hostile.js"
