import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { race, sameBoundary } from '../../src/testing/dcb-concurrency-tests.js'
import { withDcbStore } from '../../src/testing/dcb-suite.js'
import { weakSqlite } from './weak-sqlite.js'

// The racing test of the DCB suite can fail: racers in worker threads on a
// backend that checks its condition with a read outside the write transaction
// commit several appends on one boundary.
describe('DCB racing test against a broken backend', () => {
  it('sees several racers commit on one boundary when the check is a read outside the write transaction', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'eventsourcing-dcb-weak-'))
    const path = join(directory, 'dcb.db')
    const harness = {
      name: 'weak sqlite',
      setup: async () => ({
        persistence: weakSqlite({ path }),
        worker: {
          module: new URL('./weak-sqlite.ts', import.meta.url),
          exportName: 'weakSqlite',
          options: { path },
          setup: new URL('../fixtures/register-tsx.mjs', import.meta.url),
        },
        teardown: () => rm(directory, { recursive: true, force: true }),
      }),
    }
    await withDcbStore(harness, async (open, store) => {
      const commits = await race(store, open, 6, sameBoundary)
      expect(Math.max(...commits)).toBeGreaterThan(1)
    })
  })
})
