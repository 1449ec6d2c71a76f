/**
 * A QEMU-`pci-testdev`-like device: BAR0 describes tests (write TEST to select one; OFFSET
 * and DATA say where to write what), and COUNT counts the writes of the selected test seen
 * at its offset. As in QEMU (`pci_testdev_start`), selecting a test zeroes its count, and
 * only the selected test's writes are counted. Rust-for-Linux's
 * `samples/rust/rust_driver_pci.rs` drives this device.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { RegisterMap } from "@devscope/core"
import * as Model from "./Model.js"

/**
 * PCI ids (Red Hat, pci-testdev).
 * @since 0.1.0
 * @category constants
 */
export const ids = {
  vendor: 0x1b36,
  device: 0x0005,
  // As QEMU's pci-testdev: PCI_CLASS_OTHERS, revision 0, QEMU's default subsystem ids.
  class: 0x00ff00,
  revision: 0,
  subsystemVendor: 0x1af4,
  subsystem: 0x1100
} as const

/**
 * The tests the device offers: where the test's write goes, its width and data.
 * @since 0.1.0
 * @category constants
 */
export const tests: ReadonlyArray<{ readonly name: string; readonly offset: number; readonly data: number }> = [
  { name: "no-eventfd", offset: 0x20, data: 0 },
  { name: "wildcard-eventfd", offset: 0x24, data: 0 },
  { name: "datamatch-eventfd", offset: 0x28, data: 0x5a }
]

/**
 * The register map of BAR0.
 * @since 0.1.0
 * @category constants
 */
export const registers = RegisterMap.make("pci-testdev", 0x100, {
  TEST: { offset: 0x00, access: "WO", width: 8, description: "selects a test" },
  WIDTH_TYPE: { offset: 0x01, access: "RO", width: 8, description: "access width of the test, 0 if none" },
  OFFSET: { offset: 0x04, access: "RO", description: "where to write for the selected test" },
  DATA: { offset: 0x08, access: "RO", width: 8, description: "what to write (a u8, as QEMU's header)" },
  COUNT: { offset: 0x0c, access: "RO", description: "writes seen for the selected test" },
  TEST0: { offset: 0x20, access: "WO", width: 8 },
  TEST1: { offset: 0x24, access: "WO", width: 8 },
  TEST2: { offset: 0x28, access: "WO", width: 8 }
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const model = () =>
  Model.make({
    kind: "pci-testdev",
    regions: [registers],
    irqs: 0,
    start: (ctx) =>
      Effect.sync(() => {
        const [regs] = ctx.regions
        let selected = -1
        const select = (index: number) => {
          const test = tests[index]
          selected = test === undefined ? -1 : index
          regs.set("WIDTH_TYPE", test === undefined ? 0 : 1)
          regs.set("OFFSET", test?.offset ?? 0)
          regs.set("DATA", test?.data ?? 0)
          // QEMU's pci_testdev_start: (re)selecting a test zeroes its count.
          regs.set("COUNT", 0)
        }
        regs.onWrite("TEST", (index) => select(index))
        const names = ["TEST0", "TEST1", "TEST2"] as const
        names.forEach((name, index) =>
          regs.onWrite(name, (value) => {
            // QEMU counts only writes to the selected test's offset.
            if (selected !== index || value !== tests[index]!.data) return
            regs.set("COUNT", regs.get("COUNT") + 1)
          })
        )
        select(-1)
      })
  })
