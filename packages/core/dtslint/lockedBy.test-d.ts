import { Effect } from "effect"
import { describe, expectTypeOf, it } from "vitest"
import * as LockedBy from "@devscope/core/LockedBy"

declare const tree: LockedBy.Lock<"tree">
declare const dir: LockedBy.Lock<"dir">
declare const treeHeld: LockedBy.Held<"tree">
declare const dirHeld: LockedBy.Held<"dir">
declare const node: LockedBy.LockedBy<{ readonly key: number }, "tree">
declare const someString: string

describe("LockedBy", () => {
  it("locks are branded by their literal name", () => {
    expectTypeOf(LockedBy.lock("tree")).toEqualTypeOf<Effect.Effect<LockedBy.Lock<"tree">>>()
    expectTypeOf(LockedBy.unsafeLock("dir")).toEqualTypeOf<LockedBy.Lock<"dir">>()
    expectTypeOf(LockedBy.make(tree, 1)).toEqualTypeOf<LockedBy.LockedBy<number, "tree">>()
    expectTypeOf<LockedBy.Lock<"tree">>().not.toEqualTypeOf<LockedBy.Lock<"dir">>()
    expectTypeOf(dirHeld).not.toMatchTypeOf<LockedBy.Held<"tree">>()
    expectTypeOf(treeHeld).not.toMatchTypeOf<LockedBy.Held<string>>()
  })

  it("rejects a name that is not a string literal", () => {
    // @ts-expect-error: a widened `string` would brand nothing
    LockedBy.lock(someString)
    // @ts-expect-error: same for the synchronous constructor
    LockedBy.unsafeLock(someString)
  })

  it("access needs a proof of this lock's name and returns the value synchronously", () => {
    expectTypeOf(node.access(treeHeld)).toEqualTypeOf<{ readonly key: number }>()
    // @ts-expect-error: no proof, no access
    node.access()
    // @ts-expect-error: a proof of another lock's name does not type-check
    node.access(dirHeld)
    // @ts-expect-error: a plain object is not a proof
    node.access({ lock: tree, live: true })
    // @ts-expect-error: the lock itself is not a proof that it is held
    node.access(tree)
    // @ts-expect-error: set needs the right proof too
    node.set(dirHeld, { key: 1 })
    // @ts-expect-error: and a value of the right type
    node.set(treeHeld, { key: "1" })
    expectTypeOf(node.update(treeHeld, (n) => ({ key: n.key + 1 }))).toEqualTypeOf<{ readonly key: number }>()
  })

  it("with hands the body a proof of its own lock and keeps the body's types", () => {
    const program = tree.with((held) => {
      expectTypeOf(held).toEqualTypeOf<LockedBy.Held<"tree">>()
      return Effect.succeed(node.access(held).key)
    })
    expectTypeOf(program).toEqualTypeOf<Effect.Effect<number, never, never>>()
    const failing = dir.with(() => Effect.fail("nope" as const))
    expectTypeOf(failing).toEqualTypeOf<Effect.Effect<never, "nope", never>>()
    // @ts-expect-error: inside `dir.with` there is no proof of "tree"
    dir.with((held) => Effect.succeed(node.access(held)))
  })

  it("a LockedBy is invariant in its value type", () => {
    expectTypeOf(node).not.toMatchTypeOf<LockedBy.LockedBy<{ readonly key: number | string }, "tree">>()
  })
})
