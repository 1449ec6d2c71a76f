import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { resolveFromSource } from "../../vitest.config.js"

// The report checks in a real (headless) Chromium: separate from the unit suite because they
// need /usr/bin/chromium. Run: npx vitest run --config packages/cli/vitest.browser.config.ts
export default defineConfig({
  ...resolveFromSource,
  test: {
    root: path.dirname(fileURLToPath(import.meta.url)),
    include: ["test-browser/**/*.browser.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
