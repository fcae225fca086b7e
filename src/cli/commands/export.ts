import { createWriteStream } from 'node:fs'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { type CommandIo, writeTo } from '../output.js'
import { startProgress } from '../progress.js'
import { openStorage, type StorageOptions } from '../storage.js'

/** The options of the `export` command. */
export interface ExportOptions extends StorageOptions {
  /** The file written (replaced if it exists); stdout when not given. */
  readonly output?: string
}

/** One exported event: a line of the NDJSON that `export` writes and `import` reads. */
export interface ExportedEvent {
  /** The notification id in the source application, for reference (import gives new ones). */
  readonly id: number
  readonly originatorId: string
  readonly originatorVersion: number
  readonly topic: string
  /** The state as stored (encrypted and compressed as it was written), in base64. */
  readonly state: string
}

/** How many notifications are read at a time, which bounds the memory an export takes. */
export const EXPORT_PAGE_SIZE = 1000

/**
 * The `export` command: writes an application's stored events, in notification
 * order, as NDJSON (one {@link ExportedEvent} a line), reading the log a page
 * at a time so that memory stays constant whatever its size; events recorded
 * after the export starts are left out. Snapshots and tracking records are not
 * exported. Writes a progress bar (on a terminal) and the count to stderr.
 *
 * @returns the number of events exported.
 * @throws ApplicationNotFoundError when the application's tables are missing.
 */
export async function exportEvents(options: ExportOptions, io: CommandIo): Promise<number> {
  await using storage = await openStorage(options, io.env)
  const events = storage.recorders.events
  const stop = await events.maxNotificationId()
  const output = options.output === undefined ? io.stdout : createWriteStream(options.output)
  const progress = startProgress(io, stop, 'notifications')
  let count = 0
  try {
    for (let start = 1; start <= stop; ) {
      const page = await events.selectNotifications({ start, stop, limit: EXPORT_PAGE_SIZE })
      for (const { id, originatorId, originatorVersion, topic, state } of page) {
        const line: ExportedEvent = {
          id,
          originatorId,
          originatorVersion,
          topic,
          state: Buffer.from(state).toString('base64'),
        }
        await writeTo(output, `${JSON.stringify(line)}\n`)
      }
      count += page.length
      const last = page.at(-1)
      if (last === undefined) break
      progress.update(last.id)
      start = last.id + 1
    }
  } finally {
    progress.stop()
    if (output !== io.stdout) await close(output)
  }
  io.stderr.write(`Exported ${count} events of '${options.app}'\n`)
  return count
}

async function close(stream: Writable): Promise<void> {
  stream.end()
  await finished(stream)
}
