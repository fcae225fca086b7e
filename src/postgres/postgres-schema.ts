import { createHash } from 'node:crypto'
import { type ApplicationTables, validIdentifier } from '../persistence/identifiers.js'
import type { StoredEvent } from '../persistence/stored-event.js'

// Every statement of the PostgreSQL backend is built here, from schema and
// table names that passed validIdentifier; every value is a `$n` parameter.

/**
 * Any 64-bit number that other code is unlikely to pick: the key of the
 * advisory lock that serialises table creation across processes.
 */
export const CREATE_TABLES_LOCK = 7_317_091_844_771_205n

/** Returns a table name quoted and qualified by the schema, when there is one. */
export function qualified(schema: string | undefined, table: string): string {
  const name = `"${validIdentifier(table)}"`
  return schema === undefined ? name : `"${validIdentifier(schema, 'schema name')}".${name}`
}

/**
 * Returns the name of the LISTEN/NOTIFY channel of an events table. PostgreSQL
 * cuts channel names to 63 bytes; two tables whose names then agree only wake
 * each other's subscribers needlessly, which costs a query and loses nothing.
 */
export function channelName(schema: string | undefined, table: string): string {
  return (schema === undefined ? table : `${schema}.${table}`).slice(0, 63)
}

/**
 * Returns the statement that wakes the listeners of a channel named by
 * {@link channelName}; without waiting for the disk, since a lost wake-up
 * costs readers only latency (they also poll).
 */
export function notifySql(channel: string): string {
  return `SET LOCAL synchronous_commit TO off; SELECT pg_notify('${channel}', '')`
}

/** Returns the statement that listens to a channel named by {@link channelName}. */
export function listenSql(channel: string): string {
  return `LISTEN "${channel}"`
}

/** The statements that create an application's tables: `begin` starts the transaction, `body` runs in it. */
export interface CreateTablesSql {
  /** Begins the transaction and takes the advisory lock that serialises table creation. */
  readonly begin: string
  /** Creates the schema and tables that are missing. */
  readonly body: string
}

/**
 * Returns the statements that create an application's tables (and its
 * schema) when they are missing. They run in one transaction that first takes
 * an advisory lock: `CREATE TABLE IF NOT EXISTS` run at the same moment by
 * several processes can otherwise fail on the unique index of the type catalog.
 *
 * The notification id is an identity column on a sequence with the default
 * cache of 1, so ids are drawn in one global order, and the sequence's last
 * value is the highest id drawn (a per-session cache would break both, and
 * the proof in postgres-recorder.ts). Readers page through the log in id
 * order, which the primary key serves; a page of some topics is served by the
 * index on (topic, notification_id), which finds a rare topic's rows without
 * scanning the log between them (the planner picks it by the table's
 * statistics: a topic absent from a million events, 0.03 ms). It is created
 * with the tables, and on tables made before it when an application next opens
 * them with table creation on; building it holds writes back meanwhile (3 s
 * for a million events).
 */
export function createTablesSql(schema: string | undefined, tables: ApplicationTables): CreateTablesSql {
  const createSchema =
    schema === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS "${validIdentifier(schema, 'schema name')}";`
  return {
    begin: `BEGIN; SELECT pg_advisory_xact_lock(${CREATE_TABLES_LOCK})`,
    body: `${createSchema}
CREATE TABLE IF NOT EXISTS ${qualified(schema, tables.events)} (
  notification_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  originator_id TEXT NOT NULL,
  originator_version INTEGER NOT NULL,
  topic TEXT NOT NULL,
  state BYTEA NOT NULL,
  UNIQUE (originator_id, originator_version)
);
CREATE INDEX IF NOT EXISTS "${validIdentifier(`${tables.events}_tp`)}" ON ${qualified(schema, tables.events)} (topic, notification_id);
CREATE TABLE IF NOT EXISTS ${qualified(schema, tables.snapshots)} (
  originator_id TEXT NOT NULL,
  originator_version INTEGER NOT NULL,
  topic TEXT NOT NULL,
  state BYTEA NOT NULL,
  PRIMARY KEY (originator_id, originator_version)
);
CREATE TABLE IF NOT EXISTS ${qualified(schema, tables.tracking)} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id BIGINT NOT NULL
);`,
  }
}

/** The statements on a table of stored events (an events table or a snapshots table). */
export interface EventTableSql {
  /**
   * Parameters: see {@link columns}. Inserts the rows in array order, without
   * returning anything: for a snapshots table, which has no notification ids.
   */
  readonly insertEvents: string
  /** Parameters: originator id, versions greater than, versions at most, limit (null for none). */
  readonly selectEvents: string
  /** Like `selectEvents`, newest first. */
  readonly selectEventsDesc: string
  /**
   * Parameters: originator ids, versions greater than (arrays, one element per
   * query). Rows carry `query`, the 1-based index of their query, and come in
   * query order, then version order.
   */
  readonly selectEventsOfMany: string
  /** Parameter: originator id. */
  readonly deleteEvents: string
}

/** Returns the statements on a table of stored events. */
export function eventTableSql(schema: string | undefined, table: string): EventTableSql {
  const name = qualified(schema, table)
  const select = `SELECT originator_id AS "originatorId", originator_version AS "originatorVersion", topic, state
FROM ${name}
WHERE originator_id = $1 AND originator_version > $2::bigint AND originator_version <= $3::bigint
ORDER BY originator_version`
  return {
    insertEvents: `INSERT INTO ${name} (originator_id, originator_version, topic, state) ${rowsOf('')}`,
    selectEvents: `${select} LIMIT $4`,
    selectEventsDesc: `${select} DESC LIMIT $4`,
    selectEventsOfMany: `SELECT q.n AS query, e.originator_id AS "originatorId", e.originator_version AS "originatorVersion",
  e.topic, e.state
FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(id, gt, n)
JOIN ${name} e ON e.originator_id = q.id AND e.originator_version > q.gt
ORDER BY q.n, e.originator_version`,
    deleteEvents: `DELETE FROM ${name} WHERE originator_id = $1`,
  }
}

/**
 * Returns the rows of a multi-row insert from the parameters of {@link columns},
 * in input order (the ORDER BY on the ordinality makes the identity values
 * drawn for them follow that order), joined with `join` (e.g. `locked, `).
 * The states come as one bytea (which pg sends in binary) cut by lengths: a
 * bytea[] would be sent as hex text, twice the size, and parsed row by row.
 */
function rowsOf(join: string): string {
  return `SELECT i, v, t, substring($4::bytea FROM (sum(l) OVER (ORDER BY n) - l + 1)::int FOR l)
FROM ${join}unnest($1::text[], $2::int[], $3::text[], $5::int[]) WITH ORDINALITY AS e(i, v, t, l, n)
ORDER BY n`
}

/** The parameters of a multi-row insert: originator ids, versions, topics, the states joined, and their lengths. */
export function columns(events: readonly StoredEvent[]): unknown[] {
  return [
    events.map((e) => e.originatorId),
    events.map((e) => e.originatorVersion),
    events.map((e) => e.topic),
    Buffer.concat(events.map((e) => e.state)),
    events.map((e) => e.state.byteLength),
  ]
}

/** The parameters of {@link NotificationSql.insertEvent}: originator id, version, topic, state. */
export function oneEvent(event: StoredEvent): unknown[] {
  return [event.originatorId, event.originatorVersion, event.topic, event.state]
}

/**
 * Returns the key of the advisory lock of an application's events table (the
 * write lock): 64 bits of a hash of its qualified name, the same in every
 * process. A program that inserts into the table without this library must
 * first take it in shared mode, in the same transaction:
 * `SELECT pg_advisory_xact_lock_shared(<key>)`; otherwise readers may skip its events.
 *
 * @param schema The schema, or undefined for the connection's search path.
 * @param table The events table, e.g. `dogschool_events`.
 */
export function writeLockKey(schema: string | undefined, table: string): bigint {
  const digest = createHash('sha256')
    .update(`eventsourcing write lock ${qualified(schema, table)}`)
    .digest()
  return digest.readBigInt64BE(0)
}

/** Which filters a notification query has, besides its range of ids. */
export interface NotificationFilter {
  /** Only some topics. */
  readonly topics: boolean
  /** Only one originator. */
  readonly originator: boolean
}

/** The statements on an application's notification log (its events table). */
export interface NotificationSql {
  /**
   * Parameters: see {@link oneEvent}. Records one event and returns its `id`.
   * It first takes the write lock in shared mode, for the rest of its
   * transaction (see postgres-recorder.ts).
   */
  readonly insertEvent: string
  /** Like `insertEvent` for any number of events (parameters: see {@link columns}); returns their ids in input order. */
  readonly insertEvents: string
  /**
   * Waits up to the given milliseconds for the write lock in exclusive mode,
   * that is until every transaction that holds it in shared mode has ended,
   * and returns `{ resolved }`: the highest id drawn so far, or 0 (see
   * postgres-recorder.ts). Fails with SQLSTATE 55P03 when the time runs out.
   */
  readonly barrier: (timeoutMs: number) => string
  /**
   * Wakes the subscribers of other processes (they LISTEN on the channel), in
   * a transaction of its own that does not wait for its WAL to be flushed: a
   * NOTIFY inside a write transaction would hold a lock of the whole cluster
   * through that transaction's commit and serialise every writer.
   */
  readonly notify: string
  /**
   * Parameters: ids at least, ids at most, limit, resolved (every id up to it
   * is resolved). Returns up to `limit` notifications with a `settled` column:
   * the settled ones (see postgres-recorder.ts) in id order, then, when a
   * committed notification follows them after a gap, one more row for it
   * with `settled` false and no state.
   */
  readonly selectNotifications: string
  /**
   * Like `selectNotifications`, filtered: with `topics`, the fifth parameter
   * is the topics as a text array; with `originator`, the next one is the
   * originator id.
   */
  readonly selectNotificationsFiltered: (filter: NotificationFilter) => string
  /** Returns one row `{ max }`: the highest committed id, settled or not; 0 when the log is empty. */
  readonly maxNotificationId: string
}

/** Returns the statements on an application's notification log. */
export function notificationSql(schema: string | undefined, table: string): NotificationSql {
  const name = qualified(schema, table)
  const key = writeLockKey(schema, table)
  // The lock is taken in a CTE that the insert scans, so before any row is
  // inserted, which is when ids are drawn.
  const locked = `WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(${key})::text)`
  const into = `INSERT INTO ${name} (originator_id, originator_version, topic, state)`
  const fields = `notification_id AS id, originator_id AS "originatorId", originator_version AS "originatorVersion", topic`
  // Rows up to the resolved id are settled; after it (or after the start),
  // a row is settled while every id before it is there: its row number
  // counts them.
  const base = 'greatest($4::bigint, $1::bigint - 1)'
  // The filter is given twice: on the table's columns, and on the aliases of the unresolved rows.
  const select = (filter: string, aliased = filter) => `(SELECT ${fields}, state, true AS settled FROM ${name}
  WHERE notification_id >= $1::bigint AND notification_id <= least($2::bigint, $4::bigint)${filter}
  ORDER BY notification_id LIMIT $3)
UNION ALL
(SELECT id, "originatorId", "originatorVersion", topic, CASE WHEN id = ${base} + n THEN state END, id = ${base} + n
FROM (
  SELECT ${fields}, state, row_number() OVER w AS n, lag(notification_id, 1, ${base}) OVER w AS previous
  FROM ${name}
  WHERE notification_id > ${base} AND notification_id <= $2::bigint
  WINDOW w AS (ORDER BY notification_id)
) AS unresolved
WHERE (id = ${base} + n${aliased}) OR (id > ${base} + n AND previous = ${base} + n - 1)
ORDER BY id LIMIT $3)
ORDER BY id LIMIT $3`
  const sequence = `pg_get_serial_sequence('${name}', 'notification_id')::regclass`
  // An originator's rows are found by the unique index on (originator_id, originator_version).
  const filtered = [false, true].map((topics) =>
    [false, true].map((originator) => {
      const byTopic = topics ? ' AND topic = ANY($5::text[])' : ''
      const parameter = `$${topics ? 6 : 5}::text`
      return select(
        byTopic + (originator ? ` AND originator_id = ${parameter}` : ''),
        byTopic + (originator ? ` AND "originatorId" = ${parameter}` : ''),
      )
    }),
  )
  return {
    insertEvent: `${locked} ${into} SELECT $1::text, $2::int, $3::text, $4::bytea FROM locked RETURNING notification_id AS id`,
    insertEvents: `${locked}, inserted AS (${into} ${rowsOf('locked, ')} RETURNING notification_id)
SELECT notification_id AS id FROM inserted ORDER BY notification_id`,
    barrier: (timeoutMs) => `SET LOCAL lock_timeout = ${Math.max(1, Math.ceil(timeoutMs))};
WITH barrier AS MATERIALIZED (SELECT pg_advisory_xact_lock(${key})::text)
SELECT COALESCE(pg_sequence_last_value(${sequence}), 0) AS resolved FROM barrier`,
    notify: notifySql(channelName(schema, table)),
    selectNotifications: select(''),
    selectNotificationsFiltered: ({ topics, originator }) => filtered[Number(topics)]![Number(originator)]!,
    maxNotificationId: `SELECT COALESCE(MAX(notification_id), 0) AS max FROM ${name}`,
  }
}

/**
 * Returns the statement that records events and a tracking record at once,
 * in one statement that can commit by itself. Parameters: see {@link columns},
 * then the upstream application's name and the notification id. Returns the
 * events' ids in input order.
 *
 * A tracking id that is not greater than the one recorded, or not positive,
 * must fail the whole statement: it is made NULL, which the column refuses
 * (SQLSTATE 23502 on the tracking table's `notification_id`). The tracking
 * record is written first, so such a failure draws no event id.
 */
export function trackedInsertSql(schema: string | undefined, tables: ApplicationTables): string {
  const key = writeLockKey(schema, tables.events)
  return `WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(${key})::text),
tracked AS (
  INSERT INTO ${qualified(schema, tables.tracking)} AS t (application_name, notification_id)
  SELECT $6::text, CASE WHEN $7::bigint > 0 THEN $7::bigint END
  ON CONFLICT (application_name) DO UPDATE
  SET notification_id = CASE WHEN excluded.notification_id > t.notification_id THEN excluded.notification_id END
  RETURNING 1
),
inserted AS (
  INSERT INTO ${qualified(schema, tables.events)} (originator_id, originator_version, topic, state)
  ${rowsOf('locked, tracked, ')}
  RETURNING notification_id
)
SELECT notification_id AS id FROM inserted ORDER BY notification_id`
}

/** The statements on an application's tracking table. */
export interface TrackingSql {
  /**
   * Parameters: upstream application name, notification id. Changes one row
   * when the id is positive and greater than the one recorded, else none.
   */
  readonly insertTracking: string
  /** Parameter: upstream application name; returns `{ max }` or no row. */
  readonly maxTrackingId: string
  /** Returns every row as a tracking record, ordered by the upstream application's name (by code point). */
  readonly selectTracking: string
}

/** Returns the statements on an application's tracking table. */
export function trackingSql(schema: string | undefined, table: string): TrackingSql {
  const name = qualified(schema, table)
  // One row per upstream application, moved forward only. Of two
  // transactions inserting the same new row, the second waits on the unique
  // index until the first commits, then sees its row and changes nothing.
  return {
    insertTracking: `INSERT INTO ${name} AS t (application_name, notification_id)
SELECT $1::text, $2::bigint WHERE $2::bigint > 0
ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id
WHERE excluded.notification_id > t.notification_id`,
    maxTrackingId: `SELECT notification_id AS max FROM ${name} WHERE application_name = $1`,
    selectTracking: `SELECT application_name AS "applicationName", notification_id AS "notificationId"
FROM ${name} ORDER BY application_name COLLATE "C"`,
  }
}

/** The statements on a projection's tracking table, which stands alone (there is no events table beside it). */
export interface ProjectionTrackingSql extends TrackingSql {
  /** Creates the schema and the table when they are missing, under the lock of {@link createTablesSql}. */
  readonly createTable: CreateTablesSql
  /** The first statement of a transaction that runs the projection's own SQL: unqualified names are in the schema. */
  readonly begin: string
  /** Like `begin`, and takes the lock of {@link createTablesSql}, for creating the view's tables. */
  readonly beginSetup: string
  /** Like `begin`, for a read-only transaction. */
  readonly beginRead: string
  /** Parameter: upstream application name. Deletes its tracking record. */
  readonly deleteTracking: string
}

/**
 * Returns the statements on a projection's tracking table, which has the
 * columns of an application's. With a schema, the transactions set their
 * search path to it, so that the projection's SQL finds its tables there.
 */
export function projectionTrackingSql(schema: string | undefined, table: string): ProjectionTrackingSql {
  const name = qualified(schema, table)
  const createSchema =
    schema === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS "${validIdentifier(schema, 'schema name')}";`
  const searchPath = schema === undefined ? '' : `; SET LOCAL search_path TO "${schema}"`
  const lock = `SELECT pg_advisory_xact_lock(${CREATE_TABLES_LOCK})`
  return {
    ...trackingSql(schema, table),
    createTable: {
      begin: `BEGIN; ${lock}`,
      body: `${createSchema}
CREATE TABLE IF NOT EXISTS ${name} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id BIGINT NOT NULL
);`,
    },
    begin: `BEGIN${searchPath}`,
    beginSetup: `BEGIN; ${lock}${searchPath}`,
    beginRead: `BEGIN READ ONLY${searchPath}`,
    deleteTracking: `DELETE FROM ${name} WHERE application_name = $1`,
  }
}

/**
 * Lists the tables of a schema (the current one when `$1` is null) that are
 * an application's events table: named `<name>_events`, with the columns of
 * {@link createTablesSql}. Returns rows `{ name }`.
 */
export const listEventTablesSql = `SELECT table_name AS name FROM information_schema.columns
WHERE table_schema = COALESCE($1::text, current_schema()) AND table_name LIKE '%\\_events'
AND column_name IN ('notification_id', 'originator_id', 'originator_version', 'topic', 'state')
GROUP BY table_name HAVING COUNT(*) = 5
ORDER BY table_name COLLATE "C"`

/** Returns the query that counts the events of an events table and finds its highest id: one row `{ events, max }`. */
export function countEventsSql(schema: string | undefined, table: string): string {
  return `SELECT COUNT(*)::bigint AS events, COALESCE(MAX(notification_id), 0) AS max FROM ${qualified(schema, table)}`
}
