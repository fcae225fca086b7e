import { describe, expect, it } from 'vitest'
import { EventPublisher, inBatches, memory, PersistenceSubscriber, SectionIdError } from '../../src/index.js'
import { Account, Bank } from './fixtures.js'

async function bankWith(accounts: number, sectionSize = 5) {
  const bank = new Bank({ persistence: memory(), sectionSize })
  for (let i = 0; i < accounts; i++) await bank.open(`owner${i}`)
  return bank
}

describe('NotificationLog sections', () => {
  it('pages through the log by section ids', async () => {
    await using bank = await bankWith(12)
    const first = await bank.notificationLog.section('1,5')
    expect(first.id).toBe('1,5')
    expect(first.items.map((n) => n.id)).toEqual([1, 2, 3, 4, 5])
    expect(first.nextId).toBe('6,10')
    const second = await bank.notificationLog.section(first.nextId!)
    expect(second.nextId).toBe('11,15')
    const last = await bank.notificationLog.section(second.nextId!)
    expect(last.id).toBe('11,12')
    expect(last.nextId).toBeUndefined()
  })

  it('caps a section at the section size and starts at 1 at the earliest', async () => {
    await using bank = await bankWith(12)
    const wide = await bank.notificationLog.section('0,100')
    expect(wide.items.map((n) => n.id)).toEqual([1, 2, 3, 4, 5])
    expect((await bank.notificationLog.section('3,2')).items).toEqual([])
  })

  it('returns an empty section past the end, and for an empty log', async () => {
    await using bank = await bankWith(0)
    expect(await bank.notificationLog.section('1,5')).toEqual({ id: undefined, items: [], nextId: undefined })
  })

  it('rejects a malformed section id with a typed error', async () => {
    await using bank = await bankWith(1)
    await expect(bank.notificationLog.section('one,two')).rejects.toBeInstanceOf(SectionIdError)
    await expect(bank.notificationLog.section('5')).rejects.toThrow(/expected "start,stop"/)
  })
})

describe('first README style: publish and persist', () => {
  it('stores events published as they are triggered', async () => {
    await using bank = new Bank({ persistence: memory() })
    const publisher = new EventPublisher()
    using _subscriber = new PersistenceSubscriber(publisher, bank)
    const account = Account.open('published')
    account.credit(9n)
    await publisher.publish(...account.collectEvents())
    expect((await bank.repository.get(Account, account.id)).balance).toBe(9n)
  })

  it('stops storing after close, and surfaces storage errors to the publisher', async () => {
    await using bank = new Bank({ persistence: memory() })
    const publisher = new EventPublisher()
    const subscriber = new PersistenceSubscriber(publisher, bank)
    const account = Account.open('dup')
    const events = account.collectEvents()
    await publisher.publish(...events)
    await expect(publisher.publish(...events)).rejects.toThrow(/IntegrityError|already/)
    subscriber.close()
    const other = Account.open('unstored')
    await publisher.publish(...other.collectEvents())
    expect(await bank.repository.contains(other.id)).toBe(false)
  })
})

describe('NotificationLog subscribe', () => {
  it('gives the notifications a page at a time, as the queries return them, and one by one', async () => {
    await using bank = await bankWith(3)
    const signal = AbortSignal.timeout(5_000)
    for await (const page of bank.notificationLog.subscribe({ signal }).pages()) {
      expect(page.map((n) => n.id)).toEqual([1, 2, 3])
      break
    }
    const ids: number[] = []
    for await (const notification of bank.notificationLog.subscribe({ gt: 1, signal })) {
      ids.push(notification.id)
      if (ids.length === 2) break
    }
    expect(ids).toEqual([2, 3])
  })

  it('decodes notifications with a decoder as decode does, without an await for each', async () => {
    await using bank = await bankWith(2)
    const notifications = await bank.notificationLog.select({ limit: 2 })
    const decode = await bank.notificationLog.decoder()
    const events = notifications.map(decode)
    expect(events).toEqual(await Promise.all(notifications.map((n) => bank.notificationLog.decode(n))))
    expect(events[0]).toBeInstanceOf(Account.Opened)
  })

  it('cuts pages to a batch size for inBatches', async () => {
    await using bank = await bankWith(5)
    const batches: number[][] = []
    for await (const batch of inBatches(bank.notificationLog.subscribe({ signal: AbortSignal.timeout(5_000) }), 2)) {
      batches.push(batch.map((n) => n.id))
      if (batches.length === 3) break
    }
    expect(batches).toEqual([[1, 2], [3, 4], [5]])
  })
})
