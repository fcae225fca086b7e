import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { DataError, ProgrammingError } from '../../persistence/errors.js'
import type { StoredEvent } from '../../persistence/stored-event.js'
import type { CommandIo } from '../output.js'
import { startProgress } from '../progress.js'
import { openStorage, type StorageOptions } from '../storage.js'

/** The options of the `import` command. */
export interface ImportOptions extends StorageOptions {
  /** The NDJSON file read, as `export` writes it; stdin when not given. */
  readonly input?: string
  /** Record the events after those the application has (refused otherwise). */
  readonly append?: boolean
}

/** The target of an import already has events, and appending was not asked for. */
export class TargetNotEmptyError extends ProgrammingError {}

/** The file named by `--input` does not exist. */
export class InputNotFoundError extends ProgrammingError {}

/** How many events are recorded in one `insertEvents` call (one transaction). */
export const IMPORT_BATCH_SIZE = 500

/**
 * The `import` command: records the events of an NDJSON export in an
 * application, in the order of the file, with their versions, topics and
 * state bytes unchanged (the notification ids are the target's own), a batch
 * of events per transaction, reading the file a line at a time. Creates the
 * application's tables when missing. Writes a progress bar (on a terminal) and
 * the count to stderr.
 *
 * @returns the number of events imported.
 * @throws InputNotFoundError when `input` names no file; nothing is opened then.
 * @throws TargetNotEmptyError when the application has events and `append` is not set.
 * @throws DataError naming the line that is not an exported event; the batches before it stay recorded.
 * @throws IntegrityError when an event's version is already recorded (appending to an application that has it).
 */
export async function importEvents(options: ImportOptions, io: CommandIo): Promise<number> {
  const size = options.input === undefined ? 0 : await inputSize(options.input)
  await using storage = await openStorage(options, io.env, { createTables: true })
  const events = storage.recorders.events
  const existing = await events.maxNotificationId()
  if (existing > 0 && !options.append) {
    throw new TargetNotEmptyError(
      `Application '${options.app}' already has events (up to notification ${existing}): import into a new application, or pass --append`,
    )
  }
  const input = options.input === undefined ? io.stdin : createReadStream(options.input)
  const progress = startProgress(io, size, 'bytes')
  let count = 0
  let read = 0
  let batch: StoredEvent[] = []
  try {
    for await (const { line, number } of lines(input)) {
      read += Buffer.byteLength(line) + 1
      if (line.trim() === '') continue
      batch.push(parseEvent(line, number))
      if (batch.length === IMPORT_BATCH_SIZE) {
        count += (await events.insertEvents(batch)).length
        batch = []
        progress.update(read)
      }
    }
    if (batch.length > 0) count += (await events.insertEvents(batch)).length
    progress.update(size)
  } finally {
    progress.stop()
  }
  io.stderr.write(`Imported ${count} events into '${options.app}'\n`)
  return count
}

async function inputSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    throw new InputNotFoundError(`No file ${path}: give --input an export's file, or pipe the export to stdin`)
  }
}

async function* lines(input: Readable): AsyncGenerator<{ line: string; number: number }> {
  let number = 0
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    number += 1
    yield { line, number }
  }
}

/** Returns the stored event of one exported line. */
function parseEvent(line: string, number: number): StoredEvent {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (cause) {
    throw new DataError(`Line ${number} is not JSON: the input must be the output of export`, { cause })
  }
  const { originatorId, originatorVersion, topic, state } = (value ?? {}) as Record<string, unknown>
  if (
    typeof originatorId !== 'string' ||
    !Number.isSafeInteger(originatorVersion) ||
    typeof topic !== 'string' ||
    typeof state !== 'string'
  ) {
    throw new DataError(
      `Line ${number} is not an exported event (originatorId, originatorVersion, topic, state): the input must be the output of export`,
    )
  }
  const bytes = Buffer.from(state, 'base64')
  // Node skips characters that are not base64, so a damaged state would be recorded as other bytes without this check.
  if (bytes.toString('base64') !== state) {
    throw new DataError(`Line ${number}: its state is not base64: the input must be the output of export`)
  }
  return { originatorId, originatorVersion: originatorVersion as number, topic, state: bytes }
}
