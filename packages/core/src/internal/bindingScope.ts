/**
 * The binding scope: the `Scope` a probe's Layer is built into, whose releases the unbind
 * runs one by one, each with its own deadline (internal/teardown.ts).
 *
 * Effect's own scope runs its finalizers in one loop, each awaited in turn, so one release
 * that never returns stops every later one. This scope keeps its entries as data instead:
 * the unbind takes them (LIFO) and runs each as a step of its own.
 *
 * # Invariants
 * - `entries` holds, in the order they were added, everything still to release: Devres
 *   (keyed by themselves), finalizers added through the `Scope` interface (the probe Layer's
 *   finalizer, which closes the Layer's own scopes; `Scope.addFinalizer` calls), and child
 *   scopes made by `fork` (Effect's `forkIn`), each removed when it closes early.
 * - Once `take` (or `close`) ran, the scope is closed for good: `entries` is undefined, and
 *   anything added later is released at once, as Effect's scopes do.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import { pipeArguments } from "effect/Pipeable"
import * as Scope from "effect/Scope"
import type { Site } from "./site.js"

/** One thing the unbind releases: a step with a name and a site for its report. */
export interface ReleaseEntry {
  /** The resource's name in reports (a Devres label, `"layer finalizer"`...). */
  readonly label: string
  /** Where it was acquired, for a report that abandons it. */
  readonly site: Site
  /**
   * Builds the release. A Devres records its own outcome (the binding's `released` and
   * `releaseFailures`) and never fails; anything else that fails, or throws, is recorded by
   * the runner as a failure of `label`.
   */
  readonly run: (exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void, unknown>
  /**
   * Set on the entry that stands for an early release still running: the unbind waits for
   * that release (bounded) in its place, so LIFO order holds.
   */
  readonly joinsEarlyRelease?: true | undefined
}

const UNKNOWN_SITE = "where the probe Layer added it (a finalizer of the Layer itself)"

/** @internal */
export class BindingScope implements Scope.CloseableScope {
  readonly [Scope.ScopeTypeId]: Scope.ScopeTypeId = Scope.ScopeTypeId
  readonly [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId = Scope.CloseableScopeTypeId
  readonly strategy: ExecutionStrategy.ExecutionStrategy = ExecutionStrategy.sequential
  private entries: Map<unknown, ReleaseEntry> | undefined = new Map()
  private closedWith: Exit.Exit<unknown, unknown> = Exit.void

  /**
   * Called with the failure of a finalizer run at once because the scope had closed (the
   * binding records it in its report, or as a late failure).
   */
  onLateFailure: (label: string, cause: Exit.Exit<unknown, unknown>) => void = () => {}

  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }

  /** How many entries are still to release (0 once closed). */
  get size(): number {
    return this.entries?.size ?? 0
  }

  get isOpen(): boolean {
    return this.entries !== undefined
  }

  /** Adds (or replaces) the entry under `key`. False when the scope has closed. */
  set(key: unknown, entry: ReleaseEntry): boolean {
    if (this.entries === undefined) return false
    this.entries.set(key, entry)
    return true
  }

  /** Drops the entry under `key` (an early release, a child scope that closed). O(1). */
  delete(key: unknown): void {
    this.entries?.delete(key)
  }

  /** Closes the scope and hands over its entries, the last added first. */
  take(exit: Exit.Exit<unknown, unknown>): Array<ReleaseEntry> {
    const entries = this.entries
    if (entries === undefined) return []
    this.entries = undefined
    this.closedWith = exit
    return Array.from(entries.values()).reverse()
  }

  // The Scope interface, as Effect's Layer building and `forkIn` use it.

  addFinalizer(finalizer: Scope.Scope.Finalizer): Effect.Effect<void> {
    return Effect.suspend(() => {
      const entry: ReleaseEntry = { label: "layer finalizer", site: UNKNOWN_SITE, run: finalizer }
      if (this.set({}, entry)) return Effect.void
      return this.runLate(entry)
    })
  }

  fork(strategy: ExecutionStrategy.ExecutionStrategy): Effect.Effect<Scope.CloseableScope> {
    return Effect.flatMap(Scope.make(strategy), (child) => {
      const key = {}
      const entry: ReleaseEntry = {
        label: "scoped fiber or child scope",
        site: UNKNOWN_SITE,
        run: (exit) => Scope.close(child, exit)
      }
      if (!this.set(key, entry)) return Effect.as(Scope.close(child, this.closedWith), child)
      return Effect.as(Scope.addFinalizer(child, Effect.sync(() => this.delete(key))), child)
    })
  }

  /** Only the unbind closes a binding scope (with deadlines); this is the plain fallback. */
  close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Effect.suspend(() =>
      Effect.forEach(this.take(exit), (entry) => this.runLate(entry), { discard: true })
    )
  }

  /** Runs an entry at once, recording a failure it does not record itself. */
  private runLate(entry: ReleaseEntry): Effect.Effect<void> {
    return Effect.suspend(() => {
      let release: Effect.Effect<void, unknown>
      try {
        release = entry.run(this.closedWith)
      } catch (defect) {
        this.onLateFailure(entry.label, Exit.die(defect))
        return Effect.void
      }
      return Effect.catchAllCause(release, (cause) => Effect.sync(() => this.onLateFailure(entry.label, Exit.failCause(cause))))
    })
  }
}
