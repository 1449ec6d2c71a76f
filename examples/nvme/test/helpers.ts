/**
 * A QEMU machine with one NVMe controller whose namespace is a small image file, the driver
 * registered, the device plugged.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { expect } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { DeviceError, Hardware } from "@devscope/core"
import { Qemu } from "@devscope/qemu"
import { driver, type NvmeDevice, NvmeDevices, makeNvmeDevices, type Options, type Probed } from "../src/index.js"

/**
 * The namespace's logical block size: 4 KiB (QEMU's default is 512), so that a transfer of
 * three blocks spans three pages and needs a PRP list page.
 */
export const BLOCK = 4096

/** Blocks of the image (2 MiB). */
export const IMAGE_BLOCKS = 512

/** A fresh zeroed image file, removed when the scope closes. */
export const image = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devscope-nvme-"))
    const file = path.join(dir, "nvm0.img")
    fs.writeFileSync(file, new Uint8Array(IMAGE_BLOCKS * BLOCK))
    return file
  }),
  (file) => Effect.sync(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }))
)

/**
 * The device description: the image behind a `-blockdev` node (not `-drive`: QEMU deletes a
 * legacy drive with the device that uses it, so a re-plug would find no backend).
 */
export const nvmeSpec = (file: string): Qemu.DeviceSpec => ({
  name: "nvme0",
  model: "nvme",
  properties: { serial: "devscope-nvme", drive: "nvm0", logical_block_size: BLOCK, physical_block_size: BLOCK },
  args: ["-blockdev", `driver=file,filename=${file},node-name=nvm0`],
  interrupts: "msix",
  vectors: 2
})

export interface World {
  readonly q: Qemu.Service
  readonly devices: ReturnType<typeof makeNvmeDevices>
  readonly probed: () => Probed
  readonly log: Array<string>
  readonly file: string
}

/** Runs `f` with a machine whose nvme0 is bound (`before`, given, runs first, and the clock is `manual`). */
export const withNvme = <A, E>(f: (w: World) => Effect.Effect<A, E>, options: Options = {}, before?: (q: Qemu.Service) => Effect.Effect<void>) =>
  Effect.scoped(Effect.gen(function*() {
    const file = yield* image
    const q = yield* Qemu.make({ devices: [nvmeSpec(file)], clock: before === undefined ? "auto" : "manual" })
    if (before !== undefined) yield* before(q)
    const devices = makeNvmeDevices()
    let probed: Probed | undefined
    const log: Array<string> = []
    yield* q.pci.registerDriver(driver({ ...options, log: (line) => log.push(line), onProbe: (p) => (probed = p) })).pipe(
      Effect.provideService(Hardware.Hardware, q.hardware),
      Effect.provideService(NvmeDevices, devices)
    )
    const device = yield* q.plug("nvme0")
    expect(device.state).toBe("bound")
    return yield* f({ q, devices, probed: () => probed!, log, file })
  }))

/** The bound nvme0. */
export const nvme = (w: World): NvmeDevice => Option.getOrThrow(w.devices.lookup("nvme0"))

/** A recognisable block pattern. */
export const pattern = (bytes: number, seed: number) => Uint8Array.from({ length: bytes }, (_, i) => (i * 31 + seed * 7 + (i >> 9)) & 0xff)

/** The exit is a typed failure with this tag. */
export const failedWith = (exit: Exit.Exit<unknown, unknown>, tag: string) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" && (exit.cause.error as { _tag?: string })._tag === tag

export const isGone = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof DeviceError.DeviceGone
