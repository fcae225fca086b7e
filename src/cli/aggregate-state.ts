// An aggregate's state at any version, rebuilt with the user's own classes
// from what a command's storage holds: shared by `state` and the explorer.
import { Aggregate, replayEvents } from '../domain/aggregate.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import { classOf, topicOf } from '../domain/topics.js'
import { NotFoundError, ProgrammingError } from '../persistence/errors.js'
import type { StoredEvent } from '../persistence/stored-event.js'
import type { Transcoding } from '../persistence/transcoder.js'
import type { Storage } from './storage.js'
import { loadUserModule, type UserModule } from './user-module.js'

/** A stored event's topic names no class: the user's module was not given, or declares other classes. */
export class UnknownTopicError extends ProgrammingError {}

/** An aggregate as rebuilt at one of its versions. */
export interface AggregateState {
  /** The aggregate, an instance of the user's class, with the events up to the version asked for applied. */
  readonly aggregate: Aggregate
  /** The name of its class. */
  readonly className: string
  /** The topic of its class, when it declares one. */
  readonly classTopic: string | undefined
  /** Its latest recorded version (the version asked for is `aggregate.version`). */
  readonly latestVersion: number
}

/**
 * Imports the user's module whose classes decode an application's events:
 * importing it declares their topics, which is how stored events find their
 * classes, so it is the module that declares the aggregate classes or any
 * module that imports it (the application's, say). A `transcodings` export,
 * an array of transcodings, is what the application registers for its own types.
 *
 * @returns the transcodings the module exports (none when it exports none).
 * @throws UserModuleError when it cannot be loaded (see {@link loadUserModule}).
 * @throws ProgrammingError when its `transcodings` export is not an array.
 */
export async function loadClasses(file: string): Promise<readonly Transcoding<unknown>[]> {
  return transcodingsOf(file, await loadUserModule(file))
}

/**
 * Returns the transcodings a user's module exports as `transcodings`, or none.
 *
 * @throws ProgrammingError when that export is not an array.
 */
export function transcodingsOf(file: string, module: UserModule): readonly Transcoding<unknown>[] {
  const transcodings = module.transcodings
  if (transcodings === undefined) return []
  if (!Array.isArray(transcodings)) {
    throw new ProgrammingError(`Module ${file} exports 'transcodings', which is not an array of transcodings`)
  }
  return transcodings as Transcoding<unknown>[]
}

/**
 * Rebuilds one aggregate of the application at `version` (its latest when
 * not given) from its stored events, decoded by the storage's mapper (its
 * cipher key and compression) and upcast by their classes, which must be
 * declared (see {@link loadClasses}). Snapshots are not read: the state is
 * what the events make of it. A discarded aggregate is returned as it was
 * when discarded.
 *
 * @throws NotFoundError when the application has no events of that id, or none at that version.
 * @throws UnknownTopicError when an event's topic names no class.
 * @throws DataError when a state does not decode (a wrong cipher key, say).
 * @throws UpcastError when a state cannot be upcast to its class's version.
 */
export async function rebuildAggregate(
  storage: Storage,
  originatorId: string,
  version?: number,
): Promise<AggregateState> {
  const events = storage.recorders.events
  const [last] = await events.selectEvents(originatorId, { desc: true, limit: 1 })
  if (last === undefined) {
    throw new NotFoundError(
      `Application '${storage.app}' has no events of '${originatorId}': check the id (see the log)`,
    )
  }
  const latestVersion = last.originatorVersion
  if (version !== undefined && version > latestVersion) {
    throw new NotFoundError(
      `Aggregate '${originatorId}' has versions 1 to ${latestVersion}, not ${version}: ask for one of them`,
    )
  }
  const stored = await events.selectEvents(originatorId, { lte: version ?? latestVersion })
  const aggregate = replayEvents(
    Aggregate,
    stored.map((event) => decodeEvent(storage, event)),
  )
  if (aggregate === undefined) throw new NotFoundError(`Aggregate '${originatorId}' has no events up to ${version}`)
  const cls = aggregate.constructor as typeof Aggregate
  return { aggregate, className: cls.name, classTopic: topicOf(cls), latestVersion }
}

/**
 * Returns the domain event of a stored event, decoded by the storage's mapper
 * and upcast by its class, which must be declared (see {@link loadClasses}).
 *
 * @throws UnknownTopicError when its topic names no class.
 * @throws DataError when its state does not decode; UpcastError when it cannot be upcast.
 */
export function decodeEvent(storage: Storage, event: StoredEvent): DomainEvent {
  const { topic, originatorId, originatorVersion } = event
  if (classOf(topic) === undefined) {
    throw new UnknownTopicError(
      `No class declares topic '${topic}' (event ${originatorVersion} of '${originatorId}'): ` +
        'give with --module the module that declares the aggregate and its events, or one that imports it',
    )
  }
  try {
    return storage.mapper.toDomainEvent(event)
  } catch (error) {
    if (error instanceof TopicError) throw new UnknownTopicError(error.message, { cause: error })
    throw error
  }
}
