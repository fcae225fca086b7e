import { describe, expect, it } from 'vitest'
import { Order, Orders, Reservation } from '../../examples/orders.js'
import {
  Aggregate,
  DataError,
  type DomainEvent,
  EventLoopRunner,
  memory,
  type Persistence,
  ProcessApplication,
  ProcessingError,
  type ProcessingEvent,
  ProgrammingError,
  System,
  TopicError,
  UpcastError,
} from '../../src/index.js'
import { backends } from '../fixtures/backends.js'
import { caught } from '../fixtures/errors.js'
import { Counter, Counting, failOn } from './counting.js'

/** Follows Orders with every topic, to meet topics it does not know. */
class Everything extends ProcessApplication {
  static override readonly applicationName: string = 'Everything'
  protected policy(_event: DomainEvent, processing: ProcessingEvent): void {
    processing.save(Counter.create(Counter.Counted, { orderId: processing.tracking.notificationId.toString() }))
  }
}

class Tolerant extends Everything {
  static override readonly applicationName = 'Tolerant'
  static override readonly skipUnknownTopics = true
}

/** An aggregate whose event is at class version 2, and whose upcaster from version 1 throws. */
class Renamed extends Aggregate {
  static readonly topic = 'tests:Renamed'
  static readonly Created = Renamed.created('tests:Renamed.Created', () => {}, {
    upcast: [
      () => {
        throw new Error('version 1 cannot be upcast')
      },
    ],
  })
}

async function countedOrders(app: Counting | Everything): Promise<number> {
  return (await app.notificationLog.select({ limit: 20_000 })).length
}

describe('a follower whose policy throws', () => {
  it('stops with an error naming the event, writes nothing for it, and processes it once after a restart', async () => {
    const persistence = memory()
    const system = new System([[Orders, Counting]])
    failOn.clear()
    failOn.add('bad')
    const errors: [Error, string][] = []
    {
      await using runner = new EventLoopRunner(system, { persistence, retryDelayMs: 1 })
      runner.on('followerError', (error, follower) => errors.push([error, follower]))
      await runner.start()
      const orders = runner.get(Orders)
      await orders.createOrder('good 1')
      await orders.createOrder('bad')
      await orders.createOrder('good 2')
      const counting = runner.get(Counting)
      await expect(runner.waitFor(Orders, 3)).rejects.toBeInstanceOf(ProcessingError)
      expect(runner.status()[0]?.state).toBe('failed')
      expect(errors).toHaveLength(1)
      const [error, follower] = errors[0]!
      expect(follower).toBe('Counting')
      expect(error).toBeInstanceOf(ProcessingError)
      const processingError = error as ProcessingError
      expect(processingError.message).toBe(
        "Counting stopped at notification 2 of Orders (topic 'orders:Order.Created') after 3 attempts: cannot count bad",
      )
      expect([processingError.upstream, processingError.notification.id, processingError.attempts]).toEqual([
        'Orders',
        2,
        3,
      ])
      expect(runner.status()[0]?.error).toBe(error)
      expect(await countedOrders(counting)).toBe(1)
      expect(await counting.position('Orders')).toBe(1)
      // The upstream application goes on.
      await orders.createOrder('good 3')
    }
    failOn.clear()
    await using runner = new EventLoopRunner(system, { persistence })
    await runner.start()
    const counting = runner.get(Counting)
    await runner.waitFor(Orders, 4)
    expect(await counting.position('Orders')).toBe(4)
    expect(await countedOrders(counting)).toBe(4)
    const counters = await counting.notificationLog.selectRecordings({ limit: 10 })
    const orderIds = counters.map(
      (recording) => (recording.domainEvent as InstanceType<typeof Counter.Counted>).orderId,
    )
    expect(new Set(orderIds).size).toBe(4)
  })

  it('is retried, and goes on when a retry succeeds', async () => {
    failOn.clear()
    let failures = 0
    class Flaky extends Counting {
      static override readonly applicationName = 'Flaky'
      protected override async policy(event: DomainEvent, processing: ProcessingEvent): Promise<void> {
        if (failures++ < 2) throw new Error('not yet')
        await super.policy(event, processing)
      }
    }
    await using runner = new EventLoopRunner(new System([[Orders, Flaky]]), { persistence: memory(), retryDelayMs: 1 })
    await runner.start()
    await runner.get(Orders).createOrder('one')
    await runner.waitFor(Orders, 1)
    expect(runner.status()[0]).toMatchObject({ name: 'Flaky', state: 'running', positions: { Orders: 1 } })
  })
})

describe('an upstream event that no retry can process', () => {
  /** Records an event that no retry can process, changed by `change` from one this process can, between two good ones. */
  async function recordStrange(
    orders: Orders,
    persistence: Persistence,
    change: { topic?: string; state?: Uint8Array },
  ): Promise<void> {
    const order = Order.create(Order.Created, { name: 'x' })
    const [recording] = await orders.save(order)
    // An event as a newer version of the program, or a fault, would write it.
    const stored = { ...recording!.notification, originatorVersion: 2, ...change }
    await using recorders = await persistence.open('Orders')
    await recorders.events.insertEvents([stored])
    await orders.createOrder('after')
  }

  it.each([
    ['an unknown topic', { topic: 'orders:Order.Renamed' }, TopicError],
    ['unreadable state', { topic: 'orders:Order.Created', state: new Uint8Array([0xff, 0x00]) }, DataError],
    // An Order.Created's state is at version 1, which the upcaster of Renamed.Created fails to bring to version 2.
    ['state whose upcaster throws', { topic: Renamed.Created.topic }, UpcastError],
  ])('with %s, stops the follower at once: no retry could help', async (_, change, ErrorClass) => {
    const persistence = memory()
    // With a retry a minute away, only a stop at once is reported within the poll's timeout.
    await using runner = new EventLoopRunner(new System([[Orders, Everything]]), { persistence, retryDelayMs: 60_000 })
    const errors: Error[] = []
    runner.on('followerError', (error) => errors.push(error))
    await runner.start()
    await recordStrange(runner.get(Orders), persistence, change)
    await expect.poll(() => runner.status()[0]?.state).toBe('failed')
    expect(errors).toHaveLength(1)
    const error = errors[0] as ProcessingError
    expect(error).toBeInstanceOf(ProcessingError)
    expect(error.attempts).toBe(1)
    expect(error.message).toMatch(/^Everything stopped at notification 2 of Orders .* after 1 attempt: /)
    expect(error.cause).toBeInstanceOf(ErrorClass)
    expect(await runner.get(Everything).position('Orders')).toBe(1)
  })

  it('stops the follower with a TopicError, unless the policy says to skip it', async () => {
    const persistence = memory()
    const system = new System([
      [Orders, Everything],
      [Orders, Tolerant],
    ])
    await using runner = new EventLoopRunner(system, { persistence, retryDelayMs: 1 })
    await runner.start()
    await recordStrange(runner.get(Orders), persistence, { topic: 'orders:Order.Renamed' })
    // The runner's wait rejects with the error of the follower that stopped; Tolerant's own wait resolves.
    const error = (await runner.waitFor(Orders, 3).catch((reason: unknown) => reason)) as ProcessingError
    await runner.get(Tolerant).waitFor(runner.get(Orders), 3)
    expect(await runner.get(Tolerant).position('Orders')).toBe(3)
    expect(await countedOrders(runner.get(Tolerant))).toBe(2)
    expect(runner.status().find((s) => s.name === 'Everything')).toMatchObject({ state: 'failed', error })
    expect(error).toBeInstanceOf(ProcessingError)
    expect(error.notification.topic).toBe('orders:Order.Renamed')
    expect(error.cause).toBeInstanceOf(TopicError)
    expect(await runner.get(Everything).position('Orders')).toBe(1)
  })
})

describe('a system', () => {
  it('rejects short pipes, followers that are not process applications, and duplicate names', () => {
    expect(caught(() => new System([[Orders]]))).toBeInstanceOf(ProgrammingError)
    class Plain extends Orders {}
    Object.defineProperty(Plain, 'applicationName', { value: 'Orders' })
    expect((caught(() => new System([[Orders, Counting, Plain]])) as Error).message).toMatch(
      /Two application classes are named 'Orders'/,
    )
    expect(caught(() => new System([[Counting, Reservation as never]]))).toBeInstanceOf(ProgrammingError)
  })

  it('names its applications and what they follow, and rejects unknown names', () => {
    const system = new System([[Orders, Counting, Orders]])
    expect(system.names).toEqual(['Orders', 'Counting'])
    expect(system.followers).toEqual(['Counting', 'Orders'])
    expect(system.leadersOf('Orders')).toEqual(['Counting'])
    expect((caught(() => system.get('Nope')) as Error).message).toBe(
      "No application named 'Nope' in this system; it has Orders, Counting",
    )
    expect(caught(() => new EventLoopRunner(system, { run: ['Nope'] }))).toBeInstanceOf(ProgrammingError)
  })

  it.each(backends())('catches up a follower added after 10,000 upstream events, on %s', async (_, newStore) => {
    const persistence = newStore()
    failOn.clear()
    {
      await using orders = new Orders({ persistence: persistence() })
      for (let save = 0; save < 100; save++) {
        await orders.save(
          ...Array.from({ length: 100 }, (_, i) => Order.create(Order.Created, { name: `${save}.${i}` })),
        )
      }
    }
    await using runner = new EventLoopRunner(new System([[Orders, Counting]]), { persistence: persistence() })
    await runner.start()
    await runner.waitFor(Orders, 10_000, { timeoutMs: 60_000 })
    expect(await countedOrders(runner.get(Counting))).toBe(10_000)
  })

  it('runs only the followers it is told to, and replays the whole log to a new follower', async () => {
    const persistence = memory()
    failOn.clear()
    {
      await using runner = new EventLoopRunner(new System([[Orders, Counting]]), { persistence, run: [] })
      await runner.start()
      for (let i = 0; i < 5; i++) await runner.get(Orders).createOrder(`order ${i}`)
      expect(runner.status()).toEqual([])
      expect(await runner.get(Counting).position('Orders')).toBe(0)
    }
    await using runner = new EventLoopRunner(new System([[Orders, Counting]]), { persistence })
    await runner.start()
    await runner.waitFor(Orders, 5)
    expect(await countedOrders(runner.get(Counting))).toBe(5)
  })
})
