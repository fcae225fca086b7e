// Settings are checked when an application is made: misspelt variables,
// options given in code, and the application's name.
import { describe, expect, it, vi } from 'vitest'
import { SETTING_NAMES } from '../../src/application/config.js'
import { cassandra, fromEnvironment as cassandraFromEnvironment } from '../../src/cassandra/index.js'
import { Application, Config, memory, ProgrammingError } from '../../src/index.js'
import { postgres, fromEnvironment as postgresFromEnvironment } from '../../src/postgres/index.js'
import { sqlite, fromEnvironment as sqliteFromEnvironment } from '../../src/sqlite/index.js'
import { caught } from '../fixtures/errors.js'
import { Account, Bank } from './fixtures.js'

class Loans extends Application {}

/** Returns the messages of the warnings emitted while `body` runs. */
function warnings(body: () => void): string[] {
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
  try {
    body()
    return spy.mock.calls.map(([warning]) => String(warning))
  } finally {
    spy.mockRestore()
  }
}

describe('misspelt variables', () => {
  it('rejects a variable with the application’s prefix that resembles a setting, naming both', () => {
    const error = caught(() => new Loans({ env: { LOANS_CIPHERKEY: 'secret' } }))
    expect(error).toBeInstanceOf(ProgrammingError)
    expect((error as Error).message).toMatch(/^LOANS_CIPHERKEY is not a setting.*did you mean LOANS_CIPHER_KEY\?/)
    expect(() => new Loans({ env: { LOANS_PERSISTANCE: 'sqlite' } })).toThrow(/did you mean LOANS_PERSISTENCE/)
    expect(() => new Loans({ env: { LOANS_CREATE_TABLE: 'no' } })).toThrow(/did you mean LOANS_CREATE_TABLES/)
    expect(() => new Loans({ env: { LOANS_POSTGRES_DB_NAME: 'x' } })).toThrow(/did you mean LOANS_POSTGRES_DBNAME/)
  })

  it('takes for a misspelling one slip: underscores, one letter added, left out or mistyped, two letters swapped', () => {
    const slips = {
      CIPHERKEY: 'CIPHER_KEY',
      POSTGRES_DB_NAME: 'POSTGRES_DBNAME',
      SNAPSHOTTING_INTERVALS: 'SNAPSHOTTING_INTERVAL',
      CIPHER_KY: 'CIPHER_KEY',
      PERSISTANCE: 'PERSISTENCE',
      CIHPER_KEY: 'CIPHER_KEY',
      COMPERSSOR: 'COMPRESSOR',
      TAG_HASHKEY: 'TAG_HASH_KEY',
    }
    for (const [slip, setting] of Object.entries(slips)) {
      expect(() => new Loans({ env: { [`LOANS_${slip}`]: 'x' } })).toThrow(`did you mean LOANS_${setting}?`)
    }
  })

  it('takes a name that differs from a setting in a whole word, or two letters, for a variable of its own', () => {
    // HTTP compression, a TLS switch, a pool's options: not settings, however close their names.
    const names = ['COMPRESSION', 'POSTGRES_SSL', 'POSTGRES_POOL']
    const env = Object.fromEntries(
      names.flatMap((name) => [
        [name, 'x'],
        [`SHOP_${name}`, 'x'],
      ]),
    )
    expect(warnings(() => new Config('Shop', env))).toEqual([])
  })

  it('ignores an empty misspelt variable, which sets nothing either way', () => {
    expect(() => new Loans({ env: { LOANS_CIPHERKEY: '' } })).not.toThrow()
  })

  it('takes another application’s prefixed settings, and variables far from any setting, for what they are', () => {
    const env = {
      LOANS_ARCHIVE_PERSISTENCE: 'sqlite',
      LOANS_X_COMPRESSOR: 'zlib',
      LOANS_BANK_URL: 'https://bank.example',
      LOANS_API_KEY: 'k',
    }
    expect(warnings(() => new Loans({ env }))).toEqual([])
  })

  it('warns, once per name, of an unprefixed variable that resembles a setting', () => {
    const env = { CIPHERKEY: 'secret', PERSISTANCE: 'sqlite' }
    expect(warnings(() => new Loans({ env }))).toEqual([
      'CIPHERKEY is not a setting of eventsourcing and is ignored: did you mean CIPHER_KEY?',
      'PERSISTANCE is not a setting of eventsourcing and is ignored: did you mean PERSISTENCE?',
    ])
    expect(warnings(() => new Bank({ env }))).toEqual([])
  })

  it('neither warns of nor rejects the variables other software sets', () => {
    const names = [
      'PATH',
      'HOME',
      'USER',
      'SHELL',
      'HOSTNAME',
      'NODE_ENV',
      'NODE_OPTIONS',
      'DATABASE_URL',
      'POSTGRES_DB',
      'POSTGRES_INITDB_ARGS',
      'POSTGRES_HOST_AUTH_METHOD',
      'POSTGRES_PASSWORD_FILE',
      'PGDATA',
      'PGHOST',
      'PGPORT',
      'PGUSER',
      'PGPASSWORD',
      'PGDATABASE',
      'SQLITE_TMPDIR',
      'COMPRESSION',
      'POSTGRES_SSL',
      'POSTGRES_POOL',
      ...SETTING_NAMES,
    ]
    // Each also with the prefix: an application's own variable of such a name is no misspelling either.
    const env = Object.fromEntries(
      names.flatMap((name) => [
        [name, 'x'],
        [`LOANS_${name}`, 'x'],
      ]),
    )
    expect(warnings(() => new Config('Loans', env))).toEqual([])
  })
})

describe('the list of settings', () => {
  it('names every variable the built-in backends read', () => {
    const read = new Set<string>()
    const recording = (env: Record<string, string>) => (name: string) => {
      read.add(name)
      return env[name]
    }
    sqliteFromEnvironment(recording({ SQLITE_PATH: ':memory:' }))
    postgresFromEnvironment(recording({ POSTGRES_HOST: 'localhost', POSTGRES_PORT: '5432' }))
    postgresFromEnvironment(recording({ POSTGRES_URL: 'postgres://localhost/db' }))
    cassandraFromEnvironment(recording({ CASSANDRA_CONTACT_POINTS: 'localhost', CASSANDRA_KEYSPACE: 'dogs' }))
    expect([...read].filter((name) => !SETTING_NAMES.includes(name))).toEqual([])
    expect(read.size).toBeGreaterThan(8)
  })
})

describe('options given in code', () => {
  it('are checked as their variables are, naming the option and the value', () => {
    expect(() => new Bank({ snapshottingInterval: -1 })).toThrow(
      new ProgrammingError('snapshottingInterval must be a non-negative integer, got -1'),
    )
    expect(() => new Bank({ snapshottingInterval: 2.5 })).toThrow(/snapshottingInterval must be .* got 2\.5/)
    expect(() => new Bank({ aggregateCacheSize: Number.NaN })).toThrow(/aggregateCacheSize must be .* got NaN/)
    expect(() => new Bank({ sectionSize: 0 })).toThrow(/sectionSize must be a positive integer, got 0/)
    expect(() => new Bank({ env: { SNAPSHOTTING_INTERVAL: '2.5' } })).toThrow(
      /SNAPSHOTTING_INTERVAL must be a non-negative integer, got "2.5"/,
    )
    expect(() => new Bank({ env: { AGGREGATE_CACHE_SIZE: '1e3' } })).toThrow(/AGGREGATE_CACHE_SIZE must be/)
  })

  it('check each class’s snapshotting interval', () => {
    class Kennel extends Application {
      static override readonly snapshottingIntervals = new Map([[Account, -5]])
    }
    expect(() => new Kennel()).toThrow(/snapshottingIntervals entry of Account must be a non-negative integer, got -5/)
  })

  it('keep 0 meaning no automatic snapshots, in code as in a variable', async () => {
    for (const options of [{ snapshottingInterval: 0 }, { env: { SNAPSHOTTING_INTERVAL: '0' } }]) {
      const store = memory()
      await using bank = new Bank({ persistence: store, ...options })
      const id = await bank.open('zero')
      const recorders = await store.open('Bank')
      expect(await recorders.snapshots.selectEvents(id)).toEqual([])
    }
  })

  it('take snapshots at multiples of a valid interval', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshottingInterval: 2 })
    const id = await bank.open('two')
    for (let i = 0; i < 4; i++) await bank.credit(id, 1n)
    const recorders = await store.open('Bank')
    expect((await recorders.snapshots.selectEvents(id)).map((s) => s.originatorVersion)).toEqual([2, 4])
  })
})

describe('the application’s name', () => {
  const invalid = ['my-loans', '1loans', 'loans app', '', 'x'.repeat(54)]

  it.each(invalid)('%j is refused when the application is made, with every backend', (name) => {
    const backends = [
      memory(),
      sqlite({ path: ':memory:' }),
      postgres({ url: 'postgres://localhost/none' }),
      cassandra({ contactPoints: ['localhost'], localDataCenter: 'dc1', keyspace: 'none' }),
    ]
    for (const persistence of backends) {
      const error = caught(() => new Application({ name, persistence }))
      expect(error).toBeInstanceOf(ProgrammingError)
      expect((error as Error).message).toContain(`Invalid application name ${JSON.stringify(name)}`)
    }
    for (const PERSISTENCE of [undefined, 'sqlite', 'postgres', 'cassandra']) {
      expect(() => new Application({ name, env: { PERSISTENCE } })).toThrow(/Invalid application name/)
    }
  })

  it('is refused on Cassandra past 38 characters (its table names have 48 at most), given or from PERSISTENCE', () => {
    const name = 'x'.repeat(39)
    const persistence = cassandra({ contactPoints: ['localhost'], localDataCenter: 'dc1', keyspace: 'none' })
    expect(() => new Application({ name, persistence })).toThrow(/too long for Cassandra/)
    expect(() => new Application({ name, env: { PERSISTENCE: 'cassandra' } })).toThrow(ProgrammingError)
    expect(() => new Application({ name, env: { PERSISTENCE: 'cassandra' } })).toThrow(/too long for Cassandra/)
    expect(() => new Application({ name: 'x'.repeat(38), env: { PERSISTENCE: 'cassandra' } })).not.toThrow()
  })

  it('is refused when a class is named so', () => {
    class 貸付 extends Application {}
    expect(() => new 貸付()).toThrow(/Invalid application name "貸付"/)
  })

  it('is taken when valid, up to 53 characters', async () => {
    for (const name of ['loans', 'Loans_2', '_x', 'x'.repeat(53)]) {
      await using app = new Application({ name, persistence: sqlite({ path: ':memory:' }) })
      await app.connect()
    }
  })
})
