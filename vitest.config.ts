import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts a PostgreSQL server for the PostgreSQL tests unless POSTGRES_URL is set.
    globalSetup: ['test/postgres/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/cli/main.ts', 'src/testing/**'],
      reporter: ['text-summary', 'text'],
      thresholds: { lines: 90 },
    },
  },
})
