import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CommitSignal, CommitSignals, waitForTracking } from '../persistence/commit-signal.js'
import { errorCode, ProgrammingError, TrackingConflictError, writeInReadError } from '../persistence/errors.js'
import { validIdentifier } from '../persistence/identifiers.js'
import type { ProjectionStore, WaitForTrackingOptions } from '../persistence/recorder.js'
import type { Tracking } from '../persistence/stored-event.js'
import {
  type ConnectionSettings,
  connectionOptions,
  SqliteConnection,
  type SqliteDatabase,
  type SqliteSession,
  type SqliteStatement,
  sqliteError,
} from './sqlite-database.js'
import { type ProjectionTrackingSql, projectionTrackingSql } from './sqlite-schema.js'

/**
 * The handle a projection writes its view with on SQLite: the store's
 * connection, inside the store's transaction. Call it synchronously, within
 * the callback that was given it.
 */
export interface SqliteTransaction {
  /** Returns the statement compiled from `sql`; each text is compiled once per store and reused. */
  prepare(sql: string): SqliteStatement
  /** Runs one or more statements that take no parameters, such as `CREATE TABLE IF NOT EXISTS ...`. */
  exec(sql: string): unknown
}

/** Options of {@link sqliteProjectionStore}. */
export interface SqliteProjectionStoreOptions {
  /** The projection's name: the tracking table is `<name>_tracking` (lower case). */
  readonly name: string
  /** A database file, created if missing (it may hold an application's events too), or `:memory:`. */
  readonly path?: string
  /** A connection opened by the caller, used instead of `path` and never closed by the store. */
  readonly database?: SqliteDatabase
  /** How long a write waits for another connection's lock before failing with OperationalError (default 5,000). */
  readonly busyTimeoutMs?: number
  /** How often `waitForTracking` looks for writes made by other connections (default 100 ms). */
  readonly pollMs?: number
  /** `PRAGMA synchronous` (default `normal`; see the `sqlite` backend). */
  readonly synchronous?: 'full' | 'normal'
  /**
   * Create the tracking table on first use when it is missing (default true).
   * Without it, a store whose table is missing fails on first use with
   * ProgrammingError: for tools that read a projection's tracking and must not make one.
   */
  readonly createTables?: boolean
}

/**
 * Returns a projection store on SQLite: one connection (WAL, a busy timeout),
 * on which the store's operations run one at a time; writes run in
 * `BEGIN IMMEDIATE` transactions. Nothing is opened until first use.
 *
 * `work` should be synchronous. Work that returns a promise is awaited with
 * the transaction open, and so with the database's write lock held: every
 * other writer of the file waits, and one in this thread blocks it for up to
 * the busy timeout, after which it fails.
 *
 * @throws ProgrammingError for missing or invalid options.
 * @example
 * ```ts
 * const store = sqliteProjectionStore({ path: 'views.db', name: 'tricks' })
 * await store.write({ applicationName: 'DogSchool', notificationId: 7 }, (transaction) => {
 *   transaction.prepare('UPDATE tricks SET dogs = dogs + 1 WHERE trick = ?').run('sit')
 * })
 * ```
 */
export function sqliteProjectionStore(options: SqliteProjectionStoreOptions): ProjectionStore<SqliteTransaction> {
  return new SqliteProjectionStore(options)
}

/**
 * The commit signals of file databases, by file and tracking table: a write
 * through one store wakes the waiters of every store of this process on that table.
 */
const fileCommits = new CommitSignals()

/** The store's connection, once opened. */
interface Opened {
  readonly session: SqliteSession
  readonly transaction: SqliteTransaction
  readonly commits: CommitSignal
  readonly release: () => void
}

class SqliteProjectionStore implements ProjectionStore<SqliteTransaction> {
  readonly name: string
  readonly #options: SqliteProjectionStoreOptions
  readonly #settings: ConnectionSettings
  readonly #pollMs: number
  readonly #table: string
  readonly #description: string
  readonly #sql: ProjectionTrackingSql
  #opening: Promise<Opened> | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor(options: SqliteProjectionStoreOptions) {
    const { name, path } = options
    validIdentifier(name, 'projection name')
    const { settings, pollMs } = connectionOptions(options, 'An SQLite projection store')
    this.name = name
    this.#options = options
    this.#settings = settings
    this.#pollMs = pollMs
    this.#table = validIdentifier(`${name.toLowerCase()}_tracking`)
    this.#sql = projectionTrackingSql(this.#table)
    this.#description =
      path === undefined ? 'the given database' : path === ':memory:' ? 'the in-memory database' : `'${path}'`
  }

  setup(work: (transaction: SqliteTransaction) => void | Promise<void>): Promise<void> {
    return this.#serial((opened) => this.#write(opened, () => work(opened.transaction)))
  }

  read<R>(work: (transaction: SqliteTransaction) => R | Promise<R>): Promise<R> {
    return this.#serial(({ session, transaction }) => {
      const { database } = session.connection
      // Refuses writes, so that a read cannot change the view behind its tracking.
      database.exec('PRAGMA query_only = ON')
      const reset = () => database.exec('PRAGMA query_only = OFF')
      let result: R | Promise<R>
      try {
        result = inTransaction(database, 'BEGIN', () => work(transaction))
      } catch (error) {
        reset()
        throw this.#readOnly(error)
      }
      if (!isPromise(result)) {
        reset()
        return result
      }
      return Promise.resolve(result)
        .catch((error: unknown) => {
          throw this.#readOnly(error)
        })
        .finally(reset)
    })
  }

  /** Returns a write refused inside `read()` as the programming error it is; other errors unchanged. */
  #readOnly(error: unknown): unknown {
    // query_only makes SQLite refuse writes with SQLITE_READONLY, which would
    // otherwise read as a read-only file (an OperationalError).
    if (errorCode(error) !== 'SQLITE_READONLY') return error
    return writeInReadError(this.name, error)
  }

  write(tracking: Tracking, work: (transaction: SqliteTransaction) => void | Promise<void>): Promise<void> {
    const { applicationName, notificationId } = tracking
    return this.#serial((opened) =>
      this.#write(opened, () => {
        const insert = opened.session.connection.statement(this.#sql.insertTracking)
        if (insert.run({ applicationName, notificationId }).changes === 0) {
          throw new TrackingConflictError({ applicationName, notificationId, table: this.#table })
        }
        return work(opened.transaction)
      }),
    )
  }

  reset(applicationName: string, work: (transaction: SqliteTransaction) => void | Promise<void>): Promise<void> {
    return this.#serial((opened) =>
      this.#write(opened, () => {
        const result = work(opened.transaction)
        const untrack = () => void opened.session.connection.statement(this.#sql.deleteTracking).run(applicationName)
        if (isPromise(result)) return result.then(untrack)
        untrack()
      }),
    )
  }

  maxTrackingId(applicationName: string): Promise<number> {
    return this.#serial(({ session }) => {
      const row = session.connection.statement(this.#sql.maxTrackingId).get(applicationName)
      return (row as { max: number } | undefined)?.max ?? 0
    })
  }

  selectTracking(): Promise<Tracking[]> {
    return this.#serial(({ session }) => session.connection.statement(this.#sql.selectTracking).all() as Tracking[])
  }

  async hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean> {
    return notificationId === undefined || notificationId <= (await this.maxTrackingId(applicationName))
  }

  async waitForTracking(
    applicationName: string,
    notificationId: number,
    options: WaitForTrackingOptions = {},
  ): Promise<void> {
    const { commits } = await this.#serial((opened) => opened)
    await waitForTracking(this, commits, applicationName, notificationId, options, this.#pollMs)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#queue
    const opened = await this.#opening?.catch(() => undefined)
    opened?.session.close()
    opened?.release()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Runs `body` in a `BEGIN IMMEDIATE` transaction and wakes this process's waiters once it commits. */
  #write(opened: Opened, body: () => void | Promise<void>): void | Promise<void> {
    const result = inTransaction(opened.session.connection.database, 'BEGIN IMMEDIATE', body)
    if (isPromise(result)) return result.then(() => opened.commits.notify())
    opened.commits.notify()
  }

  /**
   * Runs `fn` on the connection after the operations before it have finished,
   * turning SQLite's errors into typed persistence errors (others pass unchanged).
   */
  #serial<R>(fn: (opened: Opened) => R | Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(new ProgrammingError(`The projection store ${this.name} is closed`))
    const result = this.#queue
      .then(async () => fn(await this.#open()))
      .catch((error: unknown) => {
        throw errorCode(error)?.startsWith('SQLITE_') ? sqliteError(error, this.#description) : error
      })
    this.#queue = result.catch(() => {})
    return result
  }

  #open(): Promise<Opened> {
    this.#opening ??= this.#connect().catch((error: unknown) => {
      this.#opening = undefined
      throw error
    })
    return this.#opening
  }

  async #connect(): Promise<Opened> {
    const { path, database } = this.#options
    const connection =
      database === undefined
        ? await SqliteConnection.open(path!, this.#settings)
        : SqliteConnection.adopt(database, this.#settings)
    const session = connection.session()!
    try {
      if (this.#options.createTables ?? true) connection.database.exec(this.#sql.createTable)
    } catch (error) {
      session.close()
      throw sqliteError(error, connection.description)
    }
    const { signal, release } =
      database === undefined && path !== ':memory:'
        ? fileCommits.acquire(`${await canonicalPath(path!)}\0${this.#table}`)
        : { signal: new CommitSignal(), release: () => {} }
    const transaction: SqliteTransaction = {
      prepare: (sql) => connection.statement(sql),
      exec: (sql) => connection.database.exec(sql),
    }
    return { session, transaction, commits: signal, release }
  }
}

/**
 * Runs `body` between `begin` and `COMMIT`, rolling back if it throws. A body
 * that returns no promise runs and commits within this call, so that no other
 * code of this thread runs while the transaction is open.
 */
function inTransaction<R>(database: SqliteDatabase, begin: string, body: () => R | Promise<R>): R | Promise<R> {
  database.exec(begin)
  const rollback = (error: unknown): never => {
    try {
      database.exec('ROLLBACK')
    } catch {
      // SQLite has rolled back already after some errors (a full disk, an interrupt).
    }
    throw error
  }
  const commit = (value: R): R => {
    try {
      database.exec('COMMIT')
    } catch (error) {
      rollback(error)
    }
    return value
  }
  let result: R | Promise<R>
  try {
    result = body()
  } catch (error) {
    return rollback(error)
  }
  return isPromise(result) ? result.then(commit, rollback) : commit(result)
}

function isPromise<R>(value: R | Promise<R>): value is Promise<R> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function'
}

/** Returns the absolute path of a database file with symbolic links resolved, so that every name of one file gives the same key. */
async function canonicalPath(path: string): Promise<string> {
  const absolute = resolve(path)
  return realpath(absolute).catch(() => absolute)
}
