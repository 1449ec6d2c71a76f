/**
 * Whether this machine can run the QEMU backend: where `qemu-system-x86_64` and a qtest
 * accelerator module it accepts are (`locate`), and proof that QEMU starts with it (`probe`).
 * `devscope doctor` reports these; `pnpm qemu:setup` installs what is missing.
 *
 * Plain synchronous functions: `locate` reads files and runs `--version` (5 s at most),
 * `probe` starts QEMU once (10 s at most, then SIGKILL).
 *
 * @since 0.1.0
 */
import * as internal from "./internal/install.js"

/**
 * What `locate` found: everything the backend needs to start QEMU with `-accel qtest`
 * (`available: true`: the binary, its version, the module directory for `QEMU_MODULE_DIR`),
 * or why it cannot and what to do about it (`reason`, `hint`, and what was found so far).
 * `setpriv` (util-linux, so that QEMU dies with the Node process) is reported either way.
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * const found: Install.Availability = Install.locate()
 * console.log(found.available ? `${found.binary} (${found.version})` : `${found.reason}; ${found.hint}`)
 * ```
 * @since 0.1.0
 * @category models
 */
export type Availability = internal.Availability

/**
 * A successful `locate`: what `probe` starts.
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * const found = Install.locate()
 * const ready: Install.Available | undefined = found.available ? found : undefined
 * console.log(ready?.moduleDir)
 * ```
 * @since 0.1.0
 * @category models
 */
export type Available = Extract<Availability, { readonly available: true }>

/**
 * The environment `locate` reads instead of `process.env`: `DEVSCOPE_QEMU` (a binary to use
 * instead of `qemu-system-x86_64` on `PATH`), `PATH`, `XDG_CACHE_HOME` and `HOME`.
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * const env: Install.Env = { ...process.env, DEVSCOPE_QEMU: "/opt/qemu/bin/qemu-system-x86_64" }
 * console.log(Install.locate(env).available)
 * ```
 * @since 0.1.0
 * @category models
 */
export type Env = internal.Env

/**
 * Finds `qemu-system-x86_64` (`$DEVSCOPE_QEMU`, else `PATH`) and a qtest accelerator module
 * whose `qemu_stamp_` matches the binary's: first in the binary's own module directories, then
 * in `cacheDir(version)`. Does not start QEMU beyond `--version` (see `probe`).
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * const found = Install.locate()
 * if (!found.available) console.error(`QEMU backend unavailable: ${found.reason}; ${found.hint}`)
 * ```
 * @since 0.1.0
 * @category locating
 */
export const locate: (env?: Env) => Availability = internal.locate

/**
 * Starts QEMU once with `-accel qtest` and steps its clock: undefined when QEMU answered
 * `OK` (the accelerator works), else what went wrong, with the command line. Ends within
 * 10 s whatever QEMU does (it is then killed with SIGKILL).
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * const found = Install.locate()
 * if (found.available) {
 *   const problem = Install.probe(found)
 *   console.log(problem === undefined ? "QEMU runs with the qtest accelerator" : problem)
 * }
 * ```
 * @since 0.1.0
 * @category locating
 */
export const probe: (found: Available) => string | undefined = internal.probe

/**
 * The directory `pnpm qemu:setup` builds the qtest accelerator module for one QEMU version
 * into, and where `locate` looks for it: `${XDG_CACHE_HOME:-$HOME/.cache}/devscope/qemu/<version>/`.
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * console.log(Install.cacheDir("1:7.2+dfsg-7+deb12u18+b3")) // ~/.cache/devscope/qemu/1:7.2+dfsg-7+deb12u18+b3
 * ```
 * @since 0.1.0
 * @category locating
 */
export const cacheDir: (version: string, env?: Env) => string = internal.cacheDir

/**
 * The qtest accelerator module's file name (`accel-qtest-x86_64.so`), which Debian's
 * `qemu-system-x86` deletes.
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * console.log(`looking for ${Install.MODULE}`)
 * ```
 * @since 0.1.0
 * @category constants
 */
export const MODULE: string = internal.MODULE

/**
 * The command that installs what is missing in this repository (`pnpm qemu:setup`).
 *
 * @example
 * ```ts
 * import { Install } from "@devscope/qemu"
 *
 * console.log(`run \`${Install.SETUP_COMMAND}\``)
 * ```
 * @since 0.1.0
 * @category constants
 */
export const SETUP_COMMAND: string = internal.SETUP_COMMAND
