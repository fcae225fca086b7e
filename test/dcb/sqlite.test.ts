import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { dcbTables } from '../../src/persistence/dcb.js'
import { sqlite } from '../../src/sqlite/index.js'
import { testDcbRecorders } from '../../src/testing/index.js'

// The racers of a file database run in worker threads, each with its own
// connection; those of :memory:, which one connection holds, in this event loop.
testDcbRecorders(
  { describe, it },
  {
    name: 'sqlite file',
    tables: dcbTables,
    async setup() {
      const directory = await mkdtemp(join(tmpdir(), 'eventsourcing-dcb-'))
      const path = join(directory, 'dcb.db')
      return {
        persistence: sqlite({ path }),
        worker: {
          module: new URL('../../src/sqlite/index.ts', import.meta.url),
          exportName: 'sqlite',
          options: { path },
          setup: new URL('../fixtures/register-tsx.mjs', import.meta.url),
        },
        teardown: () => rm(directory, { recursive: true, force: true }),
      }
    },
  },
)

testDcbRecorders(
  { describe, it },
  {
    name: 'sqlite :memory:',
    tables: dcbTables,
    async setup() {
      return { persistence: sqlite({ path: ':memory:' }), teardown: async () => {} }
    },
  },
)
