import { existsSync } from 'node:fs'
import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import {
  type CommitSignal,
  CommitSignals,
  followLog,
  type PagedSubscription,
  waitForTracking,
} from '../persistence/commit-signal.js'
import { type DcbRecorders, dcbTables } from '../persistence/dcb.js'
import { ProgrammingError, TrackingConflictError, VersionConflictError } from '../persistence/errors.js'
import { applicationTables, isApplicationName } from '../persistence/identifiers.js'
import type {
  AggregateRecorder,
  EventsQuery,
  Persistence,
  ProcessRecorder,
  Recorders,
  SelectEventsOptions,
  SelectNotificationsOptions,
  StoredApplication,
  SubscribeOptions,
  WaitForTrackingOptions,
} from '../persistence/recorder.js'
import { parseBoolean } from '../persistence/settings.js'
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'
import {
  type ConnectionSettings,
  connectionOptions,
  isUniqueViolation,
  SqliteConnection,
  type SqliteDatabase,
  type SqliteSession,
} from './sqlite-database.js'
import { SqliteDcbRecorder, SqliteDcbRecorders } from './sqlite-dcb-recorder.js'
import {
  countEventsSql,
  createTablesSql,
  type EventTableSql,
  eventTableSql,
  listEventTablesSql,
  type NotificationSql,
  notificationSql,
  type TrackingSql,
  trackingSql,
} from './sqlite-schema.js'

/**
 * The commit signals of file databases, by file and table, shared by every
 * backend object of this process: a commit through any of them wakes the
 * subscribers and waiters of all the others at once, not at their next poll.
 */
const fileCommits = new CommitSignals()

/** The part shared by both recorders: one table of stored events, keyed by originator and version. */
export class SqliteEventTable {
  readonly #sql: EventTableSql

  /** Makes the recorder of one table on a session. */
  constructor(
    /** The session whose connection runs the statements. */
    protected readonly session: SqliteSession,
    /** The name of the table, already validated. */
    protected readonly table: string,
  ) {
    this.#sql = eventTableSql(table)
  }

  /** Returns the events of one originator in version order (or reversed with `desc`); empty when none. */
  async selectEvents(originatorId: string, options: SelectEventsOptions = {}): Promise<StoredEvent[]> {
    const sql = options.desc ? this.#sql.selectEventsDesc : this.#sql.selectEvents
    const gt = options.gt ?? Number.MIN_SAFE_INTEGER
    const lte = options.lte ?? Number.MAX_SAFE_INTEGER
    const limit = options.limit ?? -1
    return this.session.run(
      (connection) => connection.statement(sql).all(originatorId, gt, lte, limit) as StoredEvent[],
    )
  }

  /** Returns the events of several originators, for each query its originator's events after `gt`. */
  async selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]> {
    return this.session.run((connection) => {
      const statement = connection.statement(this.#sql.selectEvents)
      const all = (id: string, gt = Number.MIN_SAFE_INTEGER) => statement.all(id, gt, Number.MAX_SAFE_INTEGER, -1)
      return queries.map(({ originatorId, gt }) => all(originatorId, gt) as StoredEvent[])
    })
  }

  /** Deletes all events of one originator and returns how many there were. */
  async deleteEvents(originatorId: string): Promise<number> {
    return this.session.run((connection) => connection.statement(this.#sql.deleteEvents).run(originatorId).changes)
  }

  /**
   * Inserts events in the current transaction and returns their rowids.
   *
   * @throws VersionConflictError naming the first event whose version is
   * already recorded: rows are inserted one by one, so the one that fails is
   * the one that clashed, though SQLite's error does not name its values.
   */
  protected insertRows(events: readonly StoredEvent[]): number[] {
    const insert = this.session.connection.statement(this.#sql.insertEvent)
    const ids: number[] = []
    for (const event of events) {
      try {
        ids.push(
          Number(insert.run(event.originatorId, event.originatorVersion, event.topic, event.state).lastInsertRowid),
        )
      } catch (error) {
        if (isUniqueViolation(error)) {
          const { originatorId, originatorVersion } = event
          throw new VersionConflictError({ originatorId, originatorVersion, table: this.table }, { cause: error })
        }
        throw error
      }
    }
    return ids
  }
}

/** Records and selects the snapshots of aggregates in an SQLite table. */
export class SqliteAggregateRecorder extends SqliteEventTable implements AggregateRecorder {
  readonly #insert = this.session.transaction((events: readonly StoredEvent[]) => {
    this.insertRows(events)
  })

  /**
   * Records a batch of snapshots atomically: all of them, or none.
   *
   * @throws VersionConflictError if any `(originatorId, originatorVersion)` is already recorded.
   */
  async insertEvents(events: readonly StoredEvent[]): Promise<void> {
    if (events.length > 0) this.#insert(events)
  }
}

/**
 * Records an application's events, notification log and tracking records in
 * SQLite tables.
 *
 * SQLite needs no fence against lost events: every write runs in a
 * `BEGIN IMMEDIATE` transaction, which takes the database's single write lock
 * before the first id is assigned, so ids are assigned in commit order and a
 * reader that has seen id N can never later find a new committed id <= N.
 */
export class SqliteProcessRecorder extends SqliteEventTable implements ProcessRecorder {
  readonly #notifications: NotificationSql
  readonly #tracking: TrackingSql
  readonly #trackingTable: string
  readonly #commits: CommitSignal
  readonly #pollMs: number
  readonly #insert = this.session.transaction((events: readonly StoredEvent[], tracking: readonly Tracking[]) => {
    const ids = this.insertRows(events)
    for (const record of tracking) this.#insertTracking(record)
    return ids
  })
  readonly #track = this.session.transaction((tracking: Tracking) => this.#insertTracking(tracking))

  /**
   * Makes the recorder of an application's events and tracking tables on a session.
   *
   * @param options.commits The signal that every recorder on the same tables
   * in this process notifies after each commit, and whose waiters it wakes.
   * @param options.pollMs How often waiters look for commits made by other processes.
   */
  constructor(
    session: SqliteSession,
    tables: { readonly events: string; readonly tracking: string },
    options: { readonly commits: CommitSignal; readonly pollMs: number },
  ) {
    super(session, tables.events)
    this.#notifications = notificationSql(tables.events)
    this.#tracking = trackingSql(tables.tracking)
    this.#trackingTable = tables.tracking
    this.#commits = options.commits
    this.#pollMs = options.pollMs
  }

  /**
   * Records a batch of events and, when given, tracking records (each checked
   * against those before it) in one transaction, and returns the events'
   * notification ids in input order.
   *
   * @throws VersionConflictError on a duplicate event version, TrackingConflictError
   * on a tracking id that is not newer; nothing is written then.
   */
  async insertEvents(
    events: readonly StoredEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<number[]> {
    const tracking = [options?.tracking ?? []].flat()
    if (events.length === 0 && tracking.length === 0) return []
    const ids = this.#insert(events, tracking)
    this.#commits.notify()
    return ids
  }

  /** Returns notifications in increasing id order, filtered as the options say, in one query; empty when none. */
  async selectNotifications(options: SelectNotificationsOptions): Promise<Notification[]> {
    const { start, inclusiveOfStart = true, stop, topics, originatorId, limit } = options
    // Ids are integers, so an exclusive start is the inclusive start one above.
    const from = start === undefined ? 1 : inclusiveOfStart ? Math.ceil(start) : Math.floor(start) + 1
    const to = stop ?? Number.MAX_SAFE_INTEGER
    const byTopic = topics !== undefined && topics.length > 0
    const sql = this.#notifications.selectNotifications({ topics: byTopic, originator: originatorId !== undefined })
    const values: unknown[] = [from, to]
    if (byTopic) values.push(JSON.stringify(topics))
    if (originatorId !== undefined) values.push(originatorId)
    return this.session.run((connection) => connection.statement(sql).all(...values, limit) as Notification[])
  }

  /** Returns the highest notification id recorded, or 0 when the log is empty. */
  async maxNotificationId(): Promise<number> {
    return this.session.run((connection) => maxOf(connection.statement(this.#notifications.maxNotificationId).get()))
  }

  /**
   * Yields the notifications recorded after `gt`, then new ones as they are
   * recorded, until the signal aborts. Commits to the same file (or, for
   * `:memory:` and a given database, through the same backend object) in this
   * process are seen at once; commits by other processes within `pollMs`.
   * `pages()` yields them a query's page at a time.
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    // A poll is one primary-key seek past the last id seen, about as cheap as
    // reading PRAGMA data_version, so polls are not gated on it.
    return followLog(this, this.#commits, { ...options, pollMs: this.#pollMs })
  }

  /**
   * Records that a notification of an upstream application was processed.
   *
   * @throws TrackingConflictError if the id is not greater than the last one recorded for that application.
   */
  async insertTracking(tracking: Tracking): Promise<void> {
    this.#track(tracking)
    this.#commits.notify()
  }

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  async maxTrackingId(applicationName: string): Promise<number> {
    return this.session.run((connection) =>
      maxOf(connection.statement(this.#tracking.maxTrackingId).get(applicationName)),
    )
  }

  /** Returns every tracking record, ordered by the upstream application's name; empty when none. */
  async selectTracking(): Promise<Tracking[]> {
    return this.session.run((connection) => connection.statement(this.#tracking.selectTracking).all() as Tracking[])
  }

  /** Returns true if the id is at most the highest tracked id of the application, or is undefined. */
  async hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean> {
    return notificationId === undefined || notificationId <= (await this.maxTrackingId(applicationName))
  }

  /**
   * Resolves once the notification was processed.
   *
   * @throws WaitTimeoutError naming the application and id when `timeoutMs` (default 10 s) passes first.
   */
  async waitForTracking(
    applicationName: string,
    notificationId: number,
    options: WaitForTrackingOptions = {},
  ): Promise<void> {
    await waitForTracking(this, this.#commits, applicationName, notificationId, options, this.#pollMs)
  }

  #insertTracking(tracking: Tracking): void {
    const { applicationName, notificationId } = tracking
    const statement = this.session.connection.statement(this.#tracking.insertTracking)
    if (statement.run({ applicationName, notificationId }).changes === 0) {
      throw new TrackingConflictError({ applicationName, notificationId, table: this.#trackingTable })
    }
  }
}

/** Options of the {@link sqlite} backend. */
export interface SqliteOptions {
  /** A database file, created if missing, or `:memory:` for a database that lives as long as its recorders. */
  readonly path?: string
  /**
   * A connection opened by the caller, used instead of `path` by every
   * application and never closed by the backend; it is configured like ours.
   */
  readonly database?: SqliteDatabase
  /** Create missing tables when an application opens its recorders (default true). */
  readonly createTables?: boolean
  /** How long a write waits for another connection's lock before failing with OperationalError (default 5,000). */
  readonly busyTimeoutMs?: number
  /** How often subscriptions and waits look for commits made by other connections (default 100 ms). */
  readonly pollMs?: number
  /**
   * `PRAGMA synchronous` (default `normal`): in WAL mode, `normal` never
   * corrupts the database but may lose the last commits on power loss (not on
   * a process crash); `full` syncs at every commit, and is slower.
   */
  readonly synchronous?: 'full' | 'normal'
}

/**
 * Returns the SQLite backend: WAL, writes in `BEGIN IMMEDIATE` transactions
 * and a busy timeout. Each `open()` of a file database opens its own
 * connection; a `:memory:` database (or a given `database`) is one connection
 * shared by every `open()` of this backend, closed when the last recorders close.
 *
 * @throws ProgrammingError for missing or invalid options.
 * @example
 * ```ts
 * const app = new DogSchool({ persistence: sqlite({ path: 'dogs.db' }) })
 * ```
 */
export function sqlite(options: SqliteOptions): Persistence {
  return new SqlitePersistence(options)
}

/** The backend that {@link sqlite} returns: validates its options once, then opens recorders. */
class SqlitePersistence implements Persistence {
  readonly name = 'sqlite'
  readonly #options: SqliteOptions
  readonly #settings: ConnectionSettings
  readonly #pollMs: number
  /** The commit signals of a `:memory:` or given database, which only this object's recorders use. */
  readonly #sharedCommits = new CommitSignals()
  #shared: Promise<SqliteConnection> | undefined

  /** Makes the backend; connections are opened by {@link SqlitePersistence.open}. */
  constructor(options: SqliteOptions) {
    const { settings, pollMs } = connectionOptions(options, 'The SQLite backend')
    this.#options = options
    this.#settings = settings
    this.#pollMs = pollMs
  }

  checkName(applicationName: string): void {
    applicationTables(applicationName)
  }

  async open(applicationName: string): Promise<Recorders> {
    const tables = applicationTables(applicationName)
    const session = await this.#session()
    try {
      if (this.#options.createTables ?? true) {
        session.transaction(() => session.connection.database.exec(createTablesSql(tables)))()
      }
    } catch (error) {
      session.close()
      throw error
    }
    const commits = await this.#commits(tables.events)
    return new SqliteRecorders(
      new SqliteProcessRecorder(session, tables, { commits: commits.signal, pollMs: this.#pollMs }),
      new SqliteAggregateRecorder(session, tables.snapshots),
      () => {
        session.close()
        commits.release()
      },
    )
  }

  async openDcb(applicationName: string): Promise<DcbRecorders> {
    const tables = dcbTables(applicationName)
    const session = await this.#session()
    const commits = await this.#commits(tables.events)
    const recorder = new SqliteDcbRecorder(session, tables, { commits: commits.signal, pollMs: this.#pollMs })
    try {
      if (this.#options.createTables ?? true) recorder.createTables()
    } catch (error) {
      session.close()
      commits.release()
      throw error
    }
    return new SqliteDcbRecorders(recorder, () => {
      session.close()
      commits.release()
    })
  }

  /** Lists the applications in the database; a file that does not exist is not created, and holds none. */
  async listApplications(): Promise<StoredApplication[]> {
    const { path, database } = this.#options
    if (database === undefined && path !== ':memory:' && !existsSync(path!)) return []
    const session = await this.#session()
    try {
      return session.run((connection) => {
        const tables = connection.statement(listEventTablesSql).all() as { name: string }[]
        return tables.flatMap(({ name: table }) => {
          const name = table.slice(0, -'_events'.length)
          if (!isApplicationName(name)) return []
          const row = connection.statement(countEventsSql(table)).get() as { events: number; max: number }
          return [{ name, events: row.events, maxNotificationId: row.max }]
        })
      })
    } finally {
      session.close()
    }
  }

  /**
   * Returns the commit signal of a table, shared by every open() on the same
   * database, so that a commit through one connection wakes subscribers on
   * the others without waiting for a poll.
   */
  async #commits(table: string): Promise<{ readonly signal: CommitSignal; readonly release: () => void }> {
    const { path, database } = this.#options
    return database === undefined && path !== ':memory:'
      ? fileCommits.acquire(`${await canonicalPath(path!)}\0${table}`)
      : this.#sharedCommits.acquire(table)
  }

  async #session(): Promise<SqliteSession> {
    const { path, database } = this.#options
    // A file gets a connection per open(); an in-memory database exists only
    // within its one connection, so that connection is shared.
    if (database === undefined && path !== ':memory:') {
      return (await SqliteConnection.open(path!, this.#settings)).session()!
    }
    for (;;) {
      this.#shared ??= database
        ? Promise.resolve().then(() => SqliteConnection.adopt(database, this.#settings))
        : SqliteConnection.open(':memory:', this.#settings)
      const shared = this.#shared
      const connection = await shared.catch((error: unknown) => {
        if (this.#shared === shared) this.#shared = undefined
        throw error
      })
      const session = connection.session()
      if (session) return session
      if (this.#shared === shared) this.#shared = undefined
    }
  }
}

/** The recorders of one `open()`, which share its session. */
class SqliteRecorders implements Recorders {
  constructor(
    readonly events: SqliteProcessRecorder,
    readonly snapshots: SqliteAggregateRecorder,
    private readonly release: () => void,
  ) {}

  async close(): Promise<void> {
    this.release()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * Returns the SQLite backend configured from variables: `SQLITE_PATH` (a file,
 * or `:memory:`) and `CREATE_TABLES` (true/false, yes/no, 1/0, on/off; default true).
 *
 * @throws ProgrammingError when `SQLITE_PATH` is not set or `CREATE_TABLES` is not a boolean.
 */
export function fromEnvironment(get: (name: string) => string | undefined): Persistence {
  const path = get('SQLITE_PATH')
  if (path === undefined || path === '') {
    throw new ProgrammingError('SQLITE_PATH is not set: set it to a database file path, or to :memory:')
  }
  return sqlite({ path, createTables: parseBoolean('CREATE_TABLES', get('CREATE_TABLES') || undefined) ?? true })
}

function maxOf(row: unknown): number {
  return (row as { max: number } | undefined)?.max ?? 0
}

/** Returns the absolute path of a database file with symbolic links resolved, so that every name of one file gives the same key. */
async function canonicalPath(path: string): Promise<string> {
  const absolute = resolve(path)
  // The file exists once its connection is open; resolve() alone is the fallback if it cannot be read.
  return realpath(absolute).catch(() => absolute)
}
