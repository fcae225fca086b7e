import { EventSourcingError } from '../domain/errors.js'

/** The base class of errors raised by recorders and the mapper. It carries the driver's error as `cause`. */
export class PersistenceError extends EventSourcingError {}

/**
 * A write broke a uniqueness rule: an event version that is already recorded
 * (the optimistic concurrency check), or a tracking record that is not newer
 * than the last one. Nothing of the batch was written.
 */
export class IntegrityError extends PersistenceError {}

/** The database could not be reached or failed while working (after any retries). */
export class OperationalError extends PersistenceError {}

/** The library was used or configured wrongly: an invalid table name, a missing table, an unknown backend. */
export class ProgrammingError extends PersistenceError {}

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
