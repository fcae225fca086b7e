// Events written with one encoding setting and read with another fail with a
// DataError that says which setting is wrong, recognised from the stored bytes.
import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import { DataError, type Environment, type Persistence } from '../../src/index.js'
import { Account, Bank } from '../application/fixtures.js'
import { backends } from '../fixtures/backends.js'

const KEY = Buffer.alloc(32, 7).toString('base64')
const OTHER_KEY = Buffer.alloc(32, 8).toString('base64')
const NO_KEY =
  /its state is encrypted \(or was not written by this library\), and no cipher key is configured: set CIPHER_KEY/
const COMPRESSED = /its state is compressed, and compression is off: set COMPRESSOR=zlib/
const NOT_ENCRYPTED = /its state is not encrypted, and a cipher key is configured: it was written while none was/
const NOT_COMPRESSED = /its state is not compressed, and compression is on: it was written with compression off/

// Settings as words: 'cipher' (or 'other cipher', another key) and 'zlib'; 'plain' for neither.
const cases: [written: string, read: string, message: RegExp][] = [
  ['cipher', 'plain', NO_KEY],
  ['cipher zlib', 'plain', NO_KEY],
  ['cipher zlib', 'zlib', NO_KEY],
  ['zlib', 'plain', COMPRESSED],
  ['cipher zlib', 'cipher', COMPRESSED],
  ['plain', 'cipher', NOT_ENCRYPTED],
  ['zlib', 'cipher zlib', /its state is compressed but not encrypted, and a cipher key is configured/],
  ['plain', 'zlib', NOT_COMPRESSED],
  ['cipher', 'cipher zlib', NOT_COMPRESSED],
  ['cipher', 'other cipher', /could not decrypt its state: .*wrong cipher key or tampered data/],
]

function env(settings: string): Environment {
  return {
    CIPHER_KEY: settings.includes('other cipher') ? OTHER_KEY : settings.includes('cipher') ? KEY : undefined,
    COMPRESSOR: settings.includes('zlib') ? 'zlib' : undefined,
  }
}

describe.each(backends())('reading events written with other settings, on %s', (_, newStore) => {
  it.each(cases)('written %s, read %s', async (written, read, message) => {
    const store = newStore()
    const id = await save(store(), env(written))
    await using reader = new Bank({ persistence: store(), env: env(read) })
    const error: unknown = await reader.repository.get(Account, id).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DataError)
    expect((error as Error).message).toMatch(message)
    expect((error as Error).message).toContain(`Cannot read event 1 of '${id}' (topic 'test:Account.Opened')`)
  })

  it('reads them with the settings they were written with', async () => {
    const store = newStore()
    for (const [written] of cases) {
      const id = await save(store(), env(written))
      await using reader = new Bank({ persistence: store(), env: env(written) })
      expect((await reader.repository.get(Account, id)).owner).toBe('ivy')
    }
  })
})

async function save(persistence: Persistence, env: Environment): Promise<string> {
  await using writer = new Bank({ persistence, env })
  return writer.open('ivy')
}
