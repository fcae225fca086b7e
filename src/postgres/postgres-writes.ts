import { OperationalError, TrackingConflictError, VersionConflictError } from '../persistence/errors.js'
import type { ApplicationTables } from '../persistence/identifiers.js'
import type { StoredEvent, Tracking } from '../persistence/stored-event.js'
import { type DriverError, driverError, type PostgresPool, type Run, versionInDetail } from './postgres-pool.js'
import {
  columns,
  type NotificationSql,
  notificationSql,
  oneEvent,
  qualified,
  type TrackingSql,
  trackedInsertSql,
  trackingSql,
} from './postgres-schema.js'

/** One call of `insertEvents` (or `insertTracking`), waiting in the queue. */
interface Write {
  readonly events: readonly StoredEvent[]
  readonly tracking: readonly Tracking[]
  readonly resolve: (ids: number[]) => void
  readonly reject: (error: unknown) => void
}

// A group is closed once it holds this many events, to bound the size of one
// statement; a single write larger than this is still written whole.
const MAX_GROUP_EVENTS = 10_000

/**
 * The writes of one application through one backend object, coalesced.
 *
 * Writers in different processes insert and commit side by side (see
 * postgres-recorder.ts for why no reader can skip an event). Within one
 * backend object, the writes that arrive while a transaction runs
 * wait here, and the next transaction writes all of them at once: one
 * multi-row insert, their tracking records, one commit.
 *
 * A combined transaction is all or nothing, so one write with a duplicate
 * version (or a tracking id that is not newer) would fail the others with
 * it. When a combined transaction fails with anything but OperationalError, each of its
 * writes is therefore written again alone, in order: only the guilty ones
 * fail, exactly as if the writes had been made one after another.
 */
export class WriteQueue {
  readonly #notifications: NotificationSql
  readonly #tracking: TrackingSql
  readonly #trackedInsert: string
  readonly #trackingTable: string
  readonly #schema: string | undefined
  readonly #tables: ApplicationTables
  #waiting: Write[] = []
  #draining: Promise<void> | undefined

  readonly #announcer: Announcer

  /**
   * Makes the queue of an application's tables.
   *
   * @param onCommit Called after each commit, to wake this process's readers at once.
   * @param notifyIntervalMs The least time between two NOTIFYs that wake the readers of other processes.
   */
  constructor(
    private readonly pool: PostgresPool,
    schema: string | undefined,
    tables: ApplicationTables,
    private readonly onCommit: () => void,
    notifyIntervalMs: number,
  ) {
    this.#notifications = notificationSql(schema, tables.events)
    this.#tracking = trackingSql(schema, tables.tracking)
    this.#trackedInsert = trackedInsertSql(schema, tables)
    this.#trackingTable = tables.tracking
    this.#schema = schema
    this.#tables = tables
    const { notify } = this.#notifications
    this.#announcer = new Announcer(() => pool.pool.query(notify), notifyIntervalMs)
  }

  /**
   * Records the events and the tracking records (either may be empty, not
   * both) atomically, and returns the events' notification ids in input order.
   *
   * @throws VersionConflictError on a duplicate event version, TrackingConflictError
   * on a tracking id that is not newer. In a group of writes that failed
   * together, each write is tried again alone, so each names its own clash.
   */
  write(events: readonly StoredEvent[], tracking: readonly Tracking[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ events, tracking, resolve, reject })
      this.#draining ??= this.#drain()
    })
  }

  /** Resolves once every write accepted so far is settled, and announced to other processes. */
  async idle(): Promise<void> {
    await this.#draining
    await this.#announcer.idle()
  }

  async #drain(): Promise<void> {
    // Started from write(), which assigns #draining after this returns its
    // promise; awaiting first keeps the finally below from running before that.
    await Promise.resolve()
    try {
      while (this.#waiting.length > 0) await this.#writeGroup(this.#take())
    } finally {
      this.#draining = undefined
    }
  }

  #take(): Write[] {
    let count = 0
    let taken = 0
    while (
      taken < this.#waiting.length &&
      (taken === 0 || count + this.#waiting[taken]!.events.length <= MAX_GROUP_EVENTS)
    ) {
      count += this.#waiting[taken]!.events.length
      taken++
    }
    return this.#waiting.splice(0, taken)
  }

  async #writeGroup(group: Write[]): Promise<void> {
    if (group.length > 1) {
      try {
        const ids = await this.#transaction(group)
        this.#committed()
        for (const [i, write] of group.entries()) write.resolve(ids[i]!)
        return
      } catch (error) {
        // A connection or server failure (or a COMMIT of unknown outcome) is
        // the group's, and is not retried here. Any other error (a duplicate
        // version, a value the column rejects) may be one write's: each is
        // then written alone, so only the guilty one fails.
        if (error instanceof OperationalError) {
          for (const write of group) write.reject(error)
          return
        }
      }
    }
    for (const write of group) {
      try {
        const ids = await this.#writeAlone(write)
        this.#committed()
        write.resolve(ids)
      } catch (error) {
        write.reject(error)
      }
    }
  }

  #committed(): void {
    this.onCommit()
    this.#announcer.announce()
  }

  /**
   * Writes one write in one statement that commits by itself: one round trip.
   * A duplicate event version is reported as a VersionConflictError naming it.
   */
  async #writeAlone(write: Write): Promise<number[]> {
    try {
      return await this.#insertAlone(write)
    } catch (error) {
      throw await versionConflict(this.pool, this.#schema, this.#tables, write.events, error)
    }
  }

  async #insertAlone(write: Write): Promise<number[]> {
    const { events, tracking } = write
    if (tracking.length === 0) {
      return events.length === 1
        ? this.#ids(this.#autocommit, this.#notifications.insertEvent, oneEvent(events[0]!))
        : this.#ids(this.#autocommit, this.#notifications.insertEvents, columns(events))
    }
    // Several tracking records take a statement each, so they need a transaction.
    if (tracking.length > 1) return (await this.#transaction([write]))[0]!
    const [record] = tracking as [Tracking]
    if (events.length === 0) {
      await this.#track(this.#autocommit, record)
      return []
    }
    const values = [...columns(events), record.applicationName, record.notificationId]
    return this.#ids(this.#autocommit, this.#trackedInsert, values, record)
  }

  /** Runs statements on pooled connections, each committing by itself. */
  readonly #autocommit: Run = (text, values = []) => this.pool.write(text, values)

  /** Writes a group in one transaction and returns the ids of each write's events. */
  #transaction(group: readonly Write[]): Promise<number[][]> {
    const events = group.flatMap((write) => write.events)
    // Tracking first: a tracking record that is not newer (a notification
    // delivered again) then fails the transaction before it draws any id.
    return this.pool.transaction('BEGIN', async (run) => {
      for (const { tracking } of group) for (const record of tracking) await this.#track(run, record)
      const ids = events.length > 0 ? await this.#ids(run, this.#notifications.insertEvents, columns(events)) : []
      let offset = 0
      return group.map((write) => {
        const start = offset
        offset += write.events.length
        return ids.slice(start, offset)
      })
    })
  }

  /**
   * Runs an insert that returns the events' ids, reporting (for the statement
   * with `tracking`) a tracking id that is not newer as TrackingConflictError.
   */
  async #ids(run: Run, text: string, values: unknown[], tracking?: Tracking): Promise<number[]> {
    try {
      return (await run<{ id: number }>(text, values)).rows.map((row) => row.id)
    } catch (error) {
      const cause = driverError(error)
      // See trackedInsertSql: the column refuses the NULL that a tracking id that is not newer becomes.
      const refused = cause?.code === '23502' ? `${cause.table}.${cause.column}` : undefined
      if (tracking && refused === `${this.#trackingTable}.notification_id`) throw this.#notNewer(tracking, cause)
      throw error
    }
  }

  async #track(run: Run, tracking: Tracking): Promise<void> {
    const result = await run(this.#tracking.insertTracking, [tracking.applicationName, tracking.notificationId])
    if (result.rowCount === 0) throw this.#notNewer(tracking)
  }

  #notNewer({ applicationName, notificationId }: Tracking, cause?: unknown): TrackingConflictError {
    return new TrackingConflictError({ applicationName, notificationId, table: this.#trackingTable }, { cause })
  }
}

/**
 * Returns the error to throw for a failed write of `events` (`error`, as the
 * pool threw it) into an application's events or snapshots table (the one
 * `tables` names): a {@link VersionConflictError} naming the event that
 * clashed when the write broke the table's version key, any other error as
 * it is.
 *
 * Whether it is a version conflict is told from the error's SQLSTATE, table
 * and constraint, which do not depend on the server's language. The event
 * that clashed is the write's only one; else the one the error's detail
 * names; else, when the detail is in another language (`lc_messages`) or
 * left out (row-level security or column privileges hide the key), the first
 * of the write's events that is recorded already or repeats one before it.
 */
export async function versionConflict(
  pool: PostgresPool,
  schema: string | undefined,
  tables: VersionTables,
  events: readonly StoredEvent[],
  error: unknown,
): Promise<unknown> {
  const cause = driverError(error)
  if (cause?.code !== '23505' || !isVersionKey(cause, tables)) return error
  const table = cause.table!
  const { originatorId, originatorVersion } =
    events.length === 1
      ? events[0]!
      : (versionInDetail(cause) ?? (await firstClash(pool, qualified(schema, table), events)))
  return new VersionConflictError({ originatorId, originatorVersion, table }, { cause })
}

/** The tables of stored events that a write may have gone to. */
export type VersionTables = Partial<Pick<ApplicationTables, 'events' | 'snapshots'>>

function isVersionKey({ table, constraint }: DriverError, tables: VersionTables): boolean {
  // The other unique rule of the events table, its primary key, is on the
  // notification id, which the identity column fills.
  if (table === undefined) return false
  return table === tables.snapshots || (table === tables.events && constraint !== primaryKeyName(table))
}

// PostgreSQL's name for a table's primary key: the table's name cut to 58 bytes, then `_pkey`.
function primaryKeyName(table: string): string {
  return `${table.slice(0, 58)}_pkey`
}

/**
 * Returns the first of `events` whose version is recorded in `table` or
 * repeats one before it in `events`, which is the row the insert failed on.
 * What is recorded is found by a diagnostic read made after the failure, so
 * it sees the table as it is then; when the read is refused, or the row is
 * hidden from it too, it is the first of `events`, a version conflict still.
 */
async function firstClash(pool: PostgresPool, table: string, events: readonly StoredEvent[]): Promise<StoredEvent> {
  const select = `SELECT originator_id AS "originatorId", originator_version AS "originatorVersion" FROM ${table}
WHERE (originator_id, originator_version) IN (SELECT * FROM unnest($1::text[], $2::int[]))`
  const values = [events.map((event) => event.originatorId), events.map((event) => event.originatorVersion)]
  const recorded = await pool.query<EventVersion>(select, values).then(
    (result) => new Set(result.rows.map(versionKey)),
    () => new Set<string>(),
  )
  const seen = new Set<string>()
  for (const event of events) {
    const key = versionKey(event)
    if (recorded.has(key) || seen.has(key)) return event
    seen.add(key)
  }
  return events[0]!
}

type EventVersion = Pick<StoredEvent, 'originatorId' | 'originatorVersion'>

function versionKey({ originatorId, originatorVersion }: EventVersion): string {
  return JSON.stringify([originatorId, originatorVersion])
}

/**
 * Wakes the subscribers of other processes after commits, with NOTIFY on a
 * table's channel: at once after a quiet spell, then at most once per
 * interval while commits keep coming, so that a busy writer sends few. A
 * NOTIFY that fails is not reported: the readers it would have woken also
 * poll, so it costs them latency, never a notification.
 */
export class Announcer {
  readonly #sending = new Set<Promise<void>>()
  #lastSent = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | undefined

  /**
   * Makes the announcer of one table.
   *
   * @param send Sends one NOTIFY.
   * @param intervalMs The least time between two NOTIFYs.
   */
  constructor(
    private readonly send: () => Promise<unknown>,
    private readonly intervalMs: number,
  ) {}

  /** Announces a commit: now, or at the end of the current interval. */
  announce(): void {
    if (this.#timer !== undefined) return
    const wait = this.#lastSent + this.intervalMs - Date.now()
    if (wait <= 0) this.#sendNow()
    // Unreferenced: a pending announcement does not keep the process alive (closing sends it).
    else this.#timer = setTimeout(() => this.#sendNow(), wait).unref()
  }

  /** Sends a pending announcement at once, and resolves once every announcement is sent. */
  async idle(): Promise<void> {
    if (this.#timer !== undefined) this.#sendNow()
    await Promise.all(this.#sending)
  }

  #sendNow(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#lastSent = Date.now()
    const sending = this.send().then(
      () => {},
      () => {},
    )
    this.#sending.add(sending)
    void sending.finally(() => this.#sending.delete(sending))
  }
}
