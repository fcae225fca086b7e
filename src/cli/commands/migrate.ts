import { ProgrammingError } from '../../persistence/errors.js'
import { recordIdentity } from '../../persistence/mapper.js'
import type { Notification, StoredEvent } from '../../persistence/stored-event.js'
import type { Transcoding } from '../../persistence/transcoder.js'
import { decodeEvent, transcodingsOf } from '../aggregate-state.js'
import { type CommandIo, decodeFields } from '../output.js'
import { startProgress } from '../progress.js'
import { openStorage, type Storage, type StorageOptions, storageLocation } from '../storage.js'
import { loadUserModule } from '../user-module.js'
import { TargetNotEmptyError } from './import.js'

/** The options of the `migrate` command: the source's storage, the target's, and how events are rewritten. */
export interface MigrateOptions extends StorageOptions {
  /** The user's module whose classes upcast the events (see `loadClasses`); not with `transform`. */
  readonly module?: string
  /** A module whose default (or `transform`) export rewrites each event (see {@link Transform}); not with `module`. */
  readonly transform?: string
  /** The target application's name (default: the source's). */
  readonly targetApp?: string
  readonly targetPersistence?: string
  readonly targetSqlitePath?: string
  readonly targetPostgresUrl?: string
  readonly targetPostgresSchema?: string
  /** The key the target's events are encrypted with (default: the source's). */
  readonly targetCipherKey?: string
  /** Compress the target's events (they are when the source's are, by default). */
  readonly targetCompress?: boolean
  /** How many events are copied in one transaction (default {@link MIGRATE_BATCH_SIZE}). */
  readonly batchSize?: number
}

/** A stored event with its state decoded (decrypted, decompressed; not upcast): what a {@link Transform} is given and returns. */
export interface DecodedEvent {
  readonly originatorId: string
  readonly originatorVersion: number
  readonly topic: string
  /** The event's fields as stored, `timestamp` and (above version 1) `classVersion` among them. */
  readonly state: Record<string, unknown>
}

/**
 * Rewrites one event for `migrate`: returns it, or an event of the same
 * originator and version with another topic or state. Dropping an event
 * (returning nothing) or splitting it (returning several) is refused.
 */
export type Transform = (event: DecodedEvent) => DecodedEvent | Promise<DecodedEvent>

/** A transform returned something other than one event of the same originator and version. */
export class TransformError extends ProgrammingError {}

/** The target of a migration is its source. */
export class SameStorageError extends ProgrammingError {}

/** How many events `migrate` copies in one transaction, by default. */
export const MIGRATE_BATCH_SIZE = 500

/** How one source event becomes the event written to the target. */
type Rewrite = (source: Storage, target: Storage, event: Notification) => Promise<StoredEvent>

/**
 * The `migrate` command: copies an application's events, in notification
 * order, into another application (on the same backend or another), each
 * rewritten by the module's classes (decoded, upcast to their class version,
 * written under the class's current topic), by a transform, or else only
 * re-encoded with the target's cipher key and compression. The source is
 * only read; snapshots and tracking records are not copied.
 *
 * Each batch of events is written in one transaction with a tracking record
 * of the last source notification it holds (under the source's name, in
 * lower case, as its tables spell it), so an
 * interrupted migration, run again, goes on after the last batch written:
 * nothing twice, nothing left out. Run again after it ended, it copies the
 * events recorded since. Writes a progress bar (on a terminal) and the count to stderr.
 *
 * @returns the number of events copied by this run.
 * @throws SameStorageError when the target is the source.
 * @throws TargetNotEmptyError when the target has events that no earlier migration from this source wrote.
 * @throws TransformError when a transform drops, splits or moves an event; the batches before it stay written.
 * @throws UnknownTopicError, DataError, UpcastError when an event cannot be decoded or upcast.
 */
export async function migrate(options: MigrateOptions, io: CommandIo): Promise<number> {
  if (options.module !== undefined && options.transform !== undefined) {
    throw new ProgrammingError('Give --module (upcast by your classes) or --transform, not both')
  }
  const file = options.module ?? options.transform
  const module = file === undefined ? {} : await loadUserModule(file)
  const transcodings: readonly Transcoding<unknown>[] = file === undefined ? [] : transcodingsOf(file, module)
  const rewrite =
    options.transform === undefined
      ? rewriteByClasses(options.module !== undefined)
      : byTransform(options.transform, module)
  const targetOptions = targetStorage(options)
  if (storageLocation(options, io.env) === storageLocation(targetOptions, io.env)) {
    throw new SameStorageError(
      `The target of the migration is its source ('${options.app}' in the same database): give --target-app or the target's database`,
    )
  }
  await using source = await openStorage(options, io.env, { transcodings })
  await using target = await openStorage(targetOptions, io.env, { createTables: true, transcodings })
  return await copy(source, target, rewrite, options.batchSize ?? MIGRATE_BATCH_SIZE, io)
}

async function copy(
  source: Storage,
  target: Storage,
  rewrite: Rewrite,
  batchSize: number,
  io: CommandIo,
): Promise<number> {
  // Tracked under the name as the source's tables spell it, so that a run with the name spelt otherwise goes on.
  const upstream = source.app.toLowerCase()
  const done = await target.recorders.events.maxTrackingId(upstream)
  const existing = done === 0 ? await target.recorders.events.maxNotificationId() : 0
  if (existing > 0) {
    throw new TargetNotEmptyError(
      `Application '${target.app}' already has events (up to notification ${existing}), not written by a migration from '${source.app}': migrate into a new application`,
    )
  }
  const stop = await source.recorders.events.maxNotificationId()
  const progress = startProgress(io, stop, 'notifications')
  progress.update(done)
  let count = 0
  try {
    for (let start = done + 1; start <= stop; ) {
      const page = await source.recorders.events.selectNotifications({ start, stop, limit: batchSize })
      const last = page.at(-1)
      if (last === undefined) break
      const events: StoredEvent[] = []
      for (const event of page) events.push(await rewrite(source, target, event))
      const tracking = { applicationName: upstream, notificationId: last.id }
      await target.recorders.events.insertEvents(events, { tracking })
      count += events.length
      progress.update(last.id)
      start = last.id + 1
    }
  } finally {
    progress.stop()
  }
  const resumed = done > 0 ? ` (going on after notification ${done})` : ''
  io.stderr.write(`Migrated ${count} events of '${source.app}' into '${target.app}'${resumed}\n`)
  return count
}

/** Decoded by the classes and upcast (`upcast`), or only decoded and encoded again with the target's settings. */
function rewriteByClasses(upcast: boolean): Rewrite {
  if (upcast) return async (source, target, event) => target.mapper.toStoredEvent(decodeEvent(source, event))
  return byFunction((event) => event)
}

function byTransform(file: string, module: Readonly<Record<string, unknown>>): Rewrite {
  const transform = typeof module.default === 'function' ? module.default : module.transform
  if (typeof transform !== 'function') {
    throw new ProgrammingError(
      `Module ${file} exports no transform: export a function, as default or as 'transform', that returns the event it is given, rewritten`,
    )
  }
  return byFunction(transform as Transform)
}

function byFunction(transform: Transform): Rewrite {
  return async (source, target, event) => {
    const { originatorId, originatorVersion, topic } = event
    const rewritten: unknown = await transform({
      originatorId,
      originatorVersion,
      topic,
      state: decodeFields(source, event),
    })
    checkRewritten(event, rewritten)
    const identity = recordIdentity(rewritten.topic, originatorId, originatorVersion)
    return {
      originatorId,
      originatorVersion,
      topic: rewritten.topic,
      state: target.mapper.encodeState(rewritten.state, identity),
    }
  }
}

/** @throws TransformError unless `rewritten` is one event of the same originator and version as `event`. */
function checkRewritten(event: StoredEvent, rewritten: unknown): asserts rewritten is DecodedEvent {
  const which = `event ${event.originatorVersion} of '${event.originatorId}' (topic '${event.topic}')`
  if (rewritten === undefined || rewritten === null) {
    throw new TransformError(`The transform dropped ${which}: migrate rewrites events, it does not drop them`)
  }
  if (Array.isArray(rewritten)) {
    throw new TransformError(
      `The transform split ${which} into ${rewritten.length}: migrate rewrites events one for one`,
    )
  }
  const { originatorId, originatorVersion, topic, state } = rewritten as Partial<DecodedEvent>
  if (originatorId !== event.originatorId || originatorVersion !== event.originatorVersion) {
    throw new TransformError(
      `The transform moved ${which} to version ${originatorVersion} of '${originatorId}': an event keeps its aggregate and version`,
    )
  }
  if (typeof topic !== 'string' || topic === '' || typeof state !== 'object' || state === null) {
    throw new TransformError(
      `The transform returned no topic or no state for ${which}: return { ...event, topic, state }`,
    )
  }
}

/** The target's storage: the source's database unless the target's is given, and the source's encoding unless told otherwise. */
function targetStorage(options: MigrateOptions): StorageOptions {
  const elsewhere =
    options.targetPersistence !== undefined ||
    options.targetSqlitePath !== undefined ||
    options.targetPostgresUrl !== undefined
  const database = elsewhere
    ? {
        persistence: options.targetPersistence,
        sqlitePath: options.targetSqlitePath,
        postgresUrl: options.targetPostgresUrl,
        postgresSchema: options.targetPostgresSchema,
      }
    : {
        persistence: options.persistence,
        sqlitePath: options.sqlitePath,
        postgresUrl: options.postgresUrl,
        postgresSchema: options.targetPostgresSchema ?? options.postgresSchema,
      }
  return {
    app: options.targetApp ?? options.app,
    ...database,
    cipherKey: options.targetCipherKey ?? options.cipherKey,
    compress: options.targetCompress ?? options.compress,
  }
}
