/**
 * The one policy for tests that need a real QEMU with its qtest accelerator:
 *
 * - on a developer's machine without it, they are skipped, with the reason printed once
 *   (`it.skipIf(skipReason !== undefined)`);
 * - under CI (`CI` set, as .ci/run does) a missing QEMU is an error at import, so that a broken
 *   `pnpm qemu:setup` fails the run instead of silently skipping every QEMU test.
 *
 * `locate` is cheap (no QEMU start), so every test file can import this.
 */
import { type Availability, locate } from "../src/internal/install.js"

/** What `locate()` found on this machine. */
export const qemu: Availability = locate()

/** Why QEMU tests are skipped here, or undefined when QEMU is available. */
export const skipReason: string | undefined = qemu.available ? undefined : `${qemu.reason}; ${qemu.hint}`

if (skipReason !== undefined) {
  if (isCI()) throw new Error(`QEMU is required under CI (CI=${process.env.CI}): ${skipReason}`)
  console.warn(`@devscope/qemu: skipping the tests that need QEMU: ${skipReason}`)
}

function isCI() {
  const ci = process.env.CI
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false"
}
