import type { TaggedEvent } from '../domain/tagged-event.js'
import { type PagedSubscription, paged, pagesOf, SUBSCRIPTION_PAGE_SIZE } from '../persistence/commit-signal.js'
import type { DcbRecorder, DcbSequencedEvent } from '../persistence/dcb.js'
import type { DcbMapper } from '../persistence/dcb-mapper.js'
import { ProgrammingError } from '../persistence/errors.js'
import type { SelectNotificationsOptions, SubscribeOptions } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'

/**
 * A DCB event in the form of a notification, so that the followers of
 * notification logs (projection runners, `waitFor`) follow a DCB store as
 * they follow an application's log: its position is the notification id, its
 * type the topic, its data the state. A DCB event has no originator: its
 * `originatorId` is empty and its `originatorVersion` 0.
 */
export interface DcbNotification extends Notification {
  /** The event's tags, as stored (hashed where the application hashes them). */
  readonly tags: readonly string[]
  /** The event's metadata, as stored, when it has some. */
  readonly metadata?: Uint8Array
}

/**
 * The notification log of a DCB application: its events in position order,
 * read as notifications (see {@link DcbNotification}) and decoded into
 * tagged events. A `ProjectionRunner` given a `DcbApplication` as its
 * upstream reads it, tracking positions as notification ids.
 */
export class DcbNotificationLog {
  readonly #open: () => Promise<{ recorder: DcbRecorder; mapper: DcbMapper }>

  /** Makes the log of the DCB store that `open` opens. */
  constructor(open: () => Promise<{ recorder: DcbRecorder; mapper: DcbMapper }>) {
    this.#open = open
  }

  /** Returns the events as notifications in position order, as the options say (`topics` are event types). */
  async select(options: SelectNotificationsOptions): Promise<DcbNotification[]> {
    const { recorder } = await this.#open()
    const { start, inclusiveOfStart = true, limit, stop, topics } = options
    const after = start === undefined ? 0 : Math.max(0, inclusiveOfStart ? start - 1 : start)
    const { events } = await recorder.read(topicsQuery(topics), { after, limit })
    return events.filter((event) => stop === undefined || event.position <= stop).map(toNotification)
  }

  /**
   * Yields the events after `options.gt` as notifications, then new ones as
   * they are recorded, in position order, each once, until the signal aborts.
   */
  subscribe(options: SubscribeOptions = {}): PagedSubscription {
    const open = this.#open
    const { gt, topics, signal } = options
    async function* notifications(): AsyncGenerator<Notification> {
      const { recorder } = await open()
      for await (const event of recorder.subscribe(topicsQuery(topics), { after: gt, signal })) {
        yield toNotification(event)
      }
    }
    return paged(() => pagesOf(notifications(), SUBSCRIPTION_PAGE_SIZE), signal)
  }

  /**
   * Returns the tagged event of a notification of this log.
   *
   * @throws ProgrammingError for a notification of another kind of log; what
   * `DcbMapper.toTaggedEvent` throws.
   */
  async decode(notification: Notification): Promise<TaggedEvent> {
    return (await this.decoder())(notification)
  }

  /** Returns a function that decodes notifications of this log at once (one await for a batch). */
  async decoder(): Promise<(notification: Notification) => TaggedEvent> {
    const { mapper } = await this.#open()
    return (notification) => mapper.toTaggedEvent(toDcbEvent(notification))
  }

  /** Returns the position of the last event, or 0 when the store is empty. */
  async maxId(): Promise<number> {
    return (await this.#open()).recorder.head()
  }
}

function topicsQuery(topics: readonly string[] | undefined) {
  return topics === undefined || topics.length === 0 ? [] : [{ types: topics }]
}

function toNotification(event: DcbSequencedEvent): DcbNotification {
  const { position, type, data, tags, metadata } = event
  const notification = { id: position, topic: type, originatorId: '', originatorVersion: 0, state: data, tags }
  return metadata === undefined ? notification : { ...notification, metadata }
}

function toDcbEvent(notification: Notification): DcbSequencedEvent {
  const { id, topic, state, tags, metadata } = notification as Partial<DcbNotification> & Notification
  if (tags === undefined) {
    throw new ProgrammingError(
      `Notification ${id} (topic '${topic}') is not of a DCB store: decode it with its own application's log`,
    )
  }
  return metadata === undefined
    ? { position: id, type: topic, data: state, tags }
    : { position: id, type: topic, data: state, tags, metadata }
}
