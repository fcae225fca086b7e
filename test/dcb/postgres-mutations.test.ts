import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { dcbLockKey, dcbStoreKey } from '../../src/postgres/postgres-dcb-schema.js'
import { race, sameBoundary } from '../../src/testing/dcb-concurrency-tests.js'
import { withDcbStore } from '../../src/testing/dcb-suite.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'
import { unsettledPostgres, weakPostgres } from './weak-postgres.js'

// The tests of the PostgreSQL DCB recorder can fail: on broken variants, the
// racing test sees several racers commit on one boundary, and the late-commit
// interleaving lets a decision commit on a head above an event still committing.
describe('PostgreSQL DCB tests against broken variants', () => {
  it('several of 16 racers commit on one boundary when the condition is checked by a read before the append', async () => {
    const harness = {
      name: 'weak postgres',
      async setup() {
        const { schema, drop } = freshSchema()
        const options = { url: postgresUrl(), schema }
        return {
          persistence: weakPostgres(options),
          worker: {
            module: new URL('./weak-postgres.ts', import.meta.url),
            exportName: 'weakPostgres',
            options,
            setup: new URL('../fixtures/register-tsx.mjs', import.meta.url),
          },
          teardown: drop,
        }
      },
    }
    await withDcbStore(harness, async (open, store) => {
      const commits = await race(store, open, 6, sameBoundary)
      expect(Math.max(...commits)).toBeGreaterThan(1)
    })
  })

  it('a decision on a head above an event still committing commits, when heads are not settled', async () => {
    const { schema, drop } = freshSchema()
    const raw = new pg.Client({ connectionString: postgresUrl() })
    const recorders = await unsettledPostgres({ url: postgresUrl(), schema }).openDcb('app')
    await raw.connect()
    try {
      const store = recorders.events
      const event = (tags: string[]) => ({ type: 'Seat', data: new Uint8Array([1]), tags })
      await store.append([event(['y'])])
      // An append of the same boundary, as the recorder makes it, drawn and not committed.
      await raw.query('BEGIN')
      const keys = [dcbStoreKey(schema, 'app_dcb'), dcbLockKey(schema, 'app_dcb', 'type', 'Seat')]
      keys.push(dcbLockKey(schema, 'app_dcb', 'tag', 'course:x'))
      for (const key of keys.sort((a, b) => (a < b ? -1 : 1))) {
        await raw.query('SELECT pg_advisory_xact_lock_shared($1::bigint)', [String(key)])
      }
      await raw.query(`INSERT INTO "${schema}".app_dcb (type, data, tags) VALUES ('Seat', '\\x01', '{course:x}')`)
      await store.append([event(['y'])])
      const query = [{ tags: ['course:x'] }]
      const { head } = await store.read(query)
      const deciding = store.append([event(['course:x'])], { failIfEventsMatch: query, after: head })
      await new Promise((resolve) => setTimeout(resolve, 100))
      await raw.query('COMMIT')
      await deciding
      // Two seats where the decision saw none: the one it missed, and its own.
      expect((await store.read(query)).events).toHaveLength(2)
    } finally {
      await raw.end()
      await recorders.close()
      await drop()
    }
  })
})
