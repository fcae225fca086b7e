import { IntegrityError } from './errors.js'
import { validApplicationName, validIdentifier } from './identifiers.js'
import type { TrackingRecorder } from './recorder.js'
import type { Tracking } from './stored-event.js'

/**
 * A DCB event is an event of a dynamic consistency boundary store
 * (dcb.events): a type, its bytes, and the tags by which queries find it.
 */
export interface DcbEvent {
  /** The event's type, a non-empty string (e.g. `StudentSubscribedToCourse`). */
  readonly type: string
  /**
   * The event's bytes (transcoded, compressed, encrypted as configured). Bytes
   * given to a recorder belong to it from then on, and bytes it returns may be
   * its own: never change them in place.
   */
  readonly data: Uint8Array
  /**
   * The tags queries find the event by (e.g. `course:c1`), non-empty strings,
   * possibly none; stored in clear and without order or repeats.
   */
  readonly tags: readonly string[]
  /** Optional bytes about the event (a correlation id, a user); absent when none were given. */
  readonly metadata?: Uint8Array
}

/** A DCB event as recorded, with its position in the store. */
export interface DcbSequencedEvent extends DcbEvent {
  /**
   * The event's position: a positive integer, unique, increasing in
   * recording order (within an append, in the order given). Positions may
   * have gaps (where an append failed, on some backends).
   */
  readonly position: number
}

/**
 * A query item matches an event whose type is one of `types` (any type when
 * `types` is absent or empty) and whose tags include every one of `tags`
 * (any tags when absent or empty). An item with neither matches every event.
 */
export interface DcbQueryItem {
  /** The types, one of which the event has. */
  readonly types?: readonly string[]
  /** The tags, all of which the event has. */
  readonly tags?: readonly string[]
}

/**
 * A DCB query matches an event that any of its items matches (an OR of
 * items). The empty query, `[]`, matches every event.
 */
export type DcbQuery = readonly DcbQueryItem[]

/**
 * The condition of an append: fail if any event matching `failIfEventsMatch`
 * is recorded after position `after` (after 0, so any at all, when absent).
 * A decision passes the query it read and the head that read returned.
 */
export interface DcbAppendCondition {
  /** The events that must not have appeared. */
  readonly failIfEventsMatch: DcbQuery
  /** The position the decision read up to: the head its read returned. */
  readonly after?: number
}

/** Options of {@link DcbRecorder.read}. */
export interface DcbReadOptions {
  /** Only events with positions greater than this (default 0: from the start). */
  readonly after?: number
  /** At most this many events (a positive integer; all when absent). */
  readonly limit?: number
}

/** What {@link DcbRecorder.read} returns. */
export interface DcbReadResult {
  /** The matching events, in increasing position order. */
  readonly events: DcbSequencedEvent[]
  /**
   * The position the read is complete up to: no matching event at or below
   * it is missing from `events`, now or later. It is the head of the whole
   * store at the time of the read, unless `limit` cut the result short: then
   * it is the position of the last event returned. Pass it as the condition's
   * `after` to decide on what was read; pass it as the next read's `after` to
   * read on.
   */
  readonly head: number
}

/** Options of {@link DcbRecorder.append}. */
export interface DcbAppendOptions {
  /**
   * Tracking records to commit with the events, as a process application's
   * recorder does (see {@link TrackingRecorder}); each must be newer than the
   * last one of its upstream application.
   */
  readonly tracking?: Tracking | readonly Tracking[]
}

/** Options of {@link DcbRecorder.subscribe}. */
export interface DcbSubscribeOptions {
  /** Only events with positions greater than this (default 0: the whole store). */
  readonly after?: number
  /** Ends the subscription: the iterator then finishes without error. */
  readonly signal?: AbortSignal
}

/**
 * A DCB recorder stores the events of one application's dynamic consistency
 * boundaries (dcb.events): a single sequence of tagged events, read by
 * queries, and appended to under the condition that nothing a decision read
 * has changed since. The condition holds under any concurrency: an append
 * commits only if, at its commit, no event matching its condition is
 * recorded after its `after`. So of writers that read one boundary at the
 * same head and each append an event in it, exactly one commits; and writers
 * whose conditions match none of the others' events never fail each other.
 * It is also a tracking recorder, so that a process application's events and
 * tracking records commit together.
 *
 * Input is checked before anything is written: a type that is not a
 * non-empty string, a tag that is not one, data or metadata that are not
 * bytes, a position or limit that is not a non-negative (positive, for a
 * limit) safe integer: each fails with `ProgrammingError` naming it.
 */
export interface DcbRecorder extends TrackingRecorder {
  /**
   * Returns the events matching `query` (every event when absent or empty),
   * after `options.after`, at most `options.limit` of them, in increasing
   * position order, with the head the read is complete up to (see
   * {@link DcbReadResult.head}); an empty list and the store's head when none match.
   */
  read(query?: DcbQuery, options?: DcbReadOptions): Promise<DcbReadResult>

  /** Returns the position of the last event recorded, or 0 when the store is empty. */
  head(): Promise<number>

  /**
   * Records the events atomically, in the order given, if the condition holds
   * (always, when none is given), together with any tracking records, and
   * returns the position of the last event (the head, for an empty batch).
   * The check and the write are one atomic step.
   *
   * @throws DcbConflictError if an event matching the condition's query is
   * recorded after its `after`; TrackingConflictError if a tracking record is
   * not newer; nothing is written then.
   */
  append(events: readonly DcbEvent[], condition?: DcbAppendCondition, options?: DcbAppendOptions): Promise<number>

  /**
   * Yields the events matching `query` recorded after `options.after`, then
   * new ones as they are recorded, in increasing position order, each once,
   * until the signal aborts. It never skips an event that commits late (after
   * one with a higher position was yielded).
   */
  subscribe(query?: DcbQuery, options?: DcbSubscribeOptions): AsyncIterable<DcbSequencedEvent>
}

/**
 * The DCB recorder of one application, opened on one backend by
 * `Persistence.openDcb`; `await using` closes it. Its tables are those that
 * {@link dcbTables} names.
 */
export interface DcbRecorders extends AsyncDisposable {
  /** The application's DCB events and tracking records. */
  readonly events: DcbRecorder
  /** Releases connections; the recorder cannot be used afterwards. */
  close(): Promise<void>
}

/** What a {@link DcbConflictError} says failed. */
export interface DcbConflict {
  /** The condition's query. */
  readonly query: DcbQuery
  /** The condition's `after` (undefined: any matching event at all fails it). */
  readonly after: number | undefined
  /** The events table, e.g. `courses_dcb_events` (the memory backend names its recorders so too). */
  readonly table: string
}

/**
 * An append's condition failed: an event matching its query was recorded
 * after the position the decision read up to, so the decision was made on
 * stale facts. Nothing was written. Read the query's events again, decide
 * again, and append with the new head (a decision helper with retries does).
 */
export class DcbConflictError extends IntegrityError implements DcbConflict {
  readonly query: DcbQuery
  readonly after: number | undefined
  readonly table: string

  /** Makes the error naming the condition; `options.cause` is the driver's error, if any. */
  constructor(conflict: DcbConflict, options?: ErrorOptions) {
    const { query, after, table } = conflict
    super(
      `An event matching ${JSON.stringify(query)} was recorded in ${table} after position ${after ?? 0} ` +
        '(another writer appended first): read the events again, decide again, and append with the new head',
      options,
    )
    this.query = query
    this.after = after
    this.table = table
  }
}

/** The table names of one application's DCB recorder. */
export interface DcbTables {
  /** The table of the application's DCB events, e.g. `courses_dcb`. */
  readonly events: string
  /** The table of their tags, where the backend keeps them apart, e.g. `courses_dcb_tags`. */
  readonly tags: string
  /**
   * The application's tracking table, e.g. `courses_tracking`: the one its
   * aggregate recorders use, since how far an application has processed an
   * upstream log does not depend on how it records its decisions.
   */
  readonly tracking: string
}

/**
 * Returns the validated table names of an application's DCB recorder: `<name>_dcb`,
 * `<name>_dcb_tags` and `<name>_tracking`, in lower case (short enough for
 * every name that {@link validApplicationName} takes).
 *
 * @throws ProgrammingError for an invalid application name.
 */
export function dcbTables(applicationName: string): DcbTables {
  const prefix = validApplicationName(applicationName).toLowerCase()
  return {
    events: validIdentifier(`${prefix}_dcb`),
    tags: validIdentifier(`${prefix}_dcb_tags`),
    tracking: validIdentifier(`${prefix}_tracking`),
  }
}
