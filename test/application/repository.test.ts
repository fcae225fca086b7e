import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import {
  Aggregate,
  Application,
  IntegrityError,
  Mapper,
  memory,
  ProgrammingError,
  Snapshot,
  TopicError,
} from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { Account, Bank } from './fixtures.js'

describe('snapshots', () => {
  it('takes snapshots automatically every N versions and gets aggregates from them', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshottingInterval: 3 })
    const id = await bank.open('snap')
    for (let i = 1n; i <= 7n; i++) await bank.credit(id, i)
    const recorders = await store.open('Bank')
    const snapshots = await recorders.snapshots.selectEvents(id)
    expect(snapshots.map((s) => s.originatorVersion)).toEqual([3, 6])
    const account = await bank.repository.get(Account, id)
    expect(account.balance).toBe(28n)
    expect(account.history.get(8)).toBe('credit 7')
    expect((await bank.repository.get(Account, id, { version: 5 })).balance).toBe(10n)
  })

  it('uses per-class intervals declared on the application class', async () => {
    class Snappy extends Bank {
      static override readonly snapshottingIntervals = new Map([[Account, 2]])
    }
    const store = memory()
    await using bank = new Snappy({ persistence: store })
    const id = await bank.open('per-class')
    await bank.credit(id, 1n)
    await bank.credit(id, 1n)
    const recorders = await store.open('Snappy')
    expect((await recorders.snapshots.selectEvents(id)).map((s) => s.originatorVersion)).toEqual([2])
  })

  it('takes a snapshot on demand, at the latest or a given version', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshotting: true })
    const id = await bank.open('manual')
    await bank.credit(id, 5n)
    await bank.takeSnapshot(id, 1)
    await bank.takeSnapshot(id)
    const recorders = await store.open('Bank')
    expect((await recorders.snapshots.selectEvents(id)).map((s) => s.originatorVersion)).toEqual([1, 2])
    await expect(bank.takeSnapshot(id)).rejects.toBeInstanceOf(IntegrityError)
  })

  it('refuses takeSnapshot when snapshotting is off, and for a class without a topic', async () => {
    await using bank = new Bank({ persistence: memory() })
    const id = await bank.open('off')
    await expect(bank.takeSnapshot(id)).rejects.toThrow(/Snapshotting is off/)
    await expect(bank.takeSnapshot(id)).rejects.toBeInstanceOf(ProgrammingError)

    class Untitled extends Aggregate {
      static Made = Untitled.created('test:Untitled.Made')
    }
    await using app = new Application({ persistence: memory(), snapshotting: true })
    const thing = Untitled.create(Untitled.Made, {})
    await app.save(thing)
    await expect(app.takeSnapshot(thing.id)).rejects.toBeInstanceOf(TopicError)
  })

  it('replays events when a snapshot cannot be used', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshotting: true })
    const id = await bank.open('corrupt')
    await bank.credit(id, 4n)
    const recorders = await store.open('Bank')
    await recorders.snapshots.insertEvents([
      { originatorId: id, originatorVersion: 2, topic: 'eventsourcing:Snapshot', state: new Uint8Array([1, 2, 3]) },
    ])
    expect((await bank.repository.get(Account, id)).balance).toBe(4n)
  })

  it('upcasts snapshot state written by an older class version', async () => {
    class Counter extends Aggregate {
      static readonly topic = 'test:Counter'
      static readonly upcast = [(state: Record<string, unknown>) => ({ ...state, label: 'none' })]
      count = 0
      label = ''
      static Started = Counter.created('test:Counter.Started')
    }
    const store = memory()
    await using app = new Application({ persistence: store, snapshotting: true })
    const counter = Counter.create(Counter.Started, {})
    await app.save(counter)
    const recorders = await store.open('Application')
    // A snapshot stored at class version 1: written by hand, as an older program would have.
    const old = new Snapshot({
      originatorId: counter.id,
      originatorVersion: 1,
      timestamp: new Date(),
      aggregateTopic: 'test:Counter',
      aggregateClassVersion: 1,
      state: { id: counter.id, version: 1, count: 7, createdOn: new Date(), modifiedOn: new Date(), discarded: false },
    })
    await recorders.snapshots.insertEvents([new Mapper().toStoredEvent(old)])
    const loaded = await app.repository.get(Counter, counter.id)
    expect(loaded.count).toBe(7)
    expect(loaded.label).toBe('none')
  })
})

describe('aggregate cache', () => {
  it('returns copies, so a caller cannot change what others get', async () => {
    await using bank = new Bank({ persistence: memory(), aggregateCacheSize: 10 })
    const id = await bank.open('copy')
    const first = await bank.repository.get(Account, id)
    first.credit(100n)
    const second = await bank.repository.get(Account, id)
    expect(second.balance).toBe(0n)
    expect(second).not.toBe(first)
  })

  it('stays correct when another application instance writes the same aggregates', async () => {
    const path = join(tempDir(), 'repo.db')
    await using a = new Bank({ persistence: sqlite({ path }), aggregateCacheSize: 100 })
    await using b = new Bank({ persistence: sqlite({ path }), aggregateCacheSize: 100 })
    const id = await a.open('shared')
    await a.credit(id, 1n)
    await b.credit(id, 10n)
    await a.credit(id, 100n)
    expect((await a.repository.get(Account, id)).balance).toBe(111n)
    expect((await b.repository.get(Account, id)).balance).toBe(111n)
  })

  it('keeps the cache consistent under concurrent conflicting saves', async () => {
    await using bank = new Bank({ persistence: memory(), aggregateCacheSize: 10 })
    const id = await bank.open('race')
    let conflicts = 0
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (;;) {
          try {
            await bank.credit(id, 1n)
            return
          } catch (error) {
            if (!(error instanceof IntegrityError)) throw error
            conflicts++
          }
        }
      }),
    )
    const account = await bank.repository.get(Account, id)
    expect(account.balance).toBe(20n)
    expect(account.version).toBe(21)
    expect(conflicts).toBeGreaterThan(0)
  })
})

describe('reading several aggregates at once', () => {
  /** A bank whose stores the test may see. */
  class OpenBank extends Bank {
    override stores() {
      return super.stores()
    }
  }

  /** A bank whose recorders count the reads of events: one by one, and several at once. */
  async function countingBank(options: ConstructorParameters<typeof Bank>[0] = {}) {
    const bank = new OpenBank({ persistence: memory(), ...options })
    const { events } = (await bank.stores()).recorders
    const [one, many] = [vi.spyOn(events, 'selectEvents'), vi.spyOn(events, 'selectEventsOfMany')]
    const reads = {
      get one() {
        return one.mock.calls.length
      },
      get many() {
        return many.mock.calls.length
      },
      reset() {
        one.mockClear()
        many.mockClear()
      },
      queries: () => many.mock.calls.map(([queries]) => queries),
    }
    return { bank, reads }
  }

  it('getMany returns the latest versions in the order asked, reading their events in one round trip', async () => {
    const { bank, reads } = await countingBank()
    await using _ = bank
    const [a, b] = [await bank.open('a'), await bank.open('b')]
    await bank.credit(a, 5n)
    reads.reset()
    const accounts = await bank.repository.getMany(Account, [b, a, b])
    expect(accounts.map((account) => [account.owner, account.balance])).toEqual([
      ['b', 0n],
      ['a', 5n],
      ['b', 0n],
    ])
    expect(accounts[0]).toBe(accounts[2])
    expect([reads.one, reads.many]).toEqual([0, 1])
    await expect(bank.repository.getMany(Account, [a, 'missing'])).rejects.toThrow(/missing/)
    expect(await bank.repository.getMany(Account, [])).toEqual([])
  })

  it('getMany starts from cached copies and snapshots, and reads only the events after them', async () => {
    const { bank, reads } = await countingBank({ snapshottingInterval: 2, aggregateCacheSize: 1 })
    await using _ = bank
    const [a, b] = [await bank.open('a'), await bank.open('b')]
    for (const amount of [1n, 2n, 3n]) await bank.credit(a, amount)
    await bank.credit(b, 10n)
    reads.reset()
    const accounts = await bank.repository.getMany(Account, [a, b])
    expect(accounts.map((account) => account.balance)).toEqual([6n, 10n])
    expect(accounts.map((account) => account.history.get(4))).toEqual(['credit 3', undefined])
    // b was saved last and is cached at version 2; a's snapshot is at version 4 (its last), so nothing after it is read.
    expect(reads.queries()).toEqual([
      [
        { originatorId: a, gt: 4 },
        { originatorId: b, gt: 2 },
      ],
    ])
    expect(reads.one).toBe(0)
  })

  it('within a unit of work, prefetched aggregates are read once, and pending ones win over them', async () => {
    const { bank, reads } = await countingBank()
    await using _ = bank
    const [a, b] = [await bank.open('a'), await bank.open('b')]
    const pendingA = await bank.repository.get(Account, a)
    pendingA.credit(7n)
    reads.reset()
    await bank.repository.readingThrough(new Map([[a, pendingA]]), async () => {
      expect(await bank.repository.get(Account, a)).toBe(pendingA)
      const first = await bank.repository.get(Account, b)
      expect(first.owner).toBe('b')
      expect([reads.one, reads.many]).toEqual([0, 1])
      expect(reads.queries()).toEqual([[{ originatorId: b }, { originatorId: 'missing' }]])
      // Only the first get takes the prefetched object: a policy that changed it without saving does not leak.
      first.credit(1n)
      expect((await bank.repository.get(Account, b)).balance).toBe(0n)
      expect(reads.one).toBe(1)
      expect(await bank.repository.contains('missing')).toBe(false)
    }, [a, b, b, 'missing'])
  })
})
