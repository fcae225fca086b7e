import { readFile } from 'node:fs/promises'
import { importDriver as importOptional, loadOnce } from '../persistence/driver.js'
import {
  DataError,
  errorCode,
  errorMessage,
  IntegrityError,
  OperationalError,
  PersistenceError,
  ProgrammingError,
} from '../persistence/errors.js'

/** A prepared statement: the subset of better-sqlite3's `Statement` that the recorders call. */
export interface SqliteStatement {
  /** Runs a statement that returns no rows. */
  run(...params: unknown[]): { readonly changes: number; readonly lastInsertRowid: number | bigint }
  /** Returns the first row, or undefined when there is none. */
  get(...params: unknown[]): unknown
  /** Returns every row. */
  all(...params: unknown[]): unknown[]
}

/**
 * A synchronous SQLite connection: the subset of better-sqlite3's `Database`
 * that the recorders call. Any object with these methods can be given to
 * `sqlite({ database })`, for example a `Database` opened with options of your
 * own; the backend never imports the driver itself then.
 */
export interface SqliteDatabase {
  /** Compiles a statement. */
  prepare(sql: string): SqliteStatement
  /** Runs one or more statements that take no parameters. */
  exec(sql: string): unknown
  /** Wraps `fn` so that its `immediate` form runs it in `BEGIN IMMEDIATE` … `COMMIT`, rolling back if it throws. */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R }
  /** Closes the connection. */
  close(): unknown
}

/** Opens connections: the shape of better-sqlite3's `Database` constructor. */
export type SqliteDriver = new (path: string) => SqliteDatabase

/** How each connection is configured. */
export interface ConnectionSettings {
  /** How long a write waits for another connection's lock before failing. */
  readonly busyTimeoutMs: number
  /** `PRAGMA synchronous`: in WAL mode `normal` is durable at each checkpoint, `full` at each commit. */
  readonly synchronous: 'full' | 'normal'
}

/** The options of every SQLite object that opens a database: a file or a given database, and how to use it. */
export interface SqliteConnectionOptions {
  readonly path?: string
  readonly database?: SqliteDatabase
  readonly busyTimeoutMs?: number
  readonly pollMs?: number
  readonly synchronous?: 'full' | 'normal'
}

/**
 * Returns the connection settings and poll interval of validated options
 * (default: 5 s busy timeout, 100 ms polls, synchronous normal).
 *
 * @throws ProgrammingError naming the bad option; `what` names the object in the message.
 */
export function connectionOptions(
  options: SqliteConnectionOptions,
  what: string,
): { settings: ConnectionSettings; pollMs: number } {
  const { path, database, busyTimeoutMs = 5000, pollMs = 100, synchronous = 'normal' } = options
  if ((path === undefined) === (database === undefined)) {
    throw new ProgrammingError(`${what} needs either a path (a file or :memory:) or a database`)
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw new ProgrammingError(`Invalid SQLite path ${JSON.stringify(path)}: give a file path or :memory:`)
  }
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new ProgrammingError(`busyTimeoutMs must be a non-negative integer, got ${busyTimeoutMs}`)
  }
  if (!(pollMs > 0)) throw new ProgrammingError(`pollMs must be positive, got ${pollMs}`)
  if (synchronous !== 'full' && synchronous !== 'normal') {
    throw new ProgrammingError(`synchronous must be 'full' or 'normal', got ${JSON.stringify(synchronous)}`)
  }
  return { settings: { busyTimeoutMs, synchronous }, pollMs }
}

const INSTALL = 'npm install better-sqlite3@12'

/**
 * Imports the driver's constructor with `importer`. The import is dynamic so
 * that the core never loads the driver, which is an optional peer dependency.
 *
 * @throws ProgrammingError saying how to install the driver when it is missing or cannot load.
 */
export function importDriver(
  importer: () => Promise<{ default: SqliteDriver }> = () => import('better-sqlite3'),
): Promise<SqliteDriver> {
  return importOptional(importer, (error) =>
    errorCode(error) === 'ERR_MODULE_NOT_FOUND' && String(error).includes('better-sqlite3')
      ? `The SQLite backend needs the better-sqlite3 package: ${INSTALL}`
      : `The better-sqlite3 package could not be loaded (it may be built for another Node.js version): ${INSTALL}, or npm rebuild better-sqlite3`,
  )
}

const loadDriver = loadOnce(() => importDriver())

/**
 * A connection to an SQLite database with its prepared statements, compiled
 * once per connection. Sessions share it, and the last session to close closes
 * it (unless the caller gave the database and so owns it).
 */
export class SqliteConnection {
  readonly #statements = new Map<string, SqliteStatement>()
  #sessions = 0
  #closed = false

  private constructor(
    /** The driver's connection. */
    readonly database: SqliteDatabase,
    /** Names the database in error messages, e.g. `'dogs.db'` or `the in-memory database`. */
    readonly description: string,
    /** Whether the backend opened the connection, and so closes it. */
    private readonly owned: boolean,
  ) {}

  /**
   * Opens and configures a connection: WAL for a file, `synchronous`, and the busy timeout.
   *
   * @throws ProgrammingError when the driver is missing; OperationalError when
   * the file cannot be opened; DataError when it is not an SQLite database.
   */
  static async open(path: string, settings: ConnectionSettings): Promise<SqliteConnection> {
    const Database = await loadDriver()
    const description = path === ':memory:' ? 'the in-memory database' : `'${path}'`
    if (path !== ':memory:') await warnOfDriverCopies()
    let database: SqliteDatabase
    try {
      database = new Database(path)
    } catch (error) {
      // better-sqlite3 checks the directory itself and throws a plain TypeError.
      throw new OperationalError(
        `Cannot open ${description} (${errorMessage(error)}): check that its directory exists and is writable`,
        { cause: error },
      )
    }
    return SqliteConnection.#configured(new SqliteConnection(database, description, true), settings)
  }

  /** Configures a connection that the caller opened and will close. */
  static adopt(database: SqliteDatabase, settings: ConnectionSettings): SqliteConnection {
    return SqliteConnection.#configured(new SqliteConnection(database, 'the given database', false), settings)
  }

  static #configured(connection: SqliteConnection, settings: ConnectionSettings): SqliteConnection {
    const { database } = connection
    const timeout = Math.max(0, Math.trunc(settings.busyTimeoutMs))
    const synchronous = settings.synchronous === 'full' ? 'FULL' : 'NORMAL'
    try {
      // The timeout is set first so that switching to WAL also waits for
      // other connections that are starting at the same time.
      database.exec(`PRAGMA busy_timeout = ${timeout}`)
      // WAL lets readers run beside the one writer. An in-memory database
      // keeps its own journal mode and ignores this.
      database.prepare('PRAGMA journal_mode = WAL').get()
      database.exec(`PRAGMA synchronous = ${synchronous}`)
    } catch (error) {
      if (connection.owned) database.close()
      throw sqliteError(error, connection.description)
    }
    return connection
  }

  /** Starts a session on the connection; undefined once the connection is closed. */
  session(): SqliteSession | undefined {
    if (this.#closed) return undefined
    this.#sessions++
    return new SqliteSession(this, () => {
      if (--this.#sessions === 0) {
        this.#closed = true
        this.#statements.clear()
        if (this.owned) this.database.close()
      }
    })
  }

  /** Returns the statement compiled from `sql`, compiling it on first use. */
  statement(sql: string): SqliteStatement {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      statement = this.database.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }
}

/** One user's hold on a connection: the recorders of one `open()`, unusable after `close()`. */
export class SqliteSession {
  #closed = false

  /**
   * Starts a session; {@link SqliteConnection.session} is the way to get one.
   *
   * @param release Called once, by the first `close()`.
   */
  constructor(
    /** The connection that the session's statements run on. */
    readonly connection: SqliteConnection,
    private readonly release: () => void,
  ) {}

  /**
   * Runs `fn`, turning the driver's errors into typed persistence errors.
   *
   * @throws ProgrammingError if the session is closed.
   */
  run<T>(fn: (connection: SqliteConnection) => T): T {
    if (this.#closed) throw new ProgrammingError('The SQLite recorders are closed')
    try {
      return fn(this.connection)
    } catch (error) {
      throw sqliteError(error, this.connection.description)
    }
  }

  /**
   * Returns `fn` wrapped to run in a `BEGIN IMMEDIATE` transaction: the write
   * lock is taken at the start, so a transaction never fails half-way because
   * another connection wrote first, and writers are serialised.
   */
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
    const transaction = this.connection.database.transaction(fn)
    return (...args) => this.run(() => transaction.immediate(...args))
  }

  /** Releases the connection; closing twice does nothing. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.release()
  }
}

let warnedOfCopies = false

/**
 * Warns, once per process, when more than one copy of better-sqlite3's native
 * library is loaded, as happens with a linked or workspace install (this
 * library's copy and the application's). SQLite's file locks work only within
 * one copy of SQLite: POSIX locks belong to the process, so each copy keeps
 * its own table of them, and closing a file in one copy drops the locks the
 * other holds. Two copies writing one database file then corrupt it ("file is
 * not a database"). Only Linux is checked, by reading the process's memory
 * map; a warning rather than an error, because two copies are harmless as
 * long as they open different files, which cannot be seen from here.
 */
async function warnOfDriverCopies(): Promise<void> {
  if (warnedOfCopies || process.platform !== 'linux') return
  const maps = await readFile('/proc/self/maps', 'utf8').catch(() => '')
  const paths = new Set<string>()
  for (const line of maps.split('\n')) {
    // The path is the last field, the first to hold a slash (it may hold spaces).
    if (line.endsWith('/better_sqlite3.node')) paths.add(line.slice(line.indexOf('/')))
  }
  if (paths.size < 2 || warnedOfCopies) return
  warnedOfCopies = true
  process.emitWarning(
    `Several copies of better-sqlite3 are loaded in this process (${[...paths].join(', ')}): SQLite's locks work ` +
      'only within one copy, so connections of different copies to one database file can corrupt it. ' +
      "Open the database with the application's copy and pass it to sqlite({ database }) " +
      '(or sqliteProjectionStore({ database })), or install one copy (npm dedupe).',
    { code: 'EVENTSOURCING_SQLITE_COPIES' },
  )
}

/**
 * Returns `error` as a typed persistence error carrying it as `cause`:
 * uniqueness → IntegrityError; a missing table or a refused value →
 * ProgrammingError; a file that is not a database → DataError; a lock held
 * past the busy timeout, I/O and anything else → OperationalError.
 */
export function sqliteError(error: unknown, database: string): PersistenceError {
  if (error instanceof PersistenceError) return error
  const options = { cause: error }
  const message = errorMessage(error)
  if (isUniqueViolation(error)) return new IntegrityError(message, options)
  const code = errorCode(error) ?? ''
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new DataError(`${database} is not an SQLite database, or it is corrupted (${message})`, options)
  }
  const table = /no such table: (\S+)/.exec(message)
  if (table) {
    return new ProgrammingError(
      `Table ${table[1]} does not exist in ${database}: create the tables (createTables: true, or CREATE_TABLES=true)`,
      options,
    )
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new OperationalError(`${database} stayed locked by another connection past the busy timeout`, options)
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new OperationalError(`Cannot open ${database} (${message}): check that its directory is writable`, options)
  }
  if (
    code.startsWith('SQLITE_CONSTRAINT') ||
    ['SQLITE_ERROR', 'SQLITE_MISMATCH', 'SQLITE_RANGE', 'SQLITE_TOOBIG', 'SQLITE_MISUSE'].includes(code) ||
    error instanceof TypeError ||
    error instanceof RangeError
  ) {
    // The driver refused a call or a value: a bug in the caller, not a fault of the database.
    return new ProgrammingError(`SQLite refused a statement on ${database}: ${message}`, options)
  }
  return new OperationalError(`SQLite failed on ${database}: ${message}`, options)
}

/** Returns true if `error` is the driver's error for a broken UNIQUE or PRIMARY KEY constraint. */
export function isUniqueViolation(error: unknown): boolean {
  const code = errorCode(error)
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
}
