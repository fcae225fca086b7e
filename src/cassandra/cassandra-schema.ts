import { OperationalError } from '../persistence/errors.js'
import { validIdentifier } from '../persistence/identifiers.js'
import type { CassandraSession } from './cassandra-session.js'
import type { CassandraReplication } from './cassandra-settings.js'

/** Returns the CQL that creates the keyspace when it is missing, replicated as `replication` says. */
export function createKeyspaceCql(keyspace: string, replication: CassandraReplication): string {
  const map =
    typeof replication === 'number'
      ? `'class': 'SimpleStrategy', 'replication_factor': ${replication}`
      : [
          "'class': 'NetworkTopologyStrategy'",
          ...Object.entries(replication).map(([dataCentre, factor]) => `'${dataCentre}': ${factor}`),
        ].join(', ')
  return `CREATE KEYSPACE IF NOT EXISTS ${validIdentifier(keyspace, 'keyspace name')} WITH replication = {${map}}`
}

/**
 * Returns the CQL that creates a table of stored events (or snapshots) when it
 * is missing: one partition per originator, its rows ordered by version, so
 * that a conditional batch on one partition records a save of one aggregate
 * atomically. `save_id` names the write that recorded a row, so that a write
 * whose outcome was unknown can tell its own rows from another writer's.
 */
export function createEventTableCql(keyspace: string, table: string): string {
  return (
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${validIdentifier(table)} (` +
    'originator_id text, originator_version bigint, topic text, state blob, save_id uuid, ' +
    'PRIMARY KEY ((originator_id), originator_version)) WITH CLUSTERING ORDER BY (originator_version ASC)'
  )
}

// Schema changes of this process, one at a time (per cluster and keyspace).
const changing = new Map<string, Promise<unknown>>()

/**
 * Creates the keyspace and tables, when missing, one statement at a time,
 * each run by the same coordinator and followed by a wait for schema
 * agreement. Cassandra 5 gives a table created at once on two coordinators
 * two different ids, and the nodes then disagree on the schema for good; one
 * coordinator applies schema changes one at a time, so the second `IF NOT
 * EXISTS` sees the first's table. The coordinator is the first live node of
 * the local data centre in address order, so that every process picks the same one.
 *
 * @throws OperationalError when no node of the local data centre is up, or the nodes do not agree.
 */
export async function createSchema(session: CassandraSession, statements: readonly string[]): Promise<void> {
  const key = `${session.settings.contactPoints.join(',')}/${session.settings.keyspace}`
  const previous = changing.get(key) ?? Promise.resolve()
  const next = previous.catch(() => {}).then(() => runInOrder(session, statements))
  changing.set(key, next)
  try {
    await next
  } finally {
    if (changing.get(key) === next) changing.delete(key)
  }
}

async function runInOrder(session: CassandraSession, statements: readonly string[]): Promise<void> {
  for (const statement of statements) await session.schema(statement, coordinator(session))
}

function coordinator(session: CassandraSession) {
  const local = session.client.hosts
    .values()
    .filter((host) => host.datacenter === session.settings.localDataCenter && host.isUp())
    .sort((a, b) => a.address.localeCompare(b.address))
  const first = local[0]
  if (first === undefined) {
    throw new OperationalError(
      `No node of data centre ${session.settings.localDataCenter} is up in ${session.where}: ` +
        'the schema cannot be created (check localDataCenter and the nodes)',
    )
  }
  return first
}
