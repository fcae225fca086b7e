import type { DcbQuery, DcbTables } from '../persistence/dcb.js'
import { validIdentifier } from '../persistence/identifiers.js'

// The statements of the SQLite DCB recorder, built from table names that
// passed validIdentifier and from the shape of a query (how many types and
// tags each item has); every value is a `?` parameter.

const quote = (table: string): string => `"${validIdentifier(table)}"`

/**
 * Returns the DDL that creates a DCB recorder's tables when they are missing;
 * idempotent, and safe to run from several processes at once inside a write
 * transaction.
 *
 * An event's tags are stored twice: as a JSON array in its row, which a read
 * returns without a join, and as rows `(tag, position)` of the tags table,
 * whose primary key finds the events of a tag in position order. The index on
 * `(type, position)` does the same for types. Positions are rowids; no event
 * is ever deleted, so none is reused. The tracking table is the application's
 * (the same DDL as its aggregate recorders'), so either recorder may create it.
 */
export function createDcbTablesSql(tables: DcbTables): string {
  return `
CREATE TABLE IF NOT EXISTS ${quote(tables.events)} (
  position INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  data BLOB NOT NULL,
  metadata BLOB,
  tags TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS ${quote(`${tables.events}_type`)} ON ${quote(tables.events)} (type, position);
CREATE TABLE IF NOT EXISTS ${quote(tables.tags)} (
  tag TEXT NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (tag, position)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ${quote(tables.tracking)} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`
}

/** The fixed statements on a DCB recorder's tables. */
export interface DcbSql {
  /** Parameters: type, data, metadata (or null), tags as a JSON array. */
  readonly insertEvent: string
  /** Parameters: tag, position. */
  readonly insertTag: string
  /** Returns one row `{ head }`, 0 when the store is empty. */
  readonly head: string
}

/** Returns the fixed statements on a DCB recorder's tables. */
export function dcbSql(tables: DcbTables): DcbSql {
  const events = quote(tables.events)
  return {
    insertEvent: `INSERT INTO ${events} (type, data, metadata, tags) VALUES (?, ?, ?, ?)`,
    insertTag: `INSERT INTO ${quote(tables.tags)} (tag, position) VALUES (?, ?)`,
    head: `SELECT COALESCE(MAX(position), 0) AS head FROM ${events}`,
  }
}

/** A statement for one query, with its parameters in order. */
export interface QuerySql {
  readonly sql: string
  readonly params: unknown[]
}

/**
 * Returns the statement that selects the events matching a checked query
 * with positions in (after, upTo], in position order, at most `limit`
 * (negative for no limit). Each item becomes one subquery of positions: a
 * seek in the tags table's key for its first tag, joined on each further tag
 * (and on the events' types when it has both); a seek in the type index when
 * it has only types; a range of rowids when it has neither, or the query is empty.
 */
export function selectEventsSql(
  tables: DcbTables,
  query: DcbQuery,
  after: number,
  upTo: number,
  limit: number,
): QuerySql {
  const columns = `SELECT position, type, data, metadata, tags FROM ${quote(tables.events)}`
  if (matchesAll(query)) {
    return {
      sql: `${columns} WHERE position > ? AND position <= ? ORDER BY position LIMIT ?`,
      params: [after, upTo, limit],
    }
  }
  const { sql, params } = positionsSql(tables, query, after)
  return {
    sql: `${columns} WHERE position IN (${sql}) AND position <= ? ORDER BY position LIMIT ?`,
    params: [...params, upTo, limit],
  }
}

/** Returns the statement whose one row `{ found }` is 1 if an event matching a checked query follows `after`, else 0. */
export function existsSql(tables: DcbTables, query: DcbQuery, after: number): QuerySql {
  if (matchesAll(query)) {
    return { sql: `SELECT EXISTS (SELECT 1 FROM ${quote(tables.events)} WHERE position > ?) AS found`, params: [after] }
  }
  const { sql, params } = positionsSql(tables, query, after)
  return { sql: `SELECT EXISTS (${sql}) AS found`, params }
}

function matchesAll(query: DcbQuery): boolean {
  return query.length === 0 || query.some(({ types = [], tags = [] }) => types.length === 0 && tags.length === 0)
}

/** The positions after `after` of the events an item of the query matches (none of them matching all events). */
function positionsSql(tables: DcbTables, query: DcbQuery, after: number): QuerySql {
  const events = quote(tables.events)
  const tagTable = quote(tables.tags)
  const parts: string[] = []
  const params: unknown[] = []
  for (const { types = [], tags = [] } of query) {
    const typeList = types.map(() => '?').join(', ')
    if (tags.length === 0) {
      parts.push(`SELECT position FROM ${events} WHERE type IN (${typeList}) AND position > ?`)
      params.push(...types, after)
      continue
    }
    const joins = tags
      .slice(1)
      .map((_, i) => `JOIN ${tagTable} t${i + 1} ON t${i + 1}.tag = ? AND t${i + 1}.position = t0.position`)
    if (types.length > 0) joins.push(`JOIN ${events} e ON e.position = t0.position AND e.type IN (${typeList})`)
    parts.push(`SELECT t0.position FROM ${tagTable} t0 ${joins.join(' ')} WHERE t0.tag = ? AND t0.position > ?`)
    params.push(...tags.slice(1), ...types, tags[0], after)
  }
  return { sql: parts.join(' UNION ALL '), params }
}
