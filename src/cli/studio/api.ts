// The studio's JSON API: read-only views of the applications' recorders, each
// a GET under /api whose answer the page shows as it is. Events are decoded
// here, with the storage's cipher key and compression; the key never leaves
// the server.
import type { DcbSequencedEvent } from '../../persistence/dcb.js'
import { associatedData } from '../../persistence/dcb-mapper.js'
import { NotFoundError, ProgrammingError } from '../../persistence/errors.js'
import type { Notification, StoredEvent } from '../../persistence/stored-event.js'
import { type ShownState, showDecoded, showState } from '../output.js'
import type { Storage } from '../storage.js'
import type { DcbStore, StudioSource } from './source.js'

/** An event as the page shows it: its place in the aggregate (and in the log, for a notification), its topic and its decoded state. */
export interface ShownEvent {
  readonly id?: number
  readonly originatorId: string
  readonly originatorVersion: number
  readonly topic: string
  readonly state: ShownState
}

/** A page of the notification log. */
export interface LogPage {
  readonly notifications: ShownEvent[]
  /** The `from` of the next page, when there may be one. */
  readonly next?: number
  /** The highest notification id of the log when the page was read. */
  readonly maxNotificationId: number
}

/** A DCB event as the page shows it, its data and metadata decoded. */
export interface ShownDcbEvent {
  readonly position: number
  readonly type: string
  readonly tags: readonly string[]
  readonly data: ShownState
  readonly metadata?: ShownState
}

/** The filters of the log, as the page sends them in the query string. */
export interface LogFilter {
  /** Only notifications of these topics (all when empty). */
  readonly topics: string[]
  /** Only the notifications of this originator. */
  readonly originatorId?: string
}

/** How many notifications a page of the log shows when the page does not say. */
export const DEFAULT_PAGE_SIZE = 50
const MAX_PAGE_SIZE = 500

/** Returns an event as shown, its state decoded by the storage's settings. */
export function shownEvent(storage: Storage, event: StoredEvent | Notification): ShownEvent {
  const { originatorId, originatorVersion, topic } = event
  return {
    ...('id' in event ? { id: event.id } : {}),
    originatorId,
    originatorVersion,
    topic,
    state: showState(storage, event),
  }
}

/** Returns the filters of the log given in `query`. */
export function logFilter(query: URLSearchParams): LogFilter {
  const originatorId = query.get('originator') || undefined
  return { topics: query.getAll('topic').filter((topic) => topic !== ''), ...(originatorId && { originatorId }) }
}

/**
 * Answers a GET of the API at `path` (below /api), or returns undefined when
 * no route matches.
 *
 * @throws NotFoundError for an application, an aggregate or a DCB store that
 * is not there; ProgrammingError for a bad parameter; what decoding throws.
 */
export async function answer(source: StudioSource, path: string[], query: URLSearchParams): Promise<unknown> {
  const [top, app, view, id, detail, ...rest] = path
  if (top === 'followers' && app === undefined) return await source.followers()
  if (top !== 'apps' || rest.length > 0) return undefined
  if (app === undefined) return { apps: await source.apps(), states: source.states }
  if (view === 'log' && id === undefined) return await logPage(await source.storage(app), query)
  if (view === 'dcb' && id === undefined) return await dcbPage(await source.dcb(app), query)
  if (view === 'aggregates' && id !== undefined && detail === undefined) {
    return { events: await aggregateEvents(await source.storage(app), id), states: source.states }
  }
  if (view === 'aggregates' && id !== undefined && detail === 'state') {
    const version = query.has('version') ? integer(query, 'version', 1) : undefined
    const { aggregate, className, classTopic, latestVersion } = await source.aggregateState(app, id, version)
    return { className, classTopic, version: aggregate.version, latestVersion, state: { ...aggregate } }
  }
  return undefined
}

/** Returns the page of the log starting at `from` (keyset paging by notification id: any page costs what the first does). */
async function logPage(storage: Storage, query: URLSearchParams): Promise<LogPage> {
  const events = storage.recorders.events
  const from = integer(query, 'from', 1)
  const limit = Math.min(integer(query, 'limit', DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
  const [page, maxNotificationId] = await Promise.all([
    events.selectNotifications({ start: from, limit, ...logFilter(query) }),
    events.maxNotificationId(),
  ])
  const last = page.at(-1)
  const more = last !== undefined && page.length === limit && last.id < maxNotificationId
  return {
    notifications: page.map((notification) => shownEvent(storage, notification)),
    ...(more ? { next: last.id + 1 } : {}),
    maxNotificationId,
  }
}

async function aggregateEvents(storage: Storage, originatorId: string): Promise<ShownEvent[]> {
  const stored = await storage.recorders.events.selectEvents(originatorId)
  if (stored.length === 0) {
    throw new NotFoundError(`Application '${storage.app}' has no events of '${originatorId}': check the id`)
  }
  return stored.map((event) => shownEvent(storage, event))
}

/** Returns the page of a DCB store after position `after` (keyset paging by position). */
async function dcbPage(
  store: DcbStore,
  query: URLSearchParams,
): Promise<{ events: ShownDcbEvent[]; head: number; next?: number }> {
  const after = query.has('after') ? integer(query, 'after', 1, 0) : 0
  const limit = Math.min(integer(query, 'limit', DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
  const [{ events }, head] = await Promise.all([store.events.read([], { after, limit }), store.events.head()])
  const last = events.at(-1)
  return {
    events: events.map((event) => shownDcbEvent(store, event)),
    head,
    ...(last !== undefined && events.length === limit && last.position < head ? { next: last.position } : {}),
  }
}

function shownDcbEvent(store: DcbStore, event: DcbSequencedEvent): ShownDcbEvent {
  const tags = [...new Set(event.tags)].sort()
  const record = `DCB event ${event.position} (type '${event.type}')`
  const data = showDecoded(store, event.data, () =>
    store.mapper.decodeState(event.data, associatedData(event.type, tags), record),
  )
  const shown = { position: event.position, type: event.type, tags, data }
  const stored = event.metadata
  if (stored === undefined) return shown
  const metadata = showDecoded(store, stored, () =>
    store.mapper.decodeState(stored, associatedData(event.type, tags, 'metadata'), `the metadata of ${record}`),
  )
  return { ...shown, metadata }
}

/**
 * Returns the integer parameter `name` (at least `least`), or `fallback` when it is absent.
 *
 * @throws ProgrammingError naming the parameter when it is not such an integer.
 */
export function integer(query: URLSearchParams, name: string, fallback: number, least = 1): number {
  const text = query.get(name)
  if (text === null || text === '') return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < least) {
    const what = least === 1 ? 'a positive integer' : `an integer of ${least} or more`
    throw new ProgrammingError(`The parameter '${name}' must be ${what}, not '${text}'`)
  }
  return value
}
