import { EventEmitter } from 'node:events'
import { ProgrammingError } from '../persistence/errors.js'
import type { TrackingRecorder } from '../persistence/recorder.js'
import { parseInteger } from '../persistence/settings.js'
import { withAnySignal } from '../persistence/signals.js'
import type { Notification } from '../persistence/stored-event.js'
import {
  checkRetryOptions,
  type DEFAULT_MAX_RETRY_DELAY_MS,
  follow,
  type isTransient,
  type Upstream,
} from './follow.js'
import { type FollowerStatus, type RunnerEvents, retryingStatus, runningStatus } from './runner.js'
import { failureController, type UpstreamLog, type WaitForOptions, waitForFollower } from './wait-for.js'

/** The options every {@link TrackedFollower} takes. */
export interface TrackedFollowerOptions {
  /** The application whose log is followed (only read: it is not closed). */
  readonly upstream: Upstream & UpstreamLog
  /** At most this many notifications per batch; batches are that large only when catching up. */
  readonly batchSize?: number
  /**
   * Tries per notification before stopping on a failure of the user's code;
   * transient failures of the store or the broker do not count: they are
   * retried for as long as they last (see {@link isTransient}).
   */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
  /** The longest delay between retries of a transient failure (default {@link DEFAULT_MAX_RETRY_DELAY_MS}). */
  readonly maxRetryDelayMs?: number
}

/** What a {@link TrackedFollower} reads its position from: the tracking of the store it writes. */
export type PositionRecorder = Pick<TrackingRecorder, 'maxTrackingId' | 'hasTrackingId' | 'waitForTracking'>

/** What a subclass tells a {@link TrackedFollower}: its options, with the defaults applied. */
export interface TrackedFollowerSettings extends TrackedFollowerOptions {
  readonly batchSize: number
  readonly attempts: number
  /** The topics of the notifications with an effect (all when not given); the others are tracked all the same. */
  readonly topics?: readonly string[]
}

/** One run, from a start to its stop or failure. */
interface Run {
  readonly stop: AbortController
  done: Promise<void>
}

/**
 * The part shared by the runners that follow one upstream log and record
 * their position in a store of their own (projections, relays): start, a
 * graceful stop, status, `followerError`, and waiting for a position.
 * Subclasses say what is done with each batch, which must record the batch's
 * last notification id in the store with its effects. A transient failure
 * (the store or the broker unreachable) is retried for as long as it lasts,
 * shown by `status()` and the `followerRetrying` and `followerResumed` events.
 */
export abstract class TrackedFollower extends EventEmitter<RunnerEvents> implements AsyncDisposable {
  /** The application whose log is followed. */
  protected readonly upstream: Upstream & UpstreamLog
  readonly #name: string
  readonly #positions: PositionRecorder
  readonly #options: TrackedFollowerSettings
  #run: Run | undefined
  #status: FollowerStatus
  /** Aborted, with the error as reason, when the last run fails. */
  #failure = failureController()

  /**
   * Makes the follower; nothing happens until {@link TrackedFollower.start}.
   *
   * @throws ProgrammingError for a batch size or number of attempts that is
   * not a positive integer, or a retry delay that is not a non-negative integer.
   */
  constructor(name: string, positions: PositionRecorder, options: TrackedFollowerSettings) {
    super()
    parseInteger('batchSize', options.batchSize, 1)
    checkRetryOptions(options)
    this.upstream = options.upstream
    this.#name = name
    this.#positions = positions
    this.#options = options
    this.#status = { name, state: 'stopped', positions: {} }
  }

  /**
   * Prepares (see {@link TrackedFollower.prepare}), then starts processing from
   * the recorded position on; resolves once processing has started.
   *
   * @throws ProgrammingError if it is running already; what preparing throws.
   */
  async start(): Promise<void> {
    if (this.#run !== undefined) throw new ProgrammingError(`${this.#name} is running already`)
    const run: Run = { stop: new AbortController(), done: Promise.resolve() }
    this.#run = run
    try {
      await this.prepare()
    } catch (error) {
      this.#run = undefined
      throw error
    }
    if (run.stop.signal.aborted) return
    const applicationName = this.upstream.name
    const failure = failureController()
    this.#failure = failure
    this.#status = { name: this.#name, state: 'running', positions: {} }
    run.done = follow({
      follower: this.#name,
      upstream: this.upstream,
      position: () => this.#positions.maxTrackingId(applicationName),
      process: (batch) => this.process(batch),
      isProcessed: (id) => this.#positions.hasTrackingId(applicationName, id),
      onProgress: (id) => {
        this.#status = { ...this.#status, positions: { [applicationName]: id } }
      },
      onRetrying: (error, since) => {
        this.#status = retryingStatus(this.#status, error, [since])
        this.emit('followerRetrying', error, this.#name, since)
      },
      onResumed: () => {
        this.#status = runningStatus(this.#status)
        this.emit('followerResumed', this.#name)
      },
      batchSize: this.#options.batchSize,
      attempts: this.#options.attempts,
      retryDelayMs: this.#options.retryDelayMs,
      maxRetryDelayMs: this.#options.maxRetryDelayMs,
      signal: run.stop.signal,
    }).then(
      () => {
        this.#status = { ...runningStatus(this.#status), state: 'stopped' }
        if (this.#run === run) this.#run = undefined
      },
      (reason: unknown) => {
        const error = reason instanceof Error ? reason : new Error(String(reason))
        this.#status = { ...this.#status, state: 'failed', error }
        if (this.#run === run) this.#run = undefined
        failure.abort(error)
        this.emit('followerError', error, this.#name)
      },
    )
  }

  /** Lets the batch in hand finish, then stops; stopping one that is not running does nothing. */
  async stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    run.stop.abort()
    await run.done
    if (this.#run === run) this.#run = undefined
  }

  /**
   * Resolves once the notification `notificationId` of the upstream log was
   * processed (by this runner, or by another process recording in the same
   * store), or passed over because it is not of the topics given: once the
   * position is at or beyond the last notification of those topics at or
   * below that id (see `waitForFollower`).
   *
   * @throws ProgrammingError if the id is not an integer, or `timeoutMs` not a
   * finite number, 0 or more; WaitTimeoutError naming this runner, the
   * upstream application and the id when `timeoutMs` (default 10,000) passes
   * first; the runner's error if it failed before it got there; the signal's
   * reason if it aborts first.
   */
  async waitFor(notificationId: number, options: WaitForOptions = {}): Promise<void> {
    const follower = {
      name: this.#name,
      upstream: this.upstream,
      topics: this.#options.topics,
      tracking: this.#positions,
    }
    const signals = [options.signal, this.#failure.signal]
    await withAnySignal(signals, (signal) => waitForFollower(follower, notificationId, { ...options, signal }))
  }

  /**
   * Returns the state: the name, running, retrying (with the last error and
   * since when), stopped or failed (with the error), and the position.
   */
  status(): FollowerStatus {
    return this.#status
  }

  /** Stops (the store and the upstream application stay open). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }

  /** Runs before processing starts, on each start; does nothing unless overridden. */
  protected async prepare(): Promise<void> {}

  /**
   * Processes a batch of notifications, in order, recording the last one's id
   * in the store together with the effects: all of it, or nothing.
   */
  protected abstract process(batch: readonly Notification[]): Promise<void>
}
