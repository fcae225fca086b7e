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
 * Yields the notifications of a log after `options.gt`, then new ones as they
 * are committed, until the signal aborts. Each notification is yielded once,
 * in increasing id order, because every query starts after the last id yielded.
 */
export async function* followLog(
  source: LogSource,
  commits: CommitSignal,
  options: SubscribeOptions & { pollMs: number; batchSize?: number },
): AsyncGenerator<Notification> {
  const { signal, topics, pollMs, batchSize = 500 } = options
  let last = options.gt ?? 0
  while (!signal?.aborted) {
    const generation = commits.generation
    const batch = await source.selectNotifications({ start: last, inclusiveOfStart: false, limit: batchSize, topics })
    for (const notification of batch) {
      if (signal?.aborted) return
      last = notification.id
      yield notification
    }
    if (batch.length < batchSize) await commits.wait(generation, pollMs, signal)
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
