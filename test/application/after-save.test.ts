// What happens around a save: subscribers that save, snapshots that cannot be
// made, deletes racing gets, storage that fails to open.
import { describe, expect, it } from 'vitest'
import {
  Aggregate,
  AggregateNotFoundError,
  Application,
  memory,
  type Persistence,
  ProgrammingError,
  SnapshotError,
  TopicError,
} from '../../src/index.js'
import { Account, Bank } from './fixtures.js'

describe('saving from a subscriber', () => {
  it('delivers the nested batch at once instead of waiting for itself', async () => {
    await using bank = new Bank({ persistence: memory() })
    const seen: string[] = []
    bank.subscribe(async (recordings) => {
      for (const { domainEvent } of recordings) {
        seen.push(domainEvent.constructor.name)
        if (domainEvent instanceof Account.Opened && domainEvent.owner === 'parent') await bank.open('child')
      }
    })
    await bank.open('parent')
    await bank.open('after')
    expect(seen).toEqual(['test:Account.Opened', 'test:Account.Opened', 'test:Account.Opened'])
    expect(await bank.notificationLog.maxId()).toBe(3)
  })
})

describe('automatic snapshots around a save', () => {
  it('fail the save before writing when the aggregate class has no topic', async () => {
    class Untitled extends Aggregate {
      static Made = Untitled.created('after-save:Untitled.Made')
    }
    await using app = new Application({ persistence: memory(), snapshottingInterval: 1 })
    const thing = Untitled.create(Untitled.Made, {})
    await expect(app.save(thing)).rejects.toBeInstanceOf(TopicError)
    expect(await app.notificationLog.maxId()).toBe(0)
    expect(thing.collectEvents()).toHaveLength(1)
  })

  it('fail the first save of a class without a topic, long before its interval is reached', async () => {
    class Untopical extends Aggregate {
      static Made = Untopical.created('after-save:Untopical.Made')
    }
    await using app = new Application({ persistence: memory(), snapshottingInterval: 100 })
    const thing = Untopical.create(Untopical.Made, {})
    const error: unknown = await app.save(thing).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TopicError)
    expect((error as Error).message).toMatch(/^Untopical has no topic, and Application snapshots it every 100 versions/)
    expect((error as Error).message).toContain(`declare "static readonly topic = '...'" on Untopical`)
    expect(await app.notificationLog.maxId()).toBe(0)
    expect(thing.collectEvents()).toHaveLength(1)
  })

  it('check the topic of the classes given an interval of their own, and only those', async () => {
    class Snapshotted extends Aggregate {
      static Made = Snapshotted.created('after-save:Snapshotted.Made')
    }
    class Unsnapshotted extends Aggregate {
      static Made = Unsnapshotted.created('after-save:Unsnapshotted.Made')
    }
    class Kennel extends Application {
      static override readonly snapshottingIntervals = new Map([[Snapshotted, 50]])
    }
    await using kennel = new Kennel({ persistence: memory() })
    await kennel.save(Unsnapshotted.create(Unsnapshotted.Made, {}))
    await expect(kennel.save(Snapshotted.create(Snapshotted.Made, {}))).rejects.toThrow(
      /^Snapshotted has no topic, and Kennel snapshots it every 50 versions/,
    )
    // Checked at every save until it passes, not only the first.
    await expect(kennel.save(Snapshotted.create(Snapshotted.Made, {}))).rejects.toBeInstanceOf(TopicError)
    expect(await kennel.notificationLog.maxId()).toBe(1)
  })

  it('are not written after a subscriber fails (only a cache), while the cache is updated', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshottingInterval: 1, aggregateCacheSize: 5 })
    bank.subscribe(() => {
      throw new Error('boom')
    })
    const account = Account.open('x')
    await expect(bank.save(account)).rejects.toThrow(/subscriber failed/)
    const recorders = await store.open('Bank')
    expect(await recorders.snapshots.selectEvents(account.id)).toHaveLength(0)
    expect((await bank.repository.get(Account, account.id)).owner).toBe('x')
  })

  it('report a failed snapshot write as SnapshotError, with the events recorded', async () => {
    const store = memory()
    await using bank = new Bank({ persistence: store, snapshottingInterval: 1 })
    const account = Account.open('y')
    const recorders = await store.open('Bank')
    const stored = { originatorId: account.id, originatorVersion: 1, topic: 'x', state: new Uint8Array() }
    await recorders.snapshots.insertEvents([stored])
    const error: unknown = await bank.save(account).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SnapshotError)
    expect((error as SnapshotError).recordings).toHaveLength(1)
    expect(await bank.repository.contains(account.id)).toBe(true)
  })
})

describe('deleting aggregates', () => {
  it('deletes snapshots even when snapshotting is off in this instance', async () => {
    const store = memory()
    const id = await (async () => {
      await using writer = new Bank({ persistence: store, snapshotting: true })
      const id = await writer.open('z')
      await writer.takeSnapshot(id)
      return id
    })()
    await using bank = new Bank({ persistence: store })
    await bank.deleteAggregate(id)
    const recorders = await store.open('Bank')
    expect(await recorders.snapshots.selectEvents(id)).toEqual([])
  })

  it('does not let a get in flight put a deleted aggregate back in the cache', async () => {
    // A get that read the events before the delete, but finishes after it.
    let release = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let held = false
    const inner = memory()
    const slowReads: Persistence = {
      name: 'slow-reads',
      checkName: inner.checkName,
      openDcb: inner.openDcb,
      listApplications: inner.listApplications,
      open: async (name) => {
        const recorders = await inner.open(name)
        const selectEvents: typeof recorders.events.selectEvents = async (...args) => {
          const result = await recorders.events.selectEvents(...args)
          if (held) await gate
          return result
        }
        const events = new Proxy(recorders.events, {
          get: (target, property) => {
            if (property === 'selectEvents') return selectEvents
            const value: unknown = Reflect.get(target, property, target)
            return typeof value === 'function' ? value.bind(target) : value
          },
        })
        return { ...recorders, events }
      },
    }
    await using bank = new Bank({ persistence: slowReads, aggregateCacheSize: 5 })
    const id = await bank.open('gone')
    bank.repository.forget(id)
    held = true
    const inFlight = bank.repository.get(Account, id)
    await new Promise((resolve) => setTimeout(resolve, 5))
    held = false
    await bank.deleteAggregate(id)
    release()
    expect((await inFlight).owner).toBe('gone')
    await expect(bank.repository.get(Account, id)).rejects.toBeInstanceOf(AggregateNotFoundError)
  })
})

describe('opening storage', () => {
  it('checks the mapper settings when the application is made, before anything is opened', () => {
    const make = () => new Bank({ persistence: memory(), env: { CIPHER_KEY: 'too-short' } })
    expect(make).toThrow(ProgrammingError)
    expect(make).toThrow(/A cipher key must be 32 bytes/)
  })

  it('treats an empty prefixed variable as unset', () => {
    expect(new Bank({ env: { BANK_PERSISTENCE: '', PERSISTENCE: 'sqlite' } }).config.get('PERSISTENCE')).toBe('sqlite')
  })

  it('waits for deliveries in progress before closing', async () => {
    const bank = new Bank({ persistence: memory() })
    let delivered = false
    bank.subscribe(async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      delivered = true
    })
    const saving = bank.open('slow')
    await new Promise((resolve) => setTimeout(resolve, 1))
    await bank.close()
    expect(delivered).toBe(true)
    await saving
  })
})
