/** A signal made of others by {@link anySignal}; disposing it stops it listening to them. */
export interface AnySignal extends Disposable {
  readonly signal: AbortSignal
}

/**
 * Returns a signal that aborts, with the reason, when one of `signals` does
 * (one already aborted aborts it at once), and stops listening to them when
 * disposed. Unlike `AbortSignal.any`, whose signals Node 20 keeps for as long
 * as each of their sources lives, it leaves nothing behind on a long-lived
 * signal (a recorder's closing signal, a runner's failure signal, a user's
 * shutdown signal) however often it is made, once disposed.
 */
export function anySignal(signals: readonly (AbortSignal | undefined)[]): AnySignal {
  const sources = signals.filter((source) => source !== undefined)
  // One source needs no signal of its own, and nothing to stop listening to.
  if (sources.length === 1) return { signal: sources[0]!, [Symbol.dispose]: () => {} }
  const controller = new AbortController()
  const abort = (event: Event) => controller.abort((event.target as AbortSignal).reason)
  for (const source of sources) {
    if (source.aborted) {
      controller.abort(source.reason)
      break
    }
    source.addEventListener('abort', abort, { once: true })
  }
  return {
    signal: controller.signal,
    [Symbol.dispose]: () => {
      for (const source of sources) source.removeEventListener('abort', abort)
    },
  }
}

/**
 * Runs `work` with a signal that aborts, with the reason, when one of
 * `signals` does, and stops listening to them once `work` settles (see
 * {@link anySignal}).
 */
export async function withAnySignal<T>(
  signals: readonly (AbortSignal | undefined)[],
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const any = anySignal(signals)
  try {
    return await work(any.signal)
  } finally {
    any[Symbol.dispose]()
  }
}
