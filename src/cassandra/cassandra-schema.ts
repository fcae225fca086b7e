import { OperationalError, ProgrammingError } from '../persistence/errors.js'
import { applicationTables, validIdentifier } from '../persistence/identifiers.js'
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

/** Cassandra's limit on the length of a table name. */
const MAX_TABLE_NAME = 48

/** The table names of one application on Cassandra. */
export interface CassandraTables {
  /** The events, one partition per aggregate (see {@link createApplicationTableCql}). */
  readonly events: string
  /** The notification log, in buckets of {@link BUCKET} ids. */
  readonly log: string
  /** The tracking records, all in one partition. */
  readonly tracking: string
  /** The snapshots, as the aggregate recorder keeps them. */
  readonly snapshots: string
}

/**
 * Returns the validated table names of an application, e.g. `dogschool_log`
 * for `DogSchool`.
 *
 * @throws ProgrammingError for an invalid application name, or one so long
 * that `<name>_snapshots` passes Cassandra's 48 characters (38 at most).
 */
export function cassandraTables(applicationName: string): CassandraTables {
  const { events, snapshots, tracking } = applicationTables(applicationName)
  if (snapshots.length > MAX_TABLE_NAME) {
    throw new ProgrammingError(
      `Application name ${JSON.stringify(applicationName)} is too long for Cassandra: its table ${snapshots} ` +
        `passes Cassandra's ${MAX_TABLE_NAME} characters (use at most ${MAX_TABLE_NAME - '_snapshots'.length})`,
    )
  }
  return { events, log: events.replace(/_events$/, '_log'), tracking, snapshots }
}

/**
 * How many notification ids one partition of the log holds: bucket `b` holds
 * ids `b * BUCKET + 1` to `(b + 1) * BUCKET`, so a save has at most this many events.
 */
export const BUCKET = 10_000

/**
 * Returns the CQL that creates the tables of an application's events, log and
 * tracking when they are missing (see cassandra-log.ts for how they are used):
 *
 * - events: one partition per aggregate, as the aggregate recorder's, and for
 *   each row the position of the event in the log (`position`), the first id
 *   of its save (`save_position`, where its status is), and whether it is
 *   known to be committed (`committed`, an optimisation: readers ask the
 *   status otherwise).
 * - log: one partition per bucket of ids; the static `head` is the highest id
 *   claimed in the bucket; each row repeats its event (cleared when the event
 *   is deleted) and the first row of each save holds the save's `status`
 *   ('pending', 'committed' or 'aborted'), when it was claimed, and its `save_id`.
 * - tracking: one partition (`part` 0) of one row per upstream application:
 *   the id committed, and the claim of a save in progress (`claim_id`, and
 *   `claim_position`, the first id of that save, whose status decides it).
 */
export function createApplicationTableCql(keyspace: string, tables: CassandraTables): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${tables.events} (` +
      'originator_id text, originator_version bigint, topic text, state blob, save_id uuid, ' +
      'position bigint, save_position bigint, committed boolean, ' +
      'PRIMARY KEY ((originator_id), originator_version)) WITH CLUSTERING ORDER BY (originator_version ASC)',
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${tables.log} (` +
      'bucket bigint, id bigint, head bigint STATIC, originator_id text, originator_version bigint, ' +
      'topic text, state blob, save_position bigint, status text, claimed_at timestamp, save_id uuid, ' +
      'PRIMARY KEY ((bucket), id)) WITH CLUSTERING ORDER BY (id ASC)',
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${tables.tracking} (` +
      'part int, upstream text, committed_id bigint, claim_id bigint, claim_position bigint, ' +
      'PRIMARY KEY ((part), upstream))',
  ]
}
