import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { memory, type Persistence } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'

/** Returns handles on one store: applications given any of them see the same events. */
export type Store = () => Persistence

/** The backends every example test runs on: a new, empty store per call of the factory. */
export function backends(): [name: string, newStore: () => Store][] {
  const dirs: string[] = []
  // Applications are closed by `await using` at the end of each test, before this runs.
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  return [
    [
      'memory',
      () => {
        // One memory backend keeps each application's events for every instance it opens.
        const persistence = memory()
        return () => persistence
      },
    ],
    [
      'sqlite',
      () => {
        const dir = mkdtempSync(join(tmpdir(), 'es-examples-'))
        dirs.push(dir)
        const path = join(dir, 'examples.db')
        return () => sqlite({ path })
      },
    ],
  ]
}
