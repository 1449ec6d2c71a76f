import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    // Type-level guarantees: `*.test-d.ts` files are type-checked (tsc) and their
    // `expectTypeOf` / `@ts-expect-error` assertions count as tests.
    typecheck: {
      enabled: true,
      include: ["packages/*/dtslint/**/*.test-d.ts", "examples/*/dtslint/**/*.test-d.ts"],
      tsconfig: "./tsconfig.typetest.json"
    },
    sequence: { concurrent: false },
    testTimeout: 30_000
  }
})
