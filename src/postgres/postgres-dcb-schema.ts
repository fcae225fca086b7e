import { createHash } from 'node:crypto'
import type { DcbEvent, DcbQuery, DcbTables } from '../persistence/dcb.js'
import { validIdentifier } from '../persistence/identifiers.js'
import { CREATE_TABLES_LOCK, type CreateTablesSql, qualified, writeLockKey } from './postgres-schema.js'

// The statements of the PostgreSQL DCB recorder, built from table names that
// passed validIdentifier; every value is a `$n` parameter, and a query's
// shape (how many items, which have types or tags) only chooses placeholders.

/**
 * Returns the statements that create an application's DCB tables when they
 * are missing, under the lock that serialises table creation. Positions are
 * an identity column with the default cache of 1, so they are drawn in one
 * global order and the sequence's last value is the highest drawn (the proof
 * in postgres-dcb-recorder.ts needs both). Tags are a text array with a GIN
 * index, kept up to date at each insert (`fastupdate` off: a pending list
 * would be scanned by every read); types have a B-tree index with the position.
 */
export function createDcbTablesSql(schema: string | undefined, tables: DcbTables): CreateTablesSql {
  const createSchema =
    schema === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS "${validIdentifier(schema, 'schema name')}";`
  const events = qualified(schema, tables.events)
  // Index names share the schema's namespace with tables: short suffixes keep them within 63 bytes.
  const index = (suffix: string) => `"${validIdentifier(`${tables.events}_${suffix}`)}"`
  return {
    begin: `BEGIN; SELECT pg_advisory_xact_lock(${CREATE_TABLES_LOCK})`,
    body: `${createSchema}
CREATE TABLE IF NOT EXISTS ${events} (
  position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type TEXT NOT NULL,
  data BYTEA NOT NULL,
  metadata BYTEA,
  tags TEXT[] NOT NULL
);
CREATE INDEX IF NOT EXISTS ${index('tg')} ON ${events} USING GIN (tags) WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS ${index('ty')} ON ${events} (type, position);
CREATE TABLE IF NOT EXISTS ${qualified(schema, tables.tracking)} (
  application_name TEXT NOT NULL PRIMARY KEY,
  notification_id BIGINT NOT NULL
);`,
  }
}

/** A statement and its values. */
export interface DcbStatement {
  readonly text: string
  readonly values: unknown[]
}

/**
 * Returns the SQL condition that `query` (a checked one) matches an event of
 * table alias `e`, with its values numbered from `$first`: `true` for the
 * empty query or an item with neither types nor tags.
 */
function matching(query: DcbQuery, first: number): { sql: string; values: unknown[] } {
  const values: unknown[] = []
  const param = (value: unknown, type: string) => {
    values.push(value)
    return `$${first + values.length - 1}::${type}`
  }
  const items = query.map(({ types = [], tags = [] }) => {
    const parts: string[] = []
    if (tags.length > 0) parts.push(`e.tags @> ${param(tags, 'text[]')}`)
    if (types.length > 0) parts.push(`e.type = ANY(${param(types, 'text[]')})`)
    return parts.length === 0 ? 'true' : parts.join(' AND ')
  })
  // An item that matches every event makes the query match every event, with no values.
  if (items.length === 0 || items.includes('true')) return { sql: 'true', values: [] }
  return { sql: `(${items.join(' OR ')})`, values }
}

const FIELDS = 'e.position, e.type, e.data, e.metadata, e.tags'

/**
 * Returns the statement of a read, which runs on one snapshot. Its rows: the
 * settled head (every position from `resolved` up to it is there), `gap`
 * (a committed event lies above the head), `pending` (one matching the
 * query does), and, in the same rows, the matching events after `after` up
 * to the head, at most `limit` (null: all), in position order (none: one row
 * with null event fields). See postgres-dcb-recorder.ts for why the head is settled.
 */
export function readSql(
  schema: string | undefined,
  tables: DcbTables,
  query: DcbQuery,
  resolved: number,
  after: number,
  limit: number | null,
): DcbStatement {
  const name = qualified(schema, tables.events)
  const match = matching(query, 4)
  // Positions are drawn one by one, so a row is at its place while position = resolved + its row number.
  const text = `WITH tail AS MATERIALIZED (
  SELECT position, row_number() OVER (ORDER BY position) AS n FROM ${name} WHERE position > $1::bigint
),
settled AS (SELECT COALESCE((SELECT max(position) FROM tail WHERE position = $1::bigint + n), $1::bigint) AS head),
info AS (
  SELECT s.head,
    EXISTS (SELECT 1 FROM tail WHERE tail.position > s.head) AS gap,
    EXISTS (SELECT 1 FROM ${name} e WHERE e.position > s.head AND ${match.sql}) AS pending
  FROM settled s
),
found AS (
  SELECT ${FIELDS} FROM ${name} e, settled s
  WHERE e.position > $2::bigint AND e.position <= s.head AND ${match.sql}
  ORDER BY e.position LIMIT $3
)
SELECT info.head, info.gap, info.pending, found.* FROM info LEFT JOIN found ON true ORDER BY found.position`
  return { text, values: [resolved, after, limit, ...match.values] }
}

/**
 * Returns the statement that checks an append's condition and inserts its
 * events, on one snapshot taken after the append's locks were granted (see
 * postgres-dcb-recorder.ts): when an event matching the condition follows
 * its `after`, nothing is inserted, so no position is drawn. Its one row:
 * `conflict`, and `last`, the last position inserted (null when none).
 */
export function appendSql(
  schema: string | undefined,
  tables: DcbTables,
  events: readonly DcbEvent[],
  condition: { readonly query: DcbQuery; readonly after: number } | undefined,
): DcbStatement {
  const name = qualified(schema, tables.events)
  const match = condition === undefined ? undefined : matching(condition.query, 9)
  const conflict =
    match === undefined
      ? 'SELECT false AS found'
      : `SELECT EXISTS (SELECT 1 FROM ${name} e WHERE e.position > $8::bigint AND ${match.sql}) AS found`
  // Data, metadata and tags come as one value each, cut by lengths (bytes as one bytea, which pg sends in binary).
  const text = `WITH conflict AS MATERIALIZED (${conflict}),
given AS (
  SELECT n, t, dl, ml, tc,
    sum(dl) OVER w - dl AS d0, sum(greatest(ml, 0)) OVER w - greatest(ml, 0) AS m0, sum(tc) OVER w - tc AS t0
  FROM unnest($1::text[], $2::int[], $3::int[], $4::int[]) WITH ORDINALITY AS g(t, dl, ml, tc, n)
  WINDOW w AS (ORDER BY n)
),
inserted AS (
  INSERT INTO ${name} (type, data, metadata, tags)
  SELECT t, substring($5::bytea FROM (d0 + 1)::int FOR dl),
    CASE WHEN ml >= 0 THEN substring($6::bytea FROM (m0 + 1)::int FOR ml) END,
    COALESCE(($7::text[])[t0 + 1 : t0 + tc], '{}')
  FROM given, conflict WHERE NOT conflict.found ORDER BY n
  RETURNING position
)
SELECT (SELECT found FROM conflict) AS conflict, (SELECT max(position) FROM inserted) AS last`
  const values = [
    events.map((e) => e.type),
    events.map((e) => e.data.byteLength),
    events.map((e) => (e.metadata === undefined ? -1 : e.metadata.byteLength)),
    events.map((e) => e.tags.length),
    Buffer.concat(events.map((e) => e.data)),
    Buffer.concat(events.flatMap((e) => (e.metadata === undefined ? [] : [e.metadata]))),
    events.flatMap((e) => e.tags),
    ...(condition === undefined ? [] : [condition.after, ...match!.values]),
  ]
  return { text, values }
}

/** Returns the statement that checks a condition alone, for an append of no events: one row `{ found }`. */
export function conflictSql(
  schema: string | undefined,
  tables: DcbTables,
  query: DcbQuery,
  after: number,
): DcbStatement {
  const match = matching(query, 2)
  const text = `SELECT EXISTS (SELECT 1 FROM ${qualified(schema, tables.events)} e WHERE e.position > $1::bigint AND ${match.sql}) AS found`
  return { text, values: [after, ...match.values] }
}

/**
 * Returns the script that begins an append's READ COMMITTED transaction and
 * takes its advisory locks until it ends, one statement each, in the order
 * given (sorted by the caller), in one round trip: the keys are numbers this
 * module computes (see {@link dcbLockKey}), never text from the caller.
 */
export function beginLockedSql(keys: readonly bigint[], exclusive: readonly boolean[]): string {
  const locks = keys.map(
    (key, i) => `SELECT pg_advisory_xact_lock${exclusive[i] ? '' : '_shared'}(${BigInt.asIntN(64, key)})`,
  )
  return ['BEGIN ISOLATION LEVEL READ COMMITTED', ...locks].join('; ')
}

/**
 * Returns the key of the advisory lock of one tag or one type of a DCB
 * events table: 64 bits of a hash, the same in every process. Two values
 * whose keys agree only make their appends wait for each other.
 */
export function dcbLockKey(schema: string | undefined, table: string, kind: 'tag' | 'type', value: string): bigint {
  const digest = createHash('sha256')
    .update(`eventsourcing dcb ${qualified(schema, table)} ${kind} ${value}`)
    .digest()
  return digest.readBigInt64BE(0)
}

/** Returns the key of the lock of the whole DCB events table (its write lock, as the notification log's). */
export function dcbStoreKey(schema: string | undefined, table: string): bigint {
  return writeLockKey(schema, table)
}

/**
 * Returns the statement that waits up to the given milliseconds for the
 * store's lock in exclusive mode, so until every append holding it in shared
 * mode has ended, and returns `{ resolved }`: the highest position drawn so
 * far, or 0. Fails with SQLSTATE 55P03 when the time runs out.
 */
export function dcbBarrierSql(schema: string | undefined, table: string, timeoutMs: number): string {
  const name = qualified(schema, table)
  return `SET LOCAL lock_timeout = ${Math.max(1, Math.ceil(timeoutMs))};
WITH barrier AS MATERIALIZED (SELECT pg_advisory_xact_lock(${dcbStoreKey(schema, table)})::text)
SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('${name}', 'position')::regclass), 0) AS resolved FROM barrier`
}
