import { type CommitSignal, CommitSignals, waitForTracking } from '../persistence/commit-signal.js'
import { PersistenceError, ProgrammingError, TrackingConflictError, writeInReadError } from '../persistence/errors.js'
import { validIdentifier } from '../persistence/identifiers.js'
import type { ProjectionStore, WaitForTrackingOptions } from '../persistence/recorder.js'
import type { Tracking } from '../persistence/stored-event.js'
import { type ConnectionSettings, driverError, PostgresPool, type Run } from './postgres-pool.js'
import { type ProjectionTrackingSql, projectionTrackingSql, qualified } from './postgres-schema.js'
import { connectionSettings, type PostgresConnectionOptions } from './postgres-settings.js'

/** The rows of a query and the number of rows it returned or changed. */
export interface PostgresQueryResult<R> {
  /** The rows returned, with `bigint` columns as numbers. */
  readonly rows: R[]
  /** How many rows were returned or changed. */
  readonly rowCount: number | null
}

/**
 * The handle a projection writes its view with on PostgreSQL: a connection
 * inside the store's transaction. With `values`, the statement is prepared
 * once per connection and takes `$1`, `$2`, ... parameters; without them, the
 * text may hold several statements.
 *
 * Queries are pipelined: each is sent without waiting for the results of the
 * ones before, and the store waits for all of them before it commits. So a
 * projection need not await a query whose result it does not use, and one
 * that does not writes a whole batch in about one round trip; a query that
 * fails, awaited or not, fails the transaction.
 */
export interface PostgresTransaction {
  /** Sends a statement in the transaction, and returns its result. */
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<PostgresQueryResult<R>>
}

/** Options of {@link postgresProjectionStore}: how to connect, and the projection. */
export interface PostgresProjectionStoreOptions extends PostgresConnectionOptions {
  /** The projection's name: the tracking table is `<name>_tracking` (lower case). */
  readonly name: string
  /**
   * A schema for the tracking table, created if missing. The store's
   * transactions set their search path to it, so unqualified names in the
   * projection's SQL are in it too. The connection's search path decides when not given.
   */
  readonly schema?: string
  /** How often `waitForTracking` looks for writes made by other processes (default 100 ms). */
  readonly pollMs?: number
  /**
   * Create the tracking table (and the schema) on first use when missing
   * (default true). Without it, a store whose table is missing fails on first
   * use with ProgrammingError: for tools that read a projection's tracking and must not make one.
   */
  readonly createTables?: boolean
}

/**
 * Returns a projection store on PostgreSQL: a pool of connections (default
 * 10), made when first needed, on which operations run concurrently. A
 * transaction that fails transiently (a lost connection, a restarting server,
 * a serialization failure) before its commit is sent is run again, `work`
 * included; a connection lost while committing fails with OperationalError,
 * because the outcome is unknown. Errors of the database are typed
 * persistence errors naming the server; errors of `work`'s own code pass unchanged.
 *
 * @throws ProgrammingError for invalid options (a bad URL, schema or name).
 * @example
 * ```ts
 * const store = postgresProjectionStore({ url: 'postgres://localhost/dogs', name: 'tricks' })
 * await store.write({ applicationName: 'DogSchool', notificationId: 7 }, async (transaction) => {
 *   await transaction.query('UPDATE tricks SET dogs = dogs + 1 WHERE trick = $1', ['sit'])
 * })
 * ```
 */
export function postgresProjectionStore(options: PostgresProjectionStoreOptions): ProjectionStore<PostgresTransaction> {
  return new PostgresProjectionStore(options)
}

/**
 * The commit signals by server and tracking table: a write through one store
 * wakes the waiters of every store of this process on that table.
 */
const commitSignals = new CommitSignals()

const DEFAULT_POLL_MS = 100

/** The store's pool, once opened. */
interface Opened {
  readonly pool: PostgresPool
  readonly commits: CommitSignal
  readonly release: () => void
}

class PostgresProjectionStore implements ProjectionStore<PostgresTransaction> {
  readonly name: string
  readonly #settings: ConnectionSettings
  readonly #table: string
  /** The tracking table's name, unqualified, as errors give it. */
  readonly #tableName: string
  readonly #sql: ProjectionTrackingSql
  readonly #pollMs: number
  readonly #createTables: boolean
  readonly #pending = new Set<Promise<unknown>>()
  #opening: Promise<Opened> | undefined
  #closed = false

  constructor(options: PostgresProjectionStoreOptions) {
    const { name, schema, pollMs = DEFAULT_POLL_MS } = options
    validIdentifier(name, 'projection name')
    if (schema !== undefined) validIdentifier(schema, 'schema name')
    if (!(pollMs > 0)) throw new ProgrammingError(`pollMs must be positive, got ${pollMs}`)
    this.name = name
    const settings = connectionSettings(options)
    // Pipelined connections send each query without waiting for the results
    // of the ones before, so a projection that does not await its queries
    // writes a batch in about one round trip.
    this.#settings = { ...settings, config: { ...settings.config, pipeline: true } }
    this.#tableName = `${name.toLowerCase()}_tracking`
    this.#table = qualified(schema, this.#tableName)
    this.#sql = projectionTrackingSql(schema, this.#tableName)
    this.#pollMs = pollMs
    this.#createTables = options.createTables ?? true
  }

  setup(work: (transaction: PostgresTransaction) => void | Promise<void>): Promise<void> {
    return this.#use(async ({ pool, commits }) => {
      await transaction(pool, this.#sql.beginSetup, async (_, transaction) => work(transaction))
      commits.notify()
    })
  }

  read<R>(work: (transaction: PostgresTransaction) => R | Promise<R>): Promise<R> {
    return this.#use(({ pool }) =>
      transaction(pool, this.#sql.beginRead, async (_, transaction) => work(transaction)).catch((error: unknown) => {
        // read_only_sql_transaction: the work wrote in the READ ONLY transaction.
        const cause = driverError(error)
        throw cause?.code === '25006' ? writeInReadError(this.name, cause) : error
      }),
    )
  }

  write(tracking: Tracking, work: (transaction: PostgresTransaction) => void | Promise<void>): Promise<void> {
    const { applicationName, notificationId } = tracking
    return this.#use(async ({ pool, commits }) => {
      await transaction(pool, this.#sql.begin, async (run, transaction) => {
        // First, so that a stale write fails before the work, and concurrent
        // writers of one projection queue on the tracking row.
        const tracked = await run(this.#sql.insertTracking, [applicationName, notificationId])
        if (tracked.rowCount === 0) {
          throw new TrackingConflictError({ applicationName, notificationId, table: this.#tableName })
        }
        await work(transaction)
      })
      commits.notify()
    })
  }

  reset(applicationName: string, work: (transaction: PostgresTransaction) => void | Promise<void>): Promise<void> {
    return this.#use(async ({ pool, commits }) => {
      await transaction(pool, this.#sql.begin, async (run, transaction) => {
        await work(transaction)
        await run(this.#sql.deleteTracking, [applicationName])
      })
      commits.notify()
    })
  }

  maxTrackingId(applicationName: string): Promise<number> {
    return this.#use(async ({ pool }) => {
      const { rows } = await pool.query<{ max: number }>(this.#sql.maxTrackingId, [applicationName])
      return rows[0]?.max ?? 0
    })
  }

  selectTracking(): Promise<Tracking[]> {
    return this.#use(async ({ pool }) => (await pool.query<Tracking>(this.#sql.selectTracking, [])).rows)
  }

  async hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean> {
    return notificationId === undefined || notificationId <= (await this.maxTrackingId(applicationName))
  }

  async waitForTracking(
    applicationName: string,
    notificationId: number,
    options: WaitForTrackingOptions = {},
  ): Promise<void> {
    const { commits } = await this.#use(async (opened) => opened)
    await waitForTracking(this, commits, applicationName, notificationId, options, this.#pollMs)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled(this.#pending)
    const opened = await this.#opening?.catch(() => undefined)
    opened?.release()
    await opened?.pool.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Runs `fn` on the opened pool, counted as in progress until it settles. */
  #use<R>(fn: (opened: Opened) => Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(new ProgrammingError(`The projection store ${this.name} is closed`))
    const result = this.#open().then(fn)
    const pending = result.catch(() => {})
    this.#pending.add(pending)
    void pending.then(() => this.#pending.delete(pending))
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
    const pool = await PostgresPool.open(this.#settings)
    try {
      const { begin, body } = this.#sql.createTable
      if (this.#createTables) await pool.transaction(begin, (run) => run(body))
    } catch (error) {
      await pool.close()
      throw error
    }
    const { signal, release } = commitSignals.acquire(`${this.#settings.server}\0${this.#table}`)
    return { pool, commits: signal, release }
  }
}

/**
 * Carries an error of the projection's own code through the pool, whose
 * retries and error mapping leave persistence errors alone, to be thrown unchanged.
 */
class WorkError extends PersistenceError {
  constructor(readonly error: unknown) {
    super('The work of a projection transaction failed', { cause: error })
  }
}

/**
 * Runs `body` in a transaction that `begin` starts, with a handle whose
 * queries run in it. The database's errors, from the handle's queries or
 * the store's own, go to the pool to be retried or typed; others pass unchanged.
 */
async function transaction<R>(
  pool: PostgresPool,
  begin: string,
  body: (run: Run, transaction: PostgresTransaction) => Promise<R>,
): Promise<R> {
  const fromDatabase = new WeakSet<object>()
  try {
    return await pool.transaction(begin, async (run) => {
      const tagged: Run = async (text, values) => {
        try {
          return await run(text, values)
        } catch (error) {
          if (typeof error === 'object' && error !== null) fromDatabase.add(error)
          throw error
        }
      }
      const sent: Promise<unknown>[] = []
      const transaction: PostgresTransaction = {
        query: (text, values) => {
          const result = tagged(text, values === undefined ? undefined : [...values])
          // Handled here too, so that a query whose promise the projection
          // drops fails the transaction below, not the process.
          result.catch(() => {})
          sent.push(result)
          return result as never
        },
      }
      try {
        const result = await body(tagged, transaction)
        for (const query of sent) await query
        return result
      } catch (error) {
        const ours =
          error instanceof PersistenceError || (typeof error === 'object' && error !== null && fromDatabase.has(error))
        throw ours ? error : new WorkError(error)
      }
    })
  } catch (error) {
    throw error instanceof WorkError ? error.error : error
  }
}
