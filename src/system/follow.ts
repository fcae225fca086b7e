import { setImmediate, setTimeout } from 'node:timers/promises'
import type { NotificationLog } from '../application/notification-log.js'
import { TopicError, UpcastError } from '../domain/errors.js'
import { pagesOf } from '../persistence/commit-signal.js'
import { DataError, OperationalError, WaitTimeoutError } from '../persistence/errors.js'
import { parseInteger } from '../persistence/settings.js'
import { withAnySignal } from '../persistence/signals.js'
import type { Notification } from '../persistence/stored-event.js'
import { ProcessingError } from './processing-error.js'

/** An application whose log is followed: its name and its notification log (an `Application` is one). */
export interface Upstream {
  readonly name: string
  readonly notificationLog: Pick<NotificationLog, 'subscribe' | 'decode'>
}

/** What {@link follow} needs to follow one upstream log into one follower. */
export interface FollowOptions {
  /** The follower's name, for errors. */
  readonly follower: string
  /** The application whose log is followed. */
  readonly upstream: Upstream
  /** Only notifications with these topics (all when not given). */
  readonly topics?: readonly string[]
  /** Returns the id of the last notification of the upstream log processed, 0 when none. */
  position(): Promise<number>
  /**
   * Processes notifications, in order, committing their effects together with
   * the tracking record of the last one: all of it, or nothing.
   */
  process(batch: readonly Notification[]): Promise<void>
  /** Returns true if a notification was processed (an attempt that failed late may have committed). */
  isProcessed(notificationId: number): Promise<boolean>
  /** Called after each batch with the id of its last notification. */
  onProgress?(notificationId: number): void
  /**
   * Called on each transient failure (see {@link isTransient}), before
   * waiting to try again, with the error and when the outage began (its
   * first failure since the store last answered).
   */
  onRetrying?(error: Error, since: Date): void
  /** Called when the store answers again after transient failures. */
  onResumed?(): void
  /** At most this many notifications per call of `process` (default 1). */
  readonly batchSize?: number
  /**
   * Tries per notification before giving up on a failure of the user's code
   * (default 3); an error that retrying cannot help stops at once. Transient
   * failures do not count: they are retried for as long as they last.
   */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
  /** The longest delay between retries of a transient failure (default {@link DEFAULT_MAX_RETRY_DELAY_MS}). */
  readonly maxRetryDelayMs?: number
  /** Stops following once the notification in hand is processed. */
  readonly signal: AbortSignal
}

/** The longest delay between retries of a transient failure when none is given: 5 s. */
export const DEFAULT_MAX_RETRY_DELAY_MS = 5000

/**
 * Checks a follower's retry options, each when given.
 *
 * @throws ProgrammingError naming the option unless `attempts` is a positive
 * integer and `retryDelayMs` and `maxRetryDelayMs` are non-negative integers.
 */
export function checkRetryOptions(options: Pick<FollowOptions, 'attempts' | 'retryDelayMs' | 'maxRetryDelayMs'>): void {
  parseInteger('attempts', options.attempts, 1)
  parseInteger('retryDelayMs', options.retryDelayMs)
  parseInteger('maxRetryDelayMs', options.maxRetryDelayMs)
}

/**
 * Processes an upstream log from the follower's position on: what is recorded
 * already, then new notifications as they are recorded, until the signal
 * aborts (it resolves then). A transient failure (see {@link isTransient}) of
 * reading the position, of the subscription or of processing is retried, with
 * the same batch and a delay that doubles up to `maxRetryDelayMs`, for as long
 * as it lasts; a subscription that gives up is made again from the position.
 * Any other failure of a notification is tried again a few times, unless
 * retrying cannot help (see {@link isPermanent}); a batch that fails so is
 * processed again one notification at a time, so that what comes before the
 * bad one is done.
 *
 * @throws ProcessingError naming the notification that could not be processed.
 */
export async function follow(options: FollowOptions): Promise<void> {
  const { upstream, topics, batchSize = 1 } = options
  // Ends the subscription on failure too, so that leaving the loop does not wait for a next notification.
  const failed = new AbortController()
  await withAnySignal([options.signal, failed.signal], async (signal) => {
    const outage = new Outage(options)
    while (!signal.aborted) {
      try {
        const gt = await options.position()
        outage.end()
        const notifications = upstream.notificationLog.subscribe({ gt, topics, signal })
        for await (const batch of inBatches(notifications, batchSize)) {
          // A page of the subscription may hold several batches: stopping leaves the rest for the next start.
          if (signal.aborted) return
          try {
            await processBatch(options, batch, outage)
          } catch (error) {
            failed.abort(error)
            throw error
          }
          // A backend that answers without I/O (memory, SQLite) settles its promises at once: without a turn of the
          // event loop here, a backlog would be worked through in one turn, starving the process's timers, I/O and signals.
          await setImmediate()
        }
        return
      } catch (error) {
        // Every processed batch is tracked, so subscribing again from the recorded position loses and repeats nothing.
        if (failed.signal.aborted || !isTransient(error)) throw error
        if (!(await outage.retry(error))) return
      }
    }
  })
}

/** Processes a batch, reporting progress after each commit. */
async function processBatch(options: FollowOptions, batch: readonly Notification[], outage: Outage): Promise<void> {
  if (batch.length > 1) {
    const failure = await tryProcess(options, batch, outage)
    if (failure === STOPPED) return
    if (failure === DONE) return options.onProgress?.(batch.at(-1)!.id)
    // Nothing of the batch was written; one at a time, the notifications before the bad one get done.
  }
  for (const notification of batch) {
    if (options.signal.aborted || !(await processOne(options, notification, outage))) return
    options.onProgress?.(notification.id)
  }
}

/** Processes one notification, trying again after failures; returns false if stopped before it was done. */
async function processOne(options: FollowOptions, notification: Notification, outage: Outage): Promise<boolean> {
  const { attempts = 3, retryDelayMs = 100, signal } = options
  for (let attempt = 1; ; attempt++) {
    const failure = await tryProcess(options, [notification], outage)
    if (failure === DONE) return true
    if (failure === STOPPED) return false
    if (attempt >= attempts || isPermanent(failure)) {
      throw new ProcessingError(options.follower, options.upstream.name, notification, attempt, failure)
    }
    // Stopping while waiting to retry leaves the notification for the next start.
    await setTimeout(retryDelayMs * 2 ** (attempt - 1), undefined, { signal }).catch(() => {})
    if (signal.aborted) return false
  }
}

/** What {@link tryProcess} returns when the batch is processed. */
const DONE = Symbol('done')
/** What {@link tryProcess} returns when the signal aborted during an outage. */
const STOPPED = Symbol('stopped')

/**
 * Processes a batch, retrying transient failures for as long as they last:
 * returns DONE once it is processed (or found processed already: a commit that
 * failed late may have happened), STOPPED if the signal aborts during an
 * outage, or else the error of a failure that is not transient.
 */
async function tryProcess(
  options: FollowOptions,
  batch: readonly Notification[],
  outage: Outage,
): Promise<unknown | typeof DONE | typeof STOPPED> {
  for (;;) {
    let failure: unknown
    try {
      await options.process(batch)
      outage.end()
      return DONE
    } catch (error) {
      failure = error
    }
    // A commit whose outcome is unknown is settled by the tracking record before anything is tried again.
    try {
      if (await options.isProcessed(batch.at(-1)!.id)) {
        outage.end()
        return DONE
      }
    } catch (error) {
      if (!isTransient(error)) throw error
      failure = error
    }
    if (!isTransient(failure)) return failure
    if (!(await outage.retry(failure))) return STOPPED
  }
}

/**
 * The transient failures one {@link follow} loop has met since its store last
 * answered: it reports them, and spaces the retries.
 */
class Outage {
  readonly #options: FollowOptions
  /** When the outage began, while there is one. */
  #since: Date | undefined
  #failures = 0

  constructor(options: FollowOptions) {
    this.#options = options
  }

  /** Reports a transient failure, then waits before the next try; returns false if stopped meanwhile. */
  async retry(error: unknown): Promise<boolean> {
    const { retryDelayMs = 100, maxRetryDelayMs = DEFAULT_MAX_RETRY_DELAY_MS, signal } = this.#options
    this.#since ??= new Date()
    this.#options.onRetrying?.(error instanceof Error ? error : new Error(String(error)), this.#since)
    const delay = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** this.#failures++)
    await setTimeout(delay, undefined, { signal }).catch(() => {})
    return !signal.aborted
  }

  /** Ends the outage, if there is one: the store answered. */
  end(): void {
    if (this.#since === undefined) return
    this.#since = undefined
    this.#failures = 0
    this.#options.onResumed?.()
  }
}

/**
 * Returns true for a failure of the infrastructure rather than of the user's
 * code, which lasts only as long as an outage: an OperationalError, which the
 * backends throw when the store cannot be reached, is restarting, lost the
 * connection, or stayed busy (SQLite) past its timeout, after their own short
 * retries, and when a commit's outcome is unknown (settled by reading the
 * tracking record before the next try). Its subclass WaitTimeoutError is not
 * one: a wait that ran out of the time it was given says nothing of the store.
 * A follower retries a transient failure for as long as it lasts.
 */
export function isTransient(error: unknown): boolean {
  return error instanceof OperationalError && !(error instanceof WaitTimeoutError)
}

/**
 * Returns true for an error that the same notification will meet on every
 * try, so that retrying only delays the stop (of a follower; a republisher
 * dead-letters the message at once): an unknown topic (TopicError), stored
 * state that no upcaster brings to the current class version (UpcastError),
 * and bytes that cannot be read or a value the database refuses (DataError).
 * Each needs new code, a new setting or a repair; after one, the follower
 * resumes at the notification when started again.
 */
export function isPermanent(error: unknown): boolean {
  return error instanceof TopicError || error instanceof UpcastError || error instanceof DataError
}

/**
 * Groups the items of an async iterable into arrays of at most `maxSize`: each
 * array holds the next item and whatever else had arrived by then, so batches
 * grow when the source runs ahead (catching up) and stay single when it is live.
 * A subscription that is read a page at a time (see `PagedSubscription`)
 * gives its pages, cut to size, with one await per page.
 */
export function inBatches<T>(source: AsyncIterable<T>, maxSize: number): AsyncGenerator<T[]> {
  return pagesOf(source, maxSize)
}
