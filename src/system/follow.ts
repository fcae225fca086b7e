import { setImmediate, setTimeout } from 'node:timers/promises'
import type { NotificationLog } from '../application/notification-log.js'
import { TopicError, UpcastError } from '../domain/errors.js'
import { pagesOf } from '../persistence/commit-signal.js'
import { DataError } from '../persistence/errors.js'
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
  /** At most this many notifications per call of `process` (default 1). */
  readonly batchSize?: number
  /** Tries per notification before giving up (default 3); an error that retrying cannot help stops at once. */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
  /** Stops following once the notification in hand is processed. */
  readonly signal: AbortSignal
}

/**
 * Processes an upstream log from the follower's position on: what is recorded
 * already, then new notifications as they are recorded, until the signal
 * aborts (it resolves then). A notification that fails is tried again a few
 * times, unless retrying cannot help (see {@link isPermanent}); a batch that
 * fails is processed again one notification at a time, so that what comes
 * before the bad one is done.
 *
 * @throws ProcessingError naming the notification that could not be processed.
 */
export async function follow(options: FollowOptions): Promise<void> {
  const { upstream, topics, batchSize = 1 } = options
  // Ends the subscription on failure too, so that leaving the loop does not wait for a next notification.
  const failed = new AbortController()
  await withAnySignal([options.signal, failed.signal], async (signal) => {
    const gt = await options.position()
    const notifications = upstream.notificationLog.subscribe({ gt, topics, signal })
    for await (const batch of inBatches(notifications, batchSize)) {
      // A page of the subscription may hold several batches: stopping leaves the rest for the next start.
      if (signal.aborted) return
      try {
        await processBatch(options, batch)
      } catch (error) {
        failed.abort(error)
        throw error
      }
      // A backend that answers without I/O (memory, SQLite) settles its promises at once: without a turn of the
      // event loop here, a backlog would be worked through in one turn, starving the process's timers, I/O and signals.
      await setImmediate()
    }
  })
}

/** Processes a batch, reporting progress after each commit. */
async function processBatch(options: FollowOptions, batch: readonly Notification[]): Promise<void> {
  if (batch.length > 1) {
    try {
      await options.process(batch)
      return options.onProgress?.(batch.at(-1)!.id)
    } catch {
      // Nothing of the batch was written; one at a time, the notifications before the bad one get done.
    }
  }
  for (const notification of batch) {
    if (options.signal.aborted || !(await processOne(options, notification))) return
    options.onProgress?.(notification.id)
  }
}

/** Processes one notification, trying again after failures; returns false if stopped before it was done. */
async function processOne(options: FollowOptions, notification: Notification): Promise<boolean> {
  const { attempts = 3, retryDelayMs = 100, signal } = options
  for (let attempt = 1; ; attempt++) {
    try {
      await options.process([notification])
      return true
    } catch (error) {
      if (await options.isProcessed(notification.id)) return true
      if (attempt >= attempts || isPermanent(error)) {
        throw new ProcessingError(options.follower, options.upstream.name, notification, attempt, error)
      }
    }
    // Stopping while waiting to retry leaves the notification for the next start.
    await setTimeout(retryDelayMs * 2 ** (attempt - 1), undefined, { signal }).catch(() => {})
    if (signal.aborted) return false
  }
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
