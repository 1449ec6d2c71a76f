#!/usr/bin/env node
// The `devscope` command (this package's bin). The workspace ships TypeScript sources with no
// build step, so this registers tsx's ESM loader and runs src/bin.ts. Exit codes: 0 every
// guarantee held, 1 a guarantee was broken or driver code failed, 2 the scenario cannot run
// or the command line is wrong.
import { register } from "tsx/esm/api"

register()
await import("../src/bin.ts")
