import { setTimeout as delay } from 'node:timers/promises'
import { EventSourcingError } from '../domain/errors.js'

/** The base class of errors raised by recorders and the mapper. It carries the driver's error as `cause`. */
export class PersistenceError extends EventSourcingError {}

/**
 * A write broke a uniqueness rule: an event version that is already recorded
 * (the optimistic concurrency check), or a tracking record that is not newer
 * than the last one. Nothing of the batch was written. The recorders throw
 * its subclasses, which say what clashed: {@link VersionConflictError} and
 * {@link TrackingConflictError}.
 */
export class IntegrityError extends PersistenceError {}

/** What a {@link VersionConflictError} says clashed. */
export interface VersionConflict {
  /** The originator (aggregate) id of the event that clashed. */
  readonly originatorId: string
  /** The version that is recorded already (or repeated within the batch). */
  readonly originatorVersion: number
  /**
   * The table where it is recorded, e.g. `dogschool_events` or
   * `dogschool_snapshots` (the memory backend names its recorders so too).
   */
  readonly table: string
}

/**
 * A batch holds an event whose `(originatorId, originatorVersion)` is recorded
 * already: another writer saved that aggregate first (the optimistic
 * concurrency check), or the batch repeats a version. Nothing of the batch was
 * written. Get the aggregate again and retry ({@link retryOnConflict}).
 */
export class VersionConflictError extends IntegrityError implements VersionConflict {
  readonly originatorId: string
  readonly originatorVersion: number
  readonly table: string

  /** Makes the error naming the clash; `options.cause` is the driver's error, if any. */
  constructor(conflict: VersionConflict, options?: ErrorOptions) {
    const { originatorId, originatorVersion, table } = conflict
    super(
      `Version ${originatorVersion} of originator '${originatorId}' is already recorded in ${table} ` +
        '(another writer saved it first, or the batch repeats it): get the aggregate again and retry',
      options,
    )
    this.originatorId = originatorId
    this.originatorVersion = originatorVersion
    this.table = table
  }
}

/** What a {@link TrackingConflictError} says clashed. */
export interface TrackingConflict {
  /** The upstream application whose notification was to be tracked. */
  readonly applicationName: string
  /** The notification id that is not greater than the last one tracked (or not positive). */
  readonly notificationId: number
  /** The tracking table, e.g. `orders_tracking` (the memory backend names its recorders so too). */
  readonly table: string
}

/**
 * A tracking record is not newer than the last one recorded for its upstream
 * application (or its id is not positive): the notification was processed
 * already, by this follower or by another one on the same store. Nothing of
 * the batch was written; processing it again would not help.
 */
export class TrackingConflictError extends IntegrityError implements TrackingConflict {
  readonly applicationName: string
  readonly notificationId: number
  readonly table: string

  /** Makes the error naming the clash; `options.cause` is the driver's error, if any. */
  constructor(conflict: TrackingConflict, options?: ErrorOptions) {
    const { applicationName, notificationId, table } = conflict
    super(
      `Notification ${notificationId} of ${applicationName} is not newer than the last one tracked in ${table} ` +
        '(or not positive): it was processed already',
      options,
    )
    this.applicationName = applicationName
    this.notificationId = notificationId
    this.table = table
  }
}

/** The database could not be reached or failed while working (after any retries). */
export class OperationalError extends PersistenceError {}

/** The library was used or configured wrongly: an invalid table name, a missing table, an unknown backend. */
export class ProgrammingError extends PersistenceError {}

/**
 * Returns the error for a write that a projection store refused inside
 * `read()`, whose transaction is read-only: a programming error, whatever
 * the database called it (its error is the `cause`).
 */
export function writeInReadError(store: string, cause: unknown): ProgrammingError {
  return new ProgrammingError(
    `The projection store ${store} refused a write inside read(), whose transaction is read-only: ` +
      'write the view with write(tracking, work), or create its tables with setup(work)',
    { cause },
  )
}

/** Stored data cannot be read: corrupted bytes, a wrong cipher key, tampered ciphertext, unparseable state. */
export class DataError extends PersistenceError {}

/** A requested record does not exist. */
export class NotFoundError extends PersistenceError {}

/** A wait (for example for a tracking record) ran out of time. */
export class WaitTimeoutError extends OperationalError {}

/**
 * Returns the message that explains a thrown value: an error's message, or the
 * string form of anything else. For a `SuppressedError`, which `await using`
 * throws when disposal fails after the body failed and whose own message says
 * nothing, it is the message of the body's error (`suppressed`).
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error && 'suppressed' in error) return errorMessage(error.suppressed)
  return error instanceof Error ? error.message : String(error)
}

/** Returns the string `code` of a driver error (SQLite's `SQLITE_…`, PostgreSQL's SQLSTATE), or undefined. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined
  return typeof error.code === 'string' ? error.code : undefined
}

/** Options of {@link retryOnConflict}. */
export interface RetryOnConflictOptions {
  /** How many times `fn` runs at most, the first included (default 3). */
  readonly attempts?: number
  /** The pause before the second run, doubled before each next one (default 0: at once). */
  readonly delayMs?: number
  /** Called with each conflict that is retried (not the last one, which is thrown). */
  readonly onConflict?: (error: VersionConflictError, attempt: number) => void
}

/**
 * Runs `fn` and returns what it returns; when it throws a
 * {@link VersionConflictError} (another writer saved one of its aggregates
 * first), runs it again, up to `attempts` runs in all, and then throws the
 * last conflict. Any other error is thrown at once. `fn` must get its
 * aggregates afresh on each run, which is what makes the retry succeed; it is
 * given the number of the run, from 1.
 *
 * Each conflict means that another write succeeded, so N writers racing on one
 * aggregate all succeed within N attempts.
 *
 * @throws ProgrammingError if `attempts` is not a positive integer or `delayMs` is negative.
 * @example
 * ```ts
 * await retryOnConflict(async () => {
 *   const account = await bank.repository.get(BankAccount, id)
 *   account.credit(100)
 *   await bank.save(account)
 * })
 * ```
 */
export async function retryOnConflict<T>(
  fn: (attempt: number) => T | Promise<T>,
  options: RetryOnConflictOptions = {},
): Promise<T> {
  const { attempts = 3, delayMs = 0, onConflict } = options
  if (!Number.isSafeInteger(attempts) || attempts < 1) {
    throw new ProgrammingError(`attempts must be a positive integer, got ${attempts}`)
  }
  if (!(delayMs >= 0)) throw new ProgrammingError(`delayMs must not be negative, got ${delayMs}`)
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (error) {
      if (!(error instanceof VersionConflictError) || attempt >= attempts) throw error
      onConflict?.(error, attempt)
    }
    if (delayMs > 0) await delay(delayMs * 2 ** (attempt - 1))
  }
}
