import { type ApplicationTables, validIdentifier } from '../persistence/identifiers.js'

// Every statement of the SQLite backend is built here, from table names that
// passed validIdentifier; every value is a `?` parameter.

const quote = (table: string): string => `"${validIdentifier(table)}"`

/**
 * Returns the DDL that creates an application's tables when they are missing.
 * It is idempotent, and safe to run from several processes at once when run
 * inside a write transaction.
 *
 * The tables are STRICT, so a state that is not bytes or a version that is not
 * an integer is refused instead of being stored and read back as another type.
 * AUTOINCREMENT keeps notification ids from being reused after the newest
 * events are deleted: without it a reader that has seen id N could later find a
 * new event with that id. Readers page through the log in id order, which the
 * primary key serves; a page of one topic or a few is served by the index on
 * (topic, notification_id), which finds the page's rows without scanning the
 * log between them (a rare topic in a million events: 0.4 ms with it, 9 ms
 * without, and 113 ms to find that a topic has no events). It is created with
 * the tables, and on tables made before it when an application next opens
 * them with table creation on.
 */
export function createTablesSql(tables: ApplicationTables): string {
  return `
CREATE TABLE IF NOT EXISTS ${quote(tables.events)} (
  notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
  originator_id TEXT NOT NULL,
  originator_version INTEGER NOT NULL,
  topic TEXT NOT NULL,
  state BLOB NOT NULL,
  UNIQUE (originator_id, originator_version)
) STRICT;
CREATE INDEX IF NOT EXISTS ${quote(`${tables.events}_tp`)} ON ${quote(tables.events)} (topic, notification_id);
CREATE TABLE IF NOT EXISTS ${quote(tables.snapshots)} (
  originator_id TEXT NOT NULL,
  originator_version INTEGER NOT NULL,
  topic TEXT NOT NULL,
  state BLOB NOT NULL,
  PRIMARY KEY (originator_id, originator_version)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ${quote(tables.tracking)} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`
}

/** The statements on a table of stored events (an events table or a snapshots table). */
export interface EventTableSql {
  /** Parameters: originator id, version, topic, state. */
  readonly insertEvent: string
  /** Parameters: originator id, versions greater than, versions at most, limit (negative for none). */
  readonly selectEvents: string
  /** Like `selectEvents`, newest first. */
  readonly selectEventsDesc: string
  /** Parameter: originator id. */
  readonly deleteEvents: string
}

/** Returns the statements on a table of stored events. */
export function eventTableSql(table: string): EventTableSql {
  const select = `SELECT originator_id AS originatorId, originator_version AS originatorVersion, topic, state
FROM ${quote(table)}
WHERE originator_id = ? AND originator_version > ? AND originator_version <= ?
ORDER BY originator_version`
  return {
    insertEvent: `INSERT INTO ${quote(table)} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)`,
    selectEvents: `${select} LIMIT ?`,
    selectEventsDesc: `${select} DESC LIMIT ?`,
    deleteEvents: `DELETE FROM ${quote(table)} WHERE originator_id = ?`,
  }
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
   * Returns the query of a filter. Parameters: ids at least, ids at most;
   * with `topics`, the topics as a JSON array; with `originator`, the
   * originator id; then the limit.
   */
  readonly selectNotifications: (filter: NotificationFilter) => string
  /** Returns one row `{ max }`, 0 when the log is empty. */
  readonly maxNotificationId: string
}

/** Returns the statements on an application's notification log. */
export function notificationSql(table: string): NotificationSql {
  const select = `SELECT notification_id AS id, originator_id AS originatorId, originator_version AS originatorVersion,
  topic, state
FROM ${quote(table)}
WHERE notification_id >= ? AND notification_id <= ?`
  // One statement for any number of topics: they arrive as one JSON array
  // parameter, which SQLite turns into a set once per query. An originator's
  // rows are found by the unique index on (originator_id, originator_version).
  const texts = [false, true].map((topics) =>
    [false, true].map(
      (originator) =>
        `${select}${topics ? ' AND topic IN (SELECT value FROM json_each(?))' : ''}${
          originator ? ' AND originator_id = ?' : ''
        } ORDER BY notification_id LIMIT ?`,
    ),
  )
  return {
    selectNotifications: ({ topics, originator }) => texts[Number(topics)]![Number(originator)]!,
    maxNotificationId: `SELECT COALESCE(MAX(notification_id), 0) AS max FROM ${quote(table)}`,
  }
}

/** The statements on an application's tracking table. */
export interface TrackingSql {
  /**
   * Named parameters `@applicationName` and `@notificationId`. Changes one row
   * when the id is positive and greater than the one recorded, else none.
   */
  readonly insertTracking: string
  /** Parameter: upstream application name; returns `{ max }` or no row. */
  readonly maxTrackingId: string
  /** Returns every row as a tracking record, ordered by the upstream application's name. */
  readonly selectTracking: string
}

/** Returns the statements on an application's tracking table. */
export function trackingSql(table: string): TrackingSql {
  // One row per upstream application, moved forward only. The comparison runs
  // inside the write transaction, so two writers cannot both advance from the
  // same position; the WHERE before ON CONFLICT also settles a parsing ambiguity.
  return {
    insertTracking: `INSERT INTO ${quote(table)} AS t (application_name, notification_id)
SELECT @applicationName, @notificationId WHERE @notificationId > 0
ON CONFLICT (application_name) DO UPDATE SET notification_id = excluded.notification_id
WHERE excluded.notification_id > t.notification_id`,
    maxTrackingId: `SELECT notification_id AS max FROM ${quote(table)} WHERE application_name = ?`,
    selectTracking: `SELECT application_name AS applicationName, notification_id AS notificationId
FROM ${quote(table)} ORDER BY application_name`,
  }
}

/** The statements on a projection's tracking table, which stands alone (there is no events table beside it). */
export interface ProjectionTrackingSql extends TrackingSql {
  /** Creates the table when it is missing; idempotent. */
  readonly createTable: string
  /** Parameter: upstream application name. Deletes its tracking record. */
  readonly deleteTracking: string
}

/** Returns the statements on a projection's tracking table, which has the columns of an application's. */
export function projectionTrackingSql(table: string): ProjectionTrackingSql {
  return {
    ...trackingSql(table),
    createTable: `CREATE TABLE IF NOT EXISTS ${quote(table)} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID`,
    deleteTracking: `DELETE FROM ${quote(table)} WHERE application_name = ?`,
  }
}

/**
 * Lists the tables that are an application's events table: named
 * `<name>_events`, with the columns of {@link createTablesSql}. Returns rows `{ name }`.
 */
export const listEventTablesSql = `SELECT m.name AS name FROM sqlite_schema AS m
WHERE m.type = 'table' AND m.name LIKE '%\\_events' ESCAPE '\\'
AND (SELECT COUNT(*) FROM pragma_table_info(m.name) AS c
  WHERE c.name IN ('notification_id', 'originator_id', 'originator_version', 'topic', 'state')) = 5
ORDER BY m.name`

/** Returns the query that counts the events of an events table and finds its highest id: one row `{ events, max }`. */
export function countEventsSql(table: string): string {
  return `SELECT COUNT(*) AS events, COALESCE(MAX(notification_id), 0) AS max FROM ${quote(table)}`
}
