import { Buffer } from 'node:buffer'
import { queryItems, type TaggedQuery } from '../domain/decision-model.js'
import {
  RESERVED_DATA_FIELD,
  restoreTaggedEvent,
  type TaggedEvent,
  type TaggedEventType,
  taggedEventType,
} from '../domain/tagged-event.js'
import { upcast } from '../domain/upcasting.js'
import type { DcbEvent, DcbQuery, DcbSequencedEvent } from './dcb.js'
import { Mapper } from './mapper.js'
import type { TagHasher } from './tag-hasher.js'

/**
 * A DcbMapper converts tagged events to the DCB events a `DcbRecorder`
 * stores and back, through the same pipeline as a {@link Mapper}: the data is
 * transcoded, then compressed, then encrypted, as configured; on read the
 * steps run in reverse and the data is upcast to its type's class version.
 * Tags of the names its {@link TagHasher} hashes are stored hashed, in events
 * and in queries alike.
 *
 * The stored data is the event's data, plus `classVersion` when the type's
 * class version is above 1. A DCB event has no originator id or version: its
 * position is given by the store after it is encrypted. So what the cipher
 * authenticates with the data, as its associated data, is the event's type
 * and its stored tags: the UTF-8 bytes of `JSON.stringify([type, tags])`,
 * the tags sorted and without repeats (the store keeps no order), e.g.
 * `["courses:StudentSubscribed",["course:c1","student:s1"]]`. Data moved onto
 * an event of another type, or with a tag added, removed or changed, fails to
 * decrypt. The metadata, when an event has some, is stored as its data is,
 * and authenticated with `JSON.stringify([type, tags, 'metadata'])`. The
 * position is not authenticated: the data of two events of one type and the
 * same tags can be swapped unnoticed, by someone who can write the store.
 */
export class DcbMapper {
  /** Makes a DCB mapper with the pipeline of `mapper`, hashing tags with `tagHasher` when given. */
  constructor(
    /** The transcoder, compressor and cipher of the data. */
    readonly mapper: Mapper = new Mapper(),
    /** Hashes the values of tags with personal data; none are hashed when not given. */
    readonly tagHasher?: TagHasher,
  ) {}

  /**
   * Returns the stored form of a tagged event.
   *
   * @throws ProgrammingError if its data holds a value the transcoder cannot store.
   */
  toDcbEvent(event: TaggedEvent): DcbEvent {
    const type = event.constructor as Partial<TaggedEventType>
    const fields: Record<string, unknown> = { ...event.data }
    const classVersion = type.classVersion ?? 1
    if (classVersion > 1) fields[RESERVED_DATA_FIELD] = classVersion
    const tags = this.storedTags(event.tags)
    const data = this.mapper.encodeState(fields, associatedData(event.type, tags))
    if (event.metadata === undefined) return { type: event.type, data, tags }
    const metadata = this.mapper.encodeState(event.metadata, associatedData(event.type, tags, 'metadata'))
    return { type: event.type, data, tags, metadata }
  }

  /**
   * Returns the tagged event of a stored DCB event, with its position, its data
   * upcast to its type's class version, and the tags its type derives from that.
   *
   * @throws TopicError if no tagged event type is declared with the stored type.
   * @throws DataError (with the underlying error as `cause`) if the data cannot
   * be decrypted, decompressed or decoded.
   * @throws UpcastError if the data was stored by a newer class version, or an upcaster fails.
   */
  toTaggedEvent(stored: DcbSequencedEvent): TaggedEvent {
    const type = taggedEventType(stored.type)
    const record = `DCB event ${stored.position} (type '${stored.type}')`
    const tags = sortedTags(stored.tags)
    const fields = this.mapper.decodeState(stored.data, associatedData(stored.type, tags), record)
    const classVersion = fields[RESERVED_DATA_FIELD] ?? 1
    delete fields[RESERVED_DATA_FIELD]
    const data = upcast(stored.type, fields, classVersion as number, type)
    const metadata =
      stored.metadata &&
      this.mapper.decodeState(
        stored.metadata,
        associatedData(stored.type, tags, 'metadata'),
        `the metadata of ${record}`,
      )
    return restoreTaggedEvent(type, data, stored.position, metadata)
  }

  /** Returns a query of tagged events as the store is queried: types by name, and tags as stored. */
  toDcbQuery(query?: TaggedQuery): DcbQuery {
    return queryItems(query).map(({ types, tags }) => ({ types, tags: tags.map((tag) => this.storedTag(tag)) }))
  }

  /** Returns a tag as stored: hashed when the tag hasher hashes its name. */
  storedTag(tag: string): string {
    return this.tagHasher === undefined ? tag : this.tagHasher.hash(tag)
  }

  /** Returns tags as stored, sorted and without repeats. */
  storedTags(tags: readonly string[]): string[] {
    return sortedTags(tags.map((tag) => this.storedTag(tag)))
  }
}

function sortedTags(tags: readonly string[]): string[] {
  return [...new Set(tags)].sort()
}

/**
 * The identity of a DCB event that its encrypted data is bound to: its type
 * and its (sorted) stored tags; its metadata is bound to the same and the
 * word `metadata`, so that data and metadata cannot be swapped.
 */
export function associatedData(type: string, sortedTags: readonly string[], part?: 'metadata'): Uint8Array {
  return Buffer.from(JSON.stringify(part === undefined ? [type, sortedTags] : [type, sortedTags, part]))
}
