// The code that runs in each worker thread of a WorkerThreadRunner, and the
// messages a worker and its runner exchange. Only what crosses threads is
// here: the worker's start data, its messages, and errors as plain data.

import type { MessagePort } from 'node:worker_threads'
import type { Environment } from '../application/config.js'
import { EventSourcingError, OriginatorVersionError, TopicError, UpcastError } from '../domain/errors.js'
import {
  DataError,
  IntegrityError,
  NotFoundError,
  OperationalError,
  PersistenceError,
  ProgrammingError,
  type TrackingConflict,
  TrackingConflictError,
  type VersionConflict,
  VersionConflictError,
  WaitTimeoutError,
} from '../persistence/errors.js'
import type { Notification } from '../persistence/stored-event.js'
import { ProcessingError } from './processing-error.js'
import { EventLoopRunner, type FollowerStatus } from './runner.js'
import { System } from './system.js'

/** How often a worker looks for progress of its follower to report. */
const PROGRESS_INTERVAL_MS = 50

/** What a worker thread is started with (its `workerData`). */
export interface WorkerData {
  /** The URL of the module each worker imports first, if any (to register a TypeScript loader, say). */
  readonly setup?: string
  /** The URL of this module, which the worker imports next. */
  readonly entry: string
  /** The URL of the module that exports the system. */
  readonly module: string
  /** The name of the export that is the system, if given. */
  readonly exportName?: string
  /** The system's applications and whom each follows, from {@link systemShape}, to find and check the export. */
  readonly shape: string
  /** The follower this worker runs. */
  readonly follower: string
  /** The variables the applications read their settings from. */
  readonly env: Environment
  /** At most this many notifications the follower processes as one batch. */
  readonly batchSize?: number
  /** Tries per upstream event before the follower stops. */
  readonly attempts?: number
  /** The delay before the first retry. */
  readonly retryDelayMs?: number
  /** The longest delay between retries of a transient failure. */
  readonly maxRetryDelayMs?: number
}

/** A message from a runner to its worker: there is one, which asks it to stop. */
export interface StopMessage {
  readonly type: 'stop'
}

/** The last notification id processed per upstream application, as in {@link FollowerStatus}. */
export type Positions = FollowerStatus['positions']

/**
 * A message from a worker to its runner. A worker sends `started` or
 * `unstarted` once; then `progress` as its follower goes on, `retrying` on
 * each transient failure and `resumed` when its store answers again, `failed`
 * if the follower stops on an error, and `stopped` last, after it closed its
 * applications and before it exits.
 */
export type WorkerMessage =
  | { readonly type: 'started' }
  | { readonly type: 'unstarted'; readonly error: ErrorData }
  | { readonly type: 'progress'; readonly positions: Positions }
  | { readonly type: 'retrying'; readonly error: ErrorData; readonly since: Date }
  | { readonly type: 'resumed' }
  | { readonly type: 'failed'; readonly positions: Positions; readonly error: ErrorData }
  | { readonly type: 'stopped'; readonly positions: Positions }

/** An error as data that can cross threads: what {@link errorFromData} makes an error of again. */
export interface ErrorData {
  readonly name: string
  readonly message: string
  readonly stack?: string
  readonly cause?: ErrorData
  /** The fields of a {@link ProcessingError}, when it is one. */
  readonly processing?: {
    readonly follower: string
    readonly upstream: string
    readonly notification: Notification
    readonly attempts: number
  }
  /** What clashed, when it is a {@link VersionConflictError} or a {@link TrackingConflictError}. */
  readonly conflict?: VersionConflict | TrackingConflict
}

/**
 * The code the worker runs: the source of a CommonJS script (what `eval`
 * workers run), which imports the setup module, if any, then this module, and
 * calls {@link runWorker}.
 */
export const WORKER_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads')
;(async () => {
  if (workerData.setup !== undefined) await import(workerData.setup)
  const { runWorker } = await import(workerData.entry)
  await runWorker(workerData, parentPort)
})()
`

/**
 * Runs one follower of a system in this thread until the runner asks it to
 * stop, or the follower fails: imports the system, runs it with an
 * {@link EventLoopRunner} that runs only that follower, and reports to `port`
 * (see {@link WorkerMessage}). It closes `port` at the end, so the thread can exit.
 */
export async function runWorker(data: WorkerData, port: MessagePort): Promise<void> {
  const post = (message: WorkerMessage) => port.postMessage(message)
  const stopRequested = new Promise<void>((resolve) => port.once('message', () => resolve()))
  let runner: EventLoopRunner | undefined
  try {
    const system = await importSystem(data)
    runner = new EventLoopRunner(system, {
      env: data.env,
      run: [data.follower],
      batchSize: data.batchSize,
      attempts: data.attempts,
      retryDelayMs: data.retryDelayMs,
      maxRetryDelayMs: data.maxRetryDelayMs,
    })
    await runner.start()
  } catch (error) {
    // The start error is the one to report; closing what did open is only tidying up.
    await runner?.stop().catch(() => {})
    post({ type: 'unstarted', error: errorData(error) })
    port.close()
    return
  }
  const started = runner
  const positions = () => started.status()[0]?.positions ?? {}
  const failed = new Promise<Error>((resolve) => started.once('followerError', resolve))
  started.on('followerRetrying', (error, _follower, since) =>
    post({ type: 'retrying', error: errorData(error), since }),
  )
  started.on('followerResumed', () => post({ type: 'resumed' }))
  post({ type: 'started' })
  let reported = positions()
  // The runner replaces a follower's positions when they change, so a changed object is progress.
  const progress = setInterval(() => {
    const current = positions()
    if (current === reported) return
    reported = current
    post({ type: 'progress', positions: current })
  }, PROGRESS_INTERVAL_MS)
  const outcome = await Promise.race([stopRequested, failed])
  clearInterval(progress)
  if (outcome instanceof Error) post({ type: 'failed', positions: positions(), error: errorData(outcome) })
  try {
    await started.stop()
  } catch (error) {
    post({ type: 'failed', positions: positions(), error: errorData(error) })
  }
  post({ type: 'stopped', positions: positions() })
  port.close()
}

/**
 * Returns a description of a system's applications and whom each follows,
 * the same for two systems of the same shape in different threads.
 */
export function systemShape(system: System): string {
  return system.names
    .map((name) => {
      const leaders = system.leadersOf(name)
      return leaders.length === 0 ? name : `${name} (follows ${leaders.join(', ')})`
    })
    .join('; ')
}

/**
 * Imports the module of the system and returns its export that is the system:
 * the one named, or else the one {@link System} export of the same shape.
 *
 * @throws ProgrammingError when there is no such export, or several.
 */
async function importSystem(data: WorkerData): Promise<System> {
  const exports = (await import(data.module)) as Record<string, unknown>
  if (data.exportName !== undefined) {
    const system = exports[data.exportName]
    if (!(system instanceof System)) {
      throw new ProgrammingError(`${data.module} has no export '${data.exportName}' that is a System`)
    }
    if (systemShape(system) !== data.shape) {
      throw new ProgrammingError(
        `The system that ${data.module} exports as '${data.exportName}' is not the one given to the runner: ` +
          `it has ${systemShape(system)}; the runner's has ${data.shape}`,
      )
    }
    return system
  }
  const systems = Object.entries(exports).filter((entry): entry is [string, System] => entry[1] instanceof System)
  const matching = systems.filter(([, system]) => systemShape(system) === data.shape)
  if (matching.length === 1) return matching[0]![1]
  if (matching.length > 1) {
    throw new ProgrammingError(
      `${data.module} exports several systems like the runner's (${matching.map(([name]) => name).join(', ')}): ` +
        'pass the exportName of the one to run',
    )
  }
  const found = systems.length === 0 ? 'none' : systems.map(([name, system]) => `${name}: ${systemShape(system)}`)
  throw new ProgrammingError(
    `${data.module} exports no System with the applications of the runner's (${data.shape}); its systems: ${found}`,
  )
}

/** Returns an error as data that can be posted to another thread, with its cause and the fields of its class. */
export function errorData(error: unknown, depth = 0): ErrorData {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) }
  const cause = error.cause !== undefined && depth < 8 ? errorData(error.cause, depth + 1) : undefined
  return {
    name: error.name,
    message: error.message,
    stack: error.stack,
    cause,
    processing: processingOf(error),
    conflict: conflictOf(error),
  }
}

function processingOf(error: Error): ErrorData['processing'] {
  if (!(error instanceof ProcessingError)) return undefined
  const { follower, upstream, notification, attempts } = error
  return { follower, upstream, notification, attempts }
}

function conflictOf(error: Error): ErrorData['conflict'] {
  if (error instanceof VersionConflictError) {
    const { originatorId, originatorVersion, table } = error
    return { originatorId, originatorVersion, table }
  }
  if (error instanceof TrackingConflictError) {
    const { applicationName, notificationId, table } = error
    return { applicationName, notificationId, table }
  }
  return undefined
}

/** The error classes of this library made again by name from {@link ErrorData}; others become `Error`. */
const ERROR_CLASSES: Readonly<Record<string, new (message: string, options?: ErrorOptions) => Error>> = {
  DataError,
  EventSourcingError,
  IntegrityError,
  NotFoundError,
  OperationalError,
  OriginatorVersionError,
  PersistenceError,
  ProgrammingError,
  TopicError,
  UpcastError,
  WaitTimeoutError,
  Error,
  RangeError,
  TypeError,
}

/**
 * Makes an error again from {@link ErrorData}: a {@link ProcessingError}, a
 * {@link VersionConflictError} or a {@link TrackingConflictError} with the same
 * fields, or an error of the same class when it is one of this library's or a
 * built-in one, or else an `Error` with the same name. The stack is the one
 * from the thread where the error was thrown.
 */
export function errorFromData(data: ErrorData): Error {
  const cause = data.cause === undefined ? undefined : errorFromData(data.cause)
  const options = cause === undefined ? undefined : { cause }
  let error: Error
  if (data.processing !== undefined) {
    const { follower, upstream, notification, attempts } = data.processing
    error = new ProcessingError(follower, upstream, notification, attempts, cause)
  } else if (data.conflict !== undefined) {
    const { conflict } = data
    error =
      'originatorId' in conflict
        ? new VersionConflictError(conflict, options)
        : new TrackingConflictError(conflict, options)
  } else {
    const ErrorClass = Object.hasOwn(ERROR_CLASSES, data.name) ? ERROR_CLASSES[data.name]! : Error
    error = new ErrorClass(data.message, options)
    if (error.name !== data.name) error.name = data.name
  }
  if (data.stack !== undefined) error.stack = data.stack
  return error
}
