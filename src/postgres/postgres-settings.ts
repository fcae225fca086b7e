import { ProgrammingError } from '../persistence/errors.js'
import type { ConnectionSettings } from './postgres-pool.js'
import type { PostgresOptions } from './postgres-recorder.js'

/** The options that say how to connect to a PostgreSQL server: a URL or split settings, the pool, and timeouts. */
export type PostgresConnectionOptions = Pick<
  PostgresOptions,
  | 'url'
  | 'host'
  | 'port'
  | 'user'
  | 'password'
  | 'database'
  | 'poolSize'
  | 'connectTimeoutMs'
  | 'idleTimeoutMs'
  | 'statementTimeoutMs'
  | 'lockTimeoutMs'
>

/**
 * Returns the validated settings of a pool (default: 10 connections, 5 s to
 * connect, idle connections kept 10 s).
 *
 * @throws ProgrammingError for a bad URL, a URL given with split settings, a
 * port out of range, or a pool size or timeout that is not a non-negative integer.
 */
export function connectionSettings(options: PostgresConnectionOptions): ConnectionSettings {
  const { url, host, port, user, password, database } = options
  const { poolSize = 10, connectTimeoutMs = 5000, idleTimeoutMs = 10_000, statementTimeoutMs, lockTimeoutMs } = options
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new ProgrammingError(`poolSize must be a positive integer, got ${poolSize}`)
  }
  const timeouts = { connectTimeoutMs, idleTimeoutMs, statementTimeoutMs, lockTimeoutMs }
  for (const [name, value] of Object.entries(timeouts)) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new ProgrammingError(`${name} must be a non-negative integer, got ${value}`)
    }
  }
  const common = {
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    lock_timeout: lockTimeoutMs,
    application_name: 'eventsourcing',
  }
  if (url !== undefined) {
    if ([host, port, user, password, database].some((value) => value !== undefined)) {
      throw new ProgrammingError('Give the PostgreSQL backend either a url or host, port, user, password and database')
    }
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch (error) {
      throw new ProgrammingError('Invalid PostgreSQL url: use postgres://user:password@host:port/database', {
        cause: error,
      })
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
      throw new ProgrammingError(`Invalid PostgreSQL url scheme ${parsed.protocol}: use postgres://`)
    }
    const server = `${parsed.hostname || 'localhost'}:${parsed.port || 5432}${parsed.pathname}`
    return { config: { ...common, connectionString: url }, server, poolSize, idleTimeoutMs }
  }
  if (port !== undefined && (!Number.isSafeInteger(port) || port < 1 || port > 65_535)) {
    throw new ProgrammingError(`port must be an integer from 1 to 65535, got ${port}`)
  }
  const server = `${host ?? 'localhost'}:${port ?? 5432}/${database ?? user ?? ''}`
  return { config: { ...common, host, port, user, password, database }, server, poolSize, idleTimeoutMs }
}
