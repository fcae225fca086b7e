// Measures the Cassandra process recorder on one node (CASSANDRA_CONTACT_POINTS,
// or one started by server.ts): 16 clients each saving one event at a time
// for a while, then a save of 1,000 events, reading a 10,000-event aggregate,
// and reading the whole log a page of 1,000 at a time (a follower catching up).
//
//   npx tsx test/cassandra/measure-saves.ts [seconds, default 10] [clients, default 16]

import { randomBytes } from 'node:crypto'
import {
  CassandraProcessRecorder,
  createApplicationTables,
} from '../../src/cassandra/cassandra-application-recorder.js'
import { CassandraSession } from '../../src/cassandra/cassandra-session.js'
import { cassandraSettings } from '../../src/cassandra/cassandra-settings.js'
import { event, range } from '../../src/testing/fixtures.js'
import { startCassandra } from './server.js'

const seconds = Number(process.argv[2] ?? 10)
const clients = Number(process.argv[3] ?? 16)
const node = await startCassandra()
const keyspace = `es_measure_${randomBytes(4).toString('hex')}`
const session = await CassandraSession.open(
  cassandraSettings({ contactPoints: node.contactPoints, localDataCenter: node.localDataCenter, keyspace }),
)
try {
  await createApplicationTables(session, 'measure')
  const recorder = new CassandraProcessRecorder(session, 'measure')
  const conditional = session.conditional.bind(session)
  let claims = 0
  session.conditional = (statements) => {
    if (statements.some((statement) => statement.query.includes('SET head = ?'))) claims++
    return conditional(statements)
  }
  // Warm up (prepared statements, the first bucket's head).
  await Promise.all(Array.from({ length: clients }, (_, i) => recorder.insertEvents([event(`warm${i}`, 1)])))
  claims = 0
  const deadline = Date.now() + seconds * 1000
  let saves = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; Date.now() < deadline; i++) {
        await recorder.insertEvents([event(`c${client}-${i}`, 1)])
        saves++
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  console.log(
    `${clients} clients, single-event saves: ${Math.round(saves / elapsed)} saves/s ` +
      `(${saves} in ${elapsed.toFixed(1)} s, ${claims} claim batches, ${(saves / claims).toFixed(1)} saves each)`,
  )
  const big = performance.now()
  await recorder.insertEvents(range('big', 1, 1000))
  console.log(`a save of 1,000 events: ${Math.round(performance.now() - big)} ms`)
  for (let i = 1; i < 10; i++) await recorder.insertEvents(range('big', i * 1000 + 1, (i + 1) * 1000))
  const read = performance.now()
  const events = await recorder.selectEvents('big')
  console.log(`reading a 10,000-event aggregate: ${events.length} events in ${Math.round(performance.now() - read)} ms`)
  const follow = performance.now()
  let notifications = 0
  for (let after = 0; ; ) {
    const page = await recorder.selectNotifications({ start: after, inclusiveOfStart: false, limit: 1000 })
    if (page.length === 0) break
    notifications += page.length
    after = page.at(-1)!.id
  }
  const took = (performance.now() - follow) / 1000
  console.log(`catching up the log: ${notifications} notifications, ${Math.round(notifications / took)}/s`)
} finally {
  await session.client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {})
  await session.close()
  await node.stop()
}
