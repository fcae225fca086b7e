import { setTimeout as delay } from 'node:timers/promises'
import {
  type CommitSignal,
  CommitSignals,
  followLogPages,
  type PagedSubscription,
  paged,
  waitForTracking,
} from '../persistence/commit-signal.js'
import { type DcbRecorders, dcbTables } from '../persistence/dcb.js'
import { ProgrammingError } from '../persistence/errors.js'
import {
  type ApplicationTables,
  applicationTables,
  isApplicationName,
  validIdentifier,
} from '../persistence/identifiers.js'
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
import { retryingFor } from '../persistence/retrying.js'
import { parseBoolean, parseInteger } from '../persistence/settings.js'
import { anySignal } from '../persistence/signals.js'
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'
import { PostgresDcbRecorder, PostgresDcbRecorders } from './postgres-dcb-recorder.js'
import { createDcbTablesSql } from './postgres-dcb-schema.js'
import { type ConnectionSettings, driverError, PostgresListener, PostgresPool } from './postgres-pool.js'
import {
  channelName,
  columns,
  countEventsSql,
  createTablesSql,
  type EventTableSql,
  eventTableSql,
  listEventTablesSql,
  type NotificationSql,
  notificationSql,
  notifySql,
  qualified,
  type TrackingSql,
  trackingSql,
} from './postgres-schema.js'
import { connectionSettings } from './postgres-settings.js'
import { Announcer, versionConflict, WriteQueue } from './postgres-writes.js'

const DEFAULT_POLL_MS = 2000
const DEFAULT_SUBSCRIPTION_RETRY_MS = 60_000
const DEFAULT_SETTLE_MS = 2000
// How a read waits for a gap (see PostgresProcessRecorder): quick looks,
// then the exclusive lock, waited for FIRST_BARRIER_MS, then twice as long
// after each time that runs out, with pauses as long between tries.
const QUICK_LOOKS = 4
const FIRST_BARRIER_MS = 50
// How old the resolved id may be when a filtered read begins: older, the read takes the lock first (see selectNotifications).
const FILTERED_RESOLVE_EVERY_MS = 1000
const DEFAULT_NOTIFY_INTERVAL_MS = 250

/** The part shared by both recorders: one table of stored events, keyed by originator and version. */
export class PostgresEventTable {
  /** The statements on the table. */
  protected readonly sql: EventTableSql

  /**
   * Makes the recorder of one table.
   *
   * @param schema The schema of the table, already validated; the search path's when undefined.
   * @param table The name of the table, already validated.
   * @param closing Aborted when the recorders are closed.
   */
  constructor(
    pool: PostgresPool,
    protected readonly schema: string | undefined,
    protected readonly table: string,
    closing: AbortSignal,
  ) {
    this.#pool = pool
    this.#closing = closing
    this.sql = eventTableSql(schema, table)
  }

  readonly #pool: PostgresPool
  readonly #closing: AbortSignal

  /**
   * The pool whose connections run the statements (shared with other open
   * recorders, so it outlives these).
   *
   * @throws ProgrammingError once these recorders are closed.
   */
  protected get pool(): PostgresPool {
    this.assertOpen()
    return this.#pool
  }

  /** @throws ProgrammingError once these recorders are closed. */
  protected assertOpen(): void {
    if (this.#closing.aborted) throw new ProgrammingError('These PostgreSQL recorders are closed: open them again')
  }

  /** Returns the events of one originator in version order (or reversed with `desc`); empty when none. */
  async selectEvents(originatorId: string, options: SelectEventsOptions = {}): Promise<StoredEvent[]> {
    const sql = options.desc ? this.sql.selectEventsDesc : this.sql.selectEvents
    const gt = options.gt ?? Number.MIN_SAFE_INTEGER
    const lte = options.lte ?? Number.MAX_SAFE_INTEGER
    const result = await this.pool.query<StoredEvent>(sql, [originatorId, gt, lte, options.limit ?? null])
    return result.rows
  }

  /** Returns the events of several originators in one query, for each query its originator's events after `gt`. */
  async selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]> {
    const ids = queries.map((query) => query.originatorId)
    const gts = queries.map((query) => query.gt ?? Number.MIN_SAFE_INTEGER)
    const result = await this.pool.query<StoredEvent & { query: string }>(this.sql.selectEventsOfMany, [ids, gts])
    const selected = queries.map((): StoredEvent[] => [])
    for (const { query, ...event } of result.rows) selected[Number(query) - 1]!.push(event)
    return selected
  }

  /** Deletes all events of one originator and returns how many there were. */
  async deleteEvents(originatorId: string): Promise<number> {
    return (await this.pool.query(this.sql.deleteEvents, [originatorId])).rowCount ?? 0
  }
}

/** Records and selects the snapshots of aggregates in a PostgreSQL table. */
export class PostgresAggregateRecorder extends PostgresEventTable implements AggregateRecorder {
  /**
   * Records a batch of snapshots atomically, in one statement: all of them, or none.
   *
   * @throws IntegrityError if any `(originatorId, originatorVersion)` is already recorded.
   */
  async insertEvents(events: readonly StoredEvent[]): Promise<void> {
    if (events.length === 0) return
    const { pool, schema, table } = this
    await pool.query(this.sql.insertEvents, columns(events)).catch(async (error: unknown) => {
      throw await versionConflict(pool, schema, { snapshots: table }, events, error)
    })
  }
}

/**
 * Records an application's events, notification log and tracking records in
 * PostgreSQL tables.
 *
 * No reader can skip a committed event (rule 3 of the recorder contract: a
 * reader that has seen id N never later finds an unseen committed event with
 * an id <= N). The danger is that an id drawn from a sequence at insert
 * becomes visible only at commit, so a transaction that drew a lower id can
 * commit after one that drew a higher id, and a reader in between sees the
 * higher id first. Here writers insert and commit side by side, and readers
 * return only notifications that are settled, with proof from the database:
 *
 * 1. Every statement that inserts events first takes the table's advisory
 *    lock (the write lock) in shared mode, before any row, so before any id
 *    is drawn, and holds it until its transaction ends. Writers do not block
 *    each other: shared mode does not conflict with itself.
 * 2. A row is settled when every id from the reader's starting point up to
 *    its own is visible: there is no gap before it, so nothing can later
 *    appear below it. Reading a log without gaps needs nothing more.
 * 3. A gap is an id drawn by a transaction that is still running, or one that
 *    rolled back (a failed save), which no commit can fill. To pass a gap, a
 *    reader takes the write lock in exclusive mode, which PostgreSQL grants
 *    once every transaction that held it in shared mode has ended (new
 *    writers wait meanwhile), reads the sequence's last value R (the highest
 *    id drawn so far, cache 1), and lets go at once. Every id up to R was
 *    drawn under the shared lock, so by a transaction that has now ended: a
 *    later statement sees all of those that committed, and the other ids up
 *    to R never will be. Rows up to R are settled (R is kept: it only grows).
 * 4. Readers return the settled rows in id order and stop at the first one
 *    that is not. When a committed row follows a gap, a read first waits a
 *    few milliseconds for the gap to fill (a writer committing), then takes
 *    the exclusive lock as in 3 (once is enough: a gap found after that is
 *    a write begun since), waiting for it 50 ms, then twice as long after
 *    each time that runs out, with pauses as long between tries, so that
 *    writers are held up for at most about half of the time, until
 *    `settleMs` has passed (at least one try is made); then it returns what
 *    precedes the gap. A gap is passed over only when the
 *    database shows that nothing can fill it: proof by serialisation, never
 *    by time passing.
 *
 * Writes that bypass this library must take the same lock (see
 * `writeLockKey` in postgres-schema.ts). The writes of one backend object are
 * also coalesced by its {@link WriteQueue}.
 */
export class PostgresProcessRecorder extends PostgresEventTable implements ProcessRecorder {
  readonly #notifications: NotificationSql
  readonly #tracking: TrackingSql
  // Every id up to this one is resolved: visible if committed, and never otherwise.
  #resolved = 0
  // When the resolved id was last raised (Date.now()).
  #resolvedAt = 0

  /**
   * Makes the recorder of an application's events and tracking tables.
   *
   * @param options.writes The application's write queue, shared by every recorder of the backend object.
   * @param options.commits The signal notified after each commit, by this process or (through `listen`) by others.
   * @param options.listen Starts listening for the commits of other connections.
   * @param options.pollMs How often waiters look for commits in case a notification was missed.
   * @param options.subscriptionRetryMs How long a subscription's queries may keep failing before it ends.
   * @param options.settleMs How long a read waits for a gap to be filled or shown to be empty.
   */
  constructor(
    pool: PostgresPool,
    schema: string | undefined,
    tables: ApplicationTables,
    private readonly options: {
      readonly writes: WriteQueue
      readonly commits: CommitSignal
      readonly listen: () => Promise<void>
      /** Aborted when the recorders close. */
      readonly closing: AbortSignal
      readonly pollMs: number
      readonly subscriptionRetryMs: number
      readonly settleMs: number
    },
  ) {
    super(pool, schema, tables.events, options.closing)
    this.#notifications = notificationSql(schema, tables.events)
    this.#tracking = trackingSql(schema, tables.tracking)
  }

  /**
   * Records a batch of events and, when given, tracking records (each checked
   * against those before it) in one transaction, and returns the events'
   * notification ids in input order.
   *
   * @throws IntegrityError on a duplicate event version or a tracking id that
   * is not newer; nothing is written then.
   */
  async insertEvents(
    events: readonly StoredEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<number[]> {
    const tracking = [options?.tracking ?? []].flat()
    if (events.length === 0 && tracking.length === 0) return []
    this.assertOpen()
    return this.options.writes.write(events, tracking)
  }

  /**
   * Returns notifications in increasing id order, filtered as the options say;
   * empty when none. Only settled notifications are returned (see above): when
   * a committed one follows a gap, this waits for the gap to be filled or shown
   * to be empty, up to `settleMs` (default 2,000 ms), then returns those before it.
   */
  async selectNotifications(options: SelectNotificationsOptions, signal?: AbortSignal): Promise<Notification[]> {
    const { start, inclusiveOfStart = true, stop, limit } = options
    // Ids are integers, so an exclusive start is the inclusive start one above.
    let from = start === undefined ? 1 : inclusiveOfStart ? Math.ceil(start) : Math.floor(start) + 1
    const to = stop ?? Number.MAX_SAFE_INTEGER
    const deadline = Date.now() + this.options.settleMs
    // Rows after the resolved id are settled by counting every row before
    // them (see above): a filtered read whose matches are sparse (one
    // aggregate's rows, a rare topic) would count its way through the rest of
    // the log, from the start for a recorder that never met a gap. The lock
    // settles them all at once instead, as it does a gap, at most once a
    // second; if writers hold it past the wait, the count it is.
    const filtered = options.originatorId !== undefined || (options.topics?.length ?? 0) > 0
    if (filtered && Date.now() - this.#resolvedAt >= FILTERED_RESOLVE_EVERY_MS) await this.#resolve(FIRST_BARRIER_MS)
    const selected: Notification[] = []
    let wait = FIRST_BARRIER_MS
    for (let look = 0; ; look++) {
      const page = await this.#settled(from, to, limit - selected.length, options)
      selected.push(...page.notifications)
      if (!page.gap || selected.length >= limit || signal?.aborted) return selected
      // Everything up to the last one returned is settled: the next query starts after it.
      from = (selected.at(-1)?.id ?? from - 1) + 1
      const left = deadline - Date.now()
      // A writer still committing usually fills the gap within milliseconds.
      if (look < QUICK_LOOKS && 2 ** look < left / 2) {
        await delay(2 ** look)
        continue
      }
      // One lock taken resolves this gap; a gap found after it is a write begun since, not waited for.
      if (await this.#resolve(Math.min(Math.max(left, FIRST_BARRIER_MS), wait))) {
        return [...selected, ...(await this.#settled(from, to, limit - selected.length, options)).notifications]
      }
      if (Date.now() >= deadline) return selected
      await delay(Math.min(deadline - Date.now(), wait))
      wait *= 2
    }
  }

  /** Returns the settled notifications of a range, filtered as the options say, and whether a gap follows them. */
  async #settled(
    from: number,
    to: number,
    limit: number,
    { topics, originatorId }: Pick<SelectNotificationsOptions, 'topics' | 'originatorId'>,
  ): Promise<{ notifications: Notification[]; gap: boolean }> {
    const values: unknown[] = [from, to, limit, this.#resolved]
    const byTopic = topics !== undefined && topics.length > 0
    if (byTopic) values.push(topics)
    if (originatorId !== undefined) values.push(originatorId)
    const sql =
      values.length === 4
        ? this.#notifications.selectNotifications
        : this.#notifications.selectNotificationsFiltered({ topics: byTopic, originator: originatorId !== undefined })
    const { rows } = await this.pool.query<Row>(sql, values)
    const gap = rows.at(-1)?.settled === false
    if (gap) rows.pop()
    return { notifications: rows.map(({ settled: _, ...notification }) => notification), gap }
  }

  /**
   * Waits up to `timeoutMs` until no transaction that may draw ids is running,
   * and raises the resolved id (see above).
   *
   * @returns false if the time ran out first.
   */
  async #resolve(timeoutMs: number): Promise<boolean> {
    try {
      const results = (await this.pool.script(this.#notifications.barrier(timeoutMs))) as { resolved: number }[]
      this.#resolved = Math.max(this.#resolved, results[0]?.resolved ?? 0)
      this.#resolvedAt = Date.now()
      return true
    } catch (error) {
      if (driverError(error)?.code === '55P03') return false
      throw error
    }
  }

  /**
   * Returns the highest notification id committed, or 0 when the log is
   * empty. A lower id may still be committing: to follow the log from now
   * on without missing one, start after the last id a read returned.
   */
  async maxNotificationId(): Promise<number> {
    return maxOf((await this.pool.query<{ max: number }>(this.#notifications.maxNotificationId, [])).rows)
  }

  /**
   * Yields the notifications recorded after `gt`, then new ones as they are
   * recorded, until the signal aborts. Commits are announced with NOTIFY, so
   * commits by any process wake the subscription at once; it also polls every
   * `pollMs`, and after a dropped listening connection is made again, so a
   * lost notification delays it but loses nothing. Each query starts after the
   * last id yielded, so nothing is yielded twice. `pages()` yields them a
   * query's page at a time.
   *
   * It outlasts a server restart: a query that fails with OperationalError is
   * made again, with pauses, until it succeeds or the signal aborts.
   *
   * @throws OperationalError naming the server when its queries have failed
   * continuously for `subscriptionRetryMs` (default 60 s).
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    return paged(() => this.#follow(options), options.signal)
  }

  async *#follow(options: SubscribeOptions): AsyncGenerator<readonly Notification[]> {
    // Not AbortSignal.any: on Node 20 the closing signal would keep every subscription's signal while it lives.
    const any = anySignal([options.signal, this.options.closing])
    try {
      const { signal } = any
      if (signal.aborted) return
      await this.options.listen()
      // Retrying the query itself keeps its start, the last id yielded, so a
      // restart of the server loses nothing and repeats nothing. An abort while
      // failing reads as an empty page, after which followLogPages ends.
      const retryMs = this.options.subscriptionRetryMs
      const source = {
        selectNotifications: async (select: SelectNotificationsOptions) =>
          signal.aborted
            ? []
            : ((await retryingFor(() => this.selectNotifications(select, signal), {
                forMs: retryMs,
                where: `PostgreSQL at ${this.pool.settings.server}`,
                signal,
              })) ?? []),
      }
      yield* followLogPages(source, this.options.commits, { ...options, signal, pollMs: this.options.pollMs })
    } finally {
      any[Symbol.dispose]()
    }
  }

  /**
   * Records that a notification of an upstream application was processed.
   *
   * @throws IntegrityError if the id is not greater than the last one recorded for that application.
   */
  async insertTracking(tracking: Tracking): Promise<void> {
    this.assertOpen()
    await this.options.writes.write([], [tracking])
  }

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  async maxTrackingId(applicationName: string): Promise<number> {
    return maxOf((await this.pool.query<{ max: number }>(this.#tracking.maxTrackingId, [applicationName])).rows)
  }

  /** Returns every tracking record, ordered by the upstream application's name; empty when none. */
  async selectTracking(): Promise<Tracking[]> {
    return (await this.pool.query<Tracking>(this.#tracking.selectTracking, [])).rows
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
    await this.options.listen()
    await waitForTracking(this, this.options.commits, applicationName, notificationId, options, this.options.pollMs)
  }
}

/** A row of the notification queries. */
interface Row extends Notification {
  readonly settled: boolean
}

function maxOf(rows: readonly { max: number }[]): number {
  return rows[0]?.max ?? 0
}

/** Options of the {@link postgres} backend. */
export interface PostgresOptions {
  /** A connection URL, e.g. `postgres://user:password@host:5432/database`; or give the split settings. */
  readonly url?: string
  /** The server's host name (default `localhost`). */
  readonly host?: string
  /** The server's port (default 5432). */
  readonly port?: number
  /** The user name. */
  readonly user?: string
  /** The user's password. */
  readonly password?: string
  /** The database name. */
  readonly database?: string
  /** A schema for the tables, created if missing; the connection's search path decides when not given. */
  readonly schema?: string
  /** The most connections in the pool (default 10); one more is used by subscriptions. */
  readonly poolSize?: number
  /** How long to wait for a connection before failing (default 5,000 ms). */
  readonly connectTimeoutMs?: number
  /** How long an idle pooled connection is kept (default 10,000 ms). */
  readonly idleTimeoutMs?: number
  /** Statements running longer than this are cancelled by the server (default: no limit). */
  readonly statementTimeoutMs?: number
  /** Waits for a lock longer than this fail (default: no limit). Writers may wait briefly for a reader passing a gap. */
  readonly lockTimeoutMs?: number
  /** Create missing tables (and the schema) when an application opens its recorders (default true). */
  readonly createTables?: boolean
  /** How often subscriptions and waits look for commits in case a notification was missed (default 2,000 ms). */
  readonly pollMs?: number
  /**
   * How long a read of the notification log that finds a gap before a
   * committed notification waits for the gap to be filled or shown to be
   * empty (every transaction that could still fill it has ended), before it
   * returns the notifications before the gap (default 2,000 ms).
   */
  readonly settleMs?: number
  /**
   * The least time between two NOTIFYs that one backend object sends for one
   * application, to wake subscribers in other processes (default 250 ms). The
   * first commit after a quiet spell is announced at once; while commits keep
   * coming, they are announced together at the end of each interval. Each
   * NOTIFY is a small transaction of its own, so 0 (every commit) costs
   * throughput when many processes write.
   */
  readonly notifyIntervalMs?: number
  /**
   * How long a subscription keeps trying while its queries fail with
   * OperationalError (the server restarting or unreachable), before it ends
   * with OperationalError (default 60,000 ms). Saves are not affected: they
   * fail after the pool's few retries (about 1.5 s).
   */
  readonly subscriptionRetryMs?: number
}

/**
 * Returns the PostgreSQL backend: a pool of connections to one server, shared
 * by every application opened on it and ended when the last of their
 * recorders closes.
 *
 * @throws ProgrammingError for invalid options (a bad URL or schema name, a non-positive pool size).
 * @example
 * ```ts
 * const app = new DogSchool({ persistence: postgres({ url: 'postgres://localhost/dogs' }) })
 * ```
 */
export function postgres(options: PostgresOptions): Persistence {
  return new PostgresPersistence(options)
}

/** The connections of a backend object while recorders are open. */
interface Shared {
  readonly pool: PostgresPool
  readonly listener: PostgresListener
  readonly queues: Map<string, WriteQueue>
  users: number
}

/** The backend that {@link postgres} returns: validates its options once, then opens recorders. */
class PostgresPersistence implements Persistence {
  readonly name = 'postgres'
  readonly #settings: ConnectionSettings
  readonly #schema: string | undefined
  readonly #createTables: boolean
  readonly #timing: { readonly pollMs: number; readonly subscriptionRetryMs: number; readonly settleMs: number }
  readonly #notifyIntervalMs: number
  readonly #commits = new CommitSignals()
  #shared: Promise<Shared> | undefined

  /** Makes the backend; connections are made when recorders are opened and used. */
  constructor(options: PostgresOptions) {
    const { schema, createTables = true, pollMs = DEFAULT_POLL_MS } = options
    const { subscriptionRetryMs = DEFAULT_SUBSCRIPTION_RETRY_MS, settleMs = DEFAULT_SETTLE_MS } = options
    const { notifyIntervalMs = DEFAULT_NOTIFY_INTERVAL_MS } = options
    if (schema !== undefined) validIdentifier(schema, 'schema name')
    if (!(pollMs > 0)) throw new ProgrammingError(`pollMs must be positive, got ${pollMs}`)
    for (const [name, value] of Object.entries({ subscriptionRetryMs, settleMs, notifyIntervalMs })) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new ProgrammingError(`${name} must be a non-negative integer, got ${value}`)
      }
    }
    this.#settings = connectionSettings(options)
    this.#schema = schema
    this.#createTables = createTables
    this.#timing = { pollMs, subscriptionRetryMs, settleMs }
    this.#notifyIntervalMs = notifyIntervalMs
  }

  checkName(applicationName: string): void {
    applicationTables(applicationName)
  }

  async open(applicationName: string): Promise<Recorders> {
    const tables = applicationTables(applicationName)
    const shared = await this.#acquire()
    const schema = this.#schema
    const channel = channelName(schema, tables.events)
    const commits = this.#commits.acquire(channel)
    // Closing the recorders ends their subscriptions, which would otherwise
    // retry against closed connections for subscriptionRetryMs.
    const closing = new AbortController()
    const release = async () => {
      closing.abort()
      commits.release()
      await this.#release(shared)
    }
    try {
      if (this.#createTables) {
        const script = createTablesSql(schema, tables)
        await shared.pool.transaction(script.begin, (run) => run(script.body))
      }
    } catch (error) {
      await release()
      throw error
    }
    // Keyed by table, not by channel: two channel names cut to 63 bytes may agree.
    const table = qualified(schema, tables.events)
    let writes = shared.queues.get(table)
    if (writes === undefined) {
      // The signal is looked up on each commit: the recorders that made the
      // queue may have closed, and later ones hold a new signal for the channel.
      const onCommit = () => {
        const current = this.#commits.acquire(channel)
        current.signal.notify()
        current.release()
      }
      writes = new WriteQueue(shared.pool, schema, tables, onCommit, this.#notifyIntervalMs)
      shared.queues.set(table, writes)
    }
    const events = new PostgresProcessRecorder(shared.pool, schema, tables, {
      writes,
      commits: commits.signal,
      listen: () => shared.listener.listen(channel),
      closing: closing.signal,
      ...this.#timing,
    })
    return new PostgresRecorders(
      events,
      new PostgresAggregateRecorder(shared.pool, schema, tables.snapshots, closing.signal),
      release,
    )
  }

  async openDcb(applicationName: string): Promise<DcbRecorders> {
    const tables = dcbTables(applicationName)
    const shared = await this.#acquire()
    const channel = channelName(this.#schema, tables.events)
    const commits = this.#commits.acquire(channel)
    const announcer = new Announcer(() => shared.pool.pool.query(notifySql(channel)), this.#notifyIntervalMs)
    const closing = new AbortController()
    const release = async () => {
      closing.abort()
      await announcer.idle()
      commits.release()
      await this.#release(shared)
    }
    try {
      if (this.#createTables) {
        const script = createDcbTablesSql(this.#schema, tables)
        await shared.pool.transaction(script.begin, (run) => run(script.body))
      }
    } catch (error) {
      await release()
      throw error
    }
    const { pollMs, settleMs } = this.#timing
    const recorder = new PostgresDcbRecorder(shared.pool, this.#schema, tables, {
      commits: commits.signal,
      announce: () => announcer.announce(),
      listen: () => shared.listener.listen(channel),
      pollMs,
      settleMs,
      closing: closing.signal,
    })
    return new PostgresDcbRecorders(recorder, release)
  }

  /**
   * Lists the applications in the schema (the search path's first when none
   * was given), on a connection of its own that is closed before this returns.
   */
  async listApplications(): Promise<StoredApplication[]> {
    const pool = await PostgresPool.open(this.#settings)
    try {
      const { rows: tables } = await pool.query<{ name: string }>(listEventTablesSql, [this.#schema ?? null])
      const listed: StoredApplication[] = []
      for (const { name: table } of tables) {
        const name = table.slice(0, -'_events'.length)
        if (!isApplicationName(name)) continue
        const { rows } = await pool.query<{ events: number; max: number }>(countEventsSql(this.#schema, table), [])
        listed.push({ name, events: Number(rows[0]!.events), maxNotificationId: Number(rows[0]!.max) })
      }
      return listed
    } finally {
      await pool.close()
    }
  }

  async #acquire(): Promise<Shared> {
    for (;;) {
      this.#shared ??= PostgresPool.open(this.#settings).then((pool) => {
        const listener = new PostgresListener(pool, (channel) => {
          const { signal, release } = this.#commits.acquire(channel)
          signal.notify()
          release()
        })
        return { pool, listener, queues: new Map(), users: 0 }
      })
      const pending = this.#shared
      const shared = await pending.catch((error: unknown) => {
        if (this.#shared === pending) this.#shared = undefined
        throw error
      })
      // The last recorders may have closed these connections while this waited.
      if (this.#shared !== pending) continue
      shared.users++
      return shared
    }
  }

  async #release(shared: Shared): Promise<void> {
    if (--shared.users > 0) return
    this.#shared = undefined
    // Writes already accepted finish before their connections are ended.
    await Promise.all([...shared.queues.values()].map((queue) => queue.idle()))
    await shared.listener.close()
    await shared.pool.close()
  }
}

/** The recorders of one `open()`. */
class PostgresRecorders implements Recorders {
  #closed = false

  constructor(
    readonly events: PostgresProcessRecorder,
    readonly snapshots: PostgresAggregateRecorder,
    private readonly release: () => Promise<void>,
  ) {}

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.release()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * Returns the PostgreSQL backend configured from variables: `POSTGRES_URL`, or
 * `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_PASSWORD` and
 * `POSTGRES_DBNAME`; `POSTGRES_SCHEMA`; `POSTGRES_POOL_SIZE`; and
 * `CREATE_TABLES` (true/false, yes/no, 1/0, on/off; default true).
 *
 * @throws ProgrammingError when neither `POSTGRES_URL` nor `POSTGRES_HOST` is set, or a value is malformed.
 */
export function fromEnvironment(get: (name: string) => string | undefined): Persistence {
  return postgres(optionsFromEnvironment(get))
}

/**
 * Returns the options of the PostgreSQL backend that variables give (see
 * {@link fromEnvironment}), for opening other things on the same server and schema.
 *
 * @throws ProgrammingError when neither `POSTGRES_URL` nor `POSTGRES_HOST` is set, or a value is malformed.
 */
export function optionsFromEnvironment(get: (name: string) => string | undefined): PostgresOptions {
  const value = (name: string) => get(name) || undefined
  const url = value('POSTGRES_URL')
  const host = value('POSTGRES_HOST')
  if (url === undefined && host === undefined) {
    throw new ProgrammingError(
      'POSTGRES_URL is not set: set it (postgres://user:password@host:port/database), or set POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DBNAME',
    )
  }
  const split =
    url === undefined
      ? {
          host,
          port: parseInteger('POSTGRES_PORT', value('POSTGRES_PORT'), 1),
          user: value('POSTGRES_USER'),
          password: value('POSTGRES_PASSWORD'),
          database: value('POSTGRES_DBNAME'),
        }
      : { url }
  return {
    ...split,
    schema: value('POSTGRES_SCHEMA'),
    poolSize: parseInteger('POSTGRES_POOL_SIZE', value('POSTGRES_POOL_SIZE'), 1),
    createTables: parseBoolean('CREATE_TABLES', value('CREATE_TABLES')) ?? true,
  }
}
