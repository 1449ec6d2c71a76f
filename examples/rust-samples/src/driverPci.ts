/**
 * A port of Rust-for-Linux's `samples/rust/rust_driver_pci.rs`: a driver for QEMU's
 * `pci-testdev` (Red Hat, 0x1b36:0x0005) that runs one test at probe and logs how many
 * data-match writes the device has counted.
 *
 * - Probe maps BAR0 (`Hardware.iomap` with the `PciTestdev` register map), then runs
 *   `testdev(NO_EVENTFD)`: select the test (`TEST`), read where to write (`OFFSET`) and what
 *   (`DATA`), write it with `tryWrite8` (the offset comes from the device, so it is only
 *   checked at run time, like the original's `try_write8`), then read `COUNT`.
 * - As the original's `bar.try_access_with(...)`, the access goes through
 *   `devres.tryAccess()`; `None` fails probe with `BarUnavailable` (the original's ENXIO).
 *   Inside probe the bound path, `access(token)`, would be the idiomatic devscope way.
 * - The original's `enable_device_mem()` and `set_master()` have no devscope equivalent: a
 *   simulated BAR is always decoded and bus mastering is implied by the IOMMU domain.
 */
import { Context, Data, Effect, Either, Layer, Option } from "effect"
import { type Devres, Driver, Hardware, type Mmio } from "@devscope/core"
import { PciTestdev } from "@devscope/sim"

/** The brand: types the tokens `Bound<"rust_driver_pci">` and `Core<"rust_driver_pci">`. */
export const RustDriverPci = Driver.brand("rust_driver_pci")

type Regs = Mmio.Mmio<typeof PciTestdev.registers.spec>

/** The original's `TestIndex`: which pci-testdev test the driver runs. */
export const TestIndex = { NO_EVENTFD: 0 } as const

/** The original's `Regs` offsets read with raw (dynamic) accessors. */
const OFFSET = PciTestdev.registers.spec.OFFSET.offset
const DATA = PciTestdev.registers.spec.DATA.offset
const COUNT = PciTestdev.registers.spec.COUNT.offset

/** BAR0 was no longer accessible (the original's `try_access_with` returning `None`: ENXIO). */
export class BarUnavailable extends Data.TaggedError("BarUnavailable")<{ readonly device: string }> {
  override get message() {
    return `${this.device}: BAR0 is not accessible (ENXIO)`
  }
}

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

const Bar0Live = Layer.effect(Bar0, Hardware.iomap(RustDriverPci, PciTestdev.registers, 0, { label: BAR0_LABEL }))

/**
 * The original's `testdev`: select test `index`, write its `DATA` at its `OFFSET` (checked at
 * run time), return the device's count of matching writes.
 */
export const testdev = (device: string, index: number, bar: Regs): Either.Either<number, TestdevAccessFailed> => {
  bar.write("TEST", index)
  const offset = bar.read32(OFFSET)
  // The original reads DATA with `read8`: QEMU's DATA is a u8 followed by padding. The
  // simulator's map declares DATA as a 32-bit register, where an 8-bit read is a width fault
  // (all-ones), so this reads the register at its width and keeps the low byte: same value.
  const data = bar.read32(DATA) & 0xff
  // The offset comes from the device: it can't be checked at compile time (`try_write8`).
  return Either.match(bar.tryWrite8(offset, data), {
    onLeft: (cause) => Either.left(new TestdevAccessFailed({ device, offset, cause })),
    onRight: () => Either.right(bar.read32(COUNT))
  })
}

export interface Options {
  /** The test to run (the id table's driver data). Default `TestIndex.NO_EVENTFD`. */
  readonly index?: number | undefined
  /** Receives every line the driver logs (they also go to `Effect.logInfo`). */
  readonly log?: ((line: string) => void) | undefined
  /** Called with the data-match count at the end of each successful probe. */
  readonly onProbe?: ((count: number) => void) | undefined
}

/** The driver, matching pci-testdev (vendor 0x1b36, device 0x5). */
export const driver = (options: Options = {}) => {
  const index = options.index ?? TestIndex.NO_EVENTFD
  const info = (line: string) =>
    Effect.zipRight(Effect.sync(() => options.log?.(line)), Effect.logInfo(line))

  const probe = Layer.effectDiscard(Effect.gen(function*() {
    const core = yield* RustDriverPci.Core
    const device = core.device.name
    const bar0 = yield* Bar0
    // `bar.try_access_with(|b| Self::testdev(info, b)).ok_or(ENXIO)??`
    const bar = yield* Option.match(bar0.tryAccess(), {
      onNone: () => Effect.fail(new BarUnavailable({ device })),
      onSome: Effect.succeed
    })
    const count = yield* testdev(device, index, bar)
    yield* info(`pci-testdev data-match count: ${count}`)
    options.onProbe?.(count)
  })).pipe(Layer.provideMerge(Bar0Live))

  return Driver.make(RustDriverPci, {
    match: [{ vendor: PciTestdev.ids.vendor, device: PciTestdev.ids.device }],
    probe,
    remove: () => info("Remove Rust PCI driver sample.")
  })
}
