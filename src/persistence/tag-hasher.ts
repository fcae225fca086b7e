import { Buffer } from 'node:buffer'
import { createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import { tagName } from '../domain/tagged-event.js'
import { ProgrammingError } from './errors.js'

const KEY_BYTES = 32
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/

/**
 * A TagHasher replaces the values of the tags of some names with a keyed hash
 * (HMAC-SHA-256), for tags whose values are personal data: an email address,
 * a username. Tags are stored in clear even when event data is encrypted,
 * because the store must compare them; hashed, they still match equal values
 * (the hash of a value is the same each time), but the stored tag no longer
 * says what the value is, and without the key a guessed value cannot be checked.
 *
 * A hashed tag keeps its name: `email:alice@example.com` is stored as
 * `email:` and the base64url HMAC-SHA-256 of the whole tag (43 characters),
 * so the same value under two names gives two unrelated hashes. Tags of other
 * names, and tags without a name, are stored as they are.
 *
 * The key cannot change once tags are stored with it: a tag hashed with
 * another key matches nothing. Keep it apart from the cipher key (which may
 * be rotated), and secret: with it, a value can be checked against a tag.
 *
 * @example
 * ```ts
 * const hasher = new TagHasher(TagHasher.createKey(), ['email'])
 * hasher.hash('email:alice@example.com') // 'email:3q2-7w…'
 * hasher.hash('course:c1') // 'course:c1'
 * ```
 */
export class TagHasher {
  readonly #key: KeyObject
  readonly #names: ReadonlySet<string>

  /** Returns a new random 32-byte key, in base64. */
  static createKey(): string {
    return randomBytes(KEY_BYTES).toString('base64')
  }

  /**
   * Makes a hasher of the tags with the given names.
   *
   * @param key 32 bytes, as a base64 string (see {@link TagHasher.createKey}) or a Uint8Array.
   * @throws ProgrammingError if the key is not 32 bytes, or a name is empty or holds a colon.
   */
  constructor(key: string | Uint8Array, names: Iterable<string>) {
    this.#key = createSecretKey(keyBytes(key))
    this.#names = new Set(names)
    for (const name of this.#names) {
      if (name === '' || name.includes(':')) {
        throw new ProgrammingError(
          `A hashed tag's name is a non-empty string without a colon, got ${JSON.stringify(name)}`,
        )
      }
    }
  }

  /** The names of the tags whose values are hashed. */
  get names(): readonly string[] {
    return [...this.#names]
  }

  /** Returns a tag as stored: hashed when its name is one of this hasher's, else as it is. */
  hash(tag: string): string {
    const name = tagName(tag)
    if (name === undefined || !this.#names.has(name)) return tag
    return `${name}:${createHmac('sha256', this.#key).update(tag).digest('base64url')}`
  }
}

function keyBytes(key: string | Uint8Array): Uint8Array {
  const bytes = typeof key === 'string' ? (BASE64_KEY.test(key) ? Buffer.from(key, 'base64') : undefined) : key
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== KEY_BYTES) {
    throw new ProgrammingError(
      'A tag hashing key must be 32 bytes, given in base64 or as a Uint8Array: create one with TagHasher.createKey()',
    )
  }
  return bytes
}
