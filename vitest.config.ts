import { defineConfig } from 'vitest/config'
import { skipNote, skippedServices } from './test/services.js'

// Tests of a service this machine lacks skip (see test/services.ts); what only
// they would cover is left out of the coverage threshold, and a line says so.
export default defineConfig(async () => {
  const skipped = await skippedServices()
  for (const { service, why } of skipped) {
    console.warn(`${skipNote(service, why)}. ${service.sources} is left out of the coverage threshold.`)
  }
  return {
    test: {
      include: ['test/**/*.test.ts'],
      // Starts a PostgreSQL server for the PostgreSQL tests unless POSTGRES_URL is set, and
      // one Cassandra node for all the Cassandra files when the first asks (unless CASSANDRA_CONTACT_POINTS is set).
      globalSetup: ['test/postgres/global-setup.ts', 'test/cassandra/global-setup.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      coverage: {
        provider: 'v8',
        include: ['src/**/*.ts'],
        exclude: ['src/cli/main.ts', 'src/testing/**', ...skipped.map(({ service }) => service.sources)],
        reporter: ['text-summary', 'text'],
        thresholds: { lines: 90 },
      },
    },
  }
})
