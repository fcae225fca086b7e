import { EventEmitter } from 'node:events'
import { extname, isAbsolute } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Application } from '../application/application.js'
import { Config, type Environment } from '../application/config.js'
import { EventSourcingError } from '../domain/errors.js'
import { ProgrammingError } from '../persistence/errors.js'
import {
  EventLoopRunner,
  type FollowerStatus,
  type Runner,
  type RunnerEvents,
  type RunnerOptions,
  retryingStatus,
  runningStatus,
  waitForFollowers,
} from './runner.js'
import type { ApplicationClass, System } from './system.js'
import { failureController, type WaitForOptions } from './wait-for.js'
import {
  errorFromData,
  type StopMessage,
  systemShape,
  WORKER_SCRIPT,
  type WorkerData,
  type WorkerMessage,
} from './worker-thread.js'

/** How long a worker that has stopped and closed its applications may take to exit before it is terminated. */
const EXIT_GRACE_MS = 5000

/** How a {@link WorkerThreadRunner} makes and drives the applications of a system. */
export interface WorkerThreadRunnerOptions extends Omit<RunnerOptions, 'persistence'> {
  /**
   * The module that exports the system, which each worker imports: a URL
   * (`new URL('./system.js', import.meta.url)`) or an absolute file path.
   */
  readonly module: URL | string
  /**
   * The name of the module's export that is the system (default: its one
   * exported {@link System} with the same applications as the runner's).
   */
  readonly exportName?: string
  /**
   * A module each worker imports before anything else, as a URL or an
   * absolute file path: one that registers a loader, for instance, to run
   * TypeScript sources in the workers (with tsx, a module that calls
   * `register()` from `tsx/esm/api`; `--import` flags do not reach worker
   * threads on Node 20). It must itself be JavaScript (`.js`, `.mjs`) where
   * Node cannot run TypeScript by itself, as on Node 20: nothing would load
   * the loader.
   */
  readonly workerSetup?: URL | string
}

/** A worker thread of a {@link WorkerThreadRunner} crashed, or exited while its follower was running. */
export class WorkerThreadError extends EventSourcingError {
  /** Makes the error; `options.cause` is what the worker threw, when it crashed on an error. */
  constructor(
    /** The follower that the worker ran. */
    readonly follower: string,
    message: string,
    /** The worker's exit code, when it exited. */
    readonly exitCode?: number,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

interface Thread {
  readonly worker: Worker
  status: FollowerStatus
  /** Resolves when the worker is following, rejects when it could not start. */
  readonly started: Promise<void>
  /** Resolves when the thread has exited. */
  readonly exited: Promise<void>
  /** Aborted, with the error as reason, when the follower fails or the worker crashes or exits while running. */
  readonly failure: AbortController
}

/**
 * Runs a {@link System} over worker threads: one thread per follower, each
 * running that follower with an {@link EventLoopRunner}, so that the policies
 * of different followers run in parallel. The applications store their events
 * in a database that every thread opens, an SQLite file or PostgreSQL, set by
 * `env` (`PERSISTENCE` and its settings), since a backend object cannot be
 * passed to another thread.
 *
 * Each worker imports the system from `module`. The applications returned by
 * `get` are made in the calling thread, from the same `env`, to use the
 * system from here. A follower that fails, and a worker that crashes or exits
 * while running, are reported by `followerError` and `status`; the other
 * workers go on.
 *
 * @example
 * ```ts
 * const runner = new WorkerThreadRunner(ordersSystem, {
 *   module: new URL('./orders.js', import.meta.url),
 *   env: { PERSISTENCE: 'postgres', POSTGRES_URL: 'postgres://localhost/orders' },
 * })
 * await runner.start()
 * await runner.get(Orders).createOrder('socks')
 * ```
 */
export class WorkerThreadRunner extends EventEmitter<RunnerEvents> implements Runner {
  readonly #system: System
  readonly #options: WorkerThreadRunnerOptions
  readonly #env: Environment
  readonly #module: string
  readonly #setup: string | undefined
  readonly #local: EventLoopRunner
  readonly #threads = new Map<string, Thread>()
  #starting: Promise<void> | undefined
  /** Whether `start()` has resolved: every worker is following. */
  #started = false
  #stopping: Promise<void> | undefined

  /**
   * Makes a runner of `system`; nothing happens until {@link WorkerThreadRunner.start}.
   *
   * @throws ProgrammingError when an application's storage would be in memory
   * (each thread would have its own), when a backend object is passed as
   * `persistence`, when `run` names an application that follows none,
   * when `module` or `workerSetup` is neither a URL nor an absolute path,
   * when `workerSetup` is TypeScript that Node cannot run by itself, or for a
   * `batchSize` out of range (see {@link RunnerOptions.batchSize}).
   */
  constructor(system: System, options: WorkerThreadRunnerOptions) {
    super()
    if ((options as RunnerOptions).persistence !== undefined) {
      throw new ProgrammingError(
        'A backend object cannot be passed to worker threads: set the storage in env instead ' +
          '(PERSISTENCE=sqlite with SQLITE_PATH, or PERSISTENCE=postgres with POSTGRES_URL)',
      )
    }
    this.#system = system
    this.#options = options
    this.#env = { ...(options.env ?? process.env) }
    this.#module = moduleUrl(options.module, 'module')
    this.#setup = options.workerSetup === undefined ? undefined : setupUrl(options.workerSetup)
    for (const name of system.names) checkSharedStorage(name, this.#env)
    for (const name of options.run ?? []) {
      system.get(name)
      if (!system.followers.includes(name)) {
        throw new ProgrammingError(`${name} follows no application in this system, so there is nothing to run`)
      }
    }
    // It runs no follower; given the workers' options, it checks them as the workers' runners will.
    const { batchSize, attempts, retryDelayMs, maxRetryDelayMs } = options
    this.#local = new EventLoopRunner(system, {
      env: this.#env,
      run: [],
      batchSize,
      attempts,
      retryDelayMs,
      maxRetryDelayMs,
    })
  }

  /**
   * Makes the applications of this thread, then starts a worker per follower;
   * resolves once every worker is following.
   *
   * @throws the error of a worker that could not start (its module has no
   * such system, its database cannot be reached); the runner is stopped then.
   */
  start(): Promise<void> {
    if (this.#starting !== undefined || this.#stopping !== undefined) {
      return Promise.reject(new ProgrammingError('The runner was started or stopped already; make a new one to start'))
    }
    this.#starting = this.#start()
    return this.#starting
  }

  /**
   * Asks each worker to stop: it lets its follower finish the batch in hand,
   * closes its applications and exits. Resolves when every worker has exited
   * and the applications of this thread are closed. Calling it again returns
   * the same promise.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#starting?.catch(() => {})
      await this.#shutdown()
    })()
    return this.#stopping
  }

  /** Returns this thread's instance of an application of the system, made from the same `env` as the workers'. */
  get<A extends Application>(cls: ApplicationClass<A>): A {
    return this.#local.get(cls)
  }

  /** Returns the state of each follower run in a worker, as the workers last reported it. */
  status(): FollowerStatus[] {
    return [...this.#threads.values()].map((thread) => thread.status)
  }

  /**
   * Resolves once every follower run in a worker that follows `upstream` has
   * processed its notification `notificationId`, or has passed it because it
   * does not follow its topic (see {@link Runner.waitFor}): the workers record
   * their tracking in the shared database, which this thread reads.
   *
   * @throws as {@link Runner.waitFor} says; a follower whose worker crashed
   * or exited fails the wait with a {@link WorkerThreadError}.
   */
  waitFor(upstream: ApplicationClass | string, notificationId: number, options?: WaitForOptions): Promise<void> {
    return waitForFollowers(
      {
        system: this.#system,
        run: this.#options.run,
        get: (name) => this.#local.get(this.#system.get(name)),
        failure: (name) => (this.#started ? this.#threads.get(name)?.failure.signal : undefined),
      },
      upstream,
      notificationId,
      options,
    )
  }

  /** Stops the runner (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }

  async #start(): Promise<void> {
    try {
      await this.#local.start()
      for (const name of this.#options.run ?? this.#system.followers) this.#threads.set(name, this.#spawn(name))
      const results = await Promise.allSettled([...this.#threads.values()].map((thread) => thread.started))
      const failure = results.find((result) => result.status === 'rejected')
      if (failure !== undefined) throw failure.reason
      this.#started = true
    } catch (error) {
      await this.#shutdown()
      throw error
    }
  }

  async #shutdown(): Promise<void> {
    const stop: StopMessage = { type: 'stop' }
    for (const thread of this.#threads.values()) thread.worker.postMessage(stop)
    await Promise.all([...this.#threads.values()].map((thread) => thread.exited))
    await this.#local.stop()
  }

  #spawn(name: string): Thread {
    const { exportName, batchSize, attempts, retryDelayMs, maxRetryDelayMs } = this.#options
    const data: WorkerData = {
      setup: this.#setup,
      // Next to this file, with its extension: `.js` when built, `.ts` when the sources run through a loader.
      entry: new URL(`./worker-thread${extname(new URL(import.meta.url).pathname)}`, import.meta.url).href,
      module: this.#module,
      exportName,
      shape: systemShape(this.#system),
      follower: name,
      env: this.#env,
      batchSize,
      attempts,
      retryDelayMs,
      maxRetryDelayMs,
    }
    const worker = new Worker(WORKER_SCRIPT, { eval: true, workerData: data })
    let started = false
    let stopped = false
    let grace: NodeJS.Timeout | undefined
    const { promise: starting, resolve: resolveStarted, reject: rejectStarted } = promiseWithResolvers()
    const { promise: exited, resolve: resolveExited } = promiseWithResolvers()
    // A worker that cannot start rejects start(), which is awaited; this keeps it from also being unhandled.
    starting.catch(() => {})
    const thread: Thread = {
      worker,
      status: { name, state: 'running', positions: {} },
      started: starting,
      exited,
      failure: failureController(),
    }
    const fail = (error: Error) => {
      if (!started) {
        rejectStarted(error)
        return
      }
      if (thread.status.state === 'failed') return
      thread.status = { ...thread.status, state: 'failed', error }
      thread.failure.abort(error)
      this.emit('followerError', error, name)
    }
    worker.on('message', (message: WorkerMessage) => {
      switch (message.type) {
        case 'started':
          started = true
          resolveStarted()
          break
        case 'unstarted':
          rejectStarted(errorFromData(message.error))
          break
        case 'progress':
          thread.status = { ...thread.status, positions: message.positions }
          break
        case 'retrying': {
          const error = errorFromData(message.error)
          thread.status = retryingStatus(thread.status, error, [message.since])
          this.emit('followerRetrying', error, name, message.since)
          break
        }
        case 'resumed':
          thread.status = runningStatus(thread.status)
          this.emit('followerResumed', name)
          break
        case 'failed':
          thread.status = { ...thread.status, positions: message.positions }
          fail(errorFromData(message.error))
          break
        case 'stopped':
          stopped = true
          thread.status =
            thread.status.state === 'failed'
              ? { ...thread.status, positions: message.positions }
              : { ...runningStatus(thread.status), state: 'stopped', positions: message.positions }
          // Its work is done; only a handle left open by the user's module could keep it alive now.
          grace = setTimeout(() => void worker.terminate(), EXIT_GRACE_MS)
          grace.unref()
          break
      }
    })
    worker.on('error', (error) => {
      const message = `The worker thread of ${name} crashed: ${error.message}`
      fail(new WorkerThreadError(name, message, undefined, { cause: error }))
    })
    worker.on('exit', (code) => {
      clearTimeout(grace)
      if (!stopped) {
        fail(new WorkerThreadError(name, `The worker thread of ${name} exited unexpectedly with code ${code}`, code))
      }
      resolveExited()
    })
    return thread
  }
}

/**
 * Checks that the named application's storage, as `env` sets it, can be shared by threads.
 *
 * @throws ProgrammingError when it would be in memory.
 */
function checkSharedStorage(name: string, env: Environment): void {
  const config = new Config(name, env)
  const persistence = config.get('PERSISTENCE') ?? 'memory'
  const inMemory = persistence === 'memory' || (persistence === 'sqlite' && config.get('SQLITE_PATH') === ':memory:')
  if (inMemory) {
    throw new ProgrammingError(
      `${name} would store its events in memory, and each worker thread would have a memory of its own, ` +
        'so the applications would not see each other’s events: set PERSISTENCE=sqlite with SQLITE_PATH ' +
        'set to a file, or PERSISTENCE=postgres with POSTGRES_URL, in env',
    )
  }
}

/**
 * Returns the URL of a module given as a URL or an absolute file path.
 *
 * @throws ProgrammingError naming the option for anything else (a relative path would depend on the worker's directory).
 */
function moduleUrl(module: URL | string, option: string): string {
  if (module instanceof URL) return module.href
  if (isAbsolute(module)) return pathToFileURL(module).href
  if (URL.canParse(module)) return new URL(module).href
  throw new ProgrammingError(`${option} must be a URL or an absolute file path, got ${JSON.stringify(module)}`)
}

/**
 * Returns the URL of the worker setup module, as {@link moduleUrl} does.
 *
 * @throws ProgrammingError for a TypeScript module where Node cannot run
 * TypeScript by itself: the setup is what would register a loader for it.
 */
function setupUrl(module: URL | string): string {
  const url = moduleUrl(module, 'workerSetup')
  const typeScript = /\.[mc]?tsx?$/.test(new URL(url).pathname)
  if (typeScript && !(process.features as { typescript?: unknown }).typescript) {
    throw new ProgrammingError(
      `workerSetup must be JavaScript, got ${url}: Node ${process.version} cannot import TypeScript without a ` +
        'loader, and the setup module is what registers one in each worker. Give a .js or .mjs module that ' +
        "registers the loader, e.g. with tsx: import { register } from 'tsx/esm/api'; register()",
    )
  }
  return url
}

/** `Promise.withResolvers`, which Node 20 lacks. */
function promiseWithResolvers(): {
  promise: Promise<void>
  resolve: () => void
  reject: (reason: unknown) => void
} {
  let resolve!: () => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}
