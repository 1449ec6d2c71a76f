/**
 * The virtual cable between two cards: frames sent on one end are delivered to the other, and
 * both ends re-evaluate their link whenever either changes.
 *
 * @since 0.1.0
 */

/**
 * One end of a cable: what a plugged card offers its peer.
 * @internal
 */
export interface Port {
  /** Plugged, connected and enabled: the link needs both ends so. */
  readonly active: boolean
  /** Frames from the peer. */
  deliver(frames: ReadonlyArray<Uint8Array>): void
  /** Re-evaluates `STATUS.LINK_UP`. */
  updateLink(): void
}

/**
 * A virtual cable between port 0 and port 1.
 * @since 0.1.0
 */
export interface Cable {
  /** Frames handed to the cable, per sending port (delivered or not). */
  readonly carried: readonly [number, number]
  /** Whether a card is plugged into that end. */
  isAttached(port: 0 | 1): boolean
}

/** @internal */
export class CableImpl implements Cable {
  readonly ends: [Port | undefined, Port | undefined] = [undefined, undefined]
  readonly counts: [number, number] = [0, 0]
  get carried(): readonly [number, number] {
    return [this.counts[0], this.counts[1]]
  }
  isAttached(port: 0 | 1) {
    return this.ends[port] !== undefined
  }
  attach(port: 0 | 1, end: Port) {
    if (this.ends[port] !== undefined) throw new Error(`nic cable: port ${port} is already plugged`)
    this.ends[port] = end
    this.update()
  }
  detach(port: 0 | 1, end: Port) {
    if (this.ends[port] === end) this.ends[port] = undefined
    this.update()
  }
  peerActive(port: 0 | 1) {
    return this.ends[1 - port]?.active ?? false
  }
  transmit(port: 0 | 1, frames: ReadonlyArray<Uint8Array>) {
    this.counts[port] += frames.length
    this.ends[1 - port]?.deliver(frames)
  }
  update() {
    for (const end of this.ends) end?.updateLink()
  }
}

/**
 * A new cable: plug one card with `port: 0` and another with `port: 1`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@devscope/sim"
 * import { NicModel } from "@devscope/example-nic"
 *
 * const cable = NicModel.cable()
 * const plugBoth = Effect.flatMap(Simulator.Simulator, (sim) =>
 *   Effect.zip(
 *     sim.plug({ bus: "pci", name: "nic0", ids: NicModel.ids, model: NicModel.model({ cable, port: 0 }) }),
 *     sim.plug({ bus: "pci", name: "nic1", ids: NicModel.ids, model: NicModel.model({ cable, port: 1 }) })
 *   ))
 * ```
 * @since 0.1.0
 */
export const cable = (): Cable => new CableImpl()
