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
  it('checks the mapper settings before opening recorders, so nothing is left open', async () => {
    let opened = 0
    const inner = memory()
    const counting: Persistence = {
      name: 'counting',
      open: (name) => {
        opened++
        return inner.open(name)
      },
    }
    await using bank = new Bank({ persistence: counting, env: { CIPHER_KEY: 'too-short' } })
    await expect(bank.connect()).rejects.toBeInstanceOf(ProgrammingError)
    await expect(bank.connect()).rejects.toBeInstanceOf(ProgrammingError)
    expect(opened).toBe(0)
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
