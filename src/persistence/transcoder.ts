import { Buffer } from 'node:buffer'
import { DataError, errorMessage, ProgrammingError } from './errors.js'

/** Turns values into bytes and back; the first stage of a {@link Mapper}'s write path. */
export interface Transcoder {
  /** Returns the bytes of a value. */
  encode(value: unknown): Uint8Array
  /**
   * Returns the value the bytes were encoded from.
   *
   * @throws DataError if the bytes cannot be decoded.
   */
  decode(bytes: Uint8Array): unknown
}

/**
 * A Transcoding tells a {@link JsonTranscoder} how to store instances of one
 * class: `encode` turns an instance into data the transcoder can store (which
 * may itself hold dates, maps, other registered types, ...), `decode` turns
 * that data back into an instance.
 *
 * @example
 * ```ts
 * const money: Transcoding<Money> = {
 *   name: 'money',
 *   type: Money,
 *   encode: (m) => ({ cents: m.cents, currency: m.currency }),
 *   decode: (data) => { const d = data as { cents: bigint; currency: string }; return new Money(d.cents, d.currency) },
 * }
 * ```
 */
export interface Transcoding<T> {
  /** The stable name instances are stored under; never reuse or rename it once data is stored. */
  readonly name: string
  /** The class whose instances (not those of its subclasses) this transcoding stores. */
  readonly type: abstract new (
    ...args: never[]
  ) => T
  /** Returns storable data for an instance. */
  encode(value: T): unknown
  /** Returns an instance from the data `encode` returned. */
  decode(data: unknown): T
}

const TYPE = '_type_'
const DATA = '_data_'

/** The names of the tags the transcoder itself writes; transcodings cannot use them. */
const BUILT_IN = new Set(['date', 'bigint', 'bytes', 'map', 'set', 'number', 'undefined', 'object'])

/** Deep enough for any sane event; a cycle reaches it quickly instead of overflowing the stack. */
const MAX_DEPTH = 1000

interface Tag {
  readonly _type_: string
  readonly _data_?: unknown
}

const UNDEFINED: Tag = Object.freeze({ _type_: 'undefined' })

// fatal: malformed UTF-8 must fail as a DataError, not decode to replacement characters.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A JsonTranscoder stores values as UTF-8 JSON, keeping the types JSON lacks
 * so that they come back exactly as they went in.
 *
 * Besides JSON's own values it round-trips `Date` (including an invalid one),
 * `bigint`, `Uint8Array`, `Map`, `Set`, `NaN`, `±Infinity`, `-0`, and instances
 * of classes registered with {@link JsonTranscoder.register}, nested in any
 * combination. These are written in tagged form, `{"_type_": name, "_data_": data}`;
 * a plain object that has its own `_type_` key is escaped, so it round-trips too.
 *
 * Caveats, all by design:
 * - An object field whose value is `undefined` is omitted, as in JSON (so it
 *   reads back as missing); `undefined` in an array, a map or a set is kept.
 * - A `Buffer` comes back as a plain `Uint8Array`; other subclasses of `Uint8Array` are not built in.
 * - Objects with a null prototype come back as ordinary objects; symbol keys
 *   are dropped; an object reached twice is stored twice (a cycle is an error).
 * - An instance of any other class (a subclass of `Date`, `Map`, ... included)
 *   is an error: register a transcoding for it rather than lose its type.
 */
export class JsonTranscoder implements Transcoder {
  readonly #byPrototype = new Map<object, Transcoding<unknown>>()
  readonly #byName = new Map<string, Transcoding<unknown>>()

  /**
   * Registers how to store instances of a class, and returns this transcoder.
   *
   * @throws ProgrammingError if the name is empty, built in or already
   * registered, or the class is built in or already registered.
   */
  register<T>(transcoding: Transcoding<T>): this {
    const { name, type } = transcoding
    if (typeof name !== 'string' || name.length === 0) {
      throw new ProgrammingError(`A transcoding needs a non-empty name, got ${JSON.stringify(name)}`)
    }
    if (BUILT_IN.has(name)) {
      throw new ProgrammingError(`The transcoding name '${name}' is built in: choose another name for ${type.name}`)
    }
    if (this.#byName.has(name)) {
      throw new ProgrammingError(`A transcoding named '${name}' is already registered: give ${type.name} another name`)
    }
    const prototype: unknown = type?.prototype
    if (typeof prototype !== 'object' || prototype === null || isBuiltInPrototype(prototype)) {
      throw new ProgrammingError(`Transcoding '${name}' must name a class of your own, got ${String(type?.name)}`)
    }
    const existing = this.#byPrototype.get(prototype)
    if (existing !== undefined) {
      throw new ProgrammingError(`${type.name} already has a transcoding, named '${existing.name}'`)
    }
    this.#byPrototype.set(prototype, transcoding)
    this.#byName.set(name, transcoding)
    return this
  }

  /**
   * Returns the UTF-8 JSON bytes of a value. They may be a view into a pool
   * shared with other small buffers: read them through `byteOffset` and
   * `byteLength`, never through `.buffer` alone.
   *
   * @throws ProgrammingError if the value holds an instance of an unregistered
   * class, a function or a symbol, or is nested too deeply (or has a cycle).
   */
  encode(value: unknown): Uint8Array {
    const encoded = value === undefined ? UNDEFINED : this.#encode(value, 0)
    // Buffer.from slices Node's shared pool, several times faster than a new ArrayBuffer per event.
    return Buffer.from(JSON.stringify(encoded), 'utf8')
  }

  /**
   * Returns the value that {@link JsonTranscoder.encode} turned into these bytes.
   *
   * @throws DataError if the bytes are not UTF-8 JSON, a tagged value is
   * malformed, or a type name has no registered transcoding.
   */
  decode(bytes: Uint8Array): unknown {
    let parsed: unknown
    try {
      parsed = JSON.parse(strictUtf8.decode(bytes))
    } catch (cause) {
      throw new DataError(`Could not decode JSON: ${errorMessage(cause)}`, { cause })
    }
    try {
      return this.#decode(parsed)
    } catch (cause) {
      if (cause instanceof DataError) throw cause
      throw new DataError(`Could not decode JSON: ${errorMessage(cause)}`, { cause })
    }
  }

  #encode(value: unknown, depth: number): unknown {
    switch (typeof value) {
      case 'string':
      case 'boolean':
      case 'undefined':
        return value
      case 'number':
        // JSON would turn these into null or 0; the reciprocal test is the cheap way to spot -0.
        return Number.isFinite(value) && (value !== 0 || 1 / value > 0)
          ? value
          : tag('number', value === 0 ? '-0' : String(value))
      case 'bigint':
        return tag('bigint', value.toString())
      case 'object':
        return value === null ? null : this.#encodeObject(value, depth + 1)
      default:
        throw new ProgrammingError(`Cannot transcode a ${typeof value}: events and snapshots hold data only`)
    }
  }

  /** Encodes a value in a position where `undefined` must survive (arrays, maps, sets). */
  #encodeElement(value: unknown, depth: number): unknown {
    return value === undefined ? UNDEFINED : this.#encode(value, depth)
  }

  #encodeObject(value: object, depth: number): unknown {
    if (depth > MAX_DEPTH) {
      throw new ProgrammingError(
        `Cannot transcode a value nested more than ${MAX_DEPTH} levels deep: does it have a cycle?`,
      )
    }
    const prototype: unknown = Object.getPrototypeOf(value)
    if (prototype === Object.prototype || prototype === null) {
      return this.#encodeRecord(value as Record<string, unknown>, depth)
    }
    if (prototype === Array.prototype) return this.#encodeArray(value as unknown[], depth)
    if (prototype === Date.prototype) {
      const date = value as Date
      return tag('date', isoString(date))
    }
    if (prototype === Uint8Array.prototype || Buffer.isBuffer(value)) {
      const bytes = value as Uint8Array
      return tag('bytes', Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'))
    }
    if (prototype === Map.prototype) {
      const entries: unknown[] = []
      for (const [key, item] of value as Map<unknown, unknown>) {
        entries.push([this.#encodeElement(key, depth), this.#encodeElement(item, depth)])
      }
      return tag('map', entries)
    }
    if (prototype === Set.prototype) {
      const items: unknown[] = []
      for (const item of value as Set<unknown>) items.push(this.#encodeElement(item, depth))
      return tag('set', items)
    }
    const transcoding = this.#byPrototype.get(prototype as object)
    if (transcoding !== undefined) return tag(transcoding.name, this.#encode(transcoding.encode(value), depth))
    const name = (prototype as { constructor?: { name?: string } }).constructor?.name || 'an anonymous class'
    throw new ProgrammingError(
      `Cannot transcode an instance of ${name}: register a transcoding for it with transcoder.register({ name: '...', type: ${name}, encode, decode })`,
    )
  }

  // Copies only when a field changes, so plain JSON data goes to JSON.stringify as it is.
  #encodeRecord(record: Record<string, unknown>, depth: number): unknown {
    let copy: Record<string, unknown> | undefined
    for (const key of Object.keys(record)) {
      const item = record[key]
      const encoded = this.#encode(item, depth)
      // The spread copies an own `__proto__` key as a field, so assigning it later is safe too.
      if (encoded !== item) {
        copy ??= { ...record }
        copy[key] = encoded
      }
    }
    const result = copy ?? record
    return Object.hasOwn(record, TYPE) ? tag('object', result) : result
  }

  #encodeArray(array: readonly unknown[], depth: number): unknown {
    let copy: unknown[] | undefined
    for (let i = 0; i < array.length; i++) {
      const item = array[i]
      const encoded = this.#encodeElement(item, depth)
      if (encoded !== item) {
        copy ??= array.slice()
        copy[i] = encoded
      }
    }
    return copy ?? array
  }

  // Decodes in place: the parsed tree is fresh and ours, so copying it would be waste.
  #decode(value: unknown): unknown {
    if (typeof value !== 'object' || value === null) return value
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i]
        const decoded = this.#decode(item)
        if (decoded !== item) value[i] = decoded
      }
      return value
    }
    const record = value as Record<string, unknown>
    return Object.hasOwn(record, TYPE) ? this.#decodeTagged(record) : this.#decodeFields(record)
  }

  #decodeFields(record: Record<string, unknown>): Record<string, unknown> {
    for (const key of Object.keys(record)) {
      const item = record[key]
      const decoded = this.#decode(item)
      // An own `__proto__` key (possible from JSON.parse) is a plain field here, so assignment is safe.
      if (decoded !== item) record[key] = decoded
    }
    return record
  }

  #decodeTagged(record: Record<string, unknown>): unknown {
    const name = record[TYPE]
    const data = record[DATA]
    switch (name) {
      case 'date': {
        if (data === null) return new Date(Number.NaN)
        const date = new Date(expect(name, data, typeof data === 'string') as string)
        return expect(name, date, !Number.isNaN(date.getTime()))
      }
      case 'bigint':
        return BigInt(expect(name, data, typeof data === 'string' && /^-?\d+$/.test(data)) as string)
      case 'bytes':
        // Copied out of Buffer's shared pool, so the result owns exactly its bytes.
        return new Uint8Array(Buffer.from(expect(name, data, typeof data === 'string') as string, 'base64'))
      case 'map': {
        const map = new Map<unknown, unknown>()
        for (const entry of expect(name, data, Array.isArray(data)) as unknown[]) {
          if (!Array.isArray(entry) || entry.length !== 2) throw malformed(name)
          map.set(this.#decode(entry[0]), this.#decode(entry[1]))
        }
        return map
      }
      case 'set':
        return new Set(this.#decode(expect(name, data, Array.isArray(data))) as unknown[])
      case 'number':
        return Number(
          expect(name, data, data === 'NaN' || data === 'Infinity' || data === '-Infinity' || data === '-0'),
        )
      case 'undefined':
        return undefined
      case 'object':
        return this.#decodeFields(expect(name, data, isNonArrayObject(data)) as Record<string, unknown>)
    }
    const transcoding = typeof name === 'string' ? this.#byName.get(name) : undefined
    if (transcoding === undefined) {
      throw new DataError(
        `Unknown stored type ${JSON.stringify(name)}: register a transcoding named ${JSON.stringify(name)} with the transcoder`,
      )
    }
    return transcoding.decode(this.#decode(data))
  }
}

function tag(name: string, data: unknown): Tag {
  return { _type_: name, _data_: data }
}

const DAY_MS = 86_400_000
const TWO_DIGITS = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'))
const THREE_DIGITS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'))
let cachedDay = Number.NaN
let cachedDayPrefix = ''

/**
 * Returns `date.toISOString()`, or null for an invalid date. toISOString formats
 * through the C library, several times slower than this; the date part is cached
 * because the timestamps of events written together mostly share a day.
 */
function isoString(date: Date): string | null {
  const ms = date.getTime()
  if (Number.isNaN(ms)) return null
  const day = Math.floor(ms / DAY_MS)
  if (day !== cachedDay) {
    const iso = date.toISOString()
    cachedDayPrefix = iso.slice(0, iso.indexOf('T') + 1)
    cachedDay = day
  }
  let rest = ms - day * DAY_MS
  const hours = Math.floor(rest / 3_600_000)
  rest -= hours * 3_600_000
  const minutes = Math.floor(rest / 60_000)
  rest -= minutes * 60_000
  const seconds = Math.floor(rest / 1000)
  rest -= seconds * 1000
  return `${cachedDayPrefix}${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[seconds]}.${THREE_DIGITS[rest]}Z`
}

function expect(name: string, value: unknown, ok: boolean): unknown {
  if (!ok) throw malformed(name)
  return value
}

function malformed(name: string): DataError {
  return new DataError(`Malformed stored '${name}' value`)
}

function isNonArrayObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isBuiltInPrototype(prototype: object): boolean {
  return [Object, Array, Date, Uint8Array, Map, Set].some((type) => type.prototype === prototype)
}
