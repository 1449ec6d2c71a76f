import { defineConfig } from "vitest/config"

// Every `@devscope/*` package runs from its TypeScript sources here: their `exports` name
// `./src` under the "@devscope/source" condition and the published `./dist` otherwise.
// (Vite's own default conditions follow it.)
export const resolveFromSource = {
  resolve: { conditions: ["@devscope/source", "module", "browser", "development|production"] },
  ssr: { resolve: { conditions: ["@devscope/source", "module", "node", "development|production"] } }
}

export default defineConfig({
  ...resolveFromSource,
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "scripts/**/*.test.ts"],
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
