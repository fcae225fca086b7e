import type { DomainEvent } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import { SUBSCRIPTION_PAGE_SIZE } from '../persistence/commit-signal.js'
import type { ProjectionStore } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'
import { type FollowedTopic, topicsOf } from './process-application.js'
import { TrackedFollower, type TrackedFollowerOptions } from './tracked-follower.js'

/**
 * A projection is a read model (a view) kept up to date from an application's
 * events: it writes its tables with its own SQL through the transaction
 * handle `T` of its {@link ProjectionStore}. Run it with a {@link ProjectionRunner},
 * which commits its changes together with the tracking of the events, so
 * each event takes effect exactly once.
 *
 * @example
 * ```ts
 * class Tricks extends Projection<SqliteTransaction> {
 *   override readonly topics = [Dog.TrickAdded]
 *   override createTables(transaction: SqliteTransaction) {
 *     transaction.exec('CREATE TABLE IF NOT EXISTS tricks (trick TEXT PRIMARY KEY, dogs INTEGER NOT NULL)')
 *   }
 *   process(event: DomainEvent, transaction: SqliteTransaction) {
 *     if (event instanceof Dog.TrickAdded) {
 *       const count = 'INSERT INTO tricks VALUES (?, 1) ON CONFLICT (trick) DO UPDATE SET dogs = dogs + 1'
 *       transaction.prepare(count).run(event.trick)
 *     }
 *   }
 *   clear(transaction: SqliteTransaction) {
 *     transaction.exec('DELETE FROM tricks')
 *   }
 * }
 * ```
 */
export abstract class Projection<T, E = DomainEvent> {
  /**
   * Only events of these classes or topics reach {@link Projection.process}
   * (all when not given). The others are passed over without being decoded,
   * but their positions are tracked all the same.
   */
  readonly topics?: readonly FollowedTopic[]

  /**
   * Whether an event whose topic names no known class is passed over (tracked,
   * with no effect) rather than stopping the runner (default false).
   */
  readonly skipUnknownTopics: boolean = false

  /** Creates the view's tables if they are missing; the runner calls it, in one transaction, on each start. */
  createTables(_transaction: T): void | Promise<void> {}

  /**
   * Changes the view as `event` says, through `transaction`; the events of a
   * batch are processed one after another in one transaction. Throwing undoes
   * everything done in it; the runner tries again, then stops. On SQLite keep
   * it synchronous, so that the write lock is not held across awaits.
   */
  abstract process(event: E, transaction: T): void | Promise<void>

  /** Empties the view, for a rebuild; the tables may be kept (`createTables` runs again after it). */
  abstract clear(transaction: T): void | Promise<void>
}

/**
 * The application whose log a {@link ProjectionRunner} projects: an
 * `Application`, whose log decodes into domain events, or a `DcbApplication`,
 * whose log decodes into tagged events (`E`).
 */
export interface ProjectionUpstream<E = DomainEvent>
  extends Omit<TrackedFollowerOptions['upstream'], 'notificationLog'> {
  readonly notificationLog: Omit<TrackedFollowerOptions['upstream']['notificationLog'], 'decode'> & {
    decoder(): Promise<(notification: Notification) => E>
  }
}

/** What a {@link ProjectionRunner} runs: a projection of an upstream log into a store. */
export interface ProjectionRunnerOptions<T, E = DomainEvent> extends Omit<TrackedFollowerOptions, 'upstream'> {
  /** The application whose log is projected; its events are decoded a batch at a time. */
  readonly upstream: ProjectionUpstream<E>
  /** The projection. */
  readonly projection: Projection<T, E>
  /** The database of the view and its tracking (not closed by the runner). */
  readonly store: ProjectionStore<T>
  /**
   * At most this many notifications per transaction (default 1,000, a page of
   * the subscription); batches are that large only when catching up, where
   * each commit costs about as much as reading a page.
   */
  readonly batchSize?: number
  /** Tries per notification before the runner stops on a failure other than an outage, which is retried while it lasts (default 3). */
  readonly attempts?: number
}

const DEFAULT_BATCH_SIZE = SUBSCRIPTION_PAGE_SIZE

/**
 * Runs a {@link Projection} of an upstream application's log in this process:
 * from the store's tracking on, what is recorded already (in batches, each
 * written in one transaction with the tracking of its last notification),
 * then new events as they are recorded. A batch that fails is processed again
 * one notification at a time, and a notification that keeps failing stops
 * the runner with a {@link ProcessingError} (see {@link ProjectionRunner.status}
 * and the `followerError` event), with nothing of it written; starting again
 * resumes from it.
 *
 * @example
 * ```ts
 * await using store = sqliteProjectionStore({ path: 'views.db', name: 'tricks' })
 * await using runner = new ProjectionRunner({ upstream: school, projection: new Tricks(), store })
 * await runner.start()
 * const [recording] = await school.save(dog)
 * await runner.waitFor(recording!.notification.id)
 * ```
 */
export class ProjectionRunner<T, E = DomainEvent> extends TrackedFollower {
  readonly #projection: Projection<T, E>
  readonly #store: ProjectionStore<T>
  readonly #topics: ReadonlySet<string> | undefined
  readonly #log: ProjectionUpstream<E>['notificationLog']

  /**
   * Makes a runner; nothing happens until {@link TrackedFollower.start}.
   *
   * @throws ProgrammingError for a batch size or number of attempts that is not a positive integer.
   */
  constructor(options: ProjectionRunnerOptions<T, E>) {
    const topics = topicsOf(options.projection.topics)
    super(options.store.name, options.store, {
      ...options,
      // The follower reads the log and decodes nothing itself: a log of any events will do.
      upstream: options.upstream as unknown as TrackedFollowerOptions['upstream'],
      batchSize: options.batchSize ?? DEFAULT_BATCH_SIZE,
      attempts: options.attempts ?? 3,
      topics,
    })
    this.#projection = options.projection
    this.#store = options.store
    this.#log = options.upstream.notificationLog
    this.#topics = topics && new Set(topics)
  }

  /**
   * Stops, then empties the view and forgets its tracking of the upstream in
   * one transaction, then starts again from the beginning of the log;
   * resolves once started. Other runners of the projection must be stopped first.
   */
  async rebuild(): Promise<void> {
    await this.stop()
    await this.#store.reset(this.upstream.name, (transaction) => this.#projection.clear(transaction))
    await this.start()
  }

  /** Creates the view's tables, on each start. */
  protected override async prepare(): Promise<void> {
    await this.#store.setup((transaction) => this.#projection.createTables(transaction))
  }

  /** Decodes the events the projection follows, then writes them and the tracking of the batch in one transaction. */
  protected async process(batch: readonly Notification[]): Promise<void> {
    const decode = await this.#log.decoder()
    const events: E[] = []
    for (const notification of batch) {
      if (this.#topics !== undefined && !this.#topics.has(notification.topic)) continue
      try {
        events.push(decode(notification))
      } catch (error) {
        if (!(this.#projection.skipUnknownTopics && error instanceof TopicError)) throw error
      }
    }
    const tracking = { applicationName: this.upstream.name, notificationId: batch.at(-1)!.id }
    await this.#store.write(tracking, (transaction) => processAll(this.#projection, events, 0, transaction))
  }
}

/**
 * Has the projection process `events` from `start` on. It stays synchronous
 * as long as the projection does, so that a store such as SQLite's can
 * commit without letting other code of this thread run.
 */
function processAll<T, E>(
  projection: Projection<T, E>,
  events: readonly E[],
  start: number,
  transaction: T,
): void | Promise<void> {
  for (let i = start; i < events.length; i++) {
    const result = projection.process(events[i]!, transaction)
    if (result !== undefined && typeof result.then === 'function') {
      return result.then(() => processAll(projection, events, i + 1, transaction))
    }
  }
}
