import { setTimeout as delay } from 'node:timers/promises'
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
import { ProgrammingError, TrackingConflictError } from '../persistence/errors.js'
import type { WaitForTrackingOptions } from '../persistence/recorder.js'
import { anySignal } from '../persistence/signals.js'
import type { Tracking } from '../persistence/stored-event.js'
import {
  appendSql,
  beginLockedSql,
  conflictSql,
  dcbBarrierSql,
  dcbLockKey,
  dcbStoreKey,
  readSql,
} from './postgres-dcb-schema.js'
import { driverError, type PostgresPool, type Run } from './postgres-pool.js'
import { type TrackingSql, trackingSql } from './postgres-schema.js'

// How a read waits for a gap below a matching event (as the notification log
// does): quick looks, then the store's lock, waited for FIRST_BARRIER_MS,
// then twice as long each time that runs out.
const QUICK_LOOKS = 4
const FIRST_BARRIER_MS = 50
// A gap that a read finds again this long after it first found it is passed
// with the store's lock even when nothing the read matches lies above it, so
// that a gap no commit will fill (a failed append) does not hold heads back.
const STALE_GAP_MS = 100
// An append that would take more locks than this takes the store's lock in
// exclusive mode instead, which covers every key (the lock table is bounded).
const MAX_KEYS = 64

/** A row of the read statement: the settled head, the flags, and an event, or nulls when none matched. */
interface ReadRow {
  readonly head: number
  readonly gap: boolean
  readonly pending: boolean
  readonly position: number | null
  readonly type: string
  readonly data: Uint8Array
  readonly metadata: Uint8Array | null
  readonly tags: string[]
}

/**
 * A DCB recorder on PostgreSQL tables (see `createDcbTablesSql`): the events
 * with positions from an identity column, types and tags (a GIN index), and
 * the application's tracking table.
 *
 * **Why an append's condition holds under any concurrency.** Every append
 * with events runs in one READ COMMITTED transaction that first takes
 * transaction-scoped advisory locks, in increasing key order (so two appends
 * never wait for each other in a cycle: no deadlock), before it draws any
 * position, and holds them until it ends:
 *
 * - as a writer, in shared mode: the key of each tag and of each type of its
 *   events, and the store's key;
 * - as a checker, in exclusive mode (a key in both lists is taken once,
 *   exclusive): for each item of the condition's query, the keys of its tags
 *   when it has tags, else of its types when it has types, else the store's
 *   key; the store's key for the empty query; and the store's key alone
 *   when there would be more than 64 keys, since every append holds it.
 *
 * So for any event e that matches the query Q, the writer of e holds, in
 * shared mode, some key that the checker of Q takes in exclusive mode: an
 * event with all of an item's tags has the first of them; an event matching
 * an item of types only has one of those types; every writer holds the
 * store's key. Shared mode does not conflict with itself, so appends that do
 * not check each other's events do not wait for each other.
 *
 * Then, in a later statement (in READ COMMITTED each statement sees every
 * transaction that committed before it began), the append checks the
 * condition and inserts its events, in one statement that inserts nothing
 * when an event matching Q lies after the condition's `after` a. Suppose an
 * append A commits while an event e matching Q, by another transaction W,
 * has a position p with a < p < the first of A's positions. W and A held a
 * common key in conflicting modes, so one ended before the other was
 * granted it. If W first: W committed before A's check began, which then saw
 * e (p > a) and inserted nothing; contradiction. If A first: W drew p after
 * it was granted the key, so after A had committed, and positions are drawn
 * from one sequence in increasing order, so p exceeds all of A's positions;
 * contradiction. Of racers that read one boundary at one head, the first to
 * its locks commits and the others then see its event; racers whose
 * conditions match none of the others' events share their keys and commit.
 *
 * **Why a read's head is settled.** The condition above only covers events
 * after a: the read that gave a must already have returned every matching
 * event at or below it that will ever commit. A position drawn and not yet
 * committed is a gap below a committed one, and a condition "nothing after
 * the head" would miss it. So a read returns as its head the last position
 * before the first gap, as the notification log does (see
 * PostgresProcessRecorder): every position up to it is visible, so none can
 * commit later, and the read returns the matching events up to it, from the
 * same snapshot. A gap is passed only with proof from the database: a reader
 * takes the store's lock in exclusive mode, granted once every append that
 * held it in shared mode (before drawing any position) has ended, reads the
 * sequence's last value R and lets go; every position up to R is then
 * committed and visible, or never will be. When an event that the query
 * matches lies above a gap, the read waits for the gap (a few quick looks,
 * then that lock, up to `settleMs`) so that it misses no committed event of
 * its boundary; otherwise it returns at once with the head below the gap,
 * which is correct, only older; a gap still there `STALE_GAP_MS` later is
 * passed with the lock. Never because time has passed.
 */
export class PostgresDcbRecorder implements DcbRecorder {
  readonly #tracking: TrackingSql
  readonly #storeKey: bigint
  // Every position up to this one is resolved: visible if committed, and never otherwise.
  #resolved = 0
  #gap: { readonly at: number; readonly since: number } | undefined

  /**
   * Makes the recorder of an application's DCB tables.
   *
   * @param options.commits The signal notified after each append, by this process or (through `listen`) by others.
   * @param options.announce Wakes the subscribers of other processes after an append (NOTIFY).
   * @param options.listen Starts listening for the appends of other connections.
   * @param options.pollMs How often subscribers and waiters look for appends they were not woken for.
   * @param options.settleMs How long a read waits for a gap below an event it matches.
   * @param options.closing Aborted when the recorder is closed.
   */
  constructor(
    private readonly pool: PostgresPool,
    private readonly schema: string | undefined,
    private readonly tables: DcbTables,
    private readonly options: {
      readonly commits: CommitSignal
      readonly announce: () => void
      readonly listen: () => Promise<void>
      readonly pollMs: number
      readonly settleMs: number
      readonly closing: AbortSignal
    },
  ) {
    this.#tracking = trackingSql(schema, tables.tracking)
    this.#storeKey = dcbStoreKey(schema, tables.events)
  }

  /**
   * Returns the matching events after `after`, at most `limit`, with the
   * settled head the read is complete up to (see above).
   */
  async read(query?: DcbQuery, options?: DcbReadOptions): Promise<DcbReadResult> {
    const checked = checkDcbQuery(query)
    const { after, limit } = checkReadOptions(options)
    return this.#read(checked, after, limit, false)
  }

  /**
   * Returns the position of the last event recorded, or 0 when the store is
   * empty: settled, so a position at or below it never commits later (when
   * an append is still committing below the last one, this waits for it, up
   * to `settleMs`, and returns the position before it if that runs out).
   */
  async head(): Promise<number> {
    return (await this.#read([], Number.MAX_SAFE_INTEGER, 1, true)).head
  }

  /**
   * Records the events and tracking records in one transaction if the
   * condition holds, and returns the position of the last event (the head,
   * for an empty batch).
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
    const check =
      condition === undefined
        ? undefined
        : {
            query: checkDcbQuery(condition.failIfEventsMatch),
            after: checkPosition(condition.after, 'The condition’s after'),
          }
    this.#assertOpen()
    const conflict = () =>
      new DcbConflictError({ query: condition!.failIfEventsMatch, after: condition!.after, table: this.tables.events })
    if (checked.length === 0) {
      // Nothing is written but tracking: the check is a read, and the head a settled one.
      if (check !== undefined) {
        const { text, values } = conflictSql(this.schema, this.tables, check.query, check.after)
        if ((await this.pool.query<{ found: boolean }>(text, values)).rows[0]?.found) throw conflict()
      }
      if (tracking.length > 0) {
        await this.pool.transaction('BEGIN', async (run) => {
          for (const record of tracking) await this.#track(run, record)
        })
        this.#committed()
      }
      return this.head()
    }
    const { keys, exclusive } = this.#locks(checked, check?.query)
    const statement = appendSql(this.schema, this.tables, checked, check)
    const last = await this.pool.transaction(beginLockedSql(keys, exclusive), async (run) => {
      for (const record of tracking) await this.#track(run, record)
      const row = (await run<{ conflict: boolean; last: number }>(statement.text, statement.values)).rows[0]!
      if (row.conflict) throw conflict()
      return row.last
    })
    this.#committed()
    return last
  }

  /** Wakes the subscribers and waiters of this process at once, and those of others with NOTIFY. */
  #committed(): void {
    this.options.commits.notify()
    this.options.announce()
  }

  /**
   * Yields the matching events after `after`, then new ones as they are
   * appended, until the signal aborts: at once for appends through this
   * backend object, soon after a NOTIFY for those of other processes (sent at
   * most once per `notifyIntervalMs` by each), and within `pollMs` if a NOTIFY
   * is lost. Each read starts at the
   * settled head of the one before, so no event that commits late is skipped.
   */
  subscribe(query?: DcbQuery, options: DcbSubscribeOptions = {}): AsyncIterable<DcbSequencedEvent> {
    const checked = checkDcbQuery(query)
    const after = checkPosition(options.after, 'after')
    return this.#follow(checked, after, options.signal)
  }

  async *#follow(query: DcbQuery, after: number, given: AbortSignal | undefined): AsyncGenerator<DcbSequencedEvent> {
    // Closing the recorder ends its subscriptions. Not AbortSignal.any: on
    // Node 20 the closing signal would keep every subscription's signal while it lives.
    const any = anySignal([given, this.options.closing])
    try {
      if (any.signal.aborted) return
      await this.options.listen()
      const { commits, pollMs } = this.options
      const read = (q: DcbQuery, o: DcbReadOptions) => this.read(q, o)
      yield* followDcb(read, commits, { query, after, signal: any.signal, pollMs })
    } finally {
      any[Symbol.dispose]()
    }
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
    this.#assertOpen()
    const { rows } = await this.pool.query<{ max: number }>(this.#tracking.maxTrackingId, [applicationName])
    return rows[0]?.max ?? 0
  }

  /** Returns every tracking record, ordered by the upstream application's name; empty when none. */
  async selectTracking(): Promise<Tracking[]> {
    this.#assertOpen()
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
    const { commits, pollMs } = this.options
    await this.options.listen()
    await waitForTracking(this, commits, applicationName, notificationId, options, pollMs)
  }

  /** Returns the keys to lock, sorted, and for each whether in exclusive mode (see the class's doc). */
  #locks(events: readonly DcbEvent[], query: DcbQuery | undefined): { keys: bigint[]; exclusive: boolean[] } {
    const modes = new Map<bigint, boolean>([[this.#storeKey, false]])
    const key = (kind: 'tag' | 'type', value: string) => dcbLockKey(this.schema, this.tables.events, kind, value)
    for (const { type, tags } of events) {
      modes.set(key('type', type), false)
      for (const tag of tags) modes.set(key('tag', tag), false)
    }
    if (query !== undefined) {
      if (query.length === 0) modes.set(this.#storeKey, true)
      for (const { types = [], tags = [] } of query) {
        if (tags.length > 0) for (const tag of tags) modes.set(key('tag', tag), true)
        else if (types.length > 0) for (const type of types) modes.set(key('type', type), true)
        else modes.set(this.#storeKey, true)
      }
    }
    if (modes.size > MAX_KEYS) return { keys: [this.#storeKey], exclusive: [true] }
    const sorted = [...modes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return { keys: sorted, exclusive: sorted.map((k) => modes.get(k)!) }
  }

  /**
   * Reads on one snapshot; when a committed event the query matches (any
   * event, with `waitForAny`) lies above a gap, waits for the gap as the
   * class's doc says, up to `settleMs`.
   */
  async #read(query: DcbQuery, after: number, limit: number, waitForAny: boolean): Promise<DcbReadResult> {
    this.#assertOpen()
    const deadline = Date.now() + this.options.settleMs
    let wait = FIRST_BARRIER_MS
    for (let look = 0; ; look++) {
      const page = await this.#readOnce(query, after, limit)
      const blocked = page.gap && (page.pending || waitForAny)
      if (!page.gap || (!blocked && !(await this.#passStaleGap(page.settled)))) return page.result
      if (!blocked) continue
      const left = deadline - Date.now()
      if (look < QUICK_LOOKS && 2 ** look < left / 2) {
        await delay(2 ** look)
        continue
      }
      if (await this.#resolve(Math.min(Math.max(left, FIRST_BARRIER_MS), wait))) continue
      if (Date.now() >= deadline) return page.result
      await delay(Math.min(deadline - Date.now(), wait))
      wait *= 2
    }
  }

  async #readOnce(
    query: DcbQuery,
    after: number,
    limit: number,
  ): Promise<{ result: DcbReadResult; settled: number; gap: boolean; pending: boolean }> {
    // One more than asked, to tell whether the limit cut the result.
    const rowLimit = limit === Number.POSITIVE_INFINITY ? null : limit + 1
    const { text, values } = readSql(this.schema, this.tables, query, this.#resolved, after, rowLimit)
    const { rows } = await this.pool.query<ReadRow>(text, values)
    const { head, gap, pending } = rows[0]!
    this.#resolved = Math.max(this.#resolved, head)
    const events = rows.filter((row) => row.position !== null).map(sequencedEvent)
    return { result: readResult(events, limit, head), settled: head, gap, pending }
  }

  /**
   * Notes the gap after `head`, and passes it with the store's lock when an
   * earlier read found it `STALE_GAP_MS` ago or more.
   *
   * @returns true if it was passed (a read again sees more).
   */
  async #passStaleGap(head: number): Promise<boolean> {
    const now = Date.now()
    if (this.#gap?.at !== head + 1) {
      this.#gap = { at: head + 1, since: now }
      return false
    }
    if (now - this.#gap.since < STALE_GAP_MS) return false
    this.#gap = undefined
    return this.#resolve(FIRST_BARRIER_MS)
  }

  /**
   * Waits up to `timeoutMs` until no append that may draw positions is
   * running, and raises the resolved position (see the class's doc).
   *
   * @returns false if the time ran out first.
   */
  async #resolve(timeoutMs: number): Promise<boolean> {
    try {
      const rows = (await this.pool.script(dcbBarrierSql(this.schema, this.tables.events, timeoutMs))) as {
        resolved: number
      }[]
      this.#resolved = Math.max(this.#resolved, rows[0]?.resolved ?? 0)
      return true
    } catch (error) {
      if (driverError(error)?.code === '55P03') return false
      throw error
    }
  }

  async #track(run: Run, { applicationName, notificationId }: Tracking): Promise<void> {
    const result = await run(this.#tracking.insertTracking, [applicationName, notificationId])
    if (result.rowCount === 0) {
      throw new TrackingConflictError({ applicationName, notificationId, table: this.tables.tracking })
    }
  }

  #assertOpen(): void {
    if (this.options.closing.aborted) {
      throw new ProgrammingError('This PostgreSQL DCB recorder is closed: open it again')
    }
  }
}

/** The DCB recorder of one `openDcb()`. */
export class PostgresDcbRecorders implements DcbRecorders {
  #closed = false

  /** Takes the recorder and the function that releases its connections and commit signal. */
  constructor(
    readonly events: PostgresDcbRecorder,
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

function sequencedEvent(row: ReadRow): DcbSequencedEvent {
  const { position, type, data, metadata, tags } = row
  const event = { position: position!, type, data, tags }
  return metadata === null ? event : { ...event, metadata }
}
