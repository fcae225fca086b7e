import { type CommitSignal, waitForTracking } from '../persistence/commit-signal.js'
import {
  type DcbAppendCondition,
  type DcbAppendOptions,
  DcbConflictError,
  type DcbEvent,
  type DcbQuery,
  type DcbReadOptions,
  type DcbReadResult,
  type DcbRecorder,
  type DcbRecorders,
  type DcbSequencedEvent,
  type DcbSubscribeOptions,
  type DcbTables,
} from '../persistence/dcb.js'
import {
  checkDcbEvents,
  checkDcbQuery,
  checkPosition,
  checkReadOptions,
  followDcb,
  readResult,
} from '../persistence/dcb-checks.js'
import { TrackingConflictError } from '../persistence/errors.js'
import type { WaitForTrackingOptions } from '../persistence/recorder.js'
import type { Tracking } from '../persistence/stored-event.js'
import type { SqliteConnection, SqliteSession } from './sqlite-database.js'
import {
  createDcbTablesSql,
  type DcbSql,
  dcbSql,
  existsSql,
  type QuerySql,
  selectEventsSql,
} from './sqlite-dcb-schema.js'
import { type TrackingSql, trackingSql } from './sqlite-schema.js'

/** A row of the DCB events table. */
interface EventRow {
  readonly position: number
  readonly type: string
  readonly data: Uint8Array
  readonly metadata: Uint8Array | null
  readonly tags: string
}

/**
 * A DCB recorder on SQLite tables (see `createDcbTablesSql`).
 *
 * Why the append condition holds under any concurrency, across connections
 * and processes: an append runs in a `BEGIN IMMEDIATE` transaction, which
 * takes the database's single write lock before its first statement. The
 * condition is checked, and the events are inserted, inside that
 * transaction, so no other write can commit between the check and the
 * insert: the check sees every event committed before it, and any event
 * committed after it is committed after this append. Of N appends that read
 * the same head and each write an event matching the others' conditions, the
 * first to take the lock commits, and each later one finds that event after
 * its head and fails. An append whose condition matches none of the others'
 * events waits for the lock (up to the busy timeout) and commits: queueing
 * for the writer is not a conflict.
 *
 * Why a read's head is settled: positions are rowids assigned under the write
 * lock and committed before the lock passes on, so the committed positions
 * are always every position up to the last one committed. A read takes the
 * head first, then selects the matching events up to that head; whatever its
 * second statement sees, no event at or below the head can commit later.
 */
export class SqliteDcbRecorder implements DcbRecorder {
  readonly #sql: DcbSql
  readonly #tracking: TrackingSql
  readonly #append: (
    events: readonly DcbEvent[],
    condition: DcbAppendCondition | undefined,
    tracking: readonly Tracking[],
  ) => number

  /**
   * Makes the recorder of an application's DCB tables on a session.
   *
   * @param options.commits The signal that every recorder on the same tables
   * in this process notifies after each commit, and whose waiters it wakes.
   * @param options.pollMs How often waiters look for commits made by other connections.
   */
  constructor(
    private readonly session: SqliteSession,
    private readonly tables: DcbTables,
    private readonly options: { readonly commits: CommitSignal; readonly pollMs: number },
  ) {
    this.#sql = dcbSql(tables)
    this.#tracking = trackingSql(tables.tracking)
    this.#append = session.transaction((events, condition, tracking) => {
      if (condition !== undefined) this.#check(condition)
      const connection = session.connection
      const insertEvent = connection.statement(this.#sql.insertEvent)
      const insertTag = connection.statement(this.#sql.insertTag)
      for (const { type, data, metadata, tags } of events) {
        const position = insertEvent.run(type, data, metadata ?? null, JSON.stringify(tags)).lastInsertRowid
        for (const tag of tags) insertTag.run(tag, position)
      }
      for (const record of tracking) this.#insertTracking(connection, record)
      return this.#head(connection)
    })
  }

  /** Creates the tables when they are missing, in a write transaction. */
  createTables(): void {
    this.session.transaction(() => this.session.connection.database.exec(createDcbTablesSql(this.tables)))()
  }

  /** Returns the matching events after `after`, at most `limit`, with the head the read is complete up to. */
  async read(query?: DcbQuery, options?: DcbReadOptions): Promise<DcbReadResult> {
    const checked = checkDcbQuery(query)
    const { after, limit } = checkReadOptions(options)
    return this.session.run((connection) => {
      const head = this.#head(connection)
      // One more than asked, to tell whether the limit cut the result.
      const rowLimit = limit === Number.POSITIVE_INFINITY ? -1 : limit + 1
      const rows = all(connection, selectEventsSql(this.tables, checked, after, head, rowLimit)) as EventRow[]
      return readResult(rows.map(sequencedEvent), limit, head)
    })
  }

  /** Returns the position of the last event recorded, or 0 when the store is empty. */
  async head(): Promise<number> {
    return this.session.run((connection) => this.#head(connection))
  }

  /**
   * Records the events and tracking records in one `BEGIN IMMEDIATE`
   * transaction if the condition holds, and returns the position of the
   * last event (the head, for an empty batch).
   *
   * @throws DcbConflictError if an event matching the condition was recorded
   * after its `after`; TrackingConflictError if a tracking record is not newer.
   */
  async append(
    events: readonly DcbEvent[],
    condition?: DcbAppendCondition,
    options?: DcbAppendOptions,
  ): Promise<number> {
    const checked = checkDcbEvents(events)
    const tracking = [options?.tracking ?? []].flat()
    if (condition !== undefined) {
      checkDcbQuery(condition.failIfEventsMatch)
      checkPosition(condition.after, 'The condition’s after')
    }
    if (checked.length === 0 && tracking.length === 0) {
      if (condition !== undefined) this.session.run(() => this.#check(condition))
      return this.head()
    }
    const head = this.#append(checked, condition, tracking)
    this.options.commits.notify()
    return head
  }

  /**
   * Yields the matching events after `after`, then new ones as they are
   * appended, until the signal aborts: at once for appends through this
   * process's connections to the same database, within `pollMs` for others.
   */
  subscribe(query?: DcbQuery, options: DcbSubscribeOptions = {}): AsyncIterable<DcbSequencedEvent> {
    const checked = checkDcbQuery(query)
    const after = checkPosition(options.after, 'after')
    const { commits, pollMs } = this.options
    return followDcb((q, o) => this.read(q, o), commits, { query: checked, after, signal: options.signal, pollMs })
  }

  /**
   * Records that a notification of an upstream application was processed.
   *
   * @throws TrackingConflictError if the id is not greater than the last one recorded for that application.
   */
  async insertTracking(tracking: Tracking): Promise<void> {
    await this.append([], undefined, { tracking })
  }

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  async maxTrackingId(applicationName: string): Promise<number> {
    return this.session.run((connection) => {
      const row = connection.statement(this.#tracking.maxTrackingId).get(applicationName) as { max: number } | undefined
      return row?.max ?? 0
    })
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
    const { commits, pollMs } = this.options
    await waitForTracking(this, commits, applicationName, notificationId, options, pollMs)
  }

  /** Throws DcbConflictError if an event matching the condition follows its `after`. */
  #check(condition: DcbAppendCondition): void {
    const query = checkDcbQuery(condition.failIfEventsMatch)
    const after = checkPosition(condition.after, 'The condition’s after')
    const found = all(this.session.connection, existsSql(this.tables, query, after))[0] as { found: number }
    if (found.found === 1) {
      throw new DcbConflictError({
        query: condition.failIfEventsMatch,
        after: condition.after,
        table: this.tables.events,
      })
    }
  }

  #head(connection: SqliteConnection): number {
    return (connection.statement(this.#sql.head).get() as { head: number }).head
  }

  #insertTracking(connection: SqliteConnection, tracking: Tracking): void {
    const { applicationName, notificationId } = tracking
    if (connection.statement(this.#tracking.insertTracking).run({ applicationName, notificationId }).changes === 0) {
      throw new TrackingConflictError({ applicationName, notificationId, table: this.tables.tracking })
    }
  }
}

/** The DCB recorder of one `openDcb()`, which holds its session. */
export class SqliteDcbRecorders implements DcbRecorders {
  /** Takes the recorder and the function that releases its session and commit signal. */
  constructor(
    readonly events: SqliteDcbRecorder,
    private readonly release: () => void,
  ) {}

  async close(): Promise<void> {
    this.release()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

function all(connection: SqliteConnection, { sql, params }: QuerySql): unknown[] {
  return connection.statement(sql).all(...params)
}

function sequencedEvent(row: EventRow): DcbSequencedEvent {
  const { position, type, data, metadata, tags } = row
  const event = { position, type, data, tags: JSON.parse(tags) as string[] }
  return metadata === null ? event : { ...event, metadata }
}
