import { NotFoundError } from '../../persistence/errors.js'
import { type CommandIo, eventJson, eventsTable, writeTo } from '../output.js'
import { openStorage, type StorageOptions } from '../storage.js'

/** The options of the `events` command. */
export interface EventsOptions extends StorageOptions {
  /** One JSON object a line instead of a table. */
  readonly json?: boolean
}

/**
 * The `events` command: writes the events of one aggregate in version order,
 * with their state decoded (decrypted and decompressed as configured).
 *
 * @throws NotFoundError when the application has no events of that originator.
 * @throws ApplicationNotFoundError when the application's tables are missing.
 * @throws DataError when a cipher key or compression is configured and a state does not decode with it.
 */
export async function events(originatorId: string, options: EventsOptions, io: CommandIo): Promise<void> {
  await using storage = await openStorage(options, io.env)
  const stored = await storage.recorders.events.selectEvents(originatorId)
  if (stored.length === 0) {
    throw new NotFoundError(
      `Application '${options.app}' has no events of '${originatorId}': check the id (see the log)`,
    )
  }
  if (options.json) {
    for (const event of stored) await writeTo(io.stdout, eventJson(storage, event))
  } else {
    await writeTo(io.stdout, eventsTable(storage, stored))
  }
}
