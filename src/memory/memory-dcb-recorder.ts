import { CommitSignal, waitForTracking } from '../persistence/commit-signal.js'
import {
  type DcbAppendCondition,
  type DcbAppendOptions,
  DcbConflictError,
  type DcbEvent,
  type DcbQuery,
  type DcbReadOptions,
  type DcbReadResult,
  type DcbRecorder,
  type DcbSequencedEvent,
  type DcbSubscribeOptions,
} from '../persistence/dcb.js'
import {
  checkDcbEvents,
  checkDcbQuery,
  checkPosition,
  checkReadOptions,
  dcbMatches,
  followDcb,
  readResult,
} from '../persistence/dcb-checks.js'
import { TrackingConflictError } from '../persistence/errors.js'
import type { WaitForTrackingOptions } from '../persistence/recorder.js'
import type { Tracking } from '../persistence/stored-event.js'
import { trackingRecords } from './memory-tracking.js'

// Every write signals its commit, so polling is only a safety net.
const POLL_MS = 1_000

/**
 * A DCB recorder that keeps its events and tracking records in memory, for
 * tests and quick starts. Each append is checked and written synchronously,
 * within one turn of the event loop, so no other append can come between its
 * condition's check and its write: the condition holds under any concurrency
 * in the process. Events are indexed by tag and by type, so a query reads only
 * the events that carry one of its items' tags or types.
 *
 * It copies the events it is given (their bytes it shares, as the contract
 * allows) and returns copies. Its tracking records are its own: unlike the
 * database backends' `<name>_tracking` table, they are not shared with the
 * application's aggregate recorder of the same name.
 */
export class MemoryDcbRecorder implements DcbRecorder {
  readonly #commits = new CommitSignal()
  /** The events in position order: the event at position p is at index p - 1. */
  readonly #events: DcbSequencedEvent[] = []
  /** The positions of the events of each tag, and of each type, in increasing order. */
  readonly #byTag = new Map<string, number[]>()
  readonly #byType = new Map<string, number[]>()
  readonly #tracking = new Map<string, number>()

  /**
   * Makes an empty recorder.
   *
   * @param tables The names that its conflict errors give as `table`: those
   * that the database backends would give the application's tables.
   */
  constructor(
    private readonly tables: { readonly events: string; readonly tracking: string } = {
      events: 'dcb',
      tracking: 'tracking',
    },
  ) {}

  /** Returns the matching events after `after`, at most `limit`, with the head the read is complete up to. */
  async read(query?: DcbQuery, options?: DcbReadOptions): Promise<DcbReadResult> {
    const checked = checkDcbQuery(query)
    const { after, limit } = checkReadOptions(options)
    return readResult(this.#select(checked, after, limit + 1), limit, this.#events.length)
  }

  /** Returns the position of the last event recorded, or 0 when the store is empty. */
  async head(): Promise<number> {
    return this.#events.length
  }

  /**
   * Records the events and tracking records if the condition holds, and
   * returns the position of the last event (the head, for an empty batch).
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
      const query = checkDcbQuery(condition.failIfEventsMatch)
      const after = checkPosition(condition.after, 'The condition’s after')
      if (this.#select(query, after, 1).length > 0) {
        throw new DcbConflictError({
          query: condition.failIfEventsMatch,
          after: condition.after,
          table: this.tables.events,
        })
      }
    }
    this.#checkTracking(tracking)
    for (const { type, data, tags, metadata } of checked) {
      const position = this.#events.length + 1
      const event: DcbSequencedEvent = { type, data, tags, position, ...(metadata && { metadata }) }
      this.#events.push(event)
      index(this.#byType, type, position)
      for (const tag of tags) index(this.#byTag, tag, position)
    }
    for (const { applicationName, notificationId } of tracking) this.#tracking.set(applicationName, notificationId)
    if (checked.length > 0 || tracking.length > 0) this.#commits.notify()
    return this.#events.length
  }

  /** Yields the matching events after `after`, then new ones as they are appended, until the signal aborts. */
  subscribe(query?: DcbQuery, options: DcbSubscribeOptions = {}): AsyncIterable<DcbSequencedEvent> {
    const checked = checkDcbQuery(query)
    const after = checkPosition(options.after, 'after')
    const read = (q: DcbQuery, o: DcbReadOptions) => this.read(q, o)
    return followDcb(read, this.#commits, { query: checked, after, signal: options.signal, pollMs: POLL_MS })
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

  /** Returns copies of the first `limit` events after `after` that match a checked query. */
  #select(query: DcbQuery, after: number, limit: number): DcbSequencedEvent[] {
    const positions = this.#candidates(query, after)
    const selected: DcbSequencedEvent[] = []
    for (const position of positions) {
      if (selected.length >= limit) break
      const event = this.#events[position - 1]!
      if (dcbMatches(query, event)) selected.push({ ...event, tags: [...event.tags] })
    }
    return selected
  }

  /**
   * Returns, in increasing order, positions after `after` among which are all
   * those of the events matching the query: for each item, those of its rarest
   * tag, or of its types; every position when an item names neither.
   */
  *#candidates(query: DcbQuery, after: number): Iterable<number> {
    const lists: number[][] = []
    for (const { types = [], tags = [] } of query) {
      if (tags.length > 0) {
        lists.push(
          tags
            .map((tag) => this.#byTag.get(tag) ?? [])
            .reduce((rarest, list) => (list.length < rarest.length ? list : rarest)),
        )
      } else if (types.length > 0) {
        for (const type of types) lists.push(this.#byType.get(type) ?? [])
      } else {
        return yield* range(after + 1, this.#events.length)
      }
    }
    if (query.length === 0) return yield* range(after + 1, this.#events.length)
    const merged = new Set<number>()
    for (const list of lists) {
      for (let i = bisect(list, after); i < list.length; i++) merged.add(list[i]!)
    }
    yield* [...merged].sort((a, b) => a - b)
  }

  /** Throws if a tracking record is not newer than the last of its application (or one before it in the list). */
  #checkTracking(tracking: readonly Tracking[]): void {
    const tracked = new Map<string, number>()
    for (const { applicationName, notificationId } of tracking) {
      const last = tracked.get(applicationName) ?? this.#tracking.get(applicationName) ?? 0
      if (!(notificationId > last)) {
        throw new TrackingConflictError({ applicationName, notificationId, table: this.tables.tracking })
      }
      tracked.set(applicationName, notificationId)
    }
  }
}

function index(lists: Map<string, number[]>, key: string, position: number): void {
  const list = lists.get(key)
  if (list === undefined) lists.set(key, [position])
  else list.push(position)
}

function* range(from: number, to: number): Iterable<number> {
  for (let position = from; position <= to; position++) yield position
}

/** Returns the index of the first position greater than `value` in an increasing list. */
function bisect(list: readonly number[], value: number): number {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (list[middle]! > value) high = middle
    else low = middle + 1
  }
  return low
}
