import { CommitSignal, followLog, type PagedSubscription, waitForTracking } from '../persistence/commit-signal.js'
import { type DcbRecorders, dcbTables } from '../persistence/dcb.js'
import { TrackingConflictError, VersionConflictError } from '../persistence/errors.js'
import { applicationTables, validApplicationName } from '../persistence/identifiers.js'
import type {
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
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'
import { MemoryDcbRecorder } from './memory-dcb-recorder.js'
import { byCodePoint, trackingRecords } from './memory-tracking.js'

// Every write to a memory recorder signals its commit, so polling is only a safety net.
const POLL_MS = 1_000

/**
 * A process recorder that keeps events, the notification log and tracking
 * records in memory, for tests and quick starts; it also serves as the
 * snapshot recorder. It keeps every rule of the recorder contracts: a batch is
 * checked whole before anything is written, so it is recorded atomically, and
 * its writes are synchronous, so concurrent batches never interleave.
 *
 * It copies the records it is given and returns copies, so callers may change
 * those objects; the state bytes it shares, as the contract allows (see
 * {@link StoredEvent.state}), because copying them would cost more than the rest
 * of an insert or a read.
 */
export class MemoryRecorder implements ProcessRecorder {
  readonly #commits = new CommitSignal()
  /** Each originator's events, in version order. */
  readonly #aggregates = new Map<string, Notification[]>()
  /** The log, in id order; deleted events leave gaps. */
  #log: Notification[] = []
  /** The last id given, which deletes never lower, so ids are never reused. */
  #lastId = 0
  readonly #tracking = new Map<string, number>()

  /**
   * Makes an empty recorder.
   *
   * @param tables The names that its conflict errors give as `table`: those
   * that the database backends would give the application's tables.
   */
  constructor(
    private readonly tables: { readonly events: string; readonly tracking: string } = {
      events: 'events',
      tracking: 'tracking',
    },
  ) {}

  /**
   * Records a batch of events and, when given, tracking records (each checked
   * against those before it) atomically, and returns the events' notification
   * ids in input order.
   *
   * @throws VersionConflictError on a duplicate event version, TrackingConflictError
   * on a tracking id that is not newer; nothing is written then.
   */
  async insertEvents(
    events: readonly StoredEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<number[]> {
    const tracking = [options?.tracking ?? []].flat()
    this.#check(events, tracking)
    const ids = new Array<number>(events.length)
    let originatorId: string | undefined
    let aggregate: Notification[] = []
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      // A copy, so that the caller changing its objects later cannot change what was recorded.
      const notification: Notification = {
        id: ++this.#lastId,
        originatorId: event.originatorId,
        originatorVersion: event.originatorVersion,
        topic: event.topic,
        state: event.state,
      }
      if (notification.originatorId !== originatorId) {
        originatorId = notification.originatorId
        let found = this.#aggregates.get(originatorId)
        if (found === undefined) {
          found = []
          this.#aggregates.set(originatorId, found)
        }
        aggregate = found
      }
      const last = aggregate[aggregate.length - 1]
      if (last === undefined || last.originatorVersion < notification.originatorVersion) aggregate.push(notification)
      else aggregate.splice(bisect(aggregate, 'originatorVersion', notification.originatorVersion), 0, notification)
      this.#log.push(notification)
      ids[i] = notification.id
    }
    for (const { applicationName, notificationId } of tracking) this.#tracking.set(applicationName, notificationId)
    if (events.length > 0 || tracking.length > 0) this.#commits.notify()
    return ids
  }

  /** Returns the events of one originator in version order (or reversed with `desc`); empty when none. */
  async selectEvents(originatorId: string, options: SelectEventsOptions = {}): Promise<StoredEvent[]> {
    return this.#select(originatorId, options)
  }

  /** Returns the events of several originators, for each query its originator's events after `gt`. */
  async selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]> {
    return queries.map(({ originatorId, gt }) => this.#select(originatorId, { gt }))
  }

  #select(originatorId: string, options: SelectEventsOptions): StoredEvent[] {
    const aggregate = this.#aggregates.get(originatorId)
    if (aggregate === undefined) return []
    const { gt, lte, desc = false, limit = Number.POSITIVE_INFINITY } = options
    const from = gt === undefined ? 0 : bisect(aggregate, 'originatorVersion', gt)
    const to = lte === undefined ? aggregate.length : bisect(aggregate, 'originatorVersion', lte)
    const count = Math.max(0, Math.min(to - from, limit))
    const selected = desc ? aggregate.slice(to - count, to).reverse() : aggregate.slice(from, from + count)
    return selected.map(({ originatorId, originatorVersion, topic, state }) => ({
      originatorId,
      originatorVersion,
      topic,
      state,
    }))
  }

  /** Deletes all events of one originator, leaving a gap in the log, and returns how many there were. */
  async deleteEvents(originatorId: string): Promise<number> {
    const aggregate = this.#aggregates.get(originatorId)
    if (aggregate === undefined) return 0
    this.#aggregates.delete(originatorId)
    this.#log = this.#log.filter((notification) => notification.originatorId !== originatorId)
    return aggregate.length
  }

  /** Returns notifications in increasing id order, filtered as the options say; empty when none. */
  async selectNotifications(options: SelectNotificationsOptions): Promise<Notification[]> {
    const { start, inclusiveOfStart = true, limit, stop = Number.POSITIVE_INFINITY, topics, originatorId } = options
    // An originator's events are in version order, which is not always id order: sorted here.
    const log =
      originatorId === undefined
        ? this.#log
        : [...(this.#aggregates.get(originatorId) ?? [])].sort((a, b) => a.id - b.id)
    const wanted = topics !== undefined && topics.length > 0 ? new Set(topics) : undefined
    const selected: Notification[] = []
    let i = start === undefined ? 0 : bisect(log, 'id', start, inclusiveOfStart)
    for (; i < log.length && selected.length < limit; i++) {
      const notification = log[i]!
      if (notification.id > stop) break
      if (wanted === undefined || wanted.has(notification.topic)) selected.push(notification)
    }
    return selected.map((notification) => ({ ...notification }))
  }

  /** Returns the highest notification id given, or 0 when the log is empty. */
  async maxNotificationId(): Promise<number> {
    return this.lastId
  }

  /** The highest notification id in the log, or 0 when it is empty. */
  get lastId(): number {
    return this.#log[this.#log.length - 1]?.id ?? 0
  }

  /**
   * Yields the notifications recorded after `gt`, then new ones as they are
   * recorded, until the signal aborts; `pages()` yields them a query's page at a time.
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    return followLog(this, this.#commits, { ...options, pollMs: POLL_MS })
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
    return this.#tracking.get(applicationName) ?? 0
  }

  /** Returns every tracking record, ordered by the upstream application's name; empty when none. */
  async selectTracking(): Promise<Tracking[]> {
    return trackingRecords(this.#tracking)
  }

  /** Returns true if the id is at most the highest tracked id of the application, or is undefined. */
  async hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean> {
    return notificationId === undefined || notificationId <= (this.#tracking.get(applicationName) ?? 0)
  }

  /** The number of events in the log (deleted events are not counted). */
  get size(): number {
    return this.#log.length
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
    await waitForTracking(this, this.#commits, applicationName, notificationId, options, POLL_MS)
  }

  /** Throws if the batch cannot be recorded whole; it must not write anything. */
  #check(events: readonly StoredEvent[], tracking: readonly Tracking[]): void {
    const tracked = new Map<string, number>()
    for (const { applicationName, notificationId } of tracking) {
      const last = tracked.get(applicationName) ?? this.#tracking.get(applicationName) ?? 0
      if (!(notificationId > last)) {
        throw new TrackingConflictError({ applicationName, notificationId, table: this.tables.tracking })
      }
      tracked.set(applicationName, notificationId)
    }
    // Batches usually append versions in order, so a version above the highest
    // seen for its originator is new without a search.
    const highest = new Map<string, number>()
    let originatorId: string | undefined
    let aggregate: Notification[] | undefined
    let high = 0
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      const originatorVersion = event.originatorVersion
      if (event.originatorId !== originatorId) {
        if (originatorId !== undefined) highest.set(originatorId, high)
        originatorId = event.originatorId
        aggregate = this.#aggregates.get(originatorId)
        high = highest.get(originatorId) ?? aggregate?.[aggregate.length - 1]?.originatorVersion ?? 0
      }
      if (originatorVersion > high) {
        high = originatorVersion
        continue
      }
      const recorded =
        aggregate !== undefined &&
        aggregate[bisect(aggregate, 'originatorVersion', originatorVersion) - 1]?.originatorVersion ===
          originatorVersion
      const repeated = events.some(
        (other, j) => j < i && other.originatorId === originatorId && other.originatorVersion === originatorVersion,
      )
      if (recorded || repeated) {
        throw new VersionConflictError({
          originatorId: event.originatorId,
          originatorVersion,
          table: this.tables.events,
        })
      }
    }
  }
}

/**
 * Returns the index of the first item whose `key` is greater than `value`
 * (or greater than or equal, when `orEqual`), in a list sorted by `key`.
 */
function bisect(list: readonly Notification[], key: 'id' | 'originatorVersion', value: number, orEqual = false) {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    const found = list[middle]![key]
    if (found > value || (orEqual && found === value)) high = middle
    else low = middle + 1
  }
  return low
}

/**
 * Returns the in-memory backend: the default for tests and quick starts.
 * Opening the same application name again on the same backend gives recorders
 * on the same storage, as a second connection to a database would; storage
 * lives as long as the backend object and is never written anywhere.
 *
 * It takes only the application names that the database backends take (see
 * `validApplicationName`), so that a name used in tests does not fail later
 * on SQLite or PostgreSQL.
 *
 * @example
 * ```ts
 * const app = new DogSchool({ persistence: memory() })
 * ```
 */
export function memory(): Persistence {
  const applications = new Map<string, { events: MemoryRecorder; snapshots: MemoryRecorder }>()
  const dcbs = new Map<string, MemoryDcbRecorder>()
  return {
    name: 'memory',
    checkName: validApplicationName,
    async open(applicationName: string): Promise<Recorders> {
      let stored = applications.get(applicationName)
      if (stored === undefined) {
        const { events, snapshots, tracking } = applicationTables(applicationName)
        stored = {
          events: new MemoryRecorder({ events, tracking }),
          snapshots: new MemoryRecorder({ events: snapshots, tracking }),
        }
        applications.set(applicationName, stored)
      }
      const close = async () => {}
      return { ...stored, close, [Symbol.asyncDispose]: close }
    },
    async openDcb(applicationName: string): Promise<DcbRecorders> {
      let events = dcbs.get(applicationName)
      if (events === undefined) {
        events = new MemoryDcbRecorder(dcbTables(applicationName))
        dcbs.set(applicationName, events)
      }
      const close = async () => {}
      return { events, close, [Symbol.asyncDispose]: close }
    },
    async listApplications(): Promise<StoredApplication[]> {
      const listed = [...applications].map(([name, { events }]) => ({
        name: name.toLowerCase(),
        events: events.size,
        maxNotificationId: events.lastId,
      }))
      return listed.sort((a, b) => byCodePoint(a.name, b.name))
    },
  }
}
