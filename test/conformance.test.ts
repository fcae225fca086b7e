import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { memory } from '../src/memory/memory-recorder.js'
import { applicationTables } from '../src/persistence/identifiers.js'
import { postgres } from '../src/postgres/index.js'
import { sqlite } from '../src/sqlite/index.js'
import { type RecorderHarness, testRecorders } from '../src/testing/index.js'
import { freshSchema, postgresUrl } from './postgres/fixtures.js'

// Every backend runs the same suite, unchanged. Narrow the list with
// BACKENDS=memory,sqlite (names are matched by their first word).
const backends: RecorderHarness[] = [
  {
    name: 'memory',
    tables: applicationTables,
    async setup() {
      return { persistence: memory(), teardown: async () => {} }
    },
  },
  {
    name: 'sqlite file',
    tables: applicationTables,
    async setup() {
      const directory = await mkdtemp(join(tmpdir(), 'eventsourcing-sqlite-'))
      return {
        persistence: sqlite({ path: join(directory, 'test.db') }),
        teardown: () => rm(directory, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'sqlite :memory:',
    tables: applicationTables,
    async setup() {
      return { persistence: sqlite({ path: ':memory:' }), teardown: async () => {} }
    },
  },
  {
    name: 'postgres',
    tables: applicationTables,
    async setup() {
      // A schema per test: as isolated as a database, and much faster to make and drop.
      const { schema, drop } = freshSchema()
      return { persistence: postgres({ url: postgresUrl(), schema }), teardown: drop }
    },
  },
]

const selected = process.env.BACKENDS?.split(',').map((name) => name.trim())
for (const backend of backends) {
  if (selected === undefined || selected.includes(backend.name.split(' ')[0]!)) testRecorders({ describe, it }, backend)
}
