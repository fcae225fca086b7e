// The studio's JSON API: read-only views of the applications' recorders, each
// a GET under /api whose answer the page shows as it is. Events are decoded
// here, with the storage's cipher key and compression; the key never leaves
// the server.
import { NotFoundError, ProgrammingError } from '../../persistence/errors.js'
import type { Notification, StoredEvent } from '../../persistence/stored-event.js'
import { type ShownState, showState } from '../output.js'
import type { Storage } from '../storage.js'
import type { StudioSource } from './source.js'

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

/** The filters of the log, as the page sends them in the query string. */
export interface LogFilter {
  /** Only notifications of these topics (all when empty). */
  readonly topics: string[]
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
  return { topics: query.getAll('topic').filter((topic) => topic !== '') }
}

/**
 * Answers a GET of the API at `path` (below /api), or returns undefined when
 * no route matches.
 *
 * @throws NotFoundError for an application or an aggregate that is not there;
 * ProgrammingError for a bad parameter.
 */
export async function answer(source: StudioSource, path: string[], query: URLSearchParams): Promise<unknown> {
  const [apps, app, view, ...rest] = path
  if (apps !== 'apps') return undefined
  if (app === undefined) return await source.apps()
  const storage = await source.storage(app)
  if (view === 'log' && rest.length === 0) return await logPage(storage, query)
  if (view === 'aggregates' && rest.length === 1) return await aggregate(storage, rest[0] as string)
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

async function aggregate(storage: Storage, originatorId: string): Promise<{ events: ShownEvent[] }> {
  const stored = await storage.recorders.events.selectEvents(originatorId)
  if (stored.length === 0) {
    throw new NotFoundError(`Application '${storage.app}' has no events of '${originatorId}': check the id`)
  }
  return { events: stored.map((event) => shownEvent(storage, event)) }
}

/**
 * Returns the positive integer parameter `name`, or `fallback` when it is absent.
 *
 * @throws ProgrammingError naming the parameter when it is not a positive integer.
 */
export function integer(query: URLSearchParams, name: string, fallback: number): number {
  const text = query.get(name)
  if (text === null || text === '') return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ProgrammingError(`The parameter '${name}' must be a positive integer, not '${text}'`)
  }
  return value
}
