import { describe, it } from 'vitest'
import { memory } from '../../src/memory/memory-recorder.js'
import { dcbTables } from '../../src/persistence/dcb.js'
import { testDcbRecorders } from '../../src/testing/index.js'

// The memory backend cannot be reached from another thread, so its racers run in this event loop.
testDcbRecorders(
  { describe, it },
  {
    name: 'memory',
    tables: dcbTables,
    async setup() {
      return { persistence: memory(), teardown: async () => {} }
    },
  },
)
