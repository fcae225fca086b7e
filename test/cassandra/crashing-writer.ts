// A writer process for the crash tests of the Cassandra process recorder
// (process-recorder.test.ts): it saves two events of two aggregates with a
// tracking record through the real recorder, but its session stops before the
// first write of the step given, prints READY, and waits to be killed.
//
//   npx tsx test/cassandra/crashing-writer.ts <contact points> <keyspace> <application> <intents|commit|marks> <id>

import { CassandraProcessRecorder } from '../../src/cassandra/cassandra-application-recorder.js'
import { CassandraSession, type CqlStatement } from '../../src/cassandra/cassandra-session.js'
import { cassandraSettings } from '../../src/cassandra/cassandra-settings.js'
import { event } from '../../src/testing/fixtures.js'

const [points, keyspace, application, step, id] = process.argv.slice(2) as [string, string, string, string, string]
const session = await CassandraSession.open(
  cassandraSettings({ contactPoints: points.split(','), localDataCenter: 'datacenter1', keyspace }),
)
// Which batch a step begins with: an intent (in an events table), a commit (a status set, no claim), or a mark.
const begins: Record<string, (statements: readonly CqlStatement[]) => boolean> = {
  intents: (statements) => statements[0]!.query.includes('_events ('),
  commit: (statements) => statements.some((s) => s.query.includes('SET status = ?')),
  marks: (statements) => statements.some((s) => s.query.includes('SET committed = true')),
}
const conditional = session.conditional.bind(session)
session.conditional = (statements) => {
  if (!begins[step]!(statements)) return conditional(statements)
  console.log('READY')
  return new Promise(() => {})
}
const recorder = new CassandraProcessRecorder(session, application)
await recorder.insertEvents([event(`${step}-a`, 1), event(`${step}-b`, 1)], {
  tracking: { applicationName: 'up', notificationId: Number(id) },
})
