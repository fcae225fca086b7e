import { setMaxListeners } from 'node:events'
import type { NotificationLog } from '../application/notification-log.js'
import { waitTimeoutMs } from '../persistence/commit-signal.js'
import { ProgrammingError, WaitTimeoutError } from '../persistence/errors.js'
import type { TrackingRecorder } from '../persistence/recorder.js'
import { withAnySignal } from '../persistence/signals.js'

/** At most this many followed notifications are read at a time; the wait goes on from the last of them. */
const PAGE_SIZE = 100

/** The longest a timer takes, in ms (Node's timers take a signed 32-bit number); a longer wait sets it again. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Options for waiting until a follower has processed an upstream notification. */
export interface WaitForOptions {
  /**
   * Give up after this many milliseconds (default 10,000; a fraction is
   * rounded up) with a `WaitTimeoutError`; a finite number, 0 or more.
   */
  readonly timeoutMs?: number
  /** Stops waiting, rejecting with the signal's reason, unless the follower has caught up by then. */
  readonly signal?: AbortSignal
}

/** An application whose followers are waited for: its name and its notification log (an `Application` is one). */
export interface UpstreamLog {
  readonly name: string
  readonly notificationLog: Pick<NotificationLog, 'select' | 'maxId' | 'subscribe'>
}

/** What {@link waitForFollower} needs to know of one follower of one upstream log. */
export interface Follower {
  /** The follower's name, for errors. */
  readonly name: string
  /** The application whose log is followed. */
  readonly upstream: UpstreamLog
  /** The topics of the notifications the follower processes (all when not given). */
  readonly topics?: readonly string[]
  /** Where the follower records its position in the upstream log: a tracking record per notification it processes. */
  readonly tracking: Pick<TrackingRecorder, 'maxTrackingId' | 'waitForTracking'>
}

/**
 * Resolves once a follower has processed the notification `notificationId` of
 * its upstream log, or has passed it because it does not follow its topic:
 * once its position is at or beyond the last notification of its topics at or
 * below that id. A follower's position moves only with the notifications it
 * reads, so that last one is what it waits for, found by reading the upstream
 * log from the position on. The log's reads are settled (a notification still
 * being committed with a lower id is waited for, not passed over), so a
 * followed notification committed late is not missed. On PostgreSQL, though,
 * a read waits for such a write only up to the backend's `settleMs` (2 s by
 * default), then returns what comes before it: when the follower does not
 * follow `notificationId` itself, a write below it left uncommitted for
 * longer can end the wait before the follower has processed that write and
 * the followed notifications between it and the id. An id the log has not
 * reached yet is first waited for.
 *
 * Waiting for a chain (A to B to C) is done hop by hop: wait for B to process
 * A's notification, then for C to process B's log up to the id it has reached.
 *
 * @throws ProgrammingError if the id is not an integer, or `timeoutMs` not a
 * finite number, 0 or more; WaitTimeoutError naming the follower, the
 * upstream application and the id when `timeoutMs` (default 10,000) passes
 * first; the signal's reason if it aborts before the follower has caught up.
 */
export async function waitForFollower(
  follower: Follower,
  notificationId: number,
  options: WaitForOptions = {},
): Promise<void> {
  if (!Number.isSafeInteger(notificationId)) {
    throw new ProgrammingError(`A notification id is an integer, got ${String(notificationId)}`)
  }
  const { upstream, tracking } = follower
  const { signal } = options
  const timeoutMs = waitTimeoutMs(options.timeoutMs)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const step = await nextStep(follower, notificationId)
    if (step === undefined) return
    signal?.throwIfAborted()
    const remaining = deadline - Date.now()
    if (remaining <= 0) throw timedOut(follower, notificationId, timeoutMs, step)
    try {
      if ('target' in step) await tracking.waitForTracking(upstream.name, step.target, { timeoutMs: remaining, signal })
      else await untilRecorded(upstream, notificationId, remaining, signal)
    } catch (error) {
      // Aborted by a failure just after the follower caught up, say: the next look tells.
      if (signal?.aborted) continue
      throw error instanceof WaitTimeoutError ? timedOut(follower, notificationId, timeoutMs, step) : error
    }
  }
}

/** What a wait waits for next: the follower to track a notification, or the upstream log to reach the id. */
type Step = { readonly position: number; readonly target: number } | { readonly position: number; readonly end: number }

/**
 * Returns what the wait for the follower waits for next: the notification
 * `notificationId` itself when the follower follows it, else the last
 * notification of its topics after its position and before that id (of the
 * next page of them), or the log to reach the id; undefined when the follower
 * is past them all.
 */
async function nextStep(follower: Follower, notificationId: number): Promise<Step | undefined> {
  const { upstream, topics } = follower
  const position = await follower.tracking.maxTrackingId(upstream.name)
  if (position >= notificationId) return undefined
  const log = upstream.notificationLog
  // A follower processes in order, so once it has the id itself, it has all it follows before it.
  const [itself] = await log.select({ start: notificationId, stop: notificationId, topics, limit: 1 })
  if (itself !== undefined) return { position, target: itself.id }
  const end = await log.maxId()
  if (end < notificationId) return { position, end }
  // Read up to a committed id: a gap below it is a notification still being committed, which the read waits for
  // (a gap with nothing committed after it within the range would not be seen).
  const followed = await log.select({ start: position, inclusiveOfStart: false, stop: end, topics, limit: PAGE_SIZE })
  const target = followed.filter((notification) => notification.id <= notificationId).at(-1)?.id
  return target === undefined ? undefined : { position, target }
}

/** Resolves once the upstream log has a notification at or beyond `notificationId`, or `timeoutMs` passed, or the signal aborted. */
async function untilRecorded(
  upstream: UpstreamLog,
  notificationId: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  // A timer cut short by MAX_TIMER_MS ends the subscription as a timeout does: the caller looks again.
  const timeout = AbortSignal.timeout(Math.min(timeoutMs, MAX_TIMER_MS))
  await withAnySignal([signal, timeout], async (until) => {
    for await (const _recorded of upstream.notificationLog.subscribe({ gt: notificationId - 1, signal: until })) return
  })
}

/** Returns the error of a wait whose time ran out at `step`. */
function timedOut(follower: Follower, notificationId: number, timeoutMs: number, step: Step): WaitTimeoutError {
  const why =
    'target' in step
      ? `it is at ${step.position}, and has yet to process ${step.target}, which it follows`
      : `the log ends at ${step.end}`
  return new WaitTimeoutError(
    `${follower.name} has not reached notification ${notificationId} of ${follower.upstream.name} ` +
      `within ${timeoutMs} ms: ${why}`,
  )
}

/**
 * Runs waits side by side and resolves once all have; each is given a signal
 * that aborts when `signal` does or another wait rejects, so that no wait
 * outlives the first failure.
 *
 * @throws what the first wait to reject throws.
 */
export async function waitForAll(
  waits: readonly ((signal: AbortSignal) => Promise<void>)[],
  signal?: AbortSignal,
): Promise<void> {
  const failed = new AbortController()
  try {
    await Promise.all(waits.map((wait) => withAnySignal([signal, failed.signal], wait)))
  } finally {
    failed.abort()
  }
}

/**
 * Returns a controller to abort, with the error, when a follower fails. Any
 * number of waits listen to its signal at once (each stops listening when it
 * ends), so Node's warning about more than ten listeners is off for it.
 */
export function failureController(): AbortController {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}
