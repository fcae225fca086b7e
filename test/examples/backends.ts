import { join } from 'node:path'
import { memory, type Persistence } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'

/** Returns handles on one store: applications given any of them see the same events. */
export type Store = () => Persistence

/** The backends every example test runs on: a new, empty store per call of the factory. */
export function backends(): [name: string, newStore: () => Store][] {
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
        const path = join(tempDir('es-examples-'), 'examples.db')
        return () => sqlite({ path })
      },
    ],
  ]
}
