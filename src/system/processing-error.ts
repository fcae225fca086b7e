import { EventSourcingError } from '../domain/errors.js'
import type { Notification } from '../persistence/stored-event.js'

/**
 * A follower or projection could not process an upstream notification, after
 * its retries: it stopped there, with nothing of that notification written, and
 * resumes from it when started again.
 */
export class ProcessingError extends EventSourcingError {
  /** Makes the error; `cause` is what the last attempt threw. */
  constructor(
    /** The name of the follower or projection that stopped. */
    readonly follower: string,
    /** The name of the upstream application whose log it was reading. */
    readonly upstream: string,
    /** The notification it could not process. */
    readonly notification: Notification,
    /** How many times processing was tried. */
    readonly attempts: number,
    cause: unknown,
  ) {
    super(
      `${follower} stopped at notification ${notification.id} of ${upstream} (topic '${notification.topic}') ` +
        `after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    )
  }
}
