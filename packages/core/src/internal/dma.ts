import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as Bound from "../Bound.js"
import type * as Core from "../Core.js"
import { UseAfterUnbind } from "../DeviceError.js"
import * as Devres from "../Devres.js"
import type * as Dma from "../Dma.js"
import type * as Driver from "../Driver.js"
import { type DmaDirection, type DmaPort, Hardware, type HardwareRefused } from "../Hardware.js"
import {
  assertCoreHeld,
  type Binding,
  bindingOf,
  BoundTypeId,
  isLive,
  type ListedEntry,
  liveBinding
} from "./binding.js"
import { type DevresImpl, register, type SyncRelease, tokenInFiber } from "./devres.js"
import { LazySite, type Site } from "./site.js"
import { type AnyViewImpl, ArrayLayoutImpl, type Memory, StructLayoutImpl, view } from "./dmaLayout.js"

export { array, struct, view } from "./dmaLayout.js"

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

/** Builds, when something is used after release, the defect that says so. */
class Revoked {
  constructor(
    readonly binding: Binding,
    /** The resource's name, or the mapping (named only if the defect is raised). */
    readonly resource: string | MappingImpl,
    /** Where it was released early (Devres.release, Dma.unmap); undefined if by the unbind. */
    readonly releasedAt: Site | undefined
  ) {}
  fail(): never {
    const resource = typeof this.resource === "string" ? this.resource : `Dma.Mapping "${this.resource.label}"`
    if (this.releasedAt === undefined) throw this.binding.useAfterUnbind(resource)
    throw new UseAfterUnbind({
      device: this.binding.device.name,
      driver: this.binding.driver,
      resource,
      unbindCause: "released",
      revokedAt: String(this.releasedAt)
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
class RevokedSync extends Revoked {
  syncForCpu(): void {
    this.fail()
  }
  syncForDevice(): void {
    this.fail()
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

/**
 * A streaming mapping. It is its own leak-check entry (listed in its binding: `Binding.list`):
 * added at map, removed by an early unmap, reported (`label`, `acquiredAt`) if still there at
 * unbind. The label and the site are only formatted then, or for a defect.
 * @internal
 */
export class MappingImpl implements Dma.Mapping, ListedEntry {
  owner: "device" | "cpu" = "device"
  listPrev: ListedEntry | undefined = undefined
  listNext: ListedEntry | undefined = undefined
  listed = false
  devres: DevresImpl<MappingImpl, any> | undefined = undefined
  /** The port while mapped; a stand-in that raises the defect after. */
  sync: Sync
  constructor(
    readonly binding: Binding,
    readonly port: DmaPort,
    readonly buffer: Uint8Array,
    readonly direction: DmaDirection,
    readonly iova: number,
    /** The label given to `Dma.map`, if any. */
    readonly name: string | undefined,
    /** Where `Dma.map` was called. */
    readonly site: Site
  ) {
    this.sync = port
  }

  /** `dma mapping 0x<iova> (<direction>) "<label>"`, as leak reports name it. */
  get label(): string {
    return `dma mapping ${hex(this.iova)} (${this.direction})${this.name === undefined ? "" : ` "${this.name}"`}`
  }

  get acquiredAt(): string {
    return String(this.site)
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

  unmap(): void {
    const site = sitesOf(this.binding).take("unmap", this.name, MappingImpl.prototype.unmap)
    const exit = this.devres!.releaseSync(site, false)
    if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
  }

  /**
   * The Devres release (synchronous). Released by the driver (`unmap`, `Dma.unmap`,
   * `Devres.release`), the mapping leaves the leak check; released by the unbind, it stays
   * there and is reported.
   */
  release(atUnbind: boolean, site: Site): void {
    this.sync = new RevokedSync(this.binding, this, atUnbind ? undefined : site)
    this.owner = "cpu"
    if (!atUnbind) this.binding.unlist(this)
    this.port.unmap(this.iova, site)
  }

  toString() {
    return `Dma.Mapping(${this.label}, ${this.isMapped ? `owned by ${this.owner}` : "unmapped"})`
  }
}

// ---------------------------------------------------------------------------------------------
// Sites of streaming mappings: every one at first, then sampled
// ---------------------------------------------------------------------------------------------

/**
 * Frames walked for the site of a public call (`Dma.map`, `Dma.unmap`, `mapping.unmap`): the
 * stack is captured from its caller, so the first frame is normally the driver's own; a few
 * more leave room for a thin helper of the driver's in between.
 */
const SITE_FRAMES = 4

/**
 * A binding's first `EXACT_SITES` maps (and as many unmaps) capture their site; after that,
 * one call in `SAMPLE_EVERY` does. A stack walk from a driver's request path costs more than
 * the rest of a mapping (5 to 20 µs: V8 has to expand the optimised, inlined frames of the
 * fiber runtime it walks through), and a mapping per request would pay it twice per request.
 * @internal
 */
export const EXACT_SITES = 64
/** @internal */
export const SAMPLE_EVERY = 256

/**
 * The site of a call that was not sampled: it says so, and points at the latest sampled call
 * of the same kind and label in the binding (normally the same line of the driver).
 */
class SampledOut {
  /** The latest sampled site of this kind and label. */
  latest: LazySite | undefined = undefined
  constructor(readonly kind: "map" | "unmap", readonly name: string | undefined) {}
  toString(): string {
    const what = `${this.kind === "map" ? "mapping" : "unmap of a mapping"}${this.name === undefined ? "" : ` labelled "${this.name}"`}`
    return `not captured (sampled: a binding's first ${EXACT_SITES} calls, then 1 in ${SAMPLE_EVERY}; ` +
      (this.latest === undefined ? `no ${what} was sampled)` : `the latest sampled ${what} was at ${this.latest})`)
  }
}

/** Labels a binding keeps a sampled site for; calls with further labels share one entry. */
const MAX_LABELS = 256

interface LabelSites {
  readonly map: SampledOut
  readonly unmap: SampledOut
}

/**
 * Per binding: streaming-mapping calls so far, and per label, what an unsampled call names.
 * On a bus with `captureSites: "always"` (hunting a leak), every call is captured.
 */
class Sites {
  constructor(private readonly every: boolean) {}
  maps = 0
  unmaps = 0
  private readonly byLabel = new Map<string | undefined, LabelSites>()
  /** For labels past `MAX_LABELS` (a driver that puts a counter in its labels): any label. */
  private readonly others: LabelSites = { map: new SampledOut("map", undefined), unmap: new SampledOut("unmap", undefined) }

  /** The site of a map or unmap call: captured (a raw stack walk) or sampled out. */
  take(kind: "map" | "unmap", name: string | undefined, api: (...args: Array<any>) => any): Site {
    const n = kind === "map" ? this.maps++ : this.unmaps++
    let entry = this.byLabel.get(name)
    if (entry === undefined) {
      if (this.byLabel.size >= MAX_LABELS) entry = this.others
      else {
        entry = { map: new SampledOut("map", name), unmap: new SampledOut("unmap", name) }
        this.byLabel.set(name, entry)
      }
    }
    const out = kind === "map" ? entry.map : entry.unmap
    if (n >= EXACT_SITES && n % SAMPLE_EVERY !== 0 && !this.every) return out
    return out.latest = new LazySite(api, SITE_FRAMES)
  }
}

const sitesOf = (binding: Binding): Sites =>
  (binding.dmaSites ??= new Sites(binding.options.captureSites === "always")) as Sites

const releaseMapping: SyncRelease<MappingImpl> = (mapping, atUnbind, site) => mapping.release(atUnbind, site)

/** The DMA port of a binding's device, from the environment its driver was registered with. */
const portOf = (binding: Binding): DmaPort => {
  if (binding.dmaPort !== undefined) return binding.dmaPort as DmaPort
  const hardware = binding.environment === undefined ? undefined : Context.getOption(binding.environment, Hardware)
  if (hardware === undefined || hardware._tag === "None") {
    throw new Error(`Dma.map: driver "${binding.driver}" was registered without a Hardware service`)
  }
  return binding.dmaPort = hardware.value.dma(binding.device)
}

/** Maps `buffer` and registers the mapping (a Devres, a leak-check entry) in one step. */
const mapIn = (
  binding: Binding,
  port: DmaPort,
  buffer: Uint8Array,
  direction: DmaDirection,
  name: string | undefined,
  site: Site
): Effect.Effect<DevresImpl<MappingImpl, any>, HardwareRefused> =>
  Effect.flatMap(port.map(buffer, direction, site), (iova) => {
    const mapping = new MappingImpl(binding, port, buffer, direction, iova, name, site)
    binding.list(mapping)
    const label = name ?? `dma mapping (${direction}, ${buffer.byteLength} bytes)`
    return Effect.succeed(mapping.devres = register(binding, mapping, label, site, releaseMapping))
  })

/** @internal */
export const map = <D extends string>(
  owner: Driver.Brand<D> | Bound.Bound<D>,
  buffer: Uint8Array,
  direction: DmaDirection,
  options: { readonly label?: string | undefined } | undefined,
  /** The public function called: the site is its caller. */
  api: (...args: Array<any>) => any
): Effect.Effect<Devres.Devres<Dma.Mapping, D>, HardwareRefused, any> => {
  const name = options?.label
  if (isToken(owner)) {
    // With the token: no context to read, the port is the binding's. Uninterruptible, so a
    // mapping the platform made is always registered (and unmapped at unbind at the latest).
    const bound = bindingOf(owner)
    const site = bound === undefined ? new LazySite(api, SITE_FRAMES) : sitesOf(bound).take("map", name, api)
    return Effect.withFiberRuntime((_, status) => {
      const binding = isLive(owner) ? bound! : liveBinding(owner, mapName(buffer, direction))
      const mapped = mapIn(binding, portOf(binding), buffer, direction, name, site)
      // A request path usually runs uninterruptibly already (a Gate section of an
      // uninterruptible call): then there is no region to open.
      return RuntimeFlags.interruptible(status.runtimeFlags) ? Effect.uninterruptible(mapped) : mapped
    })
  }
  const driver = owner as Driver.Brand<D>
  // Outside a binding's fiber (a Layer made at module load): always captured.
  const bound = tokenInFiber(driver.Bound)?.binding
  const site = bound === undefined ? new LazySite(api, SITE_FRAMES) : sitesOf(bound).take("map", name, api)
  return Effect.uninterruptible(Effect.flatMap(Effect.zip(Hardware, driver.Bound), ([hardware, token]) => {
    const binding = liveBinding(token, mapName(buffer, direction))
    return mapIn(binding, hardware.dma(token.device), buffer, direction, name, site)
  }))
}

const mapName = (buffer: Uint8Array, direction: DmaDirection) => `Dma.map of ${buffer.byteLength} bytes (${direction})`

const isDevres = (u: unknown): u is DevresImpl<any, any> =>
  typeof u === "object" && u !== null && Devres.TypeId in u

const isToken = (u: unknown): u is Bound.Bound<any> => typeof u === "object" && u !== null && BoundTypeId in u

/** @internal */
export const unmap = (
  mapping: Dma.Mapping | Devres.Devres<Dma.Mapping, any>,
  /** The public function called: the site is its caller. */
  api: (...args: Array<any>) => any
): Effect.Effect<void> => {
  const devres = isDevres(mapping) ? mapping : mapping instanceof MappingImpl ? mapping.devres : undefined
  const impl = mapping instanceof MappingImpl ? mapping : devres?.value
  // A released Devres no longer holds its mapping: a rare call, captured in full.
  const site = impl instanceof MappingImpl
    ? sitesOf(impl.binding).take("unmap", impl.name, api)
    : new LazySite(api, SITE_FRAMES)
  return Effect.suspend(() => {
    if (devres === undefined) return Effect.dieMessage(`Dma.unmap: ${String(mapping)} was not made by Dma.map`)
    return Effect.flatMap(devres.releaseEarly(site), Effect.orDie)
  })
}

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
