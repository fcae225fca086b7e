// The stored-event operations listed in the first eventsourcing README, each on
// memory and SQLite: all events of an aggregate, all events of a topic, a single
// event (by notification id, and by aggregate id and version), events from a
// given version, and deleting all events of an aggregate.
import { describe, expect, it } from 'vitest'
import { backends } from '../fixtures/backends.js'
import { Account, Bank } from './fixtures.js'

async function seed(bank: Bank) {
  const alice = await bank.open('alice')
  const bob = await bank.open('bob')
  await bank.credit(alice, 1n)
  await bank.credit(bob, 2n)
  await bank.credit(alice, 3n)
  return { alice, bob }
}

describe.each(backends())('stored-event operations on %s', (_, newStore) => {
  const persistence = () => newStore()()

  it('gets all events of an aggregate', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { alice } = await seed(bank)
    const events = await bank.repository.events(alice)
    expect(events.map((e) => e.originatorVersion)).toEqual([1, 2, 3])
    expect(events[0]).toBeInstanceOf(Account.Opened)
    expect(events.map((e) => (e instanceof Account.Credited ? e.amount : null))).toEqual([null, 1n, 3n])
  })

  it('gets all events of a topic', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { alice, bob } = await seed(bank)
    const credited = await bank.notificationLog.selectRecordings({ topics: [Account.Credited.topic], limit: 100 })
    expect(credited.map((r) => [r.domainEvent.originatorId, r.domainEvent.originatorVersion])).toEqual([
      [alice, 2],
      [bob, 2],
      [alice, 3],
    ])
  })

  it('gets a single event by notification id', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { bob } = await seed(bank)
    const recording = await bank.notificationLog.get(4)
    expect(recording?.notification.id).toBe(4)
    expect(recording?.domainEvent).toBeInstanceOf(Account.Credited)
    expect(recording?.domainEvent.originatorId).toBe(bob)
    expect(await bank.notificationLog.get(99)).toBeUndefined()
  })

  it('gets a single event by aggregate id and version', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { alice } = await seed(bank)
    const event = await bank.repository.event(alice, 3)
    expect(event).toBeInstanceOf(Account.Credited)
    expect(event).toMatchObject({ originatorId: alice, originatorVersion: 3, amount: 3n })
    expect(await bank.repository.event(alice, 4)).toBeUndefined()
  })

  it('gets the events of an aggregate from a given version', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { alice } = await seed(bank)
    expect((await bank.repository.events(alice, { gt: 1 })).map((e) => e.originatorVersion)).toEqual([2, 3])
    expect((await bank.repository.events(alice, { gt: 1, lte: 2 })).map((e) => e.originatorVersion)).toEqual([2])
    expect((await bank.repository.events(alice, { desc: true, limit: 1 }))[0]?.originatorVersion).toBe(3)
  })

  it('deletes all events of an aggregate; readers of the log pass over the gap', async () => {
    await using bank = new Bank({ persistence: persistence() })
    const { alice, bob } = await seed(bank)
    expect(await bank.deleteAggregate(alice)).toBe(3)
    expect(await bank.repository.events(alice)).toEqual([])
    // A section is filled past the gap, so a reader following nextId reaches the end of the log.
    const section = await bank.notificationLog.section('1,2')
    expect(section.items.map((n) => n.id)).toEqual([2, 4])
    expect(section.id).toBe('2,4')
    expect(section.nextId).toBe('5,6')
    expect((await bank.notificationLog.section('1,3')).nextId).toBeUndefined()
    const remaining = await bank.notificationLog.select({ limit: 10 })
    expect(remaining.map((n) => [n.id, n.originatorId])).toEqual([
      [2, bob],
      [4, bob],
    ])
    const next = await bank.open('carol')
    expect((await bank.notificationLog.select({ start: 5, limit: 10 })).map((n) => n.originatorId)).toEqual([next])
  })
})
