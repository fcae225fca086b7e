// The recorder conformance suite (src/testing) against Cassandra, on the node
// of the run (shared-node.ts): a fresh keyspace per test, all dropped at the end.
// DCB is declared lacking, with the reason.

import { randomBytes } from 'node:crypto'
import cassandraDriver from 'cassandra-driver'
import { afterAll, describe, it } from 'vitest'
import { cassandraTables } from '../../src/cassandra/cassandra-schema.js'
import { cassandra } from '../../src/cassandra/index.js'
import { testRecorders } from '../../src/testing/index.js'
import { cassandra as cassandraService, skipNote, skipReason } from '../services.js'
import { sharedCassandra } from './shared-node.js'

const missing = await skipReason(cassandraService)
if (missing !== undefined) console.warn(skipNote(cassandraService, missing))

describe.skipIf(missing !== undefined)('Cassandra', () => {
  const keyspaces: string[] = []

  // Dropped at the end, not after each test: a schema change costs the next test's schema changes a wait.
  afterAll(async () => {
    if (keyspaces.length === 0) return
    const { contactPoints, localDataCenter } = await sharedCassandra()
    const client = new cassandraDriver.Client({ contactPoints, localDataCenter })
    try {
      for (const keyspace of keyspaces) await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`)
    } finally {
      await client.shutdown()
    }
  }, 300_000)

  testRecorders(
    { describe, it },
    {
      name: 'cassandra',
      tables: cassandraTables,
      lacks: {
        dcb: 'a DCB append decides its condition over every stream at once, one serialisation point for the store',
      },
      async setup() {
        const { contactPoints, localDataCenter } = await sharedCassandra()
        const keyspace = `es_${randomBytes(6).toString('hex')}`
        keyspaces.push(keyspace)
        return { persistence: cassandra({ contactPoints, localDataCenter, keyspace }), teardown: async () => {} }
      },
    },
  )
})
