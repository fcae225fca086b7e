import { type CommitSignal, SUBSCRIPTION_PAGE_SIZE } from './commit-signal.js'
import type { DcbEvent, DcbQuery, DcbQueryItem, DcbReadOptions, DcbReadResult, DcbSequencedEvent } from './dcb.js'
import { ProgrammingError } from './errors.js'

// The checks every DCB backend runs on its input before touching storage, and
// the parts of reading and following that do not depend on the storage.

/**
 * Returns the events checked, each with its tags without repeats (in the order
 * first given) and its other fields as given.
 *
 * @throws ProgrammingError naming the event and the field that is wrong.
 */
export function checkDcbEvents(events: readonly DcbEvent[]): DcbEvent[] {
  if (!Array.isArray(events)) throw new ProgrammingError(`DCB events must be an array, got ${describe(events)}`)
  return events.map((event, i) => {
    const what = `DCB event ${i}`
    if (typeof event !== 'object' || event === null) throw new ProgrammingError(`${what} is ${describe(event)}`)
    const { type, data, tags, metadata } = event
    checkName(type, `The type of ${what}`)
    if (!(data instanceof Uint8Array)) {
      throw new ProgrammingError(`The data of ${what} must be a Uint8Array (bytes), got ${describe(data)}`)
    }
    if (metadata !== undefined && !(metadata instanceof Uint8Array)) {
      throw new ProgrammingError(`The metadata of ${what} must be a Uint8Array or absent, got ${describe(metadata)}`)
    }
    const checked: DcbEvent = { type, data, tags: checkNames(tags, `The tags of ${what}`) }
    return metadata === undefined ? checked : { ...checked, metadata }
  })
}

/**
 * Returns the query checked (the empty query when none is given), with its
 * items' types and tags without repeats.
 *
 * @throws ProgrammingError naming the item and what is wrong.
 */
export function checkDcbQuery(query: DcbQuery | undefined): DcbQuery {
  if (query === undefined) return []
  if (!Array.isArray(query)) {
    throw new ProgrammingError(`A DCB query must be an array of items ({ types?, tags? }), got ${describe(query)}`)
  }
  return query.map((item: DcbQueryItem, i) => {
    if (typeof item !== 'object' || item === null) {
      throw new ProgrammingError(
        `Item ${i} of a DCB query must be an object ({ types?, tags? }), got ${describe(item)}`,
      )
    }
    const types = item.types === undefined ? [] : checkNames(item.types, `The types of query item ${i}`)
    const tags = item.tags === undefined ? [] : checkNames(item.tags, `The tags of query item ${i}`)
    return { types, tags }
  })
}

/**
 * Returns `value` if it is a position: a safe integer, 0 or more; 0 when undefined.
 *
 * @throws ProgrammingError naming the option otherwise.
 */
export function checkPosition(value: number | undefined, name: string): number {
  if (value === undefined) return 0
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ProgrammingError(`${name} must be a position (an integer, 0 or more), got ${describe(value)}`)
  }
  return value
}

/** Returns the options of a read checked: `after` a position, `limit` a positive integer or Infinity when absent. */
export function checkReadOptions(options: DcbReadOptions | undefined): { after: number; limit: number } {
  const after = checkPosition(options?.after, 'after')
  const limit = options?.limit
  if (limit === undefined) return { after, limit: Number.POSITIVE_INFINITY }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new ProgrammingError(`limit must be a positive integer, got ${describe(limit)}`)
  }
  return { after, limit }
}

/** Returns true if `event` matches `query` (a checked one): any of its items, or every event for the empty query. */
export function dcbMatches(query: DcbQuery, event: Pick<DcbEvent, 'type' | 'tags'>): boolean {
  if (query.length === 0) return true
  return query.some(
    ({ types = [], tags = [] }) =>
      (types.length === 0 || types.includes(event.type)) && tags.every((tag) => event.tags.includes(tag)),
  )
}

/**
 * Returns the result of a read from up to `limit + 1` matching events read
 * after a head that was settled when they were read: the first `limit` of
 * them, with that head, or with the position of the last one returned when
 * there were more (see `DcbReadResult.head`).
 */
export function readResult(events: DcbSequencedEvent[], limit: number, head: number): DcbReadResult {
  if (events.length <= limit) return { events, head }
  const kept = events.slice(0, limit)
  return { events: kept, head: kept[kept.length - 1]!.position }
}

/**
 * Yields the events a `read` returns for `query` after `after`, then new ones
 * as they are committed, until the signal aborts, each once and in position
 * order: every read starts at the head the previous read returned, which is
 * settled, so no event that commits later can have a position at or below it.
 * `commits` wakes it at once on a commit in this process; commits made
 * elsewhere are seen within `pollMs`.
 */
export async function* followDcb(
  read: (query: DcbQuery, options: DcbReadOptions) => Promise<DcbReadResult>,
  commits: CommitSignal,
  options: { query: DcbQuery; after: number; signal?: AbortSignal; pollMs: number },
): AsyncGenerator<DcbSequencedEvent> {
  const { query, signal, pollMs } = options
  let after = options.after
  while (!signal?.aborted) {
    const generation = commits.generation
    const { events, head } = await read(query, { after, limit: SUBSCRIPTION_PAGE_SIZE })
    for (const event of events) {
      if (signal?.aborted) return
      yield event
    }
    // On from the head, not from the last event: what the query does not match is passed over once.
    after = Math.max(after, head)
    if (events.length < SUBSCRIPTION_PAGE_SIZE) await commits.wait(generation, pollMs, signal)
  }
}

function checkNames(names: readonly string[], what: string): string[] {
  if (!Array.isArray(names)) throw new ProgrammingError(`${what} must be an array of strings, got ${describe(names)}`)
  for (const name of names) checkName(name, `${what}: each`)
  return [...new Set(names)]
}

function checkName(name: unknown, what: string): void {
  if (typeof name !== 'string' || name === '') {
    throw new ProgrammingError(`${what} must be a non-empty string, got ${describe(name)}`)
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (value instanceof Uint8Array) return 'bytes'
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : `an object (${value.constructor?.name ?? 'Object'})`
}
