/**
 * Alarms for bounded waits: one timer per Clock for all the waits in flight, so that a wait
 * costs a list insertion, not a timer of its own (a bind waits for its probe, an unbind for
 * each step: a timer each would cost more than the steps).
 *
 * # Invariants
 * - Each Clock has one `Alarms`, and it has at most one timer armed, for the earliest alarm
 *   (or earlier). Alarms of one duration are kept in one list in the order they were set,
 *   which is also their order in time (a Clock does not go back), so the earliest alarm is
 *   the head of one of the lists.
 * - A cleared alarm leaves its list at once (O(1)): the lists hold only pending alarms.
 * - With the live Clock the timer is a plain `setTimeout`, unref'd and left armed when the
 *   lists empty (so a process exits on its own and the next wait usually arms nothing).
 *   With any other Clock (TestClock, the simulator's virtual time) it is a fiber sleeping on
 *   that Clock, interrupted when the lists empty, so that no sleep is left behind to move
 *   virtual time.
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as RuntimeFlags from "effect/RuntimeFlags"

/** A pending alarm: `fire` runs once at `at`, unless cleared first. */
export interface Alarm {
  readonly at: number
  readonly fire: () => void
  prev: Alarm | undefined
  next: Alarm | undefined
  list: AlarmList | undefined
}

class AlarmList {
  head: Alarm | undefined = undefined
  tail: Alarm | undefined = undefined
  push(alarm: Alarm): void {
    alarm.list = this
    alarm.prev = this.tail
    if (this.tail === undefined) this.head = alarm
    else this.tail.next = alarm
    this.tail = alarm
  }
  remove(alarm: Alarm): void {
    const { prev, next } = alarm
    if (prev === undefined) this.head = next
    else prev.next = next
    if (next === undefined) this.tail = prev
    else next.prev = prev
    alarm.prev = alarm.next = alarm.list = undefined
  }
}

type Starter = (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>

// The live Clock, to tell it from TestClock and virtual time.
const liveClock = Effect.runSync(Effect.clock)

class Alarms {
  private readonly lists = new Map<number, AlarmList>()
  private pending = 0
  /** When the armed timer goes off, if one is armed. */
  private armedFor: number | undefined = undefined
  private sleeper: Fiber.RuntimeFiber<void> | undefined = undefined
  private start: Starter | undefined = undefined

  constructor(private readonly clock: Clock.Clock) {}

  set(millis: number, fire: () => void, start: Starter): Alarm {
    const at = this.clock.unsafeCurrentTimeMillis() + millis
    let list = this.lists.get(millis)
    if (list === undefined) this.lists.set(millis, list = new AlarmList())
    const alarm: Alarm = { at, fire, prev: undefined, next: undefined, list: undefined }
    list.push(alarm)
    this.pending++
    this.start = start
    if (this.armedFor === undefined || at < this.armedFor) this.arm(at)
    return alarm
  }

  clear(alarm: Alarm): void {
    if (alarm.list === undefined) return
    alarm.list.remove(alarm)
    if (--this.pending === 0 && this.sleeper !== undefined) {
      this.sleeper.unsafeInterruptAsFork(FiberId.none)
      this.sleeper = undefined
      this.armedFor = undefined
    }
  }

  private arm(at: number): void {
    this.armedFor = at
    const delay = Math.max(0, at - this.clock.unsafeCurrentTimeMillis())
    if (this.clock === liveClock) {
      const timer = setTimeout(() => this.ring(), delay)
      timer.unref?.()
      return
    }
    this.sleeper?.unsafeInterruptAsFork(FiberId.none)
    this.sleeper = this.start!(Effect.zipRight(this.clock.sleep(Duration.millis(delay)), Effect.sync(() => this.ring())))
  }

  private ring(): void {
    this.armedFor = undefined
    this.sleeper = undefined
    const now = this.clock.unsafeCurrentTimeMillis()
    let next: number | undefined
    for (const list of this.lists.values()) {
      while (list.head !== undefined && list.head.at <= now) {
        const alarm = list.head
        list.remove(alarm)
        this.pending--
        alarm.fire()
      }
      if (list.head !== undefined && (next === undefined || list.head.at < next)) next = list.head.at
    }
    if (next !== undefined && (this.armedFor === undefined || next < this.armedFor)) this.arm(next)
  }
}

const byClock = new WeakMap<Clock.Clock, Alarms>()

/**
 * Sets an alarm `deadline` from now on `clock` (the waiting fiber's); `fiber` starts the
 * timer fiber when one is needed (with its FiberRefs: scheduler, clock).
 */
export const setAlarm = (
  clock: Clock.Clock,
  fiber: Fiber.RuntimeFiber<any, any>,
  runtimeFlags: RuntimeFlags.RuntimeFlags,
  deadline: Duration.DurationInput,
  fire: () => void,
  startFiber: (parent: Fiber.RuntimeFiber<any, any>, flags: RuntimeFlags.RuntimeFlags, effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
): { readonly alarm: Alarm; readonly clear: () => void } => {
  let alarms = byClock.get(clock)
  if (alarms === undefined) byClock.set(clock, alarms = new Alarms(clock))
  const owner = alarms
  const alarm = owner.set(Duration.toMillis(Duration.decode(deadline)), fire, (effect) => startFiber(fiber, runtimeFlags, effect))
  return { alarm, clear: () => owner.clear(alarm) }
}
