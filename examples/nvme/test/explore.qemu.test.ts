/**
 * Explore on the NVMe driver, on QEMU: a bounded workload (writes of one and three blocks, the
 * reads that check them, a flush, two callers at once) with a surprise removal, an orderly
 * removal, and a surprise removal inside an orderly unbind injected at suspension points spread
 * over the run (`Explore.exploreOn` with `Qemu.platform`: each case boots its own QEMU, its
 * clock driven from the case's virtual world). Every case is judged by the oracle (G1-G5).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Hardware } from "@devscope/core"
import { Qemu } from "@devscope/qemu"
import { Explore, type Oracle } from "@devscope/testing"
import { driver, type NvmeDevice, NvmeDevices, makeNvmeDevices } from "../src/index.js"
import { BLOCK, IMAGE_BLOCKS, nvmeSpec, pattern } from "./helpers.js"
import { skipReason } from "./qemuAvailable.js"

const skip = skipReason !== undefined

/** Points per mode (about 80 while bound, 5 in the unbind): about 40 cases, a QEMU boot each, 6 s here. */
const MAX_POINTS = 16

/** One write and its read back; a read that succeeds with other data is counted corrupt. */
const roundTrip = (d: NvmeDevice, oracle: Oracle.Oracle, lba: number, blocks: number, seed: number) =>
  Effect.gen(function*() {
    const data = pattern(blocks * BLOCK, seed)
    const written = yield* oracle.track("nvme0", `write ${lba}+${blocks}`, d.write(lba, data))
    if (Option.isNone(written)) return
    const back = yield* oracle.track("nvme0", `read ${lba}+${blocks}`, d.read(lba, blocks))
    if (Option.isSome(back) && Buffer.compare(Buffer.from(back.value), Buffer.from(data)) !== 0) {
      oracle.ops.of("nvme0").corrupt++
      oracle.ops.problem("nvme0", `read ${lba}+${blocks} did not return what was written`)
    }
  })

describe.skipIf(skip)("Explore on the nvme driver, on QEMU", () => {
  it.live("removal at suspension points spread over a bounded workload: every case judged, none fails", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-nvme-explore-"))
      const file = path.join(dir, "nvm0.img")
      fs.writeFileSync(file, new Uint8Array(IMAGE_BLOCKS * BLOCK))
      const report = yield* Explore.exploreOn({
        name: "nvme-on-qemu",
        device: "nvme0",
        platform: Qemu.platform({ devices: [nvmeSpec(file)] }),
        run: ({ platform, oracle }) =>
          Effect.gen(function*() {
            const devices = makeNvmeDevices()
            yield* platform.pci.registerDriver(driver()).pipe(
              Effect.provideService(Hardware.Hardware, platform.hardware),
              Effect.provideService(NvmeDevices, devices),
              Effect.orDie
            )
            yield* Effect.orDie(platform.plug("nvme0"))
            const d = Option.getOrUndefined(devices.lookup("nvme0"))
            if (d === undefined) return
            yield* roundTrip(d, oracle, 0, 1, 1)
            yield* roundTrip(d, oracle, 8, 3, 2) // three pages: a PRP list page
            yield* oracle.track("nvme0", "flush", d.flush())
            // Two callers at once: commands on the controller together.
            yield* Effect.all([roundTrip(d, oracle, 16, 2, 3), roundTrip(d, oracle, 24, 1, 4)], { concurrency: 2 })
            yield* Effect.ignore(platform.unplug("nvme0"))
          })
      }, { maxPoints: MAX_POINTS }).pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))))
      const seconds = (Date.now() - started) / 1000
      console.log(
        `Explore nvme on QEMU: ${report.cases} cases in ${seconds.toFixed(1)} s; points bound ${report.points.bound}, unbinding ${report.points.unbinding}; ` +
          report.modes.map((m) => `${m.mode}: ${m.cases} cases of ${m.points} points, ${m.injected} injected`).join("; ") +
          `; ${report.failures.length} failures`
      )
      for (const failure of report.failures) console.log(Explore.describe(failure))
      expect(report.failures).toEqual([])
      expect(report.modes.map((m) => m.mode)).toEqual(["surprise", "unplug", "surprise-in-remove"])
      for (const mode of report.modes) {
        expect(mode.cases).toBeGreaterThan(0)
        expect(mode.injected).toBeGreaterThan(0)
      }
    }), 120_000)
})
