import type { DomainEvent } from '../domain/domain-event.js'
import type { Mapper } from './mapper.js'
import type { EventsQuery, ProcessRecorder, SelectEventsOptions } from './recorder.js'
import type { Notification, Tracking } from './stored-event.js'

/** A domain event together with the notification that recorded it in the application's log. */
export interface Recording {
  /** The domain event that was recorded. */
  readonly domainEvent: DomainEvent
  /** The event's stored form, with the notification id that the recorder gave it. */
  readonly notification: Notification
}

/**
 * Stores and retrieves domain events: maps them to stored events with a
 * {@link Mapper} and records them with a recorder.
 */
export class EventStore {
  /** Makes an event store that maps events with `mapper` and records them with `recorder`. */
  constructor(
    /** Converts domain events to stored events and back. */
    readonly mapper: Mapper,
    /** Records the stored events, the application's log and its tracking records. */
    readonly recorder: ProcessRecorder,
  ) {}

  /**
   * Records events atomically, together with the tracking records when given
   * (one, or one per upstream: see `ProcessRecorder.insertEvents`).
   *
   * @returns one recording per event, in order.
   * @throws IntegrityError if any event's version is already recorded, or a
   * tracking record is not newer than the last; nothing is written then.
   */
  async put(
    events: readonly DomainEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<Recording[]> {
    const stored = events.map((event) => this.mapper.toStoredEvent(event))
    const ids = await this.recorder.insertEvents(stored, options)
    return stored.map((storedEvent, index) => ({
      domainEvent: events[index]!,
      notification: { ...storedEvent, id: ids[index]! },
    }))
  }

  /** Returns the events of one aggregate, in version order unless `desc`, filtered by the options. */
  async get(originatorId: string, options?: SelectEventsOptions): Promise<DomainEvent[]> {
    const stored = await this.recorder.selectEvents(originatorId, options)
    return stored.map((event) => this.mapper.toDomainEvent(event))
  }

  /** Returns the events of several aggregates in one read: for each query, its aggregate's events after `gt`. */
  async getMany(queries: readonly EventsQuery[]): Promise<DomainEvent[][]> {
    const stored = await this.recorder.selectEventsOfMany(queries)
    return stored.map((events) => events.map((event) => this.mapper.toDomainEvent(event)))
  }

  /** Deletes all events of one aggregate, and returns how many there were. */
  delete(originatorId: string): Promise<number> {
    return this.recorder.deleteEvents(originatorId)
  }
}
