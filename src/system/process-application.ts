import { type AggregateChanges, Application } from '../application/application.js'
import type { Aggregate } from '../domain/aggregate.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import type { TaggedEvent } from '../domain/tagged-event.js'
import { getTopic } from '../domain/topics.js'
import type { Recording } from '../persistence/event-store.js'
import type { Notification, Tracking } from '../persistence/stored-event.js'
import type { Upstream } from './follow.js'
import { type UpstreamLog, type WaitForOptions, waitForFollower } from './wait-for.js'

/** Where a processed notification comes from: the name it is tracked under, and how to decode it. */
export interface Source {
  readonly name: string
  readonly notificationLog: Pick<Upstream['notificationLog'], 'decode'>
}

/** A notification together with the source it comes from (see {@link ProcessApplication.processMany}). */
export interface SourcedNotification {
  readonly source: Source
  readonly notification: Notification
}

/**
 * What a policy does with one upstream event: the aggregates it saves, recorded
 * together with the tracking record of the event (or of the last event of its
 * batch) once the policy returns.
 */
export class ProcessingEvent {
  readonly #aggregates: Aggregate[] = []

  /** Starts processing the upstream notification that `tracking` names. */
  constructor(
    /** The upstream application and notification id being processed. */
    readonly tracking: Tracking,
  ) {}

  /** Adds aggregates whose new events are recorded with the tracking record, in one atomic write. */
  save(...aggregates: Aggregate[]): void {
    this.#aggregates.push(...aggregates)
  }

  /** The aggregates saved so far. */
  get aggregates(): readonly Aggregate[] {
    return this.#aggregates
  }
}

/** An event class (a tagged event type too, for projections of a DCB store), or a topic, that a follower follows. */
export type FollowedTopic = string | (abstract new (...args: never[]) => DomainEvent | TaggedEvent)

/** Returns the topics of followed event classes or topics; undefined (all topics) for undefined. */
export function topicsOf(followed: readonly FollowedTopic[] | undefined): string[] | undefined {
  return followed?.map((topic) => (typeof topic === 'string' ? topic : getTopic(topic)))
}

/**
 * An application that follows other applications: its policy reacts to their
 * domain events by creating or changing its own aggregates, and what it saves
 * is recorded together with a tracking record of the upstream event, so each
 * upstream event takes effect exactly once. It resumes from its tracking
 * records after any stop. Run it with a runner, as part of a {@link System}.
 *
 * @example
 * ```ts
 * class Reservations extends ProcessApplication {
 *   static override readonly followTopics = [Order.Created]
 *   protected policy(event: DomainEvent, processing: ProcessingEvent) {
 *     if (event instanceof Order.Created) processing.save(Reservation.create({ orderId: event.originatorId }))
 *   }
 * }
 * ```
 */
export abstract class ProcessApplication extends Application {
  /** Only upstream events of these classes or topics reach the policy (all when not given). */
  static readonly followTopics?: readonly FollowedTopic[]
  /**
   * Whether an upstream event whose topic names no known class is passed over
   * (tracked, with no effect) rather than stopping the follower (default false).
   */
  static readonly skipUnknownTopics: boolean = false

  #queue: Promise<unknown> = Promise.resolve()

  /**
   * Reacts to an upstream event: get aggregates from `this.repository`, change
   * them, and hand them to `processing.save`. Throwing records nothing (of the
   * whole batch). Within a batch, `this.repository.get` returns the very
   * aggregates that earlier policies of the batch saved, with their changes.
   */
  protected abstract policy(event: DomainEvent, processing: ProcessingEvent): void | Promise<void>

  /**
   * Returns the ids of the aggregates that the policy will read for an
   * upstream event (none by default). A batch reads the aggregates of all its
   * events at once, in one round trip, before its policies run, and each
   * policy's first `this.repository.get` of one takes it from there: override
   * this when a policy's reads cost more than the rest of its work.
   *
   * @example
   * ```ts
   * protected override idsToPrefetch(event: DomainEvent) {
   *   return event instanceof Payment.Created ? [event.orderId] : []
   * }
   * ```
   */
  protected idsToPrefetch(_event: DomainEvent): readonly string[] {
    return []
  }

  /** The topics followed, from `followTopics`; undefined means all. */
  get followedTopics(): readonly string[] | undefined {
    return topicsOf((this.constructor as typeof ProcessApplication).followTopics)
  }

  /**
   * Processes one notification of an upstream log: a batch of one (see
   * {@link ProcessApplication.processBatch}).
   */
  process(upstream: Source, notification: Notification): Promise<Recording[]> {
    return this.processBatch(upstream, [notification])
  }

  /**
   * Processes notifications of one upstream log as one unit: decodes each and
   * runs the policy on it, in order, each policy seeing through
   * `this.repository` the aggregates that earlier ones saved (the same
   * objects, changes included); then records all their new events, in the
   * order the policies saved them, with the tracking record of the last
   * notification, in one atomic write. It is all or nothing: when a
   * notification fails, none of the batch is recorded, and processing the
   * batch again one notification at a time does what comes before it (as
   * runners do). Calls are processed one at a time, in the order made; an
   * empty batch records nothing.
   *
   * @throws IntegrityError if a notification was processed already (the
   * tracking record is not newer) or an aggregate was changed meanwhile;
   * TopicError for an unknown topic unless `skipUnknownTopics`; whatever a
   * policy throws. Nothing is recorded then.
   */
  processBatch(upstream: Source, notifications: readonly Notification[]): Promise<Recording[]> {
    return this.processMany(notifications.map((notification) => ({ source: upstream, notification })))
  }

  /**
   * Processes notifications of several sources as one unit, as
   * {@link ProcessApplication.processBatch} processes those of one: the
   * policies run in the order given, then one atomic write records their new
   * events with one tracking record per source, of its last notification in
   * the batch (a source's notifications must come in increasing id order).
   * This is how a relay's `Republisher`, which tracks each upstream aggregate
   * as a source, processes a batch of messages in one transaction.
   *
   * @throws what {@link ProcessApplication.processBatch} throws; nothing is recorded then.
   */
  processMany(batch: readonly SourcedNotification[]): Promise<Recording[]> {
    const processed = this.#queue.then(() => this.#process(batch))
    this.#queue = processed.catch(() => {})
    return processed
  }

  /** Returns the id of the last notification of `upstreamName` processed here, 0 when none. */
  async position(upstreamName: string): Promise<number> {
    return (await this.stores()).recorders.events.maxTrackingId(upstreamName)
  }

  /** Returns true if the notification of `upstreamName` was processed here. */
  async isProcessed(upstreamName: string, notificationId: number): Promise<boolean> {
    return (await this.stores()).recorders.events.hasTrackingId(upstreamName, notificationId)
  }

  /**
   * Resolves once this application has processed the notification
   * `notificationId` of `upstream` (an application it follows), or has passed
   * it because it does not follow its topic: once its position is at or beyond
   * the last notification it follows at or below that id. It reads the
   * tracking records, so it works from any process that opens the same
   * storage as the one running the follower (PostgreSQL, an SQLite file); a
   * runner's `waitFor` also rejects when the follower fails.
   *
   * @example
   * ```ts
   * const [recording] = await orders.save(order)
   * await reservations.waitFor(orders, recording!.notification.id)
   * ```
   * @throws ProgrammingError if the id is not an integer, or `timeoutMs` not a
   * finite number, 0 or more; WaitTimeoutError naming this application, the
   * upstream and the id when `timeoutMs` (default 10,000) passes first; the
   * signal's reason if it aborts first.
   */
  async waitFor(upstream: UpstreamLog, notificationId: number, options?: WaitForOptions): Promise<void> {
    const tracking = (await this.stores()).recorders.events
    await waitForFollower({ name: this.name, upstream, topics: this.followedTopics, tracking }, notificationId, options)
  }

  async #process(batch: readonly SourcedNotification[]): Promise<Recording[]> {
    if (batch.length === 0) return []
    const changes: AggregateChanges[] = []
    const pending = new Map<string, Aggregate>()
    const events = await this.#decodeAll(batch)
    const prefetch = events.flatMap(({ event }) => this.idsToPrefetch(event))
    await this.repository.readingThrough(
      pending,
      async () => {
        for (const { event, source, notification } of events) {
          const processing = new ProcessingEvent({ applicationName: source.name, notificationId: notification.id })
          await this.policy(event, processing)
          // Collected now, so that the batch records events in the order one-at-a-time processing would.
          for (const aggregate of processing.aggregates) {
            changes.push({ aggregate, events: aggregate.collectEvents() })
            pending.set(aggregate.id, aggregate)
          }
        }
      },
      prefetch,
    )
    return this.recordChanges(changes, lastOfEachSource(batch))
  }

  /** Decodes notifications, leaving out those of unknown topics passed over by `skipUnknownTopics`. */
  async #decodeAll(batch: readonly SourcedNotification[]) {
    const decoded: (SourcedNotification & { event: DomainEvent })[] = []
    for (const { source, notification } of batch) {
      const event = await this.#decode(source, notification)
      if (event !== undefined) decoded.push({ event, source, notification })
    }
    return decoded
  }

  /** Decodes a notification; undefined for an unknown topic passed over by `skipUnknownTopics`. */
  async #decode(upstream: Source, notification: Notification): Promise<DomainEvent | undefined> {
    try {
      return await upstream.notificationLog.decode(notification)
    } catch (error) {
      const skip = (this.constructor as typeof ProcessApplication).skipUnknownTopics && error instanceof TopicError
      if (!skip) throw error
      return undefined
    }
  }
}

/** Returns the tracking record of the last notification of each source in `batch`. */
function lastOfEachSource(batch: readonly SourcedNotification[]): Tracking[] {
  const last = new Map<string, number>()
  for (const { source, notification } of batch) last.set(source.name, notification.id)
  return [...last].map(([applicationName, notificationId]) => ({ applicationName, notificationId }))
}
