import { setImmediate } from 'node:timers/promises'
import { ProgrammingError, WaitTimeoutError } from './errors.js'
import type {
  SelectNotificationsOptions,
  SubscribeOptions,
  TrackingRecorder,
  WaitForTrackingOptions,
} from './recorder.js'
import type { Notification } from './stored-event.js'

/**
 * Tells in-process waiters that a recorder committed something. Each commit
 * bumps `generation`, so a waiter that read the generation before querying
 * cannot miss a commit that lands between its query and its wait.
 */
export class CommitSignal {
  #generation = 0
  readonly #waiters = new Set<() => void>()

  /** The number of commits signalled so far. */
  get generation(): number {
    return this.#generation
  }

  /** Signals a commit, waking every waiter. */
  notify(): void {
    this.#generation++
    for (const wake of this.#waiters) wake()
    this.#waiters.clear()
  }

  /**
   * Resolves when a commit after `generation` is signalled, after `pollMs`
   * (changes made by other processes are seen only by polling), or on abort.
   */
  wait(generation: number, pollMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#generation !== generation || signal?.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        this.#waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, pollMs)
      signal?.addEventListener('abort', done, { once: true })
      this.#waiters.add(done)
    })
  }
}

/**
 * A registry of commit signals by key (for example a database and a table),
 * each kept while at least one user holds it, so that recorders opened
 * separately on the same storage wake each other's waiters.
 */
export class CommitSignals {
  readonly #entries = new Map<string, { readonly signal: CommitSignal; users: number }>()

  /**
   * Returns the signal of `key`, made if missing, and a function that gives it
   * back; the entry is dropped when its last user gives it back. Giving back
   * twice does nothing.
   */
  acquire(key: string): { readonly signal: CommitSignal; readonly release: () => void } {
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      entry = { signal: new CommitSignal(), users: 0 }
      this.#entries.set(key, entry)
    }
    const held = entry
    held.users++
    let released = false
    const release = () => {
      if (released) return
      released = true
      if (--held.users === 0 && this.#entries.get(key) === held) this.#entries.delete(key)
    }
    return { signal: held.signal, release }
  }
}

/** What {@link followLog} needs from a recorder. */
export interface LogSource {
  /** Returns notifications in increasing id order, filtered as the options say. */
  selectNotifications(options: SelectNotificationsOptions): Promise<Notification[]>
}

/**
 * A subscription to a log that can also be read a page at a time: the
 * notifications in the arrays its queries returned, so that a reader that
 * handles them in batches awaits once per page rather than once per
 * notification (which costs more than reading them, when catching up).
 */
export interface PagedSubscription extends AsyncIterable<Notification> {
  /** Yields the same notifications as iterating the subscription, as non-empty arrays in increasing id order. */
  pages(): AsyncIterable<readonly Notification[]>
}

/** Returns true if `iterable` is a {@link PagedSubscription}. */
export function isPaged<T>(iterable: AsyncIterable<T>): iterable is AsyncIterable<T> & PagedSubscription {
  return typeof (iterable as Partial<PagedSubscription>).pages === 'function'
}

/**
 * Makes a {@link PagedSubscription} of the pages that `pages()` yields; its
 * notifications are yielded one by one until the signal aborts.
 */
export function paged(pages: () => AsyncIterable<readonly Notification[]>, signal?: AbortSignal): PagedSubscription {
  return {
    pages,
    async *[Symbol.asyncIterator]() {
      for await (const page of pages()) {
        for (const notification of page) {
          if (signal?.aborted) return
          yield notification
        }
      }
    },
  }
}

/**
 * The most notifications a subscription reads in one query: as many as a
 * projection's batch, so that catching up takes one query and one commit per
 * batch.
 */
export const SUBSCRIPTION_PAGE_SIZE = 1000

/**
 * Yields the notifications of a log after `options.gt`, then new ones as they
 * are committed, until the signal aborts, a page (a query's non-empty result,
 * at most `batchSize`, default {@link SUBSCRIPTION_PAGE_SIZE}) at a time. Each
 * notification is yielded once, in increasing id order, because every query
 * starts after the last id yielded. After a full page, the next is read while
 * the reader handles it (catching up, the query overlaps the reader's commit).
 */
export async function* followLogPages(
  source: LogSource,
  commits: CommitSignal,
  options: SubscribeOptions & { pollMs: number; batchSize?: number },
): AsyncGenerator<readonly Notification[]> {
  const { signal, topics, originatorId, pollMs, batchSize = SUBSCRIPTION_PAGE_SIZE } = options
  const read = (after: number) => {
    const generation = commits.generation
    const select = { start: after, inclusiveOfStart: false, limit: batchSize, topics, originatorId }
    const page = source.selectNotifications(select)
    // A page read ahead is left unread when the reader stops: its failure is then nobody's to handle.
    page.catch(() => {})
    return { generation, page }
  }
  let last = options.gt ?? 0
  let next: ReturnType<typeof read> | undefined
  while (!signal?.aborted) {
    next ??= read(last)
    const { generation } = next
    const page = await next.page
    next = undefined
    if (signal?.aborted) return
    const full = page.length >= batchSize
    if (page.length > 0) last = page.at(-1)!.id
    if (full) next = read(last)
    if (page.length > 0) yield page
    if (!full) await commits.wait(generation, pollMs, signal)
  }
}

/** Like {@link followLogPages}, but also yielding the notifications one by one (see {@link PagedSubscription}). */
export function followLog(
  source: LogSource,
  commits: CommitSignal,
  options: SubscribeOptions & { pollMs: number; batchSize?: number },
): PagedSubscription {
  return paged(() => followLogPages(source, commits, options), options.signal)
}

/**
 * Yields the items of `source` in arrays of at most `maxSize`: the pages of a
 * {@link PagedSubscription}, cut to size; otherwise each array holds the next
 * item and whatever else had arrived by then, so arrays grow when the source
 * runs ahead (catching up) and stay single when it is live.
 */
export async function* pagesOf<T>(source: AsyncIterable<T>, maxSize: number): AsyncGenerator<T[]> {
  if (isPaged(source)) {
    for await (const page of source.pages() as AsyncIterable<readonly T[]>) {
      for (let i = 0; i < page.length; i += maxSize) yield page.slice(i, i + maxSize)
    }
    return
  }
  const iterator = source[Symbol.asyncIterator]()
  const pending = Symbol('pending')
  let next = iterator.next()
  try {
    for (;;) {
      const first = await next
      if (first.done) return
      const batch = [first.value]
      next = iterator.next()
      // Items that are ready settle before the next turn of the event loop.
      const turn = setImmediate(pending)
      while (batch.length < maxSize) {
        const result = await Promise.race([next, turn])
        if (result === pending) break
        if (result.done) {
          yield batch
          return
        }
        batch.push(result.value)
        next = iterator.next()
      }
      yield batch
    }
  } finally {
    await iterator.return?.()
  }
}

/**
 * Resolves once `isDone()` is true, checking after each commit and every `pollMs`.
 *
 * @returns false if `timeoutMs` passed first.
 * @throws the signal's reason if it aborts.
 */
export async function waitUntil(
  isDone: () => Promise<boolean>,
  commits: CommitSignal,
  options: { pollMs: number; timeoutMs: number; signal?: AbortSignal },
): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    options.signal?.throwIfAborted()
    const generation = commits.generation
    if (await isDone()) return true
    const remaining = deadline - Date.now()
    if (remaining <= 0) return false
    await commits.wait(generation, Math.min(options.pollMs, remaining), options.signal)
  }
}

/** How long a wait for tracking lasts when no `timeoutMs` is given. */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000

/**
 * Returns the `timeoutMs` option of a wait in whole milliseconds, rounded up,
 * or {@link DEFAULT_WAIT_TIMEOUT_MS} when it is not given.
 *
 * @throws ProgrammingError unless it is a finite number, 0 or more (NaN would
 * never time out, and Infinity is what no timer takes).
 */
export function waitTimeoutMs(timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return DEFAULT_WAIT_TIMEOUT_MS
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    const given = typeof timeoutMs === 'number' ? String(timeoutMs) : JSON.stringify(timeoutMs)
    throw new ProgrammingError(`timeoutMs must be a finite number of milliseconds, 0 or more, got ${given}`)
  }
  return Math.ceil(timeoutMs)
}

/**
 * Implements {@link TrackingRecorder.waitForTracking} for a recorder that
 * signals its commits: resolves once `recorder` has tracked the notification,
 * checking after each commit signalled on `commits` and every `pollMs`.
 *
 * @throws ProgrammingError for a `timeoutMs` that is not a finite number, 0
 * or more; WaitTimeoutError naming the application and the id when
 * `timeoutMs` (default 10,000) passes first; the signal's reason if it aborts.
 */
export async function waitForTracking(
  recorder: Pick<TrackingRecorder, 'hasTrackingId'>,
  commits: CommitSignal,
  applicationName: string,
  notificationId: number,
  options: WaitForTrackingOptions,
  pollMs: number,
): Promise<void> {
  const { signal } = options
  const timeoutMs = waitTimeoutMs(options.timeoutMs)
  const isDone = () => recorder.hasTrackingId(applicationName, notificationId)
  if (!(await waitUntil(isDone, commits, { pollMs, timeoutMs, signal }))) {
    throw new WaitTimeoutError(
      `Notification ${notificationId} of application '${applicationName}' was not tracked within ${timeoutMs} ms`,
    )
  }
}
