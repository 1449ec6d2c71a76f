/**
 * Effect's process-wide fiber id counter (effect/src/internal/fiberId.ts), read, never
 * written: a fiber made while some code runs has an id at least the counter's value when
 * that code started (internal/escape.ts).
 * @internal
 */
import { globalValue } from "effect/GlobalValue"
import * as MutableRef from "effect/MutableRef"

const counter = globalValue(Symbol.for("effect/Fiber/Id/_fiberCounter"), () => MutableRef.make(0))

/** The id the next fiber made will get. */
export const nextFiberId = (): number => MutableRef.get(counter)
