import { createHash } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import type pg from 'pg'
import { importDriver as importOptional, loadOnce } from '../persistence/driver.js'
import {
  DataError,
  errorCode,
  errorMessage,
  IntegrityError,
  OperationalError,
  PersistenceError,
  ProgrammingError,
  type VersionConflict,
  VersionConflictError,
} from '../persistence/errors.js'
import { listenSql } from './postgres-schema.js'

/** The `pg` module, as its default export. */
export type PgDriver = typeof pg

const INSTALL = 'npm install pg'

/**
 * Imports `pg` with `importer`. The import is dynamic so that the core never
 * loads the driver, which is an optional peer dependency.
 *
 * @throws ProgrammingError saying how to install the driver when it is missing.
 */
export function importDriver(importer: () => Promise<{ default: PgDriver }> = () => import('pg')): Promise<PgDriver> {
  return importOptional(importer, () => `The PostgreSQL backend needs the pg package: ${INSTALL}`)
}

const loadDriver = loadOnce(() => importDriver())

/** How connections are made and configured. */
export interface ConnectionSettings {
  /** The driver's connection settings (URL or split settings, timeouts). */
  readonly config: pg.ClientConfig
  /** Names the server in error messages, e.g. `localhost:5432/dogs`. */
  readonly server: string
  /** The most connections in the pool. */
  readonly poolSize: number
  /** How long an idle pooled connection is kept. */
  readonly idleTimeoutMs: number
}

// Transient failures are retried this many times in all, waiting 100 ms,
// then 200 ms, ... between attempts (1.5 s at most in all).
const ATTEMPTS = 5
const FIRST_DELAY_MS = 100

// int8 arrives as a string by default; ids and counts here stay far below 2^53.
const INT8 = 20

/**
 * A pool of connections to one server, and the dedicated connections that
 * listen for notifications; made by {@link PostgresPool.open} and ended by `close()`.
 */
export class PostgresPool {
  readonly #names = new Map<string, string>()

  private constructor(
    readonly driver: PgDriver,
    readonly pool: pg.Pool,
    readonly settings: ConnectionSettings,
  ) {}

  /**
   * Makes a pool; no connection is made until one is needed.
   *
   * @throws ProgrammingError when the driver is missing.
   */
  static async open(settings: ConnectionSettings): Promise<PostgresPool> {
    const driver = await loadDriver()
    const pool = new driver.Pool({
      ...settings.config,
      max: settings.poolSize,
      idleTimeoutMillis: settings.idleTimeoutMs,
      // Without keep-alive, a connection whose peer vanished without a reset
      // (a network partition) would leave a COMMIT, and the queue behind it, waiting forever.
      keepAlive: true,
      types: typesOf(driver),
    })
    // An idle connection that the server drops (a restart) is reported here;
    // the pool discards it, and the next query gets a new one.
    pool.on('error', () => {})
    return new PostgresPool(driver, pool, settings)
  }

  /** Makes a connection outside the pool, for listening; the caller ends it. */
  async connect(): Promise<pg.Client> {
    const client = new this.driver.Client({ ...this.settings.config, types: typesOf(this.driver) })
    try {
      await client.connect()
    } catch (error) {
      client.on('error', () => {})
      void client.end().catch(() => {})
      throw error
    }
    return client
  }

  /**
   * Runs one statement on a pooled connection, as a named (prepared) statement,
   * retrying transient failures.
   *
   * @throws a typed persistence error.
   */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.retrying(() => this.pool.query<R>({ name: this.#name(text), text, values }))
  }

  /**
   * Runs a script of statements that take no values on a pooled connection,
   * in one round trip, retrying transient failures; returns the rows of the last one.
   *
   * @throws a typed persistence error carrying the driver's error as `cause`.
   */
  async script(text: string): Promise<pg.QueryResultRow[]> {
    const results = await this.retrying(() => this.pool.query(text))
    // pg returns an array of results for a script of several statements.
    return ([] as pg.QueryResult[]).concat(results).at(-1)?.rows ?? []
  }

  /**
   * Runs `body` in a transaction that `begin` starts, and commits it. Failures
   * before the commit is sent are retried when transient; a connection lost
   * while committing is not, because the commit may have happened.
   *
   * @throws a typed persistence error; OperationalError when the outcome is unknown.
   */
  async transaction<T>(begin: string, body: (run: Run) => Promise<T>): Promise<T> {
    return this.#onConnection(true, async (client, committing) => {
      await client.query(begin)
      const result = await body((text, values) =>
        values === undefined ? client.query(text) : client.query({ name: this.#name(text), text, values }),
      )
      committing()
      await client.query('COMMIT')
      return result
    })
  }

  /**
   * Runs one prepared statement that commits by itself (autocommit). Only a
   * failure to get a connection is retried: once the statement is sent, a
   * lost connection leaves its outcome unknown.
   *
   * @throws a typed persistence error; OperationalError when the outcome is unknown.
   */
  async write<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#onConnection(false, (client, committing) => {
      committing()
      return client.query<R>({ name: this.#name(text), text, values })
    })
  }

  /**
   * Runs `work` on a pooled connection, retrying transient failures that
   * happen before `work` says it is committing. After a failure the
   * connection's transaction is rolled back (when `inTransaction`: an
   * autocommit statement that failed has already rolled back its own), and a
   * connection that failed or cannot roll back is destroyed.
   */
  async #onConnection<T>(
    inTransaction: boolean,
    work: (client: pg.PoolClient, committing: () => void) => Promise<T>,
  ): Promise<T> {
    return this.retrying(async () => {
      const client = await this.pool.connect()
      // The pool listens for errors of idle connections only. A connection
      // lost while checked out (the server restarting) also fails the query
      // in flight, or the next one, which is how the failure is reported;
      // unheard, its error event would end the process.
      client.on('error', ignore)
      let committing = false
      try {
        const result = await work(client, () => {
          committing = true
        })
        client.off('error', ignore)
        client.release()
        return result
      } catch (error) {
        // A connection that is destroyed keeps the listener.
        if (isTransient(error)) client.release(true)
        else {
          await (inTransaction ? client.query('ROLLBACK') : Promise.resolve()).then(
            () => {
              client.off('error', ignore)
              client.release()
            },
            () => client.release(true),
          )
        }
        // A serialization failure or deadlock reported at COMMIT means the
        // server rolled back: that outcome is known, and retrying is safe.
        if (committing && isTransient(error) && !errorCode(error)?.startsWith('40')) {
          throw new OperationalError(
            `The connection to PostgreSQL at ${this.settings.server} failed while committing, so the write may or may not be recorded: ${errorMessage(error)}`,
            { cause: error },
          )
        }
        throw error
      }
    })
  }

  /**
   * Runs `fn`, retrying it with backoff while it fails transiently (a refused
   * or reset connection, a server restarting, a serialization failure).
   *
   * @throws a typed persistence error at once for anything else; OperationalError
   * naming the server once the attempts are used up.
   */
  async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn()
      } catch (error) {
        if (!isTransient(error)) throw postgresError(error, this.settings.server)
        if (attempt === ATTEMPTS) {
          throw new OperationalError(
            `PostgreSQL at ${this.settings.server} is unavailable after ${ATTEMPTS} attempts: ${errorMessage(error)}`,
            { cause: error },
          )
        }
        await delay(FIRST_DELAY_MS * 2 ** (attempt - 1))
      }
    }
  }

  /** Ends every pooled connection. */
  async close(): Promise<void> {
    await this.pool.end()
  }

  // Prepared statements are named per connection by the driver; a name made
  // from the text gives each statement the same name on every connection.
  #name(text: string): string {
    let name = this.#names.get(text)
    if (name === undefined) {
      name = `es_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
      this.#names.set(text, name)
    }
    return name
  }
}

/**
 * One connection, outside the pool, that LISTENs to the channels of events
 * tables and reports each notification. When the connection drops it
 * reconnects with backoff (100 ms doubling to 5 s, for as long as it is
 * open), listens again, and reports a reconnection: notifications sent while
 * it was away are lost, so it then reports every channel as notified.
 */
export class PostgresListener {
  readonly #channels = new Set<string>()
  #client: Promise<pg.Client> | undefined
  #closed = false
  // Cuts short the pause before a reconnection, so that close() need not wait for it.
  readonly #closing = new AbortController()

  /**
   * Makes a listener; it connects on the first {@link PostgresListener.listen}.
   *
   * @param onNotify Called with the channel of each notification.
   */
  constructor(
    private readonly pool: PostgresPool,
    private readonly onNotify: (channel: string) => void,
  ) {}

  /**
   * Listens to `channel` from now on. Resolves once listening, or once the
   * first attempt to connect failed (the listener keeps trying in the
   * background; readers poll meanwhile).
   */
  async listen(channel: string): Promise<void> {
    if (this.#closed) return
    const added = !this.#channels.has(channel)
    this.#channels.add(channel)
    if (this.#client === undefined) {
      this.#client = this.#connect(0)
      await this.#client.catch(() => {})
      return
    }
    const client = await this.#client.catch(() => undefined)
    if (client !== undefined && added) {
      // A connection that cannot LISTEN is ended; its 'end' handler reconnects,
      // LISTENs on every channel and wakes them, so no notification is missed for long.
      await client.query(listenSql(channel)).catch(() => client.end().catch(() => {}))
    }
  }

  /** Ends the connection; the listener cannot be used afterwards. */
  async close(): Promise<void> {
    this.#closed = true
    this.#closing.abort()
    const client = await this.#client?.catch(() => undefined)
    await client?.end().catch(() => {})
  }

  #connect(failures: number): Promise<pg.Client> {
    const connecting = (async () => {
      if (failures > 0) {
        await delay(Math.min(5000, 100 * 2 ** (failures - 1)), undefined, { signal: this.#closing.signal }).catch(
          () => {},
        )
      }
      if (this.#closed) throw new OperationalError('The listener is closed')
      const client = await this.pool.connect()
      let dropped = false
      const drop = () => {
        if (dropped) return
        dropped = true
        void client.end().catch(() => {})
        if (!this.#closed) this.#reconnect(1)
      }
      client.on('error', drop)
      client.on('end', drop)
      client.on('notification', (message) => this.onNotify(message.channel))
      try {
        for (const channel of this.#channels) await client.query(listenSql(channel))
      } catch (error) {
        // The failed attempt is retried by the caller below, not by drop().
        dropped = true
        void client.end().catch(() => {})
        throw error
      }
      return client
    })()
    connecting.catch(() => {
      if (!this.#closed && this.#client === connecting) this.#reconnect(failures + 1)
    })
    return connecting
  }

  #reconnect(failures: number): void {
    const connecting = this.#connect(failures)
    this.#client = connecting
    connecting.then(
      () => {
        for (const channel of this.#channels) this.onNotify(channel)
      },
      () => {},
    )
  }
}

function ignore(): void {}

/**
 * Runs a statement in a transaction: a prepared one with `values`, or without
 * them a script of statements that take no values.
 */
export type Run = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>

function typesOf(driver: PgDriver): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === INT8 && format !== 'binary'
        ? Number
        : driver.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  '57P01', // admin_shutdown: the server is stopping or restarting
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '53300', // too_many_connections
])

/** What a driver error says about a statement that failed. */
export interface DriverError {
  readonly code: string
  readonly detail?: string
  readonly table?: string
  readonly constraint?: string
  readonly column?: string
}

// PostgreSQL names the key of a unique violation in the error's detail, e.g.
// `Key (originator_id, originator_version)=(5f0c…, 3) already exists.`. The
// version is the last number, so the id, which may hold commas and brackets,
// is everything before it.
const VERSION_KEY = /^Key \(originator_id, originator_version\)=\((.*), (-?\d+)\) already exists\.$/s

/**
 * Returns the event version that a unique violation's detail names, or
 * undefined when there is none to read: the detail is in the language of the
 * server's `lc_messages`, and left out when row-level security or column
 * privileges hide the key from the user.
 */
export function versionInDetail(error: DriverError): Omit<VersionConflict, 'table'> | undefined {
  const key = VERSION_KEY.exec(error.detail ?? '')
  return key === null ? undefined : { originatorId: key[1]!, originatorVersion: Number(key[2]) }
}

/**
 * Returns the driver's error for a broken uniqueness rule (SQLSTATE 23505) as
 * an IntegrityError carrying it as `cause`, for a statement whose rows are not
 * known here: a {@link VersionConflictError} when the detail names an event
 * version, else a plain IntegrityError. The writes of events, which know
 * their rows, tell a version conflict without the detail (see versionConflict
 * in postgres-writes.ts).
 */
export function uniqueViolation(error: DriverError): IntegrityError {
  const version = versionInDetail(error)
  if (version === undefined || error.table === undefined)
    return new IntegrityError(errorMessage(error), { cause: error })
  return new VersionConflictError({ ...version, table: error.table }, { cause: error })
}

/** Returns the driver's error: `error` itself, or the one a persistence error carries as `cause`; undefined if neither has a code. */
export function driverError(error: unknown): DriverError | undefined {
  if (errorCode(error) !== undefined) return error as DriverError
  const cause = (error as { cause?: unknown } | undefined)?.cause
  return errorCode(cause) === undefined ? undefined : (cause as DriverError)
}

/** Returns true for failures that a later attempt may not meet: lost connections, a restarting server, a serialization failure. */
export function isTransient(error: unknown): boolean {
  if (error instanceof PersistenceError) return false
  const code = errorCode(error)
  if (code !== undefined) return TRANSIENT_CODES.has(code) || code.startsWith('08')
  // The driver reports a connection closed under it, and a pool that could not
  // connect in time, with plain errors.
  const message = errorMessage(error)
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    message,
  )
}

/**
 * Returns `error` as a typed persistence error carrying it as `cause`:
 * uniqueness → IntegrityError; a missing table, refused credentials, a missing
 * database or privilege, a refused statement → ProgrammingError; bad data →
 * DataError; anything else → OperationalError.
 */
export function postgresError(error: unknown, server: string): PersistenceError {
  if (error instanceof PersistenceError) return error
  const options = { cause: error }
  const message = errorMessage(error)
  const code = errorCode(error) ?? ''
  if (code === '23505') return uniqueViolation(error as DriverError)
  // A missing schema (3F000) is missing tables too.
  if (code === '42P01' || code === '3F000') {
    return new ProgrammingError(
      `${message} on PostgreSQL at ${server}: create the tables (createTables: true, or CREATE_TABLES=true)`,
      options,
    )
  }
  if (code === '28P01' || code === '28000') {
    return new ProgrammingError(
      `PostgreSQL at ${server} refused the connection (${message}): check the user and password`,
      options,
    )
  }
  if (code === '3D000') {
    return new ProgrammingError(`${message} on PostgreSQL at ${server}: create it, or connect to another`, options)
  }
  if (code === '42501') {
    return new ProgrammingError(`${message} on PostgreSQL at ${server}: grant the privilege to the user`, options)
  }
  if (code.startsWith('22')) return new DataError(`PostgreSQL at ${server} refused a value: ${message}`, options)
  if (code.startsWith('42') || code.startsWith('23')) {
    return new ProgrammingError(`PostgreSQL at ${server} refused a statement: ${message}`, options)
  }
  if (code === 'ENOTFOUND') {
    return new OperationalError(`Cannot find the PostgreSQL host of ${server}: ${message}`, options)
  }
  return new OperationalError(`PostgreSQL at ${server} failed: ${message}`, options)
}
