import { type ApplicationTables, validIdentifier } from '../persistence/identifiers.js'

// Every statement of the PostgreSQL backend is built here, from schema and
// table names that passed validIdentifier; every value is a `$n` parameter.

/**
 * Any 64-bit number that other code is unlikely to pick: the key of the
 * advisory lock that serialises table creation across processes.
 */
const CREATE_TABLES_LOCK = 7_317_091_844_771_205n

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
 * cache of 1, so ids are drawn in one global order (a per-session cache
 * would hand out ids out of order across sessions, and break the proof in
 * postgres-recorder.ts). There is no index on topic: readers page through
 * the log in id order, which the primary key serves.
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
   * Parameters: arrays of originator ids, versions, topics and states, one
   * element per event. Inserts the rows in array order; returns
   * `notification_id`, `originator_id` and `originator_version` on an events table.
   */
  readonly insertEvents: string
  /** Parameters: originator id, versions greater than, versions at most, limit (null for none). */
  readonly selectEvents: string
  /** Like `selectEvents`, newest first. */
  readonly selectEventsDesc: string
  /** Parameter: originator id. */
  readonly deleteEvents: string
}

/** Returns the statements on a table of stored events; `returning` adds the notification ids. */
export function eventTableSql(schema: string | undefined, table: string, returning: boolean): EventTableSql {
  const name = qualified(schema, table)
  const select = `SELECT originator_id AS "originatorId", originator_version AS "originatorVersion", topic, state
FROM ${name}
WHERE originator_id = $1 AND originator_version > $2::bigint AND originator_version <= $3::bigint
ORDER BY originator_version`
  // One statement for any number of events: the ORDER BY on the ordinality
  // makes the rows, and so the identity values drawn for them, follow the
  // input order.
  // The states come as one bytea (which pg sends in binary) cut by lengths:
  // a bytea[] would be sent as hex text, twice the size, and parsed row by row.
  const insert = `INSERT INTO ${name} (originator_id, originator_version, topic, state)
SELECT i, v, t, substring($4::bytea FROM (sum(l) OVER (ORDER BY n) - l + 1)::int FOR l)
FROM unnest($1::text[], $2::int[], $3::text[], $5::int[]) WITH ORDINALITY AS e(i, v, t, l, n)
ORDER BY n`
  return {
    insertEvents: returning ? `${insert} RETURNING notification_id, originator_id, originator_version` : insert,
    selectEvents: `${select} LIMIT $4`,
    selectEventsDesc: `${select} DESC LIMIT $4`,
    deleteEvents: `DELETE FROM ${name} WHERE originator_id = $1`,
  }
}

/** The statements on an application's notification log (its events table). */
export interface NotificationSql {
  /**
   * The first statement of a write transaction that assigns ids: takes the
   * table lock (see postgres-recorder.ts) and queues a notification to
   * listeners, delivered only if the transaction commits.
   */
  readonly beginWrite: string
  /** The first statement of a transaction that writes tracking alone: no ids are assigned, so no lock. */
  readonly beginTracking: string
  /** Parameters: ids at least, ids at most, limit. */
  readonly selectNotifications: string
  /** Parameters: ids at least, ids at most, limit, topics as a text array. */
  readonly selectNotificationsByTopic: string
  /** Returns one row `{ max }`, 0 when the log is empty. */
  readonly maxNotificationId: string
}

/** Returns the statements on an application's notification log. */
export function notificationSql(schema: string | undefined, table: string): NotificationSql {
  const name = qualified(schema, table)
  const notify = `NOTIFY "${channelName(schema, table)}"`
  const select = `SELECT notification_id AS id, originator_id AS "originatorId", originator_version AS "originatorVersion",
  topic, state
FROM ${name}
WHERE notification_id >= $1::bigint AND notification_id <= $2::bigint`
  return {
    beginWrite: `BEGIN; LOCK TABLE ${name} IN EXCLUSIVE MODE; ${notify}`,
    beginTracking: `BEGIN; ${notify}`,
    selectNotifications: `${select} ORDER BY notification_id LIMIT $3`,
    selectNotificationsByTopic: `${select} AND topic = ANY($4::text[]) ORDER BY notification_id LIMIT $3`,
    maxNotificationId: `SELECT COALESCE(MAX(notification_id), 0) AS max FROM ${name}`,
  }
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
