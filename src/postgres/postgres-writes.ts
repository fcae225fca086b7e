import { errorCode, IntegrityError, OperationalError } from '../persistence/errors.js'
import type { ApplicationTables } from '../persistence/identifiers.js'
import type { StoredEvent, Tracking } from '../persistence/stored-event.js'
import type { PostgresPool, Run } from './postgres-pool.js'
import {
  type EventTableSql,
  eventTableSql,
  type NotificationSql,
  notificationSql,
  type TrackingSql,
  trackingSql,
} from './postgres-schema.js'

/** One call of `insertEvents` (or `insertTracking`), waiting in the queue. */
interface Write {
  readonly events: readonly StoredEvent[]
  readonly tracking: Tracking | undefined
  readonly resolve: (ids: number[]) => void
  readonly reject: (error: unknown) => void
}

// A group is closed once it holds this many events, to bound the size of one
// statement; a single write larger than this is still written whole.
const MAX_GROUP_EVENTS = 10_000

/**
 * The writes of one application through one backend object, coalesced.
 *
 * Ids are assigned only by a transaction that holds `LOCK TABLE <events> IN
 * EXCLUSIVE MODE` from before its insert until its commit, which serialises
 * the writers of the table (see the proof in postgres-recorder.ts). To keep
 * throughput near that of unlocked inserts, the writes that arrive while a
 * transaction runs wait here, and the next transaction writes all of them
 * at once: one lock, one multi-row insert, their tracking records, one commit.
 * So the lock is taken once per round of concurrent writes, not once per write.
 *
 * A combined transaction is all or nothing, so one write with a duplicate
 * version (or a tracking id that is not newer) would fail the others with
 * it. When a combined transaction fails with anything but OperationalError, each of its
 * writes is therefore written again alone, in order: only the guilty ones
 * fail, exactly as if the writes had been made one after another.
 */
export class WriteQueue {
  readonly #events: EventTableSql
  readonly #notifications: NotificationSql
  readonly #tracking: TrackingSql
  readonly #table: string
  #waiting: Write[] = []
  #draining: Promise<void> | undefined

  /**
   * Makes the queue of an application's tables.
   *
   * @param onCommit Called after each commit, to wake this process's readers at once.
   */
  constructor(
    private readonly pool: PostgresPool,
    schema: string | undefined,
    tables: ApplicationTables,
    private readonly onCommit: () => void,
  ) {
    this.#events = eventTableSql(schema, tables.events, true)
    this.#notifications = notificationSql(schema, tables.events)
    this.#tracking = trackingSql(schema, tables.tracking)
    this.#table = tables.events
  }

  /**
   * Records the events and the tracking record (either may be missing, not
   * both) atomically, and returns the events' notification ids in input order.
   *
   * @throws IntegrityError on a duplicate event version or a tracking id that is not newer.
   */
  write(events: readonly StoredEvent[], tracking: Tracking | undefined): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ events, tracking, resolve, reject })
      this.#draining ??= this.#drain()
    })
  }

  /** Resolves once every write accepted so far is settled. */
  async idle(): Promise<void> {
    await this.#draining
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
        this.onCommit()
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
        const [ids] = await this.#transaction([write])
        this.onCommit()
        write.resolve(ids!)
      } catch (error) {
        write.reject(error)
      }
    }
  }

  /** Writes a group in one transaction and returns the ids of each write's events. */
  #transaction(group: readonly Write[]): Promise<number[][]> {
    const events = group.flatMap((write) => write.events)
    // A transaction that only tracks assigns no id, so it needs no table lock;
    // both kinds NOTIFY, for waitForTracking in other processes.
    const begin = events.length > 0 ? this.#notifications.beginWrite : this.#notifications.beginTracking
    return this.pool.transaction(begin, async (run) => {
      const ids = events.length > 0 ? await this.#insert(run, events) : []
      for (const { tracking } of group) if (tracking) await this.#track(run, tracking)
      let offset = 0
      return group.map((write) => {
        const start = offset
        offset += write.events.length
        return ids.slice(start, offset)
      })
    })
  }

  async #insert(run: Run, events: readonly StoredEvent[]): Promise<number[]> {
    let rows: { notification_id: number; originator_id: string; originator_version: number }[]
    try {
      rows = (await run<(typeof rows)[number]>(this.#events.insertEvents, columns(events))).rows
    } catch (error) {
      if (errorCode(error) === '23505') {
        const detail = (error as { detail?: string }).detail ?? ''
        throw new IntegrityError(`An event version is already recorded in ${this.#table}: ${detail}`, {
          cause: error,
        })
      }
      throw error
    }
    // Matched by key rather than trusting the order of RETURNING, which
    // PostgreSQL does not promise.
    const ids = new Map(rows.map((row) => [`${row.originator_version}\0${row.originator_id}`, row.notification_id]))
    return events.map((event) => ids.get(`${event.originatorVersion}\0${event.originatorId}`)!)
  }

  async #track(run: Run, { applicationName, notificationId }: Tracking): Promise<void> {
    const result = await run(this.#tracking.insertTracking, [applicationName, notificationId])
    if (result.rowCount === 0) {
      throw new IntegrityError(
        `Tracking id ${notificationId} of ${applicationName} is not greater than the last one recorded, or not positive`,
      )
    }
  }
}

/** Returns the parameters of a multi-row insert: originator ids, versions, topics, the states joined, and their lengths. */
export function columns(events: readonly StoredEvent[]): unknown[] {
  return [
    events.map((e) => e.originatorId),
    events.map((e) => e.originatorVersion),
    events.map((e) => e.topic),
    Buffer.concat(events.map((e) => e.state)),
    events.map((e) => e.state.byteLength),
  ]
}
