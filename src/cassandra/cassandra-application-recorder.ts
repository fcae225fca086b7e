import { CommitSignal, followLog, type PagedSubscription, waitForTracking } from '../persistence/commit-signal.js'
import { IntegrityError, type OperationalError, ProgrammingError, VersionConflictError } from '../persistence/errors.js'
import type {
  EventsQuery,
  ProcessRecorder,
  SelectEventsOptions,
  SelectNotificationsOptions,
  SubscribeOptions,
  WaitForTrackingOptions,
} from '../persistence/recorder.js'
import { retryingFor } from '../persistence/retrying.js'
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'
import {
  bucketEnd,
  bucketOf,
  type LogContext,
  LogWriter,
  logCql,
  long,
  openBucket,
  SaveStatuses,
} from './cassandra-log.js'
import { createEventTables } from './cassandra-recorder.js'
import {
  CommitOrder,
  mark,
  type Placed,
  readTracking,
  whyAborted,
  writeIntents,
  writeTracking,
} from './cassandra-save.js'
import {
  BUCKET,
  type CassandraTables,
  cassandraTables,
  createApplicationTableCql,
  createKeyspaceCql,
  createSchema,
} from './cassandra-schema.js'
import { type CassandraSession, numberOf } from './cassandra-session.js'

const MAX_INT = 2_147_483_647
// How often a save is tried when another aborts it and no clash explains why.
const SAVE_ATTEMPTS = 3
// The most rows a read of the log asks for at once.
const PAGE = 1000

/** How long a subscription's reads may keep failing (a lost node, a cluster restart) before it ends with their error. */
export const SUBSCRIPTION_RETRY_MS = 60_000

/**
 * Creates the session's keyspace and the tables of an application (events,
 * log, tracking, snapshots) when they are missing, unless the settings say
 * not to, serialised as `createSchema` explains.
 *
 * @throws ProgrammingError for an application name Cassandra cannot take (see {@link cassandraTables}).
 */
export async function createApplicationTables(session: CassandraSession, applicationName: string): Promise<void> {
  const tables = cassandraTables(applicationName)
  const { keyspace, replication, createTables } = session.settings
  if (!createTables) return
  await createSchema(session, [
    createKeyspaceCql(keyspace, replication),
    ...createApplicationTableCql(keyspace, tables),
  ])
  await createEventTables(session, [tables.snapshots])
}

/**
 * Records an application's events, notification log and tracking records in
 * Cassandra (the snapshots are a CassandraAggregateRecorder of
 * `<name>_snapshots`, with `splitByAggregate`). Conditional batches are atomic
 * within one partition only, and a save touches several: the log's bucket,
 * one partition per aggregate, and the tracking partition. A save is made
 * atomic by one row that decides it, its status in the log.
 *
 * The write protocol (insertEvents):
 * 1. Claim: the recorder's {@link LogWriter} moves the head of the log's
 *    current bucket by a compare-and-set, inserting in the same conditional
 *    batch every row of the saves it takes (all waiting saves that fit: group
 *    commit), each save's first row (its position) with status 'pending'.
 * 2. Intents, each save on its own and in parallel: its events in their
 *    aggregates' partitions (one conditional batch each, with the position and
 *    save_position), and its tracking claims in the tracking partition.
 * 3. Commit: the writer sets the status 'committed' (or 'aborted' after a
 *    clash) `IF status = 'pending'`, in its next batch on the bucket (with the
 *    claims of that batch: the writer has one batch at a time in flight, so its
 *    own Paxos rounds never contend on the hot partition).
 * 4. Marks: the rows of a committed save are marked committed, to spare
 *    readers the status read. Then the save's promise resolves.
 *
 * A reader that meets a row that is not marked resolves its save's status: a
 * pending one is waited for, and aborted once `abandonAfterMs` has passed since
 * its claim (a crashed writer), by the same conditional write on the status.
 * A save that meets another's pending row (or tracking claim) resolves it by
 * age, the position being the age (wound-wait, see writeIntents): it waits for
 * an older save, and aborts a younger one and takes its row. A save commits
 * only after the older saves of its process that share an aggregate or
 * upstream with it are decided, so clashing saves of one process end as if
 * written one at a time in call order. A save aborted by another that no clash
 * explains (a reader, or an older save whose tracking id is lower) is saved
 * again, up to three times.
 *
 * Why it holds:
 * - Atomicity: every read path (the log, an aggregate, tracking) shows a row
 *   of a save iff the save's status is 'committed' (a mark is written only
 *   after the status, and conditioned on the row being still that save's). The
 *   status changes once, from 'pending', by Paxos on its partition: a
 *   writer's commit and a reader's abort race, and exactly one applies. A
 *   rejected save is aborted before its promise rejects, and its rows stay,
 *   never shown; a later save replaces them (conditioned on their save).
 * - No reader skips a committed event: ids are claimed only by the head's
 *   compare-and-set, in the batch that inserts their rows, so a serial read of
 *   a bucket sees every row up to its head, and no row can appear below the
 *   head later. Buckets fill in order: a reader goes on to the next bucket
 *   only once the head of this one is its end. A reader returns nothing at or
 *   after a row whose save is pending before resolving it, and a resolved
 *   status is final: what it returned stays the log's prefix.
 * - Exactly-once tracking: a claim counts only once its save is committed
 *   (resolved like any row), and a claim is made only over the effective id,
 *   by a compare-and-set on the claim that was read (the row holds one claim),
 *   so of two saves of the same upstream id, the second to claim finds the
 *   first's claim, and either waits for its status (then fails with a
 *   TrackingConflictError if it committed) or aborts it first. An aborted
 *   save's claim is ignored.
 * - Durability: a save resolves only after its status was committed by Paxos
 *   at the settings' serial consistency, with the commit at their quorum
 *   consistency, as were its intents before it.
 * - A write whose answer is lost is settled by a serial read (its save id or
 *   its claim position says whether it applied), never repeated blindly.
 * - No guarantee rests on time or clocks: `abandonAfterMs` (measured from the
 *   claim time written by the writer's clock, so clock skew shortens or
 *   lengthens it) only decides when a reader stops waiting and races the
 *   writer's commit, which Paxos settles. Waits go from younger saves to older
 *   ones only, so they end without `abandonAfterMs` unless a writer died.
 *
 * Costs: a save is three Paxos rounds in sequence (claim, intents, commit)
 * plus the marks; the claim and the commit are shared by all saves of the
 * process that are in flight at once.
 */
export class CassandraProcessRecorder implements ProcessRecorder {
  readonly #context: LogContext
  readonly #writer: LogWriter
  readonly #commits: CommitSignal
  readonly #tables: CassandraTables
  readonly #order = new CommitOrder()
  #lastBucket = 0

  /**
   * Makes the recorder of an application's tables (see {@link createApplicationTables}).
   *
   * @param options.commits The signal notified after each commit here, which
   * wakes subscriptions and waits at once (share one between recorders of the
   * same application in a process); others are seen by polling.
   */
  constructor(
    readonly session: CassandraSession,
    applicationName: string,
    options: { readonly commits?: CommitSignal } = {},
  ) {
    this.#tables = cassandraTables(applicationName)
    const cql = logCql(session.settings.keyspace, this.#tables)
    const statuses = new SaveStatuses(session, cql, session.settings.abandonAfterMs)
    this.#context = { session, cql, tables: this.#tables, statuses }
    this.#writer = new LogWriter(this.#context)
    this.#commits = options.commits ?? new CommitSignal()
  }

  /** The context of the log's functions, for tests that run the steps of a save one by one. */
  get context(): LogContext {
    return this.#context
  }

  /** The writer of the log, for tests that run the steps of a save one by one. */
  get writer(): LogWriter {
    return this.#writer
  }

  /**
   * Records a batch of events and, when given, tracking records, atomically,
   * and returns the events' notification ids in input order.
   *
   * @throws VersionConflictError on a recorded or repeated version; TrackingConflictError
   * on a tracking id that is not newer; nothing is recorded then.
   * @throws ProgrammingError for a batch of more than {@link BUCKET} events.
   * @throws OperationalError if the save took longer than `abandonAfterMs` and a
   * reader abandoned it (nothing is recorded), or the cluster failed.
   */
  async insertEvents(
    events: readonly StoredEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<number[]> {
    const tracking = [options?.tracking ?? []].flat()
    this.#check(events)
    if (events.length === 0) {
      if (tracking.length > 0) {
        await writeTracking(this.#context, tracking)
        this.#commits.notify()
      }
      return []
    }
    // A save aborted by another with no clash to explain it is saved again (nothing of it was recorded).
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(events, tracking)
      if (Array.isArray(outcome)) return outcome
      if (attempt === SAVE_ATTEMPTS) throw outcome
    }
  }

  // One attempt at a save: its ids; or, when another aborted it and no clash explains why (an older save that took
  // its tracking claim, though with ids below its own; or a reader after abandonAfterMs), the error to throw if it
  // was the last attempt.
  async #attempt(events: readonly StoredEvent[], tracking: readonly Tracking[]): Promise<number[] | OperationalError> {
    const saveId = this.session.driver.types.Uuid.random()
    const position = await this.#writer.claim(events, saveId)
    const save = { saveId, position }
    const byAggregate = new Map<string, Placed[]>()
    events.forEach((event, i) => {
      const placed = { event, id: position + i }
      const group = byAggregate.get(event.originatorId)
      if (group === undefined) byAggregate.set(event.originatorId, [placed])
      else group.push(placed)
    })
    const keys = [...byAggregate.keys()].map((id) => `e${id}`).concat(tracking.map((t) => `t${t.applicationName}`))
    this.#order.enter(position, keys)
    let applied: boolean
    try {
      const intents = await Promise.allSettled([
        ...[...byAggregate.values()].map((placed) => writeIntents(this.#context, placed, save)),
        ...(tracking.length > 0 ? [writeTracking(this.#context, tracking, save)] : []),
      ])
      const failed = intents.find((outcome) => outcome.status === 'rejected')
      if (failed !== undefined) {
        await this.#writer.decide(position, 'aborted')
        throw failed.reason
      }
      await this.#order.turn(position, keys)
      applied = await this.#writer.decide(position, 'committed')
    } finally {
      this.#order.leave(position)
    }
    if (!applied) {
      const why = await whyAborted(this.#context, [...byAggregate.values()], tracking, save)
      if (why instanceof IntegrityError) throw why
      return why
    }
    // The save is committed and durable; a mark that fails costs readers a status read, nothing more.
    await mark(this.#context, [...byAggregate.values()], tracking, save).catch(() => {})
    this.#commits.notify()
    return events.map((_, i) => position + i)
  }

  #check(events: readonly StoredEvent[]): void {
    if (events.length > BUCKET) {
      throw new ProgrammingError(
        `A save to Cassandra holds at most ${BUCKET} events (one bucket of the log), got ${events.length}: save them in parts`,
      )
    }
    const seen = new Set<string>()
    for (const { originatorId, originatorVersion } of events) {
      const key = JSON.stringify([originatorId, originatorVersion])
      if (seen.has(key)) {
        throw new VersionConflictError({ originatorId, originatorVersion, table: this.#tables.events })
      }
      seen.add(key)
    }
  }

  /**
   * Returns notifications in increasing id order, filtered as the options say;
   * empty when none. Reads the log at serial consistency, and waits for (or,
   * after `abandonAfterMs`, aborts) a pending save before returning anything after it.
   */
  async selectNotifications(options: SelectNotificationsOptions): Promise<Notification[]> {
    const { start, inclusiveOfStart = true, stop, topics, limit, originatorId } = options
    const wanted = topics && topics.length > 0 ? new Set(topics) : undefined
    let from = Math.max(1, start === undefined ? 1 : inclusiveOfStart ? Math.ceil(start) : Math.floor(start) + 1)
    const to = stop ?? Number.MAX_SAFE_INTEGER
    if (originatorId !== undefined) return this.#selectOriginator(originatorId, from, to, limit, wanted)
    const selected: Notification[] = []
    while (from <= to && selected.length < limit) {
      const bucket = bucketOf(from)
      const upTo = Math.min(to, bucketEnd(bucket))
      const page = wanted === undefined ? Math.min(PAGE, limit - selected.length) : PAGE
      const rows = await this.session.readSerial(this.#context.cql.range, [
        long(this.session, bucket),
        long(this.session, from),
        long(this.session, upTo),
        page,
      ])
      for (const row of rows) {
        if (!(await this.#committed(row))) continue
        const notification = toNotification(row)
        if (notification === undefined || (wanted !== undefined && !wanted.has(notification.topic))) continue
        selected.push(notification)
        if (selected.length >= limit) return selected
      }
      if (rows.length === page) {
        from = numberOf(rows.at(-1)!, 'id')! + 1
        continue
      }
      // This bucket is read to upTo; go on only if it is closed, so that no later claim can land in it.
      if (upTo !== bucketEnd(bucket)) break
      const head = rows.length > 0 ? numberOf(rows[0]!, 'head') : await this.#head(bucket)
      if (head !== bucketEnd(bucket)) break
      from = bucketEnd(bucket) + 1
    }
    return selected
  }

  /**
   * The notifications of one originator, read from its partition of the
   * events table (each row has its id) and sorted by id. An aggregate writes
   * its versions in order, each after reading the one before, so a save of
   * it with a lower id than a committed one is committed before that one was
   * claimed: a follower of one aggregate skips nothing (unlike the log, this
   * does not hold for versions written out of order, with gaps filled later).
   */
  async #selectOriginator(
    originatorId: string,
    from: number,
    to: number,
    limit: number,
    wanted: ReadonlySet<string> | undefined,
  ): Promise<Notification[]> {
    if (limit <= 0) return []
    const rows = await this.session.read(this.#context.cql.byOriginator, [originatorId])
    const selected: Notification[] = []
    for (const row of rows) {
      const id = numberOf(row, 'position')!
      if (id < from || id > to || (wanted !== undefined && !wanted.has(row.get('topic') as string))) continue
      if (row.get('committed') !== true) {
        if ((await this.#context.statuses.resolve(numberOf(row, 'save_position')!)) !== 'committed') continue
      }
      selected.push({ id, ...toEvent(row) })
    }
    return selected.sort((a, b) => a.id - b.id).slice(0, limit)
  }

  // Whether a log row's save is committed, resolving its status.
  async #committed(row: Row): Promise<boolean> {
    const position = numberOf(row, 'save_position')!
    const status = row.get('status') as string | null
    const seen = status === null ? undefined : { status, claimedAt: row.get('claimed_at') as Date | null }
    return (await this.#context.statuses.resolve(position, seen)) === 'committed'
  }

  async #head(bucket: number): Promise<number | undefined> {
    const [row] = await this.session.readSerial(this.#context.cql.head, [long(this.session, bucket)])
    return row === undefined ? undefined : numberOf(row, 'head')
  }

  /**
   * Returns the highest notification id recorded (of a committed save, and not
   * deleted), or 0 when the log is empty; a pending save at the log's end is
   * resolved first.
   */
  async maxNotificationId(): Promise<number> {
    const open = await openBucket(this.#context, this.#lastBucket)
    this.#lastBucket = open.bucket
    let bucket = open.bucket
    let top = open.head ?? bucket * BUCKET
    while (bucket >= 0) {
      const rows =
        top > bucket * BUCKET
          ? await this.session.readSerial(this.#context.cql.tail, [
              long(this.session, bucket),
              long(this.session, top),
              PAGE,
            ])
          : []
      for (const row of rows) {
        if (row.get('originator_id') !== null && (await this.#committed(row))) return numberOf(row, 'id')!
      }
      if (rows.length === PAGE) top = numberOf(rows.at(-1)!, 'id')! - 1
      else {
        bucket--
        top = bucketEnd(bucket)
      }
    }
    return 0
  }

  /**
   * Yields the notifications recorded after `gt`, then new ones as they are
   * recorded, until the signal aborts: it reads the log again after each
   * commit of this recorder (or of those sharing its commit signal), and every
   * `pollIntervalMs` (default 100 ms) for the commits of other processes, which
   * it sees within about that interval.
   *
   * It outlasts a lost node or a cluster restart: a read that fails with
   * OperationalError is made again, with pauses, from the same position, so
   * nothing is lost or repeated.
   *
   * @throws OperationalError naming the cluster when its reads have failed
   * continuously for {@link SUBSCRIPTION_RETRY_MS}.
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    const { signal } = options
    const source = {
      selectNotifications: async (select: SelectNotificationsOptions) =>
        (await retryingFor(() => this.selectNotifications(select), {
          forMs: SUBSCRIPTION_RETRY_MS,
          where: this.session.where,
          signal,
        })) ?? [],
    }
    return followLog(source, this.#commits, { ...options, pollMs: this.session.settings.pollIntervalMs })
  }

  /**
   * Returns the events of one originator in version order (or reversed with
   * `desc`); empty when none. Reads the partition at quorum consistency, and
   * resolves the status of rows not marked committed.
   */
  async selectEvents(originatorId: string, options: SelectEventsOptions = {}): Promise<StoredEvent[]> {
    const { desc, limit } = options
    if (limit === 0) return []
    let gt = options.gt ?? Number.MIN_SAFE_INTEGER
    let lte = options.lte ?? Number.MAX_SAFE_INTEGER
    const selected: StoredEvent[] = []
    for (;;) {
      const ask = Math.min((limit ?? MAX_INT) - selected.length, MAX_INT)
      const rows = await this.session.read(desc ? this.#context.cql.selectDesc : this.#context.cql.select, [
        originatorId,
        long(this.session, gt),
        long(this.session, lte),
        ask,
      ])
      for (const row of rows) {
        const committed =
          row.get('committed') === true ||
          (await this.#context.statuses.resolve(numberOf(row, 'save_position')!)) === 'committed'
        if (committed) selected.push(toEvent(row))
      }
      if (rows.length < ask || limit === undefined || selected.length >= limit) return selected
      // Some rows were of aborted saves: read on past them.
      const last = numberOf(rows.at(-1)!, 'originator_version')!
      if (desc) lte = last - 1
      else gt = last
    }
  }

  /** Returns, for each query in order, the events of its originator after its `gt` (one partition read each, at once). */
  async selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]> {
    return Promise.all(queries.map(({ originatorId, gt }) => this.selectEvents(originatorId, { gt })))
  }

  /**
   * Deletes all events of one originator: their rows in the log keep their
   * ids and statuses but lose their events (readers see a gap), then their
   * rows in the aggregate's partition are deleted. Idempotent: if interrupted,
   * run it again.
   *
   * @returns the number of events deleted.
   */
  async deleteEvents(originatorId: string): Promise<number> {
    const { session, cql, statuses } = this.#context
    for (;;) {
      const rows = await session.readSerial(cql.aggregate, [originatorId])
      if (rows.length === 0) return 0
      let deleted = 0
      const clears = new Map<number, { query: string; params: unknown[] }[]>()
      for (const row of rows) {
        const position = numberOf(row, 'save_position')!
        const committed = row.get('committed') === true || (await statuses.resolve(position)) === 'committed'
        if (!committed) continue
        deleted++
        const id = numberOf(row, 'position')!
        const statement = {
          query: cql.clear,
          params: [long(session, bucketOf(id)), long(session, id), long(session, position)],
        }
        clears.set(bucketOf(id), [...(clears.get(bucketOf(id)) ?? []), statement])
      }
      await Promise.all([...clears.values()].map((statements) => this.#conditional(statements)))
      const deletes = rows.map((row) => ({
        query: cql.deleteIntent,
        params: [originatorId, row.get('originator_version'), row.get('save_position')],
      }))
      if (await this.#conditional(deletes)) return deleted
    }
  }

  // A conditional batch whose unknown outcome is left to the caller's next serial read: false then.
  async #conditional(statements: readonly { query: string; params: readonly unknown[] }[]): Promise<boolean> {
    try {
      return (await this.session.conditional(statements)).applied
    } catch (error) {
      if (!this.session.outcomeUnknown(error)) throw this.session.error(error, 'write to')
      return false
    }
  }

  /**
   * Records that a notification of an upstream application was processed.
   *
   * @throws TrackingConflictError if the id is not greater than the last one recorded for that application.
   */
  async insertTracking(tracking: Tracking): Promise<void> {
    await this.insertEvents([], { tracking })
  }

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  async maxTrackingId(applicationName: string): Promise<number> {
    return (await readTracking(this.#context, [applicationName])).get(applicationName)?.effective ?? 0
  }

  /** Returns every tracking record, one per upstream application, ordered by the upstream's name; empty when none. */
  async selectTracking(): Promise<Tracking[]> {
    const tracked = await readTracking(this.#context)
    // In the partition's order: by name, in UTF-8 byte order, which is code point order.
    return [...tracked]
      .filter(([, row]) => row.effective > 0)
      .map(([applicationName, row]) => ({ applicationName, notificationId: row.effective }))
  }

  /** Returns true if the id is at most the highest tracked id of the application, or is undefined. */
  async hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean> {
    return notificationId === undefined || notificationId <= (await this.maxTrackingId(applicationName))
  }

  /**
   * Resolves once the notification was processed: at once after a commit of
   * this recorder, within `pollIntervalMs` after one of another process.
   *
   * @throws WaitTimeoutError naming the application and id when `timeoutMs` (default 10 s) passes first.
   */
  async waitForTracking(
    applicationName: string,
    notificationId: number,
    options: WaitForTrackingOptions = {},
  ): Promise<void> {
    const pollMs = this.session.settings.pollIntervalMs
    await waitForTracking(this, this.#commits, applicationName, notificationId, options, pollMs)
  }
}

type Row = Awaited<ReturnType<CassandraSession['read']>>[number]

// A log row as a notification; undefined when its event was deleted.
function toNotification(row: Row): Notification | undefined {
  if (row.get('originator_id') === null) return undefined
  return { id: numberOf(row, 'id')!, ...toEvent(row) }
}

function toEvent(row: Row): StoredEvent {
  return {
    originatorId: row.get('originator_id') as string,
    originatorVersion: numberOf(row, 'originator_version')!,
    topic: row.get('topic') as string,
    state: new Uint8Array(row.get('state') as Buffer),
  }
}
