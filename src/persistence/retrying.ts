import { setTimeout as delay } from 'node:timers/promises'
import { errorMessage, OperationalError } from './errors.js'

// Pauses between attempts: 250 ms, doubling up to 4 s.
const FIRST_PAUSE_MS = 250
const MAX_PAUSE_MS = 4000

/**
 * Runs `fn` again and again while it fails with OperationalError, pausing
 * 250 ms, then 500 ms, ... up to 4 s between attempts: for a reader that
 * outlasts a server restart or a lost node, which fail requests for longer
 * than a driver's own retries.
 *
 * @param options.forMs How long `fn` may keep failing, from the start of its first failed attempt.
 * @param options.where What is failing, for the error (e.g. `PostgreSQL at 127.0.0.1:5432`).
 * @returns undefined if the signal aborts while `fn` is failing.
 * @throws OperationalError naming `where` once `fn` has failed for `forMs`;
 * any other error of `fn` at once.
 */
export async function retryingFor<T>(
  fn: () => Promise<T>,
  options: { readonly forMs: number; readonly where: string; readonly signal?: AbortSignal | undefined },
): Promise<T | undefined> {
  const { forMs, where, signal } = options
  let failingSince: number | undefined
  for (let failures = 0; ; failures++) {
    const attempt = Date.now()
    try {
      return await fn()
    } catch (error) {
      if (signal?.aborted) return undefined
      if (!(error instanceof OperationalError)) throw error
      failingSince ??= attempt
      const left = failingSince + forMs - Date.now()
      if (left <= 0) {
        // The cause says why; the error's own message would name the server twice.
        throw new OperationalError(
          `${where} is still unavailable after ${forMs} ms: ${errorMessage(error.cause ?? error)}`,
          { cause: error },
        )
      }
      const pause = Math.min(left, MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** failures)
      const aborted = await delay(pause, false, { signal }).catch(() => true)
      if (aborted) return undefined
    }
  }
}
