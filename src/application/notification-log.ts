import type { DomainEvent } from '../domain/domain-event.js'
import { EventSourcingError } from '../domain/errors.js'
import { type PagedSubscription, paged, pagesOf, SUBSCRIPTION_PAGE_SIZE } from '../persistence/commit-signal.js'
import type { EventStore, Recording } from '../persistence/event-store.js'
import type { SelectNotificationsOptions, SubscribeOptions } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'

/** A page of an application's notification log. */
export interface Section {
  /** `"first,last"`: the ids of the first and last notification in it; undefined when empty. */
  readonly id: string | undefined
  /** The notifications, in increasing id order. */
  readonly items: readonly Notification[]
  /** The id of the next section, or undefined when this one is not full (the end of the log so far). */
  readonly nextId: string | undefined
}

/** A section id that is not two positive integers `"start,stop"`. */
export class SectionIdError extends EventSourcingError {}

/**
 * Reads an application's notification log: every recorded event in order, with
 * its position. Downstream readers page through it by section or select from it.
 * Ids may have gaps (rolled-back writes, deleted aggregates).
 */
export class NotificationLog {
  readonly #events: () => Promise<EventStore>

  /** Makes a log reader over the application's event store, with sections of `sectionSize` notifications. */
  constructor(
    events: () => Promise<EventStore>,
    readonly sectionSize = 10,
  ) {
    this.#events = events
  }

  /**
   * Returns the section `"start,stop"`: the first `stop - start + 1`
   * notifications (at most `sectionSize`) with ids from `start` on. Gaps in the
   * ids are filled from later ids, so a section is short only at the end of the log.
   *
   * @throws SectionIdError if the id is malformed.
   */
  async section(sectionId: string): Promise<Section> {
    const match = /^(\d+),(\d+)$/.exec(sectionId)
    if (match === null) {
      throw new SectionIdError(`Invalid section id ${JSON.stringify(sectionId)}: expected "start,stop", e.g. "1,10"`)
    }
    const start = Math.max(1, Number(match[1]))
    const limit = Math.min(Math.max(0, Number(match[2]) - start + 1), this.sectionSize)
    const items = limit === 0 ? [] : await this.select({ start, limit })
    const first = items[0]
    const last = items.at(-1)
    if (first === undefined || last === undefined) return { id: undefined, items, nextId: undefined }
    return {
      id: `${first.id},${last.id}`,
      items,
      nextId: items.length === limit ? `${last.id + 1},${last.id + limit}` : undefined,
    }
  }

  /** Returns notifications in increasing id order, as the options say. */
  async select(options: SelectNotificationsOptions): Promise<Notification[]> {
    return (await this.#events()).recorder.selectNotifications(options)
  }

  /** Like {@link NotificationLog.select}, but with each notification's domain event. */
  async selectRecordings(options: SelectNotificationsOptions): Promise<Recording[]> {
    const events = await this.#events()
    const notifications = await events.recorder.selectNotifications(options)
    return notifications.map((notification) => ({
      domainEvent: events.mapper.toDomainEvent(notification),
      notification,
    }))
  }

  /** Returns the event recorded with notification id `id`, or undefined (never recorded, or deleted). */
  async get(id: number): Promise<Recording | undefined> {
    const [recording] = await this.selectRecordings({ start: id, stop: id, limit: 1 })
    return recording
  }

  /**
   * Yields the notifications after `options.gt`, then new ones as they are
   * recorded, in increasing id order, each once, until the signal aborts.
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    const events = this.#events
    // A recorder whose subscription is not paged has its notifications grouped as they arrive.
    return paged(async function* () {
      yield* pagesOf((await events()).recorder.subscribe(options), SUBSCRIPTION_PAGE_SIZE)
    }, options.signal)
  }

  /**
   * Returns the domain event of a notification of this log.
   *
   * @throws TopicError if its topic names no known class; UpcastError or DataError
   * if it cannot be upcast or decoded.
   */
  async decode(notification: Notification): Promise<DomainEvent> {
    return (await this.#events()).mapper.toDomainEvent(notification)
  }

  /**
   * Returns a function that decodes notifications of this log at once, as
   * {@link NotificationLog.decode} does: for a batch, one await rather than one per notification.
   */
  async decoder(): Promise<(notification: Notification) => DomainEvent> {
    const { mapper } = await this.#events()
    return (notification) => mapper.toDomainEvent(notification)
  }

  /** Returns the media type of the notifications' states (see `Mapper.contentType`). */
  async contentType(): Promise<string> {
    return (await this.#events()).mapper.contentType
  }

  /** Returns the highest notification id, or 0 when the log is empty. */
  async maxId(): Promise<number> {
    return (await this.#events()).recorder.maxNotificationId()
  }
}
