import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  AggregateNotFoundError,
  Application,
  IntegrityError,
  memory,
  type Persistence,
  ProgrammingError,
  type Recording,
  SubscriberError,
} from '../../src/index.js'
import { backends } from '../fixtures/backends.js'
import { tempDir } from '../fixtures/temp.js'
import { Account, Bank } from './fixtures.js'

describe.each(backends())('Application on %s', (_, newStore) => {
  const persistence = (): Persistence => newStore()()

  it('saves aggregates and gets them back with rich state intact', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const id = await bank.open('alice')
    await bank.credit(id, 10n)
    await bank.credit(id, 32n)
    const account = await bank.repository.get(Account, id)
    expect(account).toBeInstanceOf(Account)
    expect(account.balance).toBe(42n)
    expect(account.version).toBe(3)
    expect(account.history).toEqual(
      new Map([
        [2, 'credit 10'],
        [3, 'credit 32'],
      ]),
    )
    expect(account.openedAt).toEqual(new Date('2026-01-02T03:04:05.678Z'))
    expect(account.createdOn).toBeInstanceOf(Date)
  })

  it('gets an aggregate as it was at an earlier version', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const id = await bank.open('bob')
    await bank.credit(id, 1n)
    await bank.credit(id, 2n)
    expect((await bank.repository.get(Account, id, { version: 2 })).balance).toBe(1n)
    expect((await bank.repository.get(Account, id, { version: 1 })).balance).toBe(0n)
  })

  it('saves several aggregates in one atomic batch and returns recordings in order', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const a = Account.open('a')
    const b = Account.open('b')
    b.credit(5n)
    const recordings = await bank.save(a, b)
    expect(recordings.map((r) => [r.domainEvent.originatorId, r.domainEvent.originatorVersion])).toEqual([
      [a.id, 1],
      [b.id, 1],
      [b.id, 2],
    ])
    const ids = recordings.map((r) => r.notification.id)
    expect(ids).toEqual([...ids].sort((x, y) => x - y))
    expect(await bank.notificationLog.maxId()).toBe(ids.at(-1))
  })

  it('rejects a conflicting save with IntegrityError and writes nothing of it', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const id = await bank.open('carol')
    const first = await bank.repository.get(Account, id)
    const second = await bank.repository.get(Account, id)
    const other = Account.open('dave')
    first.credit(1n)
    second.credit(2n)
    await bank.save(first)
    await expect(bank.save(other, second)).rejects.toBeInstanceOf(IntegrityError)
    expect((await bank.repository.get(Account, id)).balance).toBe(1n)
    expect(await bank.repository.contains(other.id)).toBe(false)
    // The failed aggregates keep their events: saving again cannot silently record nothing.
    await expect(bank.save(second)).rejects.toBeInstanceOf(IntegrityError)
    await bank.save(other)
    expect(await bank.repository.contains(other.id)).toBe(true)
  })

  it('throws AggregateNotFoundError for unknown, discarded and mistyped aggregates', async () => {
    await using bank = new Bank({ persistence: persistence() })
    await expect(bank.repository.get(Account, 'nope')).rejects.toBeInstanceOf(AggregateNotFoundError)
    const account = await bank.repository.get(Account, await bank.open('eve'))
    account.discard()
    await bank.save(account)
    await expect(bank.repository.get(Account, account.id)).rejects.toThrow(/was not found/)
    expect(await bank.repository.contains(account.id)).toBe(true)
  })

  it('passes recorded events to subscribers in order, and reports a failing one', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const seen: string[] = []
    const unsubscribe = bank.subscribe((recordings) => {
      for (const r of recordings) seen.push(`${r.notification.id}:${r.domainEvent.constructor.name}`)
    })
    const id = await bank.open('frank')
    await bank.credit(id, 1n)
    expect(seen).toEqual(['1:test:Account.Opened', '2:test:Account.Credited'])
    unsubscribe()
    const failure = new Error('subscriber broke')
    bank.subscribe(() => {
      throw failure
    })
    const error: unknown = await bank.credit(id, 2n).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SubscriberError)
    expect((error as SubscriberError).cause).toBe(failure)
    expect((error as SubscriberError).recordings).toHaveLength(1)
    expect((await bank.repository.get(Account, id)).balance).toBe(3n)
  })

  it('keeps subscriber batches in recording order when saves overlap', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const batches: number[][] = []
    bank.subscribe(async (recordings: readonly Recording[]) => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5))
      batches.push(recordings.map((r) => r.notification.id))
    })
    await Promise.all(Array.from({ length: 10 }, (_, i) => bank.open(`owner${i}`)))
    expect(batches.flat()).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
  })

  it('cannot be used after close', async () => {
    const bank = new Bank({ persistence: persistence() })
    await bank.open('gina')
    await bank.close()
    await bank.close()
    await expect(bank.open('hal')).rejects.toBeInstanceOf(ProgrammingError)
  })

  it('deletes an aggregate and its snapshots; the log keeps a gap', async () => {
    await using bank = new Bank({ persistence: persistence(), snapshotting: true })
    const keep = await bank.open('keep')
    const forget = await bank.open('forget')
    await bank.credit(forget, 5n)
    await bank.takeSnapshot(forget)
    const after = await bank.open('after')
    expect(await bank.deleteAggregate(forget)).toBe(2)
    await expect(bank.repository.get(Account, forget)).rejects.toBeInstanceOf(AggregateNotFoundError)
    const ids = (await bank.notificationLog.select({ limit: 10 })).map((n) => n.originatorId)
    expect(ids).toEqual([keep, after])
    expect((await bank.notificationLog.section('1,10')).items).toHaveLength(2)
  })
})

describe('Application naming and configuration', () => {
  it('is named after its class unless told otherwise', () => {
    class DogSchool extends Application {}
    class Renamed extends Application {
      static override readonly applicationName = 'Kennel'
    }
    expect(new DogSchool().name).toBe('DogSchool')
    expect(new Renamed().name).toBe('Kennel')
    expect(new DogSchool({ name: 'Other' }).name).toBe('Other')
  })

  it('chooses persistence from the environment, prefixed names first', async () => {
    const path = join(tempDir(), 'env.db')
    const env = { PERSISTENCE: 'memory', BANK_PERSISTENCE: 'sqlite', BANK_SQLITE_PATH: path }
    {
      await using bank = new Bank({ env })
      await bank.open('ivy')
    }
    await using again = new Bank({ env })
    expect(await again.notificationLog.maxId()).toBe(1)
  })

  it('rejects an unknown PERSISTENCE value when made, with a typed error naming the choices', () => {
    expect(() => new Bank({ env: { PERSISTENCE: 'oracle' } })).toThrow(ProgrammingError)
    expect(() => new Bank({ env: { PERSISTENCE: 'oracle' } })).toThrow(
      /Unknown PERSISTENCE value "oracle": use one of memory, sqlite/,
    )
  })

  it('tries again to open storage after a failed attempt', async () => {
    const env: Record<string, string> = { PERSISTENCE: 'sqlite' }
    await using bank = new Bank({ env })
    await expect(bank.connect()).rejects.toThrow(/SQLITE_PATH is not set/)
    env.SQLITE_PATH = ':memory:'
    await bank.connect()
    expect(await bank.open('retry')).toBeTypeOf('string')
  })

  it('rejects malformed numeric and boolean settings', () => {
    expect(() => new Bank({ env: { SNAPSHOTTING_INTERVAL: 'ten' } })).toThrow(/SNAPSHOTTING_INTERVAL must be/)
    expect(() => new Bank({ env: { IS_SNAPSHOTTING_ENABLED: 'maybe' } })).toThrow(/must be true or false/)
    expect(() => new Bank({ env: { AGGREGATE_CACHE_SIZE: '-1' } })).toThrow(ProgrammingError)
  })

  it('encrypts and compresses from the environment', async () => {
    const key = Buffer.alloc(32, 7).toString('base64')
    const store = memory()
    {
      await using bank = new Bank({ persistence: store, env: { CIPHER_KEY: key, COMPRESSOR: 'zlib' } })
      await bank.open('secret-owner')
      const [notification] = await bank.notificationLog.select({ limit: 1 })
      expect(Buffer.from(notification!.state).toString('latin1')).not.toContain('secret-owner')
    }
    await using reader = new Bank({ persistence: store, env: { CIPHER_KEY: key, COMPRESSOR: 'zlib' } })
    const [recording] = await reader.notificationLog.selectRecordings({ limit: 1 })
    expect(recording!.domainEvent).toMatchObject({ owner: 'secret-owner' })
    expect(() => new Bank({ env: { COMPRESSOR: 'lzma' } })).toThrow(/Unknown COMPRESSOR/)
  })
})
