import { EventEmitter } from 'node:events'
import type { Application } from '../application/application.js'
import type { Environment } from '../application/config.js'
import { ProgrammingError } from '../persistence/errors.js'
import type { Persistence } from '../persistence/recorder.js'
import { parseInteger } from '../persistence/settings.js'
import { withAnySignal } from '../persistence/signals.js'
import { checkRetryOptions, type DEFAULT_MAX_RETRY_DELAY_MS, follow, type isTransient } from './follow.js'
import { ProcessApplication } from './process-application.js'
import type { ProcessingError } from './processing-error.js'
import { type ApplicationClass, applicationName, type System } from './system.js'
import { failureController, type WaitForOptions, waitForAll } from './wait-for.js'

/** How a runner makes and drives the applications of a system. */
export interface RunnerOptions {
  /** The variables the applications read their settings from (default `process.env`). */
  readonly env?: Environment
  /** One backend for every application (default: each application's `PERSISTENCE` setting). */
  readonly persistence?: Persistence
  /**
   * The followers whose policies run here (default: all). The others are
   * still made, to read their logs and to be used through `get`, so that
   * several processes sharing a database can each run some of the system.
   */
  readonly run?: readonly string[]
  /**
   * At most this many upstream notifications a follower processes as one
   * batch, in one transaction (default {@link DEFAULT_BATCH_SIZE}, at most
   * {@link MAX_BATCH_SIZE}; 1 is one notification per transaction). Batches
   * grow only when notifications are waiting (catching up, a burst): live
   * traffic one event at a time is processed at once, alone.
   */
  readonly batchSize?: number
  /**
   * Tries per upstream event before a follower stops on a failure of the
   * user's code (default 3). Transient failures of the store do not count:
   * they are retried for as long as they last (see {@link isTransient}).
   */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
  /** The longest delay between retries of a transient failure (default {@link DEFAULT_MAX_RETRY_DELAY_MS}). */
  readonly maxRetryDelayMs?: number
}

/**
 * The batch size of followers when none is given: large enough that the
 * commit's cost is shared by many events (a tenth or less of a policy's work
 * per event), small enough to keep the rest of a batch's cost low.
 */
export const DEFAULT_BATCH_SIZE = 100

/**
 * The largest batch size a runner takes. A batch is held in memory (its
 * notifications, its changed aggregates and their events), committed in one
 * transaction, and published downstream only when its last policy has run;
 * and one that fails is done again one notification at a time, a transaction
 * each. Beyond a few thousand, a batch only lengthens those delays: the
 * commit's share of the cost was already negligible.
 */
export const MAX_BATCH_SIZE = 10_000

/** The state of a follower in a runner. */
export interface FollowerStatus {
  /** The follower's name. */
  readonly name: string
  /**
   * `running` until stopped; `retrying` while its store fails transiently
   * (unreachable, restarting, busy: see `error` and `since`), after which it
   * is `running` again by itself; `failed` when it could not process an
   * event (see `error`).
   */
  readonly state: 'running' | 'retrying' | 'stopped' | 'failed'
  /** The last notification id processed in this run, per upstream application. */
  readonly positions: Readonly<Record<string, number>>
  /**
   * Why it failed, when it did: usually a {@link ProcessingError} naming the
   * event; while retrying, the last transient error.
   */
  readonly error?: Error
  /** While retrying: when the outage began, its first failure since the store last answered. */
  readonly since?: Date
}

/** The events a runner emits. */
export interface RunnerEvents {
  /** A follower stopped because it could not process an event; the others go on. */
  followerError: [error: Error, follower: string]
  /**
   * A follower met a transient failure (see {@link isTransient}) and will try
   * again, for as long as it lasts: emitted on each failure, with when the
   * outage began.
   */
  followerRetrying: [error: Error, follower: string, since: Date]
  /** A follower that was retrying reached its store again and goes on. */
  followerResumed: [follower: string]
}

/**
 * Runs a {@link System}: makes its applications and has each follower process
 * its upstream logs, what is recorded already and then new events as they are
 * recorded, each exactly once. Every runner has this interface.
 */
export interface Runner extends AsyncDisposable {
  /** Makes the applications, connects them, and starts the followers; resolves once they are following. */
  start(): Promise<void>
  /** Lets each follower finish the batch in hand, then stops them and closes the applications. */
  stop(): Promise<void>
  /** Returns this runner's instance of an application of the system. */
  get<A extends Application>(cls: ApplicationClass<A>): A
  /** Returns the state of each follower run here. */
  status(): FollowerStatus[]
  /**
   * Resolves once every follower run here that follows `upstream` (a class or
   * name of an application of the system) has processed its notification
   * `notificationId`, or has passed it because it does not follow its topic.
   * Wait for a chain (A to B to C) hop by hop: for B on A's id, then for C on
   * an id of B's log.
   *
   * @throws ProgrammingError if `start()` has not resolved yet, `upstream` is
   * not an application of the system, no follower run here follows it, the id
   * is not an integer, or `timeoutMs` not a finite number, 0 or more; the
   * error of a follower that failed, or fails while waited for, before it got
   * there (usually a {@link ProcessingError}); WaitTimeoutError naming the
   * follower, the upstream and the id when `timeoutMs` (default 10,000) passes
   * first; the signal's reason if it aborts first.
   */
  waitFor(upstream: ApplicationClass | string, notificationId: number, options?: WaitForOptions): Promise<void>
  /** Calls `listener` when a follower stops on an error. */
  on(event: 'followerError', listener: (error: Error, follower: string) => void): this
  /** Calls `listener` on each transient failure of a follower, which it retries. */
  on(event: 'followerRetrying', listener: (error: Error, follower: string, since: Date) => void): this
  /** Calls `listener` when a retrying follower reaches its store again. */
  on(event: 'followerResumed', listener: (follower: string) => void): this
}

interface Following {
  status: FollowerStatus
  readonly stop: AbortController
  /** Aborted, with the error as reason, when the follower fails. */
  readonly failure: AbortController
  /** When the outage of each upstream loop that is retrying began. */
  readonly outages: Map<string, Date>
  done: Promise<void>
}

/**
 * Runs a system in this process, on the event loop: a follower learns of new
 * upstream events as soon as they are committed here (and by the backend's
 * notifications or polling when another process commits them), and processes
 * them in order per follower, in batches of what is waiting (see
 * {@link RunnerOptions.batchSize}). With `run`, a process runs only some of the
 * followers, so a system can be spread over processes or machines that share
 * a database (PostgreSQL, or an SQLite file on one machine).
 */
export class EventLoopRunner extends EventEmitter<RunnerEvents> implements Runner {
  readonly #system: System
  readonly #options: RunnerOptions
  readonly #applications = new Map<string, Application>()
  readonly #following = new Map<string, Following>()
  #started = false

  /**
   * Makes a runner of `system`; nothing happens until {@link EventLoopRunner.start}.
   *
   * @throws ProgrammingError when `run` names an application that follows
   * none, for a `batchSize` that is not an integer from 1 to {@link MAX_BATCH_SIZE},
   * or for `attempts`, `retryDelayMs` or `maxRetryDelayMs` out of range (see {@link checkRetryOptions}).
   */
  constructor(system: System, options: RunnerOptions = {}) {
    super()
    checkBatchSize(options.batchSize)
    checkRetryOptions(options)
    this.#system = system
    this.#options = options
    for (const name of options.run ?? []) {
      system.get(name)
      if (!system.followers.includes(name)) {
        throw new ProgrammingError(`${name} follows no application in this system, so there is nothing to run`)
      }
    }
  }

  async start(): Promise<void> {
    if (this.#started) throw new ProgrammingError('The runner was started already; make a new one to start again')
    this.#started = true
    const { env, persistence } = this.#options
    for (const name of this.#system.names) {
      this.#applications.set(name, new (this.#system.get(name))({ env, persistence }))
    }
    await Promise.all([...this.#applications.values()].map((application) => application.connect()))
    for (const name of this.#options.run ?? this.#system.followers) this.#startFollower(name)
  }

  async stop(): Promise<void> {
    for (const following of this.#following.values()) following.stop.abort()
    await Promise.all([...this.#following.values()].map((following) => following.done))
    await Promise.all([...this.#applications.values()].map((application) => application.close()))
  }

  get<A extends Application>(cls: ApplicationClass<A>): A {
    const application = this.#applications.get(applicationName(cls))
    if (application === undefined) {
      this.#system.get(applicationName(cls))
      throw new ProgrammingError('The runner has not started: call start() first')
    }
    return application as A
  }

  status(): FollowerStatus[] {
    return [...this.#following.values()].map((following) => following.status)
  }

  waitFor(upstream: ApplicationClass | string, notificationId: number, options?: WaitForOptions): Promise<void> {
    return waitForFollowers(
      {
        system: this.#system,
        run: this.#options.run,
        get: (name) => this.get(this.#system.get(name)),
        failure: (name) => this.#following.get(name)?.failure.signal,
      },
      upstream,
      notificationId,
      options,
    )
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }

  #startFollower(name: string): void {
    const follower = this.#applications.get(name)
    if (!(follower instanceof ProcessApplication)) throw new ProgrammingError(`${name} is not a process application`)
    const following: Following = {
      status: { name, state: 'running', positions: {} },
      stop: new AbortController(),
      failure: failureController(),
      outages: new Map(),
      done: Promise.resolve(),
    }
    this.#following.set(name, following)
    const loops = this.#system.leadersOf(name).map((leaderName) => {
      const upstream = this.#applications.get(leaderName)!
      return follow({
        follower: name,
        upstream,
        topics: follower.followedTopics,
        position: () => follower.position(leaderName),
        process: async (batch) => {
          await follower.processBatch(upstream, batch)
        },
        isProcessed: (id) => follower.isProcessed(leaderName, id),
        onProgress: (id) => {
          following.status = { ...following.status, positions: { ...following.status.positions, [leaderName]: id } }
        },
        onRetrying: (error, since) => {
          following.outages.set(leaderName, since)
          following.status = retryingStatus(following.status, error, following.outages.values())
          this.emit('followerRetrying', error, name, since)
        },
        onResumed: () => {
          following.outages.delete(leaderName)
          if (following.outages.size > 0) return
          following.status = runningStatus(following.status)
          this.emit('followerResumed', name)
        },
        batchSize: this.#options.batchSize ?? DEFAULT_BATCH_SIZE,
        attempts: this.#options.attempts,
        retryDelayMs: this.#options.retryDelayMs,
        maxRetryDelayMs: this.#options.maxRetryDelayMs,
        signal: following.stop.signal,
      })
    })
    // A follower stops as a whole: when one of its upstream loops fails, the others stop too.
    const failures = loops.map((loop) =>
      loop.catch((error: unknown) => {
        following.stop.abort()
        throw error
      }),
    )
    following.done = Promise.allSettled(failures).then((results) => {
      const failure = results.find((result) => result.status === 'rejected')
      if (failure === undefined) {
        following.status = { ...runningStatus(following.status), state: 'stopped' }
        return
      }
      const error = failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason))
      following.status = { ...following.status, state: 'failed', error }
      following.failure.abort(error)
      this.emit('followerError', error, name)
    })
  }
}

/**
 * Returns `status` as `retrying` on `error`, since the earliest of the
 * outages' starts (a follower of several upstream logs retries in each loop).
 */
export function retryingStatus(status: FollowerStatus, error: Error, outages: Iterable<Date>): FollowerStatus {
  const since = new Date(Math.min(...[...outages].map((date) => date.getTime())))
  return { ...status, state: 'retrying', error, since }
}

/** Returns `status` as `running`, without the error and start of an outage that ended. */
export function runningStatus(status: FollowerStatus): FollowerStatus {
  const { error: _error, since: _since, ...rest } = status
  return { ...rest, state: 'running' }
}

/**
 * Checks a runner's `batchSize` option.
 *
 * @throws ProgrammingError unless undefined or an integer from 1 to {@link MAX_BATCH_SIZE}.
 */
export function checkBatchSize(batchSize: number | undefined): void {
  if (batchSize !== undefined && parseInteger('batchSize', batchSize, 1)! > MAX_BATCH_SIZE) {
    throw new ProgrammingError(`batchSize must be at most ${MAX_BATCH_SIZE}, got ${batchSize}`)
  }
}

/** What {@link waitForFollowers} needs of a runner. */
export interface RunnerFollowers {
  /** The system run. */
  readonly system: System
  /** The followers run (all when not given). */
  readonly run: readonly string[] | undefined
  /**
   * Returns the runner's instance of the named application.
   *
   * @throws ProgrammingError if the runner has not started.
   */
  get(name: string): Application
  /**
   * Returns a signal aborted, with the error as reason, when the named
   * follower fails; undefined until `start()` has resolved (the applications
   * are made before the followers start).
   */
  failure(name: string): AbortSignal | undefined
}

/**
 * Waits for the followers of `upstream` that a runner runs, as
 * {@link Runner.waitFor} says: each through its own tracking records, and
 * rejecting when one fails before it got there.
 */
export async function waitForFollowers(
  runner: RunnerFollowers,
  upstream: ApplicationClass | string,
  notificationId: number,
  options: WaitForOptions = {},
): Promise<void> {
  const { system, run } = runner
  const name = typeof upstream === 'string' ? upstream : applicationName(upstream)
  system.get(name)
  const followers = (run ?? system.followers).filter((follower) => system.leadersOf(follower).includes(name))
  if (followers.length === 0) {
    const here = run === undefined ? 'in this system' : `among those this runner runs (${run.join(', ') || 'none'})`
    throw new ProgrammingError(`No follower ${here} follows ${name}, so there is nothing to wait for`)
  }
  const leader = runner.get(name)
  const waits = followers.map((follower) => {
    const application = runner.get(follower) as ProcessApplication
    const failure = runner.failure(follower)
    if (failure === undefined) {
      throw new ProgrammingError('The runner has not finished starting: await start() before waitFor')
    }
    return (signal: AbortSignal) =>
      withAnySignal([signal, failure], (any) =>
        application.waitFor(leader, notificationId, { ...options, signal: any }),
      )
  })
  await waitForAll(waits, options.signal)
}
