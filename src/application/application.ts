import { AsyncLocalStorage } from 'node:async_hooks'
import type { Aggregate, AggregateClass } from '../domain/aggregate.js'
import { Aggregate as AggregateBase, uncollectEvents } from '../domain/aggregate.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { EventSourcingError } from '../domain/errors.js'
import { ProgrammingError } from '../persistence/errors.js'
import { EventStore, type Recording } from '../persistence/event-store.js'
import type { Mapper } from '../persistence/mapper.js'
import type { Persistence, Recorders } from '../persistence/recorder.js'
import { parseInteger } from '../persistence/settings.js'
import type { StoredEvent, Tracking } from '../persistence/stored-event.js'
import {
  Config,
  checkPersistence,
  type EncodingOptions,
  type Environment,
  mapperFromConfig,
  persistenceFromConfig,
} from './config.js'
import { NotificationLog } from './notification-log.js'
import { Repository } from './repository.js'
import { SnapshotStore, SnapshottingPolicy } from './snapshotting.js'

/**
 * How an application is set up; each setting can also come from an
 * environment variable (in brackets). Both forms are checked alike when the
 * application is made: a bad value is a ProgrammingError naming the setting.
 */
export interface ApplicationOptions extends EncodingOptions {
  /** The application's name: its tables' prefix and its variables' prefix (default: the class's `applicationName` or name). */
  readonly name?: string
  /** The variables to read settings from (default `process.env`). */
  readonly env?: Environment
  /** Where events are stored (`PERSISTENCE`: memory, sqlite, postgres, cassandra; default memory). */
  readonly persistence?: Persistence
  /** Read and write snapshots (`IS_SNAPSHOTTING_ENABLED`); implied by an interval. */
  readonly snapshotting?: boolean
  /**
   * Take a snapshot of every aggregate each time its version passes a multiple
   * of this non-negative integer (`SNAPSHOTTING_INTERVAL`; 0, the default, takes none).
   */
  readonly snapshottingInterval?: number
  /** Keep this many recently used aggregates in memory (`AGGREGATE_CACHE_SIZE`; default 0, no cache). */
  readonly aggregateCacheSize?: number
  /** The number of notifications in a notification log section, a positive integer (default 10). */
  readonly sectionSize?: number
}

/** Receives an application's domain events after they are recorded. */
export type EventSubscriber = (recordings: readonly Recording[]) => void | Promise<void>

/** A subscriber failed after the events it was given had been recorded. */
export class SubscriberError extends EventSourcingError {
  /** Makes the error; `cause` is what the subscriber threw. */
  constructor(
    /** The recorded events the subscriber failed on. */
    readonly recordings: readonly Recording[],
    cause: unknown,
  ) {
    super('Events were recorded, but a subscriber failed on them', { cause })
  }
}

/** Writing a due snapshot failed after the saved events had been recorded (a snapshot is a cache: nothing is lost). */
export class SnapshotError extends EventSourcingError {
  /** Makes the error; `cause` is the recorder's error. */
  constructor(
    /** The recorded events of the save. */
    readonly recordings: readonly Recording[],
    cause: unknown,
  ) {
    super('Events were recorded, but writing a snapshot of them failed', { cause })
  }
}

/** New events collected from an aggregate (see {@link Application.recordChanges}). */
export interface AggregateChanges {
  readonly aggregate: Aggregate
  readonly events: readonly DomainEvent[]
}

/** The storage an application works with, opened on first use. */
export interface ApplicationStores {
  readonly recorders: Recorders
  readonly events: EventStore
  readonly snapshots?: SnapshotStore
}

/** Returns the number of new events of each aggregate in `changes`, in the order each first appears. */
function countEvents(changes: readonly AggregateChanges[]): Map<Aggregate, number> {
  const counts = new Map<Aggregate, number>()
  for (const { aggregate, events } of changes) counts.set(aggregate, (counts.get(aggregate) ?? 0) + events.length)
  return counts
}

/**
 * An event-sourced application: saves aggregates' new events atomically, gets
 * aggregates back through its {@link Repository}, and exposes its events in
 * order through its {@link NotificationLog}. Subclass it with methods for your
 * use cases.
 *
 * Storage is opened on first use (or by {@link Application.connect}); release it with
 * {@link Application.close}, or declare the application with `await using`.
 */
export class Application implements AsyncDisposable {
  /** The application's name when none is given in code; the class name otherwise (which minifiers may change). */
  static readonly applicationName?: string
  /**
   * Snapshot intervals per aggregate class, e.g. `new Map([[Dog, 50]])`: non-negative
   * integers, 0 turning a class's snapshots off. Each class given an interval
   * (by this or by `snapshottingInterval`) needs a static `topic`, checked at its first save.
   */
  static readonly snapshottingIntervals: ReadonlyMap<AggregateClass, number> = new Map()

  /** The application's name. */
  readonly name: string
  /** The settings read from the environment. */
  readonly config: Config
  /** Gets aggregates by replaying their events. */
  readonly repository: Repository
  /** The application's events in recording order. */
  readonly notificationLog: NotificationLog

  readonly #options: ApplicationOptions
  readonly #mapper: Mapper
  readonly #snapshotting: SnapshottingPolicy
  readonly #subscribers = new Set<EventSubscriber>()
  #stores: Promise<ApplicationStores> | undefined
  #publishing: Promise<void> = Promise.resolve()
  readonly #delivering = new AsyncLocalStorage<boolean>()
  #closed = false

  /**
   * Makes the application; its storage is opened on first use (see {@link Application.connect}).
   *
   * @throws ProgrammingError for a bad setting, given in code or by a
   * variable: a name the backend refuses, an unknown `PERSISTENCE` or
   * `COMPRESSOR`, a malformed cipher key, a number out of range, a variable
   * with the application's prefix that misspells a setting.
   */
  constructor(options: ApplicationOptions = {}) {
    const cls = new.target as typeof Application
    this.name = options.name ?? cls.applicationName ?? cls.name
    this.config = new Config(this.name, options.env ?? process.env)
    checkPersistence(this.config, options.persistence)
    this.#options = options
    this.#mapper = mapperFromConfig(this.config, options)
    const interval =
      parseInteger('snapshottingInterval', options.snapshottingInterval) ?? this.config.integer('SNAPSHOTTING_INTERVAL')
    this.#snapshotting = new SnapshottingPolicy(
      this.name,
      options.snapshotting ?? this.config.boolean('IS_SNAPSHOTTING_ENABLED') ?? false,
      interval || undefined,
      cls.snapshottingIntervals,
    )
    this.repository = new Repository(
      () => this.stores(),
      parseInteger('aggregateCacheSize', options.aggregateCacheSize) ??
        this.config.integer('AGGREGATE_CACHE_SIZE') ??
        0,
    )
    this.notificationLog = new NotificationLog(
      async () => (await this.stores()).events,
      parseInteger('sectionSize', options.sectionSize, 1),
    )
  }

  /**
   * Connects to the application's storage now rather than on first use, so that
   * bad settings or an unreachable database fail early. Calling it again does nothing.
   */
  async connect(): Promise<void> {
    await this.stores()
  }

  /**
   * Records the new events of the given aggregates in one atomic write, then
   * updates the cache, passes the events to subscribers and writes due snapshots.
   *
   * @returns a recording per event, in order.
   * @throws IntegrityError if another writer recorded one of these versions
   * first (get the aggregate again and retry); nothing is written then, and the
   * aggregates keep their new events, so saving them again fails the same way.
   * A due snapshot that cannot be made (TopicError, an unregistered type) also
   * fails the save before anything is written, and so does the first save of
   * an aggregate whose class has automatic snapshots and no topic
   * (TopicError), whether or not a snapshot is due. After the write, a failing
   * subscriber gives {@link SubscriberError} and a failing snapshot write
   * {@link SnapshotError}; the events are recorded then.
   */
  save(...aggregates: Aggregate[]): Promise<Recording[]> {
    return this.saveTracked(aggregates)
  }

  /**
   * Like {@link Application.save}, and records `tracking` in the same atomic
   * write when given (even when the aggregates have no new events): how a
   * follower records what it did with an upstream event.
   */
  protected saveTracked(aggregates: readonly Aggregate[], tracking?: Tracking): Promise<Recording[]> {
    return this.recordChanges(
      aggregates.map((aggregate) => ({ aggregate, events: aggregate.collectEvents() })),
      tracking,
    )
  }

  /**
   * Records events already collected from aggregates, in the order given, with
   * the tracking records when given (one, or one per upstream), in one atomic write, then goes on as
   * {@link Application.save} does: how a process application records a batch,
   * whose policies each changed aggregates in turn (an aggregate may appear
   * more than once, each time with the events collected after the last).
   * When nothing is written, the events go back to their aggregates.
   *
   * @throws what {@link Application.save} throws.
   */
  protected async recordChanges(
    changes: readonly AggregateChanges[],
    tracking?: Tracking | readonly Tracking[],
  ): Promise<Recording[]> {
    const counts = countEvents(changes)
    const aggregates = [...counts.keys()]
    let stores: ApplicationStores
    let recordings: Recording[]
    let snapshots: StoredEvent[]
    try {
      for (const aggregate of aggregates) this.#snapshotting.checkTopic(aggregate)
      stores = await this.stores()
      snapshots = aggregates
        .filter((aggregate) => this.#snapshotting.isDue(aggregate, aggregate.version - counts.get(aggregate)!))
        .map((aggregate) => this.#snapshotStore(stores).toStoredEvent(aggregate))
      recordings = await stores.events.put(
        changes.flatMap((change) => change.events),
        { tracking },
      )
    } catch (error) {
      // Last first, so that an aggregate given more than once gets its events back in order.
      for (const { aggregate, events } of changes.toReversed()) uncollectEvents(aggregate, events)
      throw error
    }
    for (const aggregate of aggregates) this.repository.remember(aggregate)
    await this.#publish(recordings)
    if (snapshots.length > 0) {
      await this.#snapshotStore(stores)
        .insert(snapshots)
        .catch((error: unknown) => {
          throw new SnapshotError(recordings, error)
        })
    }
    return recordings
  }

  /**
   * Records domain events (with a tracking record, when given) in one atomic
   * write and passes them to subscribers. {@link Application.save} is the usual way in.
   */
  async record(events: readonly DomainEvent[], options?: { tracking?: Tracking }): Promise<Recording[]> {
    const recordings = await (await this.stores()).events.put(events, options)
    await this.#publish(recordings)
    return recordings
  }

  /**
   * Takes a snapshot of an aggregate at its latest version, or at `version`.
   *
   * @throws ProgrammingError if snapshotting is off; TopicError if the
   * aggregate's class has no static `topic`.
   */
  async takeSnapshot(id: string, version?: number): Promise<void> {
    const stores = await this.stores()
    const snapshots = this.#snapshotStore(stores)
    const aggregate = await this.repository.get(AggregateBase, id, { version })
    await snapshots.insert([snapshots.toStoredEvent(aggregate)])
  }

  /**
   * Deletes all events and snapshots of an aggregate, for "forget me" requests
   * (snapshots too when snapshotting is off here, since another run may have
   * written some). The notification log keeps a gap where the events were.
   *
   * @returns the number of events deleted.
   */
  async deleteAggregate(id: string): Promise<number> {
    const stores = await this.stores()
    this.repository.forget(id)
    await stores.recorders.snapshots.deleteEvents(id)
    const deleted = await stores.events.delete(id)
    this.repository.forget(id)
    return deleted
  }

  /**
   * Calls `subscriber` with each batch of this application's events after it is
   * recorded, in the order the batches were recorded here. A subscriber may
   * itself save to this application: the batch that causes is passed to the
   * subscribers at once, within the delivery that caused it.
   *
   * @returns a function that unsubscribes.
   */
  subscribe(subscriber: EventSubscriber): () => void {
    this.#subscribers.add(subscriber)
    return () => this.#subscribers.delete(subscriber)
  }

  /** Closes the application's storage. The application cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#publishing
    // Storage that failed to open has nothing to close; its error reached the caller that opened it.
    const stores = await this.#stores?.catch(() => undefined)
    await stores?.recorders.close()
  }

  /** Closes the application (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Opens the storage on first call; later calls share it. */
  protected stores(): Promise<ApplicationStores> {
    if (this.#closed) return Promise.reject(new ProgrammingError(`Application ${this.name} is closed`))
    if (this.#stores === undefined) {
      const opening = this.#openStores()
      this.#stores = opening
      // A failed open is not remembered, so a later call can try again (say, once the database is up).
      opening.catch(() => {
        if (this.#stores === opening) this.#stores = undefined
      })
    }
    return this.#stores
  }

  async #openStores(): Promise<ApplicationStores> {
    const mapper = this.#mapper
    const persistence = this.#options.persistence ?? (await persistenceFromConfig(this.config))
    const recorders = await persistence.open(this.name)
    return {
      recorders,
      events: new EventStore(mapper, recorders.events),
      snapshots: this.#snapshotting.enabled ? new SnapshotStore(mapper, recorders.snapshots) : undefined,
    }
  }

  #snapshotStore(stores: ApplicationStores): SnapshotStore {
    if (stores.snapshots === undefined) {
      throw new ProgrammingError(
        `Snapshotting is off for ${this.name}: pass { snapshotting: true } or a snapshottingInterval, or set IS_SNAPSHOTTING_ENABLED=true`,
      )
    }
    return stores.snapshots
  }

  #publish(recordings: readonly Recording[]): Promise<void> {
    if (this.#subscribers.size === 0 || recordings.length === 0) return Promise.resolve()
    const subscribers = [...this.#subscribers]
    const deliver = () =>
      this.#delivering.run(true, async () => {
        for (const subscriber of subscribers) await subscriber(recordings)
      })
    // A save made by a subscriber cannot wait for the delivery it is part of.
    const published = this.#delivering.getStore() ? deliver() : this.#publishing.then(deliver)
    // The chain only keeps batches in order; the failure itself reaches the saver below.
    this.#publishing = published.catch(() => {})
    return published.catch((error: unknown) => {
      throw new SubscriberError(recordings, error)
    })
  }
}
