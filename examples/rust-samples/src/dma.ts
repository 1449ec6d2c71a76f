/**
 * A port of Rust-for-Linux's `samples/rust/rust_dma.rs` (torvalds/linux at
 * 0deeb4222dd1bd76fe0e0bbeedff862d7a42ce44): a DMA test driver bound to QEMU's `pci-testdev`
 * (Red Hat, 0x1b36:0x0005). The device takes no part: the sample exercises the DMA API only.
 *
 * - Probe logs "Probe DMA test driver.", sets a 64-bit DMA mask (`Dma.setMask`, Core token),
 *   allocates a zeroed coherent array of five `{ h: u32, b: u32 }` (`Coherent::zeroed_slice`)
 *   and writes `TEST_VALUES` into it (the original's `io_project!(..).copy_write`), then maps
 *   a 4-page buffer for the device, `to-device`. The original builds a scatter-gather table
 *   over 4 pages; devscope has no SG tables, so this is a single streaming mapping of the same
 *   size (16 KiB): one entry, what an IOMMU that merges the pages also yields.
 * - The original's `PinnedDrop` runs at unbind with everything still live: in devscope that is
 *   the `remove` hook. It logs "Unload DMA test driver.", checks every value through the
 *   coherent view (the original's `io_read!` + `assert_eq!`: a mismatch is a defect here, as
 *   the assertion is a panic there), logs the mapping's DMA address ("Entry[0]: DMA address:
 *   0x…"). Then, as the driver data's fields are dropped in declaration order (`pdev`, `ca`,
 *   `sgt`), it frees the coherent allocation and unmaps the mapping, in that order (also when
 *   the check failed), so the unbind reports no leak.
 */
import { Context, Effect, Layer } from "effect"
import { Devres, Dma, Driver } from "@devscope/core"
import { PciTestdev } from "@devscope/sim"

/** The brand: types the tokens `Bound<"rust_dma">` and `Core<"rust_dma">`. */
export const RustDma = Driver.brand("rust_dma")

/** The upstream revision this port follows (torvalds/linux). */
export const UPSTREAM = "torvalds/linux 0deeb4222dd1bd76fe0e0bbeedff862d7a42ce44" as const

/** The original's `MyStruct { h: u32, b: u32 }`. */
export const MyStruct = Dma.struct({ h: "u32", b: "u32" })

/** The values written at probe and checked at unbind. */
export const TEST_VALUES: ReadonlyArray<readonly [h: number, b: number]> = [
  [0xa, 0xb],
  [0xc, 0xd],
  [0xe, 0xf],
  [0xab, 0xba],
  [0xcd, 0xef]
]

/** The coherent allocation's layout: one `MyStruct` per test value. */
export const Values = Dma.array(MyStruct, TEST_VALUES.length)

/** Page size and page count of the streaming buffer (the original's SG table of 4 pages). */
export const PAGE_SIZE = 4096
export const PAGES_NUMBER = 4

/** Labels of the binding's DMA resources, as unbind reports name them. */
export const COHERENT_LABEL = "rust_dma coherent"
export const MAPPING_LABEL = "rust_dma sgt"

/** The coherent allocation (the original's `ca: Coherent<[MyStruct]>`). */
export class Ca extends Context.Tag("@devscope/example-rust-samples/rust_dma/Ca")<
  Ca,
  Devres.Devres<Dma.Coherent<typeof Values>, "rust_dma">
>() {}

/** The streaming mapping (the original's `sgt: SGTable<Owned<VVec<u8>>>`). */
export class Sgt extends Context.Tag("@devscope/example-rust-samples/rust_dma/Sgt")<
  Sgt,
  Devres.Devres<Dma.Mapping, "rust_dma">
>() {}

export interface Options {
  /** Receives every line the driver logs (they also go to `Effect.logInfo`). */
  readonly log?: ((line: string) => void) | undefined
  /** Called at the end of each successful probe with the binding's DMA resources. */
  readonly onProbe?: ((probed: { readonly ca: Context.Tag.Service<Ca>; readonly sgt: Context.Tag.Service<Sgt> }) => void) | undefined
}

/** The driver, matching pci-testdev (vendor 0x1b36, device 0x5). */
export const driver = (options: Options = {}) => {
  const info = (line: string) =>
    Effect.zipRight(Effect.sync(() => options.log?.(line)), Effect.logInfo(line))

  const probe = Layer.effectContext(Effect.gen(function*() {
    const core = yield* RustDma.Core
    const token = yield* RustDma.Bound
    yield* info("Probe DMA test driver.")
    yield* Dma.setMask(core, 64)

    // `Coherent::zeroed_slice(pdev, TEST_VALUES.len(), GFP_KERNEL)?` (fresh memory is zeroed).
    const ca = yield* Dma.allocCoherent(RustDma, Values, { label: COHERENT_LABEL })
    const view = ca.access(token).view
    // `io_project!(ca, [panic: i]).copy_write(MyStruct::new(h, b))`
    TEST_VALUES.forEach(([h, b], i) => {
      view.set(i, "h", h)
      view.set(i, "b", b)
    })

    // `SGTable::new(pdev, VVec::with_capacity(4 * PAGE_SIZE), DataDirection::ToDevice, ..)`
    const pages = new Uint8Array(PAGE_SIZE * PAGES_NUMBER)
    const sgt = yield* Dma.map(RustDma, pages, "to-device", { label: MAPPING_LABEL })

    options.onProbe?.({ ca, sgt })
    return Context.make(Ca, ca).pipe(Context.add(Sgt, sgt))
  }))

  return Driver.make(RustDma, {
    match: [{ vendor: PciTestdev.ids.vendor, device: PciTestdev.ids.device }],
    probe,
    // The original's `PinnedDrop for DmaSampleDriver`: everything is still live here.
    remove: () =>
      Effect.gen(function*() {
        const token = yield* RustDma.Bound
        const caRes = yield* Ca
        const ca = caRes.access(token)
        const sgt = yield* Sgt
        const mapping = sgt.access(token)
        yield* info("Unload DMA test driver.")
        // `check_dma`: `io_read!` each field, `assert_eq!` with the test value.
        const check = Effect.forEach(TEST_VALUES, ([h, b], i) => {
          const gotH = ca.view.get(i, "h")
          const gotB = ca.view.get(i, "b")
          return gotH === h && gotB === b
            ? Effect.void
            : Effect.dieMessage(
              `rust_dma: entry ${i} is { h: 0x${gotH.toString(16)}, b: 0x${gotB.toString(16)} }, ` +
                `expected { h: 0x${h.toString(16)}, b: 0x${b.toString(16)} }`
            )
        }, { discard: true })
        yield* check.pipe(
          // `for (i, entry) in self.sgt.iter().enumerate()`: one entry here.
          Effect.zipRight(info(`Entry[0]: DMA address: 0x${mapping.iova.toString(16)}`)),
          // Then the fields are dropped in declaration order: `ca` (freed), then `sgt`
          // (unmapped). Done whatever the check said, so nothing is left to leak.
          Effect.ensuring(Effect.zipRight(Devres.release(caRes), Dma.unmap(sgt)))
        )
      })
  })
}
