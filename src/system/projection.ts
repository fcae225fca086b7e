import { EventEmitter } from 'node:events'
import type { DomainEvent } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import { getTopic } from '../domain/topics.js'
import { ProgrammingError } from '../persistence/errors.js'
import type { ProjectionStore, WaitForTrackingOptions } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'
import { follow, type Upstream } from './follow.js'
import type { FollowedTopic } from './process-application.js'
import type { FollowerStatus, RunnerEvents } from './runner.js'

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
export abstract class Projection<T> {
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
  abstract process(event: DomainEvent, transaction: T): void | Promise<void>

  /** Empties the view, for a rebuild; the tables may be kept (`createTables` runs again after it). */
  abstract clear(transaction: T): void | Promise<void>
}

/** What a {@link ProjectionRunner} runs: a projection of an upstream log into a store. */
export interface ProjectionRunnerOptions<T> {
  /** The application whose log is projected (only read: the runner does not close it). */
  readonly upstream: Upstream
  /** The projection. */
  readonly projection: Projection<T>
  /** The database of the view and its tracking (not closed by the runner). */
  readonly store: ProjectionStore<T>
  /** At most this many notifications per transaction (default 500); batches are that large only when catching up. */
  readonly batchSize?: number
  /** Tries per notification before the runner stops (default 3). */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
}

/** One run, from a start to its stop or failure. */
interface Run {
  readonly stop: AbortController
  done: Promise<void>
}

const DEFAULT_BATCH_SIZE = 500

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
 * await runner.waitForTracking(recording!.notification.id)
 * ```
 */
export class ProjectionRunner<T> extends EventEmitter<RunnerEvents> implements AsyncDisposable {
  readonly #upstream: Upstream
  readonly #projection: Projection<T>
  readonly #store: ProjectionStore<T>
  readonly #options: ProjectionRunnerOptions<T>
  readonly #topics: ReadonlySet<string> | undefined
  #run: Run | undefined
  #status: FollowerStatus
  /** Aborted, with the error as reason, when the last run fails. */
  #failure = new AbortController()

  /**
   * Makes a runner; nothing happens until {@link ProjectionRunner.start}.
   *
   * @throws ProgrammingError for a batch size or number of attempts that is not a positive integer.
   */
  constructor(options: ProjectionRunnerOptions<T>) {
    super()
    const { batchSize, attempts } = options
    for (const [name, value] of Object.entries({ batchSize, attempts })) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new ProgrammingError(`${name} must be a positive integer, got ${value}`)
      }
    }
    this.#upstream = options.upstream
    this.#projection = options.projection
    this.#store = options.store
    this.#options = options
    const { topics } = options.projection
    this.#topics = topics && new Set(topics.map((topic) => (typeof topic === 'string' ? topic : getTopic(topic))))
    this.#status = { name: this.#store.name, state: 'stopped', positions: {} }
  }

  /**
   * Creates the view's tables, then starts processing from the store's
   * tracking on; resolves once processing has started.
   *
   * @throws ProgrammingError if it is running already; the store's errors
   * creating the tables.
   */
  async start(): Promise<void> {
    if (this.#run !== undefined) throw new ProgrammingError(`The projection ${this.#store.name} is running already`)
    const run: Run = { stop: new AbortController(), done: Promise.resolve() }
    this.#run = run
    try {
      await this.#store.setup((transaction) => this.#projection.createTables(transaction))
    } catch (error) {
      this.#run = undefined
      throw error
    }
    if (run.stop.signal.aborted) return
    const name = this.#store.name
    const applicationName = this.#upstream.name
    const failure = new AbortController()
    this.#failure = failure
    this.#status = { name, state: 'running', positions: {} }
    run.done = follow({
      follower: name,
      upstream: this.#upstream,
      position: () => this.#store.maxTrackingId(applicationName),
      process: (batch) => this.#process(batch),
      isProcessed: (id) => this.#store.hasTrackingId(applicationName, id),
      batchSize: this.#options.batchSize ?? DEFAULT_BATCH_SIZE,
      attempts: this.#options.attempts,
      retryDelayMs: this.#options.retryDelayMs,
      signal: run.stop.signal,
    }).then(
      () => {
        this.#status = { ...this.#status, state: 'stopped' }
        if (this.#run === run) this.#run = undefined
      },
      (reason: unknown) => {
        const error = reason instanceof Error ? reason : new Error(String(reason))
        this.#status = { ...this.#status, state: 'failed', error }
        if (this.#run === run) this.#run = undefined
        failure.abort(error)
        this.emit('followerError', error, name)
      },
    )
  }

  /** Lets the batch in hand finish, then stops; stopping a runner that is not running does nothing. */
  async stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    run.stop.abort()
    await run.done
    if (this.#run === run) this.#run = undefined
  }

  /**
   * Stops, then empties the view and forgets its tracking of the upstream in
   * one transaction, then starts again from the beginning of the log;
   * resolves once started. Other runners of the projection must be stopped first.
   */
  async rebuild(): Promise<void> {
    await this.stop()
    await this.#store.reset(this.#upstream.name, (transaction) => this.#projection.clear(transaction))
    await this.start()
  }

  /**
   * Resolves once the notification of the upstream log was processed, so that
   * the caller reads its own writes in the view (by this runner or by another
   * process running the projection on the same store).
   *
   * @throws WaitTimeoutError naming the application and the id when `timeoutMs`
   * (default 10,000) passes first; the runner's error if it failed before
   * processing it; the signal's reason if it aborts.
   */
  async waitForTracking(notificationId: number, options: WaitForTrackingOptions = {}): Promise<void> {
    const failure = this.#failure.signal
    const signal = options.signal === undefined ? failure : AbortSignal.any([options.signal, failure])
    const applicationName = this.#upstream.name
    try {
      await this.#store.waitForTracking(applicationName, notificationId, { ...options, signal })
    } catch (error) {
      if (!failure.aborted || options.signal?.aborted) throw error
      if (await this.#store.hasTrackingId(applicationName, notificationId)) return
      throw failure.reason
    }
  }

  /** Returns the projection's state: its name (the store's), running, stopped or failed, and its position. */
  status(): FollowerStatus {
    return this.#status
  }

  /** Stops the runner (not the store, nor the upstream application). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }

  /** Decodes the events the projection follows, then writes them and the tracking of the batch in one transaction. */
  async #process(batch: readonly Notification[]): Promise<void> {
    const events: DomainEvent[] = []
    for (const notification of batch) {
      if (this.#topics !== undefined && !this.#topics.has(notification.topic)) continue
      try {
        events.push(await this.#upstream.notificationLog.decode(notification))
      } catch (error) {
        if (!(this.#projection.skipUnknownTopics && error instanceof TopicError)) throw error
      }
    }
    const tracking = { applicationName: this.#upstream.name, notificationId: batch.at(-1)!.id }
    await this.#store.write(tracking, (transaction) => processAll(this.#projection, events, 0, transaction))
    // Here rather than in follow's onProgress, which a batch that fails part-way never calls.
    this.#status = { ...this.#status, positions: { [tracking.applicationName]: tracking.notificationId } }
  }
}

/**
 * Has the projection process `events` from `start` on. It stays synchronous
 * as long as the projection does, so that a store such as SQLite's can
 * commit without letting other code of this thread run.
 */
function processAll<T>(
  projection: Projection<T>,
  events: readonly DomainEvent[],
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
