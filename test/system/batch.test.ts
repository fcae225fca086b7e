// Process applications processing batches of upstream notifications: one unit
// of work whose policies see each other's changes, one atomic write, and on a
// failure exactly what precedes the bad notification done, on every backend.

import { describe, expect, it, vi } from 'vitest'
import { Order, Orders, Reservations } from '../../examples/orders.js'
import {
  Aggregate,
  type DomainEvent,
  EventLoopRunner,
  MAX_BATCH_SIZE,
  type Notification,
  ProcessApplication,
  ProcessingError,
  type ProcessingEvent,
  ProgrammingError,
  System,
  TopicError,
  uuid5,
  WorkerThreadRunner,
} from '../../src/index.js'
import { caught } from '../fixtures/errors.js'
import { Counter } from './counting.js'
import { systemBackends } from './system-backends.js'

const TALLY_ID = uuid5('6f1c1c8e-2a43-4bde-9a3e-3f1d0f7c2b11', 'tally')

/** Orders whose stores the test may see. */
class SeenOrders extends Orders {
  override stores() {
    return super.stores()
  }
}

/** One aggregate changed by every order: a batch changes it many times. */
class Tally extends Aggregate {
  static readonly topic = 'tests:Tally'
  names: string[] = []
  static readonly Started = Tally.created('tests:Tally.Started', () => {})
  static readonly Counted = Tally.event('tests:Tally.Counted', (tally, e: { name: string }) => {
    tally.names.push(e.name)
  })

  count(name: string): void {
    this.trigger(Tally.Counted, { name })
  }
}

/** The names of orders the Tallying policy fails on. */
const failOn = new Set<string>()
/** Called by the Tallying policy with each order's name before it tallies it, to act as another writer meanwhile. */
let meanwhile: ((name: string) => Promise<void>) | undefined

/** Per order created: a Counter, then the shared Tally counts it (created by the first). */
class Tallying extends ProcessApplication {
  static override readonly applicationName = 'Tallying'
  static override readonly followTopics = [Order.Created]
  /** The size of each batch handed to processBatch, in order. */
  readonly batchSizes: number[] = []

  override processBatch(upstream: Parameters<ProcessApplication['processBatch']>[0], batch: readonly Notification[]) {
    this.batchSizes.push(batch.length)
    return super.processBatch(upstream, batch)
  }

  protected async policy(event: DomainEvent, processing: ProcessingEvent): Promise<void> {
    if (!(event instanceof Order.Created)) return
    if (failOn.has(event.name)) throw new Error(`cannot tally ${event.name}`)
    await meanwhile?.(event.name)
    const tally = (await this.repository.contains(TALLY_ID))
      ? await this.repository.get(Tally, TALLY_ID)
      : Tally.create(Tally.Started, {}, { id: TALLY_ID })
    tally.count(event.name)
    processing.save(Counter.create(Counter.Counted, { orderId: event.originatorId }), tally)
  }
}

class TolerantTallying extends Tallying {
  static override readonly skipUnknownTopics = true
}

/** The topics of the follower's log, in order, with the tally's version for its events. */
async function logOf(app: Tallying): Promise<string[]> {
  const notifications = await app.notificationLog.select({ limit: 1000 })
  return notifications.map((n) => (n.topic === 'tests:Counter.Counted' ? 'counter' : `tally ${n.originatorVersion}`))
}

/** The follower's log when it processed one order after another, `count` of them. */
function expectedLog(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    i === 0 ? ['counter', 'tally 1', 'tally 2'] : ['counter', `tally ${i + 2}`],
  ).flat()
}

describe.each(systemBackends())('batches of a process application on %s', (_name, newStore) => {
  it('run each policy on what the earlier ones changed and record it all, in order, in one write', async () => {
    const store = newStore()
    await using orders = new Orders({ persistence: store() })
    await using tallying = new Tallying({ persistence: store() })
    for (let i = 1; i <= 5; i++) await orders.createOrder(`order ${i}`)
    const notifications = await orders.notificationLog.select({ limit: 10 })
    const recordings = await tallying.processBatch(orders, notifications)
    expect(recordings).toHaveLength(11)
    expect(await logOf(tallying)).toEqual(expectedLog(5))
    expect((await tallying.repository.get(Tally, TALLY_ID)).names).toEqual([1, 2, 3, 4, 5].map((i) => `order ${i}`))
    // One write: its recordings are one run of notification ids, and one tracking record, of the last.
    const ids = recordings.map((recording) => recording.notification.id)
    expect(ids.at(-1)! - ids[0]!).toBe(10)
    expect(await tallying.position('Orders')).toBe(5)
  })

  it('pass over unknown topics within the batch when told to', async () => {
    const store = newStore()
    await using orders = new Orders({ persistence: store() })
    await using tallying = new TolerantTallying({ persistence: store() })
    for (let i = 1; i <= 3; i++) await orders.createOrder(`order ${i}`)
    const [first, second, third] = await orders.notificationLog.select({ limit: 10 })
    const strange = { ...second!, topic: 'orders:Order.Renamed' }
    await tallying.processBatch(orders, [first!, strange, third!])
    expect((await tallying.repository.get(Tally, TALLY_ID)).names).toEqual(['order 1', 'order 3'])
    expect(await tallying.position('Orders')).toBe(3)
    await using strict = new Tallying({ persistence: store(), name: 'Strict' })
    await expect(strict.processBatch(orders, [first!, strange, third!])).rejects.toBeInstanceOf(TopicError)
    expect(await strict.position('Orders')).toBe(0)
    expect(await strict.notificationLog.maxId()).toBe(0)
  })

  it('leave exactly what precedes a failing policy done, when it fails in the middle of a batch', async () => {
    const store = newStore()
    failOn.clear()
    failOn.add('order 15')
    {
      await using orders = new Orders({ persistence: store() })
      for (let i = 1; i <= 30; i++) await orders.createOrder(`order ${i}`)
    }
    const system = new System([[Orders, Tallying]])
    await using runner = new EventLoopRunner(system, { persistence: store(), batchSize: 100, retryDelayMs: 1 })
    await runner.start()
    const error = (await runner.waitFor(Orders, 30).catch((reason: unknown) => reason)) as ProcessingError
    expect(error).toBeInstanceOf(ProcessingError)
    expect(error.notification.id).toBe(15)
    const tallying = runner.get(Tallying)
    // The backlog came as one batch, which failed, then one notification at a time up to the bad one.
    expect(tallying.batchSizes[0]).toBe(30)
    expect(tallying.batchSizes.slice(1)).toEqual(Array(15 + 2).fill(1))
    expect(await tallying.position('Orders')).toBe(14)
    expect(await logOf(tallying)).toEqual(expectedLog(14))
    expect((await tallying.repository.get(Tally, TALLY_ID)).names).toEqual(
      Array.from({ length: 14 }, (_, i) => `order ${i + 1}`),
    )
  })

  it('redo a batch one notification at a time when another writer changed an aggregate meanwhile', async () => {
    const store = newStore()
    failOn.clear()
    {
      await using orders = new Orders({ persistence: store() })
      for (let i = 1; i <= 30; i++) await orders.createOrder(`order ${i}`)
      await using tallying = new Tallying({ persistence: store() })
      await tallying.processBatch(orders, await orders.notificationLog.select({ limit: 5 }))
    }
    await using other = new Tallying({ persistence: store() })
    meanwhile = async (name) => {
      if (name !== 'order 10') return
      meanwhile = undefined
      const tally = await other.repository.get(Tally, TALLY_ID)
      tally.count('elsewhere')
      await other.save(tally)
    }
    const system = new System([[Orders, Tallying]])
    await using runner = new EventLoopRunner(system, { persistence: store(), retryDelayMs: 1 })
    await runner.start()
    await runner.waitFor(Orders, 30)
    const tallying = runner.get(Tallying)
    expect(tallying.batchSizes).toEqual([25, ...Array(25).fill(1)])
    const names = Array.from({ length: 30 }, (_, i) => `order ${i + 1}`)
    expect((await tallying.repository.get(Tally, TALLY_ID)).names).toEqual([
      ...names.slice(0, 5),
      'elsewhere',
      ...names.slice(5),
    ])
    expect(runner.status()[0]?.state).toBe('running')
  })

  it('read the aggregates that policies name ahead in one round trip per batch', async () => {
    const store = newStore()
    await using orders = new SeenOrders({ persistence: store() })
    await using reservations = new Reservations({ persistence: store() })
    const ids: string[] = []
    for (let i = 1; i <= 20; i++) ids.push(await orders.createOrder(`order ${i}`))
    await reservations.processBatch(orders, await orders.notificationLog.select({ limit: 100 }))
    const { events } = (await orders.stores()).recorders
    const [one, many] = [vi.spyOn(events, 'selectEvents'), vi.spyOn(events, 'selectEventsOfMany')]
    await orders.processBatch(reservations, await reservations.notificationLog.select({ limit: 100 }))
    expect([one.mock.calls.length, many.mock.calls.length]).toEqual([0, 1])
    expect(many.mock.calls[0]![0].map((query) => query.originatorId)).toEqual(ids)
    for (const id of ids) expect((await orders.getOrder(id)).reservationId).toBeDefined()
  })

  it('go on in batches after a restart, from the notification after the last one done', async () => {
    const store = newStore()
    failOn.clear()
    {
      await using orders = new Orders({ persistence: store() })
      for (let i = 1; i <= 40; i++) await orders.createOrder(`order ${i}`)
      await using tallying = new Tallying({ persistence: store() })
      await tallying.processBatch(orders, await orders.notificationLog.select({ limit: 10 }))
    }
    const system = new System([[Orders, Tallying]])
    await using runner = new EventLoopRunner(system, { persistence: store(), batchSize: 20 })
    await runner.start()
    await runner.waitFor(Orders, 40)
    const tallying = runner.get(Tallying)
    expect(tallying.batchSizes).toEqual([20, 10])
    expect(await logOf(tallying)).toEqual(expectedLog(40))
  })
})

describe('the batch size of a runner', () => {
  it('is an integer from 1 to MAX_BATCH_SIZE', () => {
    const system = new System([[Orders, Tallying]])
    for (const batchSize of [0, 1.5, Number.NaN, MAX_BATCH_SIZE + 1]) {
      const error = caught(() => new EventLoopRunner(system, { batchSize }))
      expect(error).toBeInstanceOf(ProgrammingError)
      expect((error as Error).message).toMatch(/^batchSize must be/)
    }
    expect(new EventLoopRunner(system, { batchSize: MAX_BATCH_SIZE })).toBeInstanceOf(EventLoopRunner)
    const module = new URL('./worker-systems.ts', import.meta.url)
    const env = { PERSISTENCE: 'sqlite', SQLITE_PATH: '/tmp/unused.db' }
    expect(caught(() => new WorkerThreadRunner(system, { module, env, batchSize: 0 }))).toBeInstanceOf(ProgrammingError)
  })
})

describe('the retry options of a runner', () => {
  it('are a positive number of attempts and delays of 0 ms or more, in whole milliseconds', () => {
    const system = new System([[Orders, Tallying]])
    const module = new URL('./worker-systems.ts', import.meta.url)
    const env = { PERSISTENCE: 'sqlite', SQLITE_PATH: '/tmp/unused.db' }
    const bad = [
      [{ attempts: 0 }, 'attempts must be a positive integer, got 0'],
      [{ retryDelayMs: -1 }, 'retryDelayMs must be a non-negative integer, got -1'],
      [{ maxRetryDelayMs: 2.5 }, 'maxRetryDelayMs must be a non-negative integer, got 2.5'],
      [{ maxRetryDelayMs: Number.NaN }, 'maxRetryDelayMs must be a non-negative integer, got NaN'],
    ] as const
    for (const [options, message] of bad) {
      expect(() => new EventLoopRunner(system, options)).toThrow(message)
      expect(caught(() => new WorkerThreadRunner(system, { module, env, ...options }))).toBeInstanceOf(ProgrammingError)
    }
    expect(new EventLoopRunner(system, { attempts: 1, retryDelayMs: 0, maxRetryDelayMs: 0 })).toBeInstanceOf(
      EventLoopRunner,
    )
  })
})
