// The backends the system tests run on: those of the application tests, and
// PostgreSQL with a fresh schema per store, dropped after the test.

import { afterEach } from 'vitest'
import { postgres } from '../../src/postgres/index.js'
import { backends, type Store } from '../fixtures/backends.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

const drops: (() => Promise<void>)[] = []

// Applications declared with `await using` are closed at the end of the test, before this runs.
afterEach(async () => {
  for (const drop of drops.splice(0)) await drop()
})

/** Memory, an SQLite file and PostgreSQL: a new, empty store per call of the factory. */
export function systemBackends(): [name: string, newStore: () => Store][] {
  const newPostgresStore = (): Store => {
    const { schema, drop } = freshSchema()
    drops.push(drop)
    return () => postgres({ url: postgresUrl(), schema })
  }
  return [...backends(), ['postgres', newPostgresStore]]
}
