import { Buffer } from 'node:buffer'
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
  randomFillSync,
} from 'node:crypto'
import { DataError, ProgrammingError } from './errors.js'

/** A Cipher encrypts stored state and decrypts it; the last stage of a {@link Mapper}'s write path. */
export interface Cipher {
  /**
   * Returns the encrypted form of `plaintext`, bound to `associatedData` (not
   * stored): decryption then succeeds only with the same associated data.
   */
  encrypt(plaintext: Uint8Array, associatedData?: Uint8Array): Uint8Array
  /**
   * Returns the plaintext that {@link Cipher.encrypt} was given.
   *
   * @throws DataError if the key or the associated data is wrong, or the data
   * was tampered with or truncated.
   */
  decrypt(ciphertext: Uint8Array, associatedData?: Uint8Array): Uint8Array
}

const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = NONCE_BYTES + TAG_BYTES
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/

/**
 * An AesGcmCipher encrypts with AES-256-GCM (authenticated encryption, from
 * `node:crypto`), so a wrong key or any change to the data is detected on
 * decryption instead of yielding garbage.
 *
 * Each message gets a fresh random 12-byte nonce. The encrypted form is
 * `nonce (12 bytes) | authentication tag (16 bytes) | ciphertext` (the same
 * length as the plaintext), so it is 28 bytes longer than the plaintext.
 * Random nonces are safe for about 2^32 messages per key: rotate keys well before.
 *
 * The tag also authenticates the associated data given to `encrypt`, which is
 * not stored: decryption needs the same bytes. A {@link Mapper} gives the
 * identity of the record, so that state copied onto another record fails to
 * decrypt: the UTF-8 bytes of the JSON array `[topic, originatorId,
 * originatorVersion]` as `JSON.stringify` writes it, without spaces, e.g.
 * `["dogschool:Dog.Registered","0190a3e1-7c4e-7b52-9d7e-3c1f6f0a2b11",1]`. The
 * plaintext is the transcoded state (UTF-8 JSON), deflated first when
 * compression is on. So a stored event can be made by hand with `node:crypto`:
 *
 * ```ts
 * const nonce = randomBytes(12)
 * const cipher = createCipheriv('aes-256-gcm', key, nonce)
 * cipher.setAAD(Buffer.from(JSON.stringify([topic, originatorId, originatorVersion])))
 * const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
 * const state = Buffer.concat([nonce, cipher.getAuthTag(), ciphertext])
 * ```
 *
 * @example
 * ```ts
 * const key = AesGcmCipher.createKey() // keep it secret, e.g. in CIPHER_KEY
 * const mapper = new Mapper({ cipher: new AesGcmCipher(key) })
 * ```
 */
export class AesGcmCipher implements Cipher {
  readonly #key: KeyObject

  /** Returns a new random 32-byte key, in base64. */
  static createKey(): string {
    return randomBytes(KEY_BYTES).toString('base64')
  }

  /**
   * Makes a cipher that encrypts and decrypts with `key`.
   *
   * @param key 32 bytes, as a base64 string (see {@link AesGcmCipher.createKey}) or a Uint8Array.
   * @throws ProgrammingError if the key is not 32 bytes.
   */
  constructor(key: string | Uint8Array) {
    this.#key = createSecretKey(keyBytes(key))
  }

  /** Returns `nonce | tag | ciphertext` for `plaintext`, with a new random nonce, authenticating `associatedData` too. */
  encrypt(plaintext: Uint8Array, associatedData?: Uint8Array): Uint8Array {
    const out = new Uint8Array(HEADER_BYTES + plaintext.byteLength)
    const nonce = randomFillSync(out, 0, NONCE_BYTES).subarray(0, NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES })
    if (associatedData !== undefined) cipher.setAAD(associatedData)
    out.set(cipher.update(plaintext), HEADER_BYTES)
    cipher.final()
    out.set(cipher.getAuthTag(), NONCE_BYTES)
    return out
  }

  /**
   * Returns the plaintext of data made by {@link AesGcmCipher.encrypt}.
   *
   * @throws DataError if the key or the associated data is wrong, or the data was tampered with or truncated.
   */
  decrypt(ciphertext: Uint8Array, associatedData?: Uint8Array): Uint8Array {
    if (ciphertext.byteLength < HEADER_BYTES) {
      throw new DataError(
        `Could not decrypt: wrong cipher key or tampered data (only ${ciphertext.byteLength} bytes, fewer than the ${HEADER_BYTES} of nonce and tag)`,
      )
    }
    try {
      const nonce = ciphertext.subarray(0, NONCE_BYTES)
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES })
      decipher.setAuthTag(ciphertext.subarray(NONCE_BYTES, HEADER_BYTES))
      if (associatedData !== undefined) decipher.setAAD(associatedData)
      // Copied into an array of its own, because small Buffers share a pool.
      const plaintext = new Uint8Array(decipher.update(ciphertext.subarray(HEADER_BYTES)))
      decipher.final()
      return plaintext
    } catch (cause) {
      throw new DataError('Could not decrypt: wrong cipher key or tampered data', { cause })
    }
  }
}

function keyBytes(key: string | Uint8Array): Uint8Array {
  let bytes: Uint8Array | undefined
  if (typeof key === 'string') {
    if (BASE64_KEY.test(key)) bytes = Buffer.from(key, 'base64')
  } else if (key instanceof Uint8Array) {
    bytes = key
  }
  if (bytes === undefined || bytes.byteLength !== KEY_BYTES) {
    const got =
      typeof key === 'string'
        ? `a string of ${key.length} characters`
        : bytes === undefined
          ? `a ${typeof key}`
          : `${bytes.byteLength} bytes`
    throw new ProgrammingError(
      `A cipher key must be 32 bytes (AES-256), given in base64 or as a Uint8Array; got ${got}. Create one with AesGcmCipher.createKey()`,
    )
  }
  return bytes
}
