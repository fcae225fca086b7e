import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import { AesGcmCipher } from '../../src/persistence/cipher.js'
import { DataError, ProgrammingError } from '../../src/persistence/errors.js'

const plaintext = new TextEncoder().encode('{"name":"Fido","secret":"bone under the shed"}')

describe('AesGcmCipher', () => {
  const key = AesGcmCipher.createKey()
  const cipher = new AesGcmCipher(key)

  it('round-trips bytes, empty ones included', () => {
    expect(cipher.decrypt(cipher.encrypt(plaintext))).toEqual(plaintext)
    expect(cipher.decrypt(cipher.encrypt(new Uint8Array()))).toEqual(new Uint8Array())
  })

  it('writes nonce | tag | ciphertext, with a new nonce each time', () => {
    const first = cipher.encrypt(plaintext)
    const second = cipher.encrypt(plaintext)
    expect(first.byteLength).toBe(12 + 16 + plaintext.byteLength)
    expect(first.subarray(0, 12)).not.toEqual(second.subarray(0, 12))
    expect(first).not.toEqual(second)
    expect(Buffer.from(first).includes(Buffer.from('Fido'))).toBe(false)
  })

  it('creates base64 keys of 32 bytes, and accepts keys as bytes', () => {
    expect(Buffer.from(key, 'base64')).toHaveLength(32)
    expect(AesGcmCipher.createKey()).not.toBe(key)
    const fromBytes = new AesGcmCipher(new Uint8Array(Buffer.from(key, 'base64')))
    expect(fromBytes.decrypt(cipher.encrypt(plaintext))).toEqual(plaintext)
  })

  it('rejects keys that are not 32 bytes, saying how to make one', () => {
    for (const bad of [
      '',
      'c2hvcnQ=',
      `${key}AAAA`,
      'not base64 at all, but 44 characters long!!',
      new Uint8Array(16),
    ]) {
      expect(() => new AesGcmCipher(bad)).toThrow(ProgrammingError)
    }
    expect(() => new AesGcmCipher('')).toThrow(/AesGcmCipher\.createKey\(\)/)
  })

  it('fails with a DataError, not garbage, when the key is wrong', () => {
    const other = new AesGcmCipher(AesGcmCipher.createKey())
    expect(() => other.decrypt(cipher.encrypt(plaintext))).toThrow(DataError)
    expect(() => other.decrypt(cipher.encrypt(plaintext))).toThrow(
      'Could not decrypt: wrong cipher key or tampered data',
    )
  })

  it('fails with a DataError when any byte was tampered with, or the data is truncated', () => {
    const encrypted = cipher.encrypt(plaintext)
    for (const index of [0, 11, 12, 27, 28, encrypted.byteLength - 1]) {
      const tampered = new Uint8Array(encrypted)
      tampered[index]! ^= 1
      expect(() => cipher.decrypt(tampered)).toThrow(/wrong cipher key or tampered data/)
    }
    expect(() => cipher.decrypt(encrypted.subarray(0, encrypted.byteLength - 1))).toThrow(DataError)
    expect(() => cipher.decrypt(encrypted.subarray(0, 20))).toThrow(DataError)
    expect(() => cipher.decrypt(new Uint8Array())).toThrow(DataError)
  })
})
