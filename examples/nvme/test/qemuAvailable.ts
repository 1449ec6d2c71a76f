/**
 * The QEMU tests' policy, as packages/qemu/test/qemuAvailable.ts has it (examples cannot
 * import that package's test files): without QEMU and its qtest accelerator they are skipped
 * with the reason printed once; under CI (`CI` set) a missing QEMU is an error at import.
 */
import { Install } from "@devscope/qemu"

/** What `Install.locate()` found on this machine. */
export const qemu: Install.Availability = Install.locate()

/** Why QEMU tests are skipped here, or undefined when QEMU is available. */
export const skipReason: string | undefined = qemu.available ? undefined : `${qemu.reason}; ${qemu.hint}`

if (skipReason !== undefined) {
  if (isCI()) throw new Error(`QEMU is required under CI (CI=${process.env.CI}): ${skipReason}`)
  console.warn(`@devscope/example-nvme: skipping the tests that need QEMU: ${skipReason}`)
}

function isCI() {
  const ci = process.env.CI
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false"
}
