import { describe, it } from 'vitest'
import { dcbTables } from '../../src/persistence/dcb.js'
import { postgres } from '../../src/postgres/index.js'
import { testDcbRecorders } from '../../src/testing/index.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

// The DCB conformance suite, unchanged, on PostgreSQL: a schema per test, and
// racers in worker threads, each with its own pool.
testDcbRecorders(
  { describe, it },
  {
    name: 'postgres',
    tables: dcbTables,
    async setup() {
      const { schema, drop } = freshSchema()
      const options = { url: postgresUrl(), schema }
      return {
        persistence: postgres(options),
        worker: {
          module: new URL('../../src/postgres/index.ts', import.meta.url),
          exportName: 'postgres',
          options,
          setup: new URL('../fixtures/register-tsx.mjs', import.meta.url),
        },
        teardown: drop,
      }
    },
  },
)
