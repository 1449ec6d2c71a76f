import * as Effect from "effect/Effect"
import type * as Bound from "../Bound.js"
import type * as Core from "../Core.js"
import { UseAfterUnbind } from "../DeviceError.js"
import * as Devres from "../Devres.js"
import type * as Dma from "../Dma.js"
import type * as Driver from "../Driver.js"
import { type DmaDirection, type DmaPort, Hardware, type HardwareRefused } from "../Hardware.js"
import { assertCoreHeld, type Binding, bindingOf, TrackedImpl } from "./binding.js"
import type { DevresImpl } from "./devres.js"
import { type AnyViewImpl, ArrayLayoutImpl, type Memory, StructLayoutImpl, view } from "./dmaLayout.js"

export { array, struct, view } from "./dmaLayout.js"

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/** Builds, when something is used after release, the defect that says so. */
class Revoked {
  constructor(
    readonly binding: Binding,
    readonly resource: string,
    /** Where it was released early (Devres.release, Dma.unmap); undefined if by the unbind. */
    readonly releasedAt: string | undefined
  ) {}
  fail(): never {
    if (this.releasedAt === undefined) throw this.binding.useAfterUnbind(this.resource)
    throw new UseAfterUnbind({
      device: this.binding.device.name,
      driver: this.binding.driver,
      resource: this.resource,
      unbindCause: "released",
      revokedAt: this.releasedAt
    })
  }
}

/** What a released view's memory becomes: every access raises the defect. */
class RevokedMemory implements Memory {
  constructor(readonly revoked: Revoked) {}
  getUint8(): number {
    return this.revoked.fail()
  }
  getUint16(): number {
    return this.revoked.fail()
  }
  getUint32(): number {
    return this.revoked.fail()
  }
  setUint8(): void {
    this.revoked.fail()
  }
  setUint16(): void {
    this.revoked.fail()
  }
  setUint32(): void {
    this.revoked.fail()
  }
}

/** What a released Coherent's `view` becomes. */
class RevokedView {
  /** An array view's length stays readable (it is not memory). */
  readonly length: number | undefined
  constructor(readonly layout: Dma.Layout, readonly revoked: Revoked) {
    this.length = layout._tag === "Array" ? layout.length : undefined
  }
  get(): number {
    return this.revoked.fail()
  }
  set(): void {
    this.revoked.fail()
  }
  copyIn(): void {
    this.revoked.fail()
  }
  copyOut(): void {
    this.revoked.fail()
  }
}

/** What a released Mapping syncs through. */
class RevokedSync {
  constructor(readonly revoked: Revoked) {}
  syncForCpu(): void {
    this.revoked.fail()
  }
  syncForDevice(): void {
    this.revoked.fail()
  }
}

const hex = (n: number) => `0x${n.toString(16)}`

// ---------------------------------------------------------------------------------------------
// Coherent allocations
// ---------------------------------------------------------------------------------------------

/** @internal */
export class CoherentImpl<L extends Dma.Layout> implements Dma.Coherent<L> {
  devres: DevresImpl<CoherentImpl<L>, any> | undefined = undefined
  constructor(
    readonly binding: Binding,
    readonly port: DmaPort,
    readonly layout: L,
    readonly iova: number,
    public view: Dma.View<L>,
    readonly label: string
  ) {}

  get size(): number {
    return this.layout.size
  }

  get isFreed(): boolean {
    return this.view instanceof RevokedView
  }

  /** The Devres release: revoke both the Coherent's view and the view itself, then free. */
  free(how: Devres.Release): void {
    const site = how.site
    const revoked = new Revoked(
      this.binding,
      `Dma.Coherent "${this.label}"`,
      how.atUnbind ? undefined : site
    )
    const live = this.view as unknown as AnyViewImpl
    live.memory = new RevokedMemory(revoked) as unknown as DataView
    live.bytes = undefined
    this.view = new RevokedView(this.layout, revoked) as unknown as Dma.View<L>
    this.port.freeCoherent(this.iova, site)
  }

  toString() {
    return `Dma.Coherent(${this.label}, iova ${hex(this.iova)}${this.isFreed ? ", freed" : ""})`
  }
}

/** @internal */
export const allocCoherent = <D extends string, L extends Dma.Layout>(
  driver: Driver.Brand<D>,
  layout: L,
  options: { readonly label?: string | undefined } | undefined,
  site: string
): Effect.Effect<Devres.Devres<Dma.Coherent<L>, D>, HardwareRefused, Hardware | Bound.Bound<D>> => {
  if (!(layout instanceof StructLayoutImpl) && !(layout instanceof ArrayLayoutImpl)) {
    throw new TypeError("Dma.allocCoherent: not a layout made by Dma.struct or Dma.array")
  }
  const label = options?.label ?? `dma coherent ${layout.size} bytes`
  const acquire = Effect.flatMap(Effect.zip(Hardware, driver.Bound), ([hardware, token]) => {
    const port = hardware.dma(token.device)
    return Effect.flatMap(port.allocCoherent(layout.size, site), ({ iova, memory }) => {
      if (memory.byteLength < layout.size) {
        port.freeCoherent(iova, site)
        return Effect.dieMessage(
          `Dma.allocCoherent: the platform returned ${memory.byteLength} bytes for ${label}, ${layout.size} needed`
        )
      }
      return Effect.succeed(new CoherentImpl(bindingOf(token), port, layout, iova, view(layout, memory), label))
    })
  })
  return Effect.uninterruptible(Effect.tap(
    Devres.acquireRelease(driver, acquire, (coherent, how) => Effect.sync(() => coherent.free(how)), { label }),
    (devres) => {
      const impl = devres as unknown as DevresImpl<CoherentImpl<L>, D>
      impl.value!.devres = impl
    }
  )) as Effect.Effect<Devres.Devres<Dma.Coherent<L>, D>, HardwareRefused, Hardware | Bound.Bound<D>>
}

// ---------------------------------------------------------------------------------------------
// Streaming mappings
// ---------------------------------------------------------------------------------------------

interface Sync {
  syncForCpu(iova: number): void
  syncForDevice(iova: number): void
}

/** @internal */
export class MappingImpl implements Dma.Mapping {
  owner: "device" | "cpu" = "device"
  devres: DevresImpl<MappingImpl, any> | undefined = undefined
  /** The port while mapped; a stand-in that raises the defect after. */
  sync: Sync
  constructor(
    readonly binding: Binding,
    readonly port: DmaPort,
    readonly buffer: Uint8Array,
    readonly direction: DmaDirection,
    readonly iova: number,
    readonly label: string,
    readonly tracked: TrackedImpl
  ) {
    this.sync = port
  }

  get size(): number {
    return this.buffer.byteLength
  }

  get isMapped(): boolean {
    return !(this.sync instanceof RevokedSync)
  }

  syncForCpu(): void {
    this.sync.syncForCpu(this.iova)
    this.owner = "cpu"
  }

  syncForDevice(): void {
    this.sync.syncForDevice(this.iova)
    this.owner = "device"
  }

  /**
   * The Devres release. Released by the driver (`Dma.unmap`, `Devres.release`), the mapping
   * leaves the leak check; released by the unbind, it stays there and is reported.
   */
  unmapNow(how: Devres.Release): void {
    const site = how.site
    const early = !how.atUnbind
    this.sync = new RevokedSync(new Revoked(this.binding, `Dma.Mapping "${this.label}"`, early ? site : undefined))
    this.owner = "cpu"
    if (early) this.tracked.release()
    this.port.unmap(this.iova, site)
  }

  toString() {
    return `Dma.Mapping(${this.label}, ${this.isMapped ? `owned by ${this.owner}` : "unmapped"})`
  }
}

/** @internal */
export const map = <D extends string>(
  driver: Driver.Brand<D>,
  buffer: Uint8Array,
  direction: DmaDirection,
  options: { readonly label?: string | undefined } | undefined,
  site: string
): Effect.Effect<Devres.Devres<Dma.Mapping, D>, HardwareRefused, Hardware | Bound.Bound<D>> => {
  const name = options?.label
  const acquire = Effect.flatMap(Effect.zip(Hardware, driver.Bound), ([hardware, token]) => {
    const port = hardware.dma(token.device)
    return Effect.map(port.map(buffer, direction, site), (iova) => {
      const label = `dma mapping ${hex(iova)} (${direction})${name === undefined ? "" : ` "${name}"`}`
      const binding = bindingOf(token)
      // Leak.track, with the site of the `Dma.map` call rather than of this callback.
      const tracked = new TrackedImpl(binding, label, site)
      binding.tracked.add(tracked)
      return new MappingImpl(binding, port, buffer, direction, iova, label, tracked)
    })
  })
  return Effect.uninterruptible(Effect.tap(
    Devres.acquireRelease(driver, acquire, (mapping, how) => Effect.sync(() => mapping.unmapNow(how)), {
      label: name ?? `dma mapping (${direction}, ${buffer.byteLength} bytes)`
    }),
    (devres) => {
      const impl = devres as unknown as DevresImpl<MappingImpl, D>
      impl.value!.devres = impl
    }
  )) as Effect.Effect<Devres.Devres<Dma.Mapping, D>, HardwareRefused, Hardware | Bound.Bound<D>>
}

const isDevres = (u: unknown): u is DevresImpl<any, any> =>
  typeof u === "object" && u !== null && Devres.TypeId in u

/** @internal */
export const unmap = (
  mapping: Dma.Mapping | Devres.Devres<Dma.Mapping, any>,
  site: string
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const devres = isDevres(mapping) ? mapping : (mapping as MappingImpl).devres
    if (devres === undefined) return Effect.dieMessage(`Dma.unmap: ${String(mapping)} was not made by Dma.map`)
    return Effect.flatMap(devres.releaseNow(site, false), Effect.orDie)
  })

// ---------------------------------------------------------------------------------------------
// Mask
// ---------------------------------------------------------------------------------------------

/** @internal */
export const setMask = <D extends string>(core: Core.Core<D>, bits: number): Effect.Effect<void, never, Hardware> =>
  Effect.flatMap(Hardware, (hardware) =>
    Effect.sync(() => {
      assertCoreHeld(core)
      if (!Number.isInteger(bits) || bits < 1 || bits > 64) {
        throw new RangeError(`Dma.setMask: ${bits} is not a number of address bits in [1, 64]`)
      }
      hardware.dma(core.device).setMask(bits)
    }))
