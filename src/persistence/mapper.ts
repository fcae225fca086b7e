import { Buffer } from 'node:buffer'
import { DomainEvent, type DomainEventInit } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import { getTopic, resolveTopic } from '../domain/topics.js'
import { type UpcastState, upcast, type Versioning } from '../domain/upcasting.js'
import type { AesGcmCipher, Cipher } from './cipher.js'
import { type Compressor, inflates, isZlib } from './compressor.js'
import { DataError, errorMessage } from './errors.js'
import type { StoredEvent } from './stored-event.js'
import { JsonTranscoder, type Transcoder } from './transcoder.js'

/** Options for a {@link Mapper}: the stages of its pipeline. */
export interface MapperOptions {
  /** Turns event fields into bytes; a new {@link JsonTranscoder} when not given. */
  readonly transcoder?: Transcoder
  /** Compresses the transcoded bytes; no compression when not given. */
  readonly compressor?: Compressor
  /** Encrypts the (compressed) bytes; no encryption when not given. */
  readonly cipher?: Cipher
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

type EventClass = (new (init: DomainEventInit & UpcastState) => DomainEvent) & Partial<Versioning>

/**
 * A Mapper converts domain events (snapshots included) to stored events and
 * back. On write the event's fields are transcoded, then compressed, then
 * encrypted, as configured; on read the steps run in reverse, and the state is
 * upcast from the class version it was stored at to the type's current one.
 *
 * The stored state holds the event's own fields except `originatorId` and
 * `originatorVersion` (kept beside it in the stored event), plus `classVersion`
 * when the type's class version is above 1. When encrypted, the record's
 * identity is authenticated with it as the cipher's associated data: the UTF-8
 * bytes of `JSON.stringify([topic, originatorId, originatorVersion])` (see
 * {@link AesGcmCipher} for the stored layout).
 *
 * State written with other settings than the mapper's is recognised on read
 * and named in the DataError: encrypted state with no cipher, compressed state
 * with compression off, and plain state with a cipher or compression on.
 */
export class Mapper {
  /** The transcoder that turns event fields into bytes and back. */
  readonly transcoder: Transcoder
  readonly #compressor: Compressor | undefined
  readonly #cipher: Cipher | undefined

  /** Makes a mapper with the given stages: a new {@link JsonTranscoder}, and no compression or encryption, unless given. */
  constructor(options: MapperOptions = {}) {
    this.transcoder = options.transcoder ?? new JsonTranscoder()
    this.#compressor = options.compressor
    this.#cipher = options.cipher
  }

  /**
   * The media type of the states this mapper writes: `application/json`, or
   * `application/octet-stream` when they are compressed or encrypted (a mapper
   * with the same settings reads them).
   */
  get contentType(): string {
    return this.#compressor === undefined && this.#cipher === undefined
      ? 'application/json'
      : 'application/octet-stream'
  }

  /**
   * Returns the stored form of a domain event.
   *
   * @throws TopicError if the event's class has no topic.
   * @throws ProgrammingError if a field holds a value the transcoder cannot store.
   */
  toStoredEvent(event: DomainEvent): StoredEvent {
    const type = event.constructor as EventClass
    const topic = getTopic(type)
    const { originatorId, originatorVersion, ...fields } = event as DomainEvent & Record<string, unknown>
    const classVersion = type.classVersion ?? 1
    if (classVersion > 1) fields.classVersion = classVersion
    const state = this.encodeState(fields, recordIdentity(topic, originatorId, originatorVersion))
    return { originatorId, originatorVersion, topic, state }
  }

  /**
   * Returns the stored form of a record's fields: transcoded, then compressed,
   * then encrypted with `associatedData` (the record's identity), as configured.
   *
   * @throws ProgrammingError if a field holds a value the transcoder cannot store.
   */
  encodeState(fields: object, associatedData: Uint8Array): Uint8Array {
    let state = this.transcoder.encode(fields)
    if (this.#compressor !== undefined) state = this.#compressor.compress(state)
    if (this.#cipher !== undefined) state = this.#cipher.encrypt(state, associatedData)
    return state
  }

  /**
   * Returns the domain event of a stored event, upcast to its type's current class version.
   *
   * @throws TopicError if no event class is declared with the stored topic.
   * @throws DataError (with the underlying error as `cause`) if the state cannot
   * be decrypted, decompressed or decoded.
   * @throws UpcastError if the state was stored by a newer class version, or an upcaster fails.
   */
  toDomainEvent(stored: StoredEvent): DomainEvent {
    const { originatorId, originatorVersion, topic } = stored
    const type = eventClass(topic)
    const record = `event ${originatorVersion} of '${originatorId}' (topic '${topic}')`
    const decoded = this.decodeState(stored.state, recordIdentity(topic, originatorId, originatorVersion), record)
    // The decoded state is fresh and ours: changing it in place is several times faster than rest and spread copies.
    const classVersion = decoded.classVersion ?? 1
    if (decoded.classVersion !== undefined) delete decoded.classVersion
    const versioning = { classVersion: type.classVersion ?? 1, upcasters: type.upcasters ?? [] }
    const init = upcast(topic, decoded, classVersion as number, versioning)
    init.originatorId = originatorId
    init.originatorVersion = originatorVersion
    return new type(init as DomainEventInit & UpcastState)
  }

  /**
   * Returns the fields of a record's stored state, which {@link Mapper.encodeState}
   * wrote with the same `associatedData`: decrypted, decompressed and decoded,
   * as configured (not upcast).
   *
   * @throws DataError naming `record` (e.g. `event 3 of 'abc' (topic 'x')`) if
   * the state cannot be decrypted, decompressed or decoded, or is not an object of fields.
   */
  decodeState(state: Uint8Array, associatedData: Uint8Array, record: string): UpcastState {
    let bytes = state
    let step: Step = 'decrypt'
    let decoded: unknown
    try {
      if (this.#cipher !== undefined) bytes = this.#cipher.decrypt(bytes, associatedData)
      step = 'decompress'
      if (this.#compressor !== undefined) bytes = this.#compressor.decompress(bytes)
      step = 'decode'
      decoded = this.transcoder.decode(bytes)
    } catch (cause) {
      const reason = this.#mismatch(step, bytes) ?? `could not ${step} its state: ${errorMessage(cause)}`
      throw unreadable(record, reason, cause)
    }
    if (!isPlainObject(decoded)) throw unreadable(record, 'its state is not an object of fields')
    return decoded
  }

  /**
   * Explains why `bytes` failed at `step` when they were written with other
   * settings than this mapper's, recognised from the bytes themselves:
   * transcoded state is text (JSON), zlib's has a header and a checksum, and
   * anything else is presumably ciphertext. Returns undefined when the bytes
   * are of the expected kind, but broken.
   */
  #mismatch(step: Step, bytes: Uint8Array): string | undefined {
    switch (step) {
      case 'decrypt':
        if (isZlib(bytes) && inflates(bytes)) return `its state is compressed but not encrypted, ${NOT_ENCRYPTED}`
        if (isText(bytes) && this.#decodes(bytes)) return `its state is not encrypted, ${NOT_ENCRYPTED}`
        return undefined
      case 'decompress':
        if (isText(bytes) && this.#decodes(bytes)) return NOT_COMPRESSED
        return !isZlib(bytes) && this.#looksEncrypted(bytes) ? ENCRYPTED : undefined
      case 'decode':
        if (isZlib(bytes) && inflates(bytes)) return COMPRESSED
        return this.#looksEncrypted(bytes) ? ENCRYPTED : undefined
    }
  }

  #decodes(bytes: Uint8Array): boolean {
    try {
      this.transcoder.decode(bytes)
      return true
    } catch {
      return false
    }
  }

  /** True for bytes that this mapper, having no cipher, cannot have written: not the text its JSON transcoder writes. */
  #looksEncrypted(bytes: Uint8Array): boolean {
    return this.#cipher === undefined && this.transcoder instanceof JsonTranscoder && !isText(bytes)
  }
}

type Step = 'decrypt' | 'decompress' | 'decode'

const ENCRYPTED =
  'its state is encrypted (or was not written by this library), and no cipher key is configured: ' +
  'set CIPHER_KEY (or the cipherKey option) to the key it was written with'
const NOT_ENCRYPTED =
  'and a cipher key is configured: it was written while none was (events stored unencrypted stay so; read them without CIPHER_KEY)'
const COMPRESSED = 'its state is compressed, and compression is off: set COMPRESSOR=zlib (or pass compress: true)'
const NOT_COMPRESSED =
  'its state is not compressed, and compression is on: it was written with compression off (unset COMPRESSOR, or pass compress: false, to read it)'

/** Returns true for bytes that are UTF-8 text, as transcoded state is and ciphertext almost never is. */
function isText(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes)
    return true
  } catch {
    return false
  }
}

function eventClass(topic: string): EventClass {
  const type = resolveTopic(topic)
  if (type !== DomainEvent && !(type.prototype instanceof DomainEvent)) {
    throw new TopicError(`Topic '${topic}' names ${type.name}, which is not a domain event class`)
  }
  return type as unknown as EventClass
}

function unreadable(record: string, reason: string, cause?: unknown): DataError {
  return new DataError(`Cannot read ${record}: ${reason}`, { cause })
}

/** Returns true for an object whose prototype is `Object.prototype` or null: a record of fields, not an array or a class instance. */
function isPlainObject(value: unknown): value is UpcastState {
  if (typeof value !== 'object' || value === null) return false
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * The identity of a stored record, authenticated with its encrypted state, so
 * that state copied onto another record (another aggregate, version or topic)
 * fails to decrypt instead of loading as that record's.
 */
export function recordIdentity(topic: string, originatorId: string, originatorVersion: number): Uint8Array {
  return Buffer.from(JSON.stringify([topic, originatorId, originatorVersion]))
}
