/**
 * A port of Rust-for-Linux's `samples/rust/rust_driver_pci.rs` (torvalds/linux at
 * 0deeb4222dd1bd76fe0e0bbeedff862d7a42ce44): a driver for QEMU's `pci-testdev` (Red Hat,
 * 0x1b36:0x0005) that runs one test at probe, logs how many data-match writes the device
 * counted, logs the config-space values it can read, and resets the device at unbind.
 *
 * - Probe logs (debug) the PCI ids, maps BAR0 (`Hardware.iomap` with the `PciTestdev`
 *   register map) and runs `testdev(index)` on the bound path (`access(token)`, total, like
 *   the original's `Bar<'bound>`): select the test (`TEST`), read where to write (`OFFSET`)
 *   and what (`DATA`, 8-bit), write it with `tryWrite8` (the offset comes from the device, so
 *   it is only checked at run time, like the original's `try_write8`), then read `COUNT`.
 *   It logs the count, then the original's `config_space()` lines: devscope has no PCI
 *   config space, so only the vendor id (from the device's bus ids) is logged; the revision
 *   id and BAR 0 lines are left out (see the README).
 * - `remove` is the original's `unbind` followed by its `Drop`: it writes the test index to
 *   `TEST` again ("Reset pci-testdev by writing a new test index", unconditionally), then
 *   logs (debug) "Remove Rust PCI driver sample.". BAR0 is released after it, in unbind
 *   step 4 (the original's `Bar` is dropped with the driver data). After a surprise removal
 *   the reset write is dropped by the device (the original's write to a gone device goes
 *   nowhere too).
 * - The original's `enable_device_mem()` and `set_master()` have no devscope equivalent: a
 *   simulated BAR is always decoded and bus mastering is implied by the IOMMU domain.
 */
import { Context, Data, Effect, Either, Layer } from "effect"
import { type Devres, Driver, Hardware, type Mmio } from "@devscope/core"
import { PciTestdev } from "@devscope/sim"

/** The brand: types the tokens `Bound<"rust_driver_pci">` and `Core<"rust_driver_pci">`. */
export const RustDriverPci = Driver.brand("rust_driver_pci")

type Regs = Mmio.Mmio<typeof PciTestdev.registers.spec>

/** The original's `TestIndex`: which pci-testdev test the driver runs. */
export const TestIndex = { NO_EVENTFD: 0 } as const

/** The upstream revision this port follows (torvalds/linux). */
export const UPSTREAM = "torvalds/linux 0deeb4222dd1bd76fe0e0bbeedff862d7a42ce44" as const

/** The test's write at the offset the device gave was refused (the original's `try_write8` error). */
export class TestdevAccessFailed extends Data.TaggedError("TestdevAccessFailed")<{
  readonly device: string
  readonly offset: number
  readonly cause: Mmio.InvalidAccess
}> {
  override get message() {
    return `${this.device}: pci-testdev write at 0x${this.offset.toString(16)} failed: ${this.cause.message}`
  }
}

/** BAR0: the register window, a Devres of the binding. */
export class Bar0 extends Context.Tag("@devscope/example-rust-samples/rust_driver_pci/Bar0")<
  Bar0,
  Devres.Devres<Regs, "rust_driver_pci">
>() {}

/** The label of BAR0 in unbind reports. */
export const BAR0_LABEL = "rust_driver_pci BAR0"

/**
 * The original's `testdev`: select test `index`, write its `DATA` at its `OFFSET` (checked at
 * run time), return the device's count of matching writes.
 */
export const testdev = (device: string, index: number, bar: Regs): Either.Either<number, TestdevAccessFailed> => {
  // Select the test.
  bar.write("TEST", index)
  const offset = bar.read("OFFSET")
  const data = bar.read("DATA")
  // Write `data` to `offset` to increase `count` by one. The offset comes from the device: it
  // can't be checked at compile time (`try_write8`).
  return Either.match(bar.tryWrite8(offset, data), {
    onLeft: (cause) => Either.left(new TestdevAccessFailed({ device, offset, cause })),
    onRight: () => Either.right(bar.read("COUNT"))
  })
}

/** The log levels the original uses: `dev_info!` and `dev_dbg!`. */
export type Level = "info" | "debug"

export interface Options {
  /** The test to run (the id table's driver data). Default `TestIndex.NO_EVENTFD`. */
  readonly index?: number | undefined
  /**
   * Receives every line the driver logs, with the original's level (`dev_info!` is `"info"`,
   * `dev_dbg!` is `"debug"`). They also go to `Effect.logInfo` / `Effect.logDebug`.
   */
  readonly log?: ((line: string, level: Level) => void) | undefined
  /** Called with the data-match count at the end of each successful probe. */
  readonly onProbe?: ((count: number) => void) | undefined
}

const hex = (n: number) => n.toString(16)

/** The driver, matching pci-testdev (vendor 0x1b36, device 0x5). */
export const driver = (options: Options = {}) => {
  const index = options.index ?? TestIndex.NO_EVENTFD
  const log = (level: Level, line: string) =>
    Effect.zipRight(
      Effect.sync(() => options.log?.(line, level)),
      level === "info" ? Effect.logInfo(line) : Effect.logDebug(line)
    )

  const probe = Layer.effectContext(Effect.gen(function*() {
    const core = yield* RustDriverPci.Core
    const token = yield* RustDriverPci.Bound
    const device = core.device.name
    const vendor = Number(core.device.ids.vendor)
    const deviceId = Number(core.device.ids.device)
    // The original prints `pci::Vendor` with its Display impl (`0x{:04x}`).
    yield* log("debug", `Probe Rust PCI driver sample (PCI ID: 0x${hex(vendor).padStart(4, "0")}, 0x${hex(deviceId)}).`)
    // `pdev.iomap_region_sized::<{ regs::END }>(0, c"rust_driver_pci")?`
    const bar0 = yield* Hardware.iomap(RustDriverPci, PciTestdev.registers, 0, { label: BAR0_LABEL })
    // The original holds a `Bar<'bound>`: on the bound path, access is total.
    const bar = bar0.access(token)
    const count = yield* testdev(device, index, bar)
    yield* log("info", `pci-testdev data-match count: ${count}`)
    // The original's `config_space()`: three config-space reads (rev ID, vendor ID, BAR 0).
    // The simulator has no config space: only the vendor id is known, from the bus ids.
    yield* log("info", `pci-testdev config space read16 vendor ID: ${hex(vendor)}`)
    options.onProbe?.(count)
    return Context.make(Bar0, bar0)
  }))

  return Driver.make(RustDriverPci, {
    match: [{ vendor: PciTestdev.ids.vendor, device: PciTestdev.ids.device }],
    probe,
    remove: () =>
      Effect.gen(function*() {
        // The original's `unbind`: reset pci-testdev by writing a new test index.
        const bar = (yield* Bar0).access(yield* RustDriverPci.Bound)
        bar.write("TEST", index)
        // The original's `Drop for SampleDriverData`.
        yield* log("debug", "Remove Rust PCI driver sample.")
      })
  })
}
