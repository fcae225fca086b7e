import { setTimeout as delay } from 'node:timers/promises'
import { ProgrammingError, VersionConflictError } from '../persistence/errors.js'

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
