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
 * written. Get the aggregate again and retry (`retryOnConflict` does).
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
