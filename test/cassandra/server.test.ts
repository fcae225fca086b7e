// The Cassandra node the Cassandra tests use (server.ts), with the driver the
// backend uses: CASSANDRA_CONTACT_POINTS, or the node that the run starts from
// cassandra-all for all its Cassandra files (shared-node.ts). Without Java or Maven they are skipped with
// a note (see test/services.ts); with CI=true they fail instead.

import { randomBytes } from 'node:crypto'
import cassandraDriver from 'cassandra-driver'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cassandra, skipNote, skipReason } from '../services.js'
import type { CassandraNode } from './server.js'
import { sharedCassandra } from './shared-node.js'

const { Client, types } = cassandraDriver
const { consistencies } = types

const missing = await skipReason(cassandra)
if (missing !== undefined) console.warn(skipNote(cassandra, missing))

describe.skipIf(missing !== undefined)('the Cassandra node of the tests', () => {
  let node: CassandraNode | undefined
  let client: InstanceType<typeof Client> | undefined
  const keyspace = `es_test_${randomBytes(4).toString('hex')}`

  beforeAll(async () => {
    node = await sharedCassandra()
    client = new Client({ contactPoints: node.contactPoints, localDataCenter: node.localDataCenter })
    await client.connect()
  }, 600_000)

  afterAll(async () => {
    await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {})
    await client?.shutdown()
  }, 60_000)

  it('takes a keyspace and a table, decides a lightweight transaction once, and reads it back at serial consistency', async () => {
    if (client === undefined) throw new Error('no client')
    await client.execute(
      `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
    )
    await client.execute(
      `CREATE TABLE IF NOT EXISTS ${keyspace}.events (id text, version int, topic text, PRIMARY KEY (id, version))`,
    )
    const insert = `INSERT INTO ${keyspace}.events (id, version, topic) VALUES (?, ?, ?) IF NOT EXISTS`
    const options = { prepare: true, consistency: consistencies.quorum, serialConsistency: consistencies.serial }

    const first = await client.execute(insert, ['a', 1, 'Registered'], options)
    const second = await client.execute(insert, ['a', 1, 'Clashed'], options)

    expect(first.wasApplied()).toBe(true)
    expect(second.wasApplied()).toBe(false)
    // A conditional write that is not applied returns the row that stopped it.
    expect(second.first().get('topic')).toBe('Registered')
    const select = `SELECT version, topic FROM ${keyspace}.events WHERE id = ?`
    for (const consistency of [consistencies.serial, consistencies.quorum]) {
      const read = await client.execute(select, ['a'], { prepare: true, consistency })
      expect(read.rows.map((row) => [row.get('version'), row.get('topic')])).toEqual([[1, 'Registered']])
    }
  })
})
