/**
 * The NVMe example driver on QEMU's NVMe controller: Identify, reads and writes (one block,
 * and three blocks through a PRP list page), flush, and the controller's own errors.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { BLOCK, failedWith, IMAGE_BLOCKS, nvme, pattern, withNvme } from "./helpers.js"
import { skipReason } from "./qemuAvailable.js"

const skip = skipReason !== undefined

describe.skipIf(skip)("the nvme driver on QEMU's nvme", () => {
  it.live("identify: the controller and namespace 1", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        expect(d.controller.vendor).toBe(0x1b36)
        expect(d.controller.serial).toBe("devscope-nvme")
        expect(d.controller.namespaces).toBeGreaterThanOrEqual(1)
        expect(d.namespace).toMatchObject({ nsid: 1, blocks: IMAGE_BLOCKS, blockSize: BLOCK, metadataSize: 0 })
        expect(d.maxBlocks).toBeGreaterThanOrEqual(8)
        expect(w.q.problems()).toEqual([])
      })), 60_000)

  it.live("write then read back: 1 block (PRP1), 2 blocks (PRP1 + PRP2), 3 and 16 blocks (PRP1 + a list page); flush", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        const one = pattern(BLOCK, 1)
        yield* d.write(5, one)
        expect(d.stats().prpLists).toBe(0)
        expect([...(yield* d.read(5, 1))]).toEqual([...one])
        const two = pattern(2 * BLOCK, 2)
        yield* d.write(50, two)
        expect([...(yield* d.read(50, 2))]).toEqual([...two])
        expect(d.stats().prpLists).toBe(0)
        const three = pattern(3 * BLOCK, 3)
        yield* d.write(100, three)
        expect([...(yield* d.read(100, 3))]).toEqual([...three])
        expect(d.stats().prpLists).toBe(2)
        const sixteen = pattern(16 * BLOCK, 4)
        yield* d.write(200, sixteen)
        expect([...(yield* d.read(200, 16))]).toEqual([...sixteen])
        // Neighbours untouched: the block before 100 and after 102 still read zero.
        expect((yield* d.read(99, 1)).every((b) => b === 0)).toBe(true)
        expect((yield* d.read(103, 1)).every((b) => b === 0)).toBe(true)
        yield* d.flush()
        expect(d.stats()).toMatchObject({ reads: 6, writes: 4, flushes: 1, completed: 11, statusErrors: 0, timedOut: 0, gone: 0, pending: 0, onController: 0, resolutions: 11 })
        expect(w.q.dmaFaults()).toEqual([])
        expect(w.q.problems()).toEqual([])
      })), 60_000)

  it.live("an LBA beyond the namespace and an unknown opcode: NvmeStatusError with SCT/SC", () =>
    withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        const range = yield* Effect.exit(d.read(IMAGE_BLOCKS, 1))
        expect(failedWith(range, "NvmeStatusError")).toBe(true)
        const e = Exit.isFailure(range) && range.cause._tag === "Fail" ? range.cause.error : undefined
        expect(e).toMatchObject({ sct: 0, sc: 0x80, name: "LBA Out of Range", lba: IMAGE_BLOCKS })
        const opcode = yield* Effect.exit(d.passthrough({ opcode: 0x7f }))
        const o = Exit.isFailure(opcode) && opcode.cause._tag === "Fail" ? opcode.cause.error : undefined
        expect(o).toMatchObject({ _tag: "NvmeStatusError", sct: 0, sc: 0x01, name: "Invalid Command Opcode" })
        // The queue still works.
        yield* d.write(0, pattern(BLOCK, 4))
        expect(d.stats()).toMatchObject({ statusErrors: 2, pending: 0 })
      })), 60_000)

  it.live("a request with no completion by its deadline: NvmeTimeout; its command id stays held until the controller completes it", () => {
    let clock: Fiber.RuntimeFiber<never> | undefined
    return withNvme((w) =>
      Effect.gen(function*() {
        const d = nvme(w)
        yield* d.write(9, pattern(BLOCK, 9))
        // QEMU's clock stops: the backend no longer steps it, nor reads guest RAM back, so the
        // controller's completions are not seen. (QEMU's block layer completes I/O in wall time,
        // outside the virtual clock: a completion that lands before the backend's mailbox poll
        // after the doorbell write is seen all the same, so a read may still complete; a few
        // tries find one that does not.)
        yield* Fiber.interrupt(clock!)
        let exit: Exit.Exit<Uint8Array, unknown> = Exit.succeed(new Uint8Array())
        let tries = 0
        while (Exit.isSuccess(exit) && tries++ < 10) exit = yield* Effect.exit(d.read(9, 1))
        expect(failedWith(exit, "NvmeTimeout")).toBe(true)
        expect(d.stats()).toMatchObject({ timedOut: 1, pending: 0, onController: 1 })
        // The clock runs again: the completion comes, late; the id and the buffer are freed.
        clock = yield* Effect.forkDaemon(w.q.runClock)
        for (let i = 0; i < 200 && d.stats().onController > 0; i++) yield* Effect.sleep("5 millis")
        expect(d.stats()).toMatchObject({ timedOut: 1, late: 1, onController: 0, pending: 0 })
        expect([...(yield* d.read(9, 1))]).toEqual([...pattern(BLOCK, 9)])
      }).pipe(Effect.ensuring(Effect.suspend(() => (clock === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(clock)))))), { ioTimeout: "200 millis" }, (q) =>
      Effect.sync(() => {
        clock = Effect.runFork(q.runClock)
      }))
  }, 60_000)
})
