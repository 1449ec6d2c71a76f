/**
 * Accounting of the operations a workload starts, per device: how each one resolved
 * (completed, `DeviceGone`, rejected by back-pressure or range checks, died with a defect,
 * interrupted) and which are still in flight. An operation the run ends with still in flight
 * is lost: guarantee G4 says none is.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Oracle from "../Oracle.js"

type DeviceOps = Oracle.DeviceOps

const MAX_PROBLEMS = 5

export class Ops implements Oracle.Ops {
  private nextId = 0
  readonly devices = new Map<string, DeviceOps>()
  /** Set at the end of the run, once the drivers are unloaded: loads stop starting ops. */
  stopping = false

  of(device: string): DeviceOps {
    let ops = this.devices.get(device)
    if (ops === undefined) {
      ops = {
        device,
        started: 0,
        completed: 0,
        gone: 0,
        rejected: 0,
        defects: 0,
        interrupted: 0,
        corrupt: 0,
        inFlight: new Set(),
        problems: [],
        problemCount: 0
      }
      this.devices.set(device, ops)
    }
    return ops
  }

  get inFlight(): number {
    let n = 0
    for (const ops of this.devices.values()) n += ops.inFlight.size
    return n
  }

  get resolved(): number {
    let n = 0
    for (const ops of this.devices.values()) n += ops.completed + ops.gone + ops.rejected
    return n
  }

  problem(device: string, message: string): void {
    const ops = this.of(device)
    ops.problemCount++
    if (ops.problems.length < MAX_PROBLEMS) ops.problems.push(message)
  }

  /**
   * Runs one operation of `device`, recording how it resolves. `isGone` and `isRejected`
   * classify typed failures; anything else failing is counted as a defect.
   */
  track<A, E, R>(
    device: string,
    what: string,
    op: Effect.Effect<A, E, R>,
    classify: (error: E) => "gone" | "rejected"
  ): Effect.Effect<Option.Option<A>, never, R> {
    return Effect.suspend(() => {
      const ops = this.of(device)
      const id = this.nextId++
      ops.started++
      ops.inFlight.add(id)
      return Effect.exit(op).pipe(
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            if (ops.inFlight.delete(id)) {
              ops.interrupted++
              this.problem(device, `${what} was interrupted instead of resolving`)
            }
          })
        ),
        Effect.map((exit) => {
          ops.inFlight.delete(id)
          if (Exit.isSuccess(exit)) {
            ops.completed++
            return Option.some(exit.value)
          }
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) {
            if (classify(failure.value) === "gone") ops.gone++
            else ops.rejected++
          } else if (Cause.isInterruptedOnly(exit.cause)) {
            ops.interrupted++
            this.problem(device, `${what} was interrupted instead of resolving`)
          } else {
            ops.defects++
            this.problem(device, `${what} died: ${Cause.pretty(exit.cause).split("\n")[0]}`)
          }
          return Option.none()
        })
      )
    })
  }
}
