// Waiting for followers: a runner's and a process application's waitFor, on
// every backend, for notifications a follower follows, ones it passes over,
// ones not recorded yet, and when it fails, times out or is told to stop.

import { setTimeout as delay } from 'node:timers/promises'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { Order, Orders } from '../../examples/orders.js'
import {
  Aggregate,
  type DomainEvent,
  EventLoopRunner,
  Mapper,
  memory,
  ProcessApplication,
  ProcessingError,
  type ProcessingEvent,
  ProgrammingError,
  System,
  WaitTimeoutError,
} from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { writeLockKey } from '../../src/postgres/postgres-schema.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'
import { systemBackends } from './system-backends.js'

/** One per order counted. */
class Tally extends Aggregate {
  static readonly topic = 'wait-for-test:Tally'
  orderId = ''
  static readonly Counted = Tally.created('wait-for-test:Tally.Counted', (tally, e: { orderId: string }) => {
    tally.orderId = e.orderId
  })
}

/** Orders named here are held by the policy until their gate opens. */
const gates = new Map<string, { readonly held: Promise<void>; readonly open: () => void }>()

/** Holds the orders of `name` until the returned function is called. */
function hold(name: string): () => void {
  let open!: () => void
  const held = new Promise<void>((resolve) => {
    open = resolve
  })
  gates.set(name, { held, open })
  return open
}

/**
 * Opens every gate when disposed: declared with `using` after the runner, it
 * is disposed before the runner stops, which waits for the event in hand.
 */
function gatesOpenedAtEnd(): Disposable {
  return {
    [Symbol.dispose]: () => {
      for (const { open } of gates.values()) open()
      gates.clear()
    },
  }
}

/** Counts the orders created upstream (only Order.Created); fails on orders named `bad…`. */
class Counting extends ProcessApplication {
  static override readonly applicationName = 'Counting'
  static override readonly followTopics = [Order.Created]

  protected async policy(event: DomainEvent, processing: ProcessingEvent): Promise<void> {
    if (!(event instanceof Order.Created)) return
    await gates.get(event.name)?.held
    if (event.name.startsWith('bad')) throw new Error(`cannot count ${event.name}`)
    processing.save(Tally.create(Tally.Counted, { orderId: event.originatorId }))
  }
}

const system = new System([[Orders, Counting]])

/** Saves a new order and returns it and its notification id. */
async function create(orders: Orders, name: string): Promise<{ order: Order; id: number }> {
  const order = Order.create(Order.Created, { name })
  const recordings = await orders.save(order)
  return { order, id: recordings.at(-1)!.notification.id }
}

/** Records an event that Counting does not follow (Order.Reserved), and returns its notification id. */
async function reserve(orders: Orders, order: Order): Promise<number> {
  order.reserve(`reservation of ${order.name}`)
  return (await orders.save(order)).at(-1)!.notification.id
}

/** Returns a promise's state now: whether it has settled. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending')
  return (
    (await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      delay(0, pending),
    ])) !== pending
  )
}

describe.each(systemBackends())('waiting for a follower on %s', (_, newStore) => {
  it('resolves once the follower has processed a notification it follows', async () => {
    await using runner = new EventLoopRunner(system, { persistence: newStore()() })
    using _gates = gatesOpenedAtEnd()
    await runner.start()
    const orders = runner.get(Orders)
    const counting = runner.get(Counting)
    const open = hold('held')
    const { id } = await create(orders, 'held')
    const waits = [runner.waitFor(Orders, id), runner.waitFor('Orders', id), counting.waitFor(orders, id)]
    await delay(100)
    expect(await Promise.all(waits.map(settled))).toEqual([false, false, false])
    open()
    await Promise.all(waits)
    expect(await counting.position('Orders')).toBe(id)
    expect(await counting.notificationLog.select({ limit: 10 })).toHaveLength(1)
  })

  it('passes a notification of another topic once the followed one before it is processed, and not before', async () => {
    await using runner = new EventLoopRunner(system, { persistence: newStore()() })
    using _gates = gatesOpenedAtEnd()
    await runner.start()
    const orders = runner.get(Orders)
    const counting = runner.get(Counting)
    const first = await create(orders, 'first')
    await runner.waitFor(Orders, first.id)
    const open = hold('held')
    const held = await create(orders, 'held')
    const reserved = await reserve(orders, held.order)
    const waiting = runner.waitFor(Orders, reserved)
    const waitingHere = counting.waitFor(orders, reserved)
    await delay(300)
    // Counting is at the first order: the held one, before the reservation, is not processed yet.
    expect(await counting.position('Orders')).toBe(first.id)
    expect([await settled(waiting), await settled(waitingHere)]).toEqual([false, false])
    open()
    await waiting
    await waitingHere
    // Its tracking stays at the last notification it follows: the reservation is passed over.
    expect(await counting.position('Orders')).toBe(held.id)
    expect(held.id).toBeLessThan(reserved)
  })

  it('passes notifications beyond the last one it follows, and waits for those not recorded yet', async () => {
    await using runner = new EventLoopRunner(system, { persistence: newStore()() })
    using _gates = gatesOpenedAtEnd()
    await runner.start()
    const orders = runner.get(Orders)
    const counting = runner.get(Counting)
    const { order, id } = await create(orders, 'one')
    await reserve(orders, order)
    const last = await reserve(orders, order)
    await runner.waitFor(Orders, last)
    expect(await counting.position('Orders')).toBe(id)

    // Not recorded yet: the wait lasts until the log has it, then passes it over too.
    const future = runner.waitFor(Orders, last + 2)
    await delay(200)
    expect(await settled(future)).toBe(false)
    await reserve(orders, order)
    await delay(100)
    expect(await settled(future)).toBe(false)
    await reserve(orders, order)
    await future
    expect(await counting.position('Orders')).toBe(id)
    // Waiting for a followed one that was recorded after the wait began takes its processing.
    const open = hold('held')
    const next = runner.waitFor(Orders, last + 3)
    const held = await create(orders, 'held')
    expect(held.id).toBe(last + 3)
    await delay(100)
    expect(await settled(next)).toBe(false)
    open()
    await next
    expect(await counting.position('Orders')).toBe(held.id)
  })

  it('rejects with the error of a follower that failed, or fails while waited for', async () => {
    await using runner = new EventLoopRunner(system, { persistence: newStore()(), attempts: 2, retryDelayMs: 1 })
    using _gates = gatesOpenedAtEnd()
    await runner.start()
    const orders = runner.get(Orders)
    const good = await create(orders, 'good')
    const open = hold('bad')
    const bad = await create(orders, 'bad')
    const waiting = runner.waitFor(Orders, bad.id)
    await delay(50)
    open()
    const error = await waiting.then(
      () => undefined,
      (reason: unknown) => reason,
    )
    expect(error).toBeInstanceOf(ProcessingError)
    expect(runner.status()[0]).toMatchObject({ name: 'Counting', state: 'failed', error })
    expect((error as ProcessingError).notification.id).toBe(bad.id)
    // Once failed, waiting for what it did not process rejects at once; for what it did, resolves.
    await expect(runner.waitFor(Orders, bad.id, { timeoutMs: 60_000 })).rejects.toBe(error)
    await runner.waitFor(Orders, good.id)
    // The application alone does not know of the failure: its wait runs out of time.
    await expect(runner.get(Counting).waitFor(orders, bad.id, { timeoutMs: 100 })).rejects.toThrow(WaitTimeoutError)
  })

  it('fails with WaitTimeoutError naming the follower, the upstream and the id, or stops on a signal', async () => {
    await using runner = new EventLoopRunner(system, { persistence: newStore()() })
    using _gates = gatesOpenedAtEnd()
    await runner.start()
    const orders = runner.get(Orders)
    hold('held')
    const { order, id } = await create(orders, 'held')
    const reserved = await reserve(orders, order)
    const timedOut = runner.waitFor(Orders, reserved, { timeoutMs: 100 })
    await expect(timedOut).rejects.toThrow(WaitTimeoutError)
    await expect(timedOut).rejects.toThrow(
      `Counting has not reached notification ${reserved} of Orders within 100 ms: it is at 0, and has yet to process ${id}, which it follows`,
    )
    await expect(runner.waitFor(Orders, reserved + 1, { timeoutMs: 100 })).rejects.toThrow(
      `Counting has not reached notification ${reserved + 1} of Orders within 100 ms: the log ends at ${reserved}`,
    )
    const stopping = new AbortController()
    const stopped = runner.waitFor(Orders, id, { signal: stopping.signal })
    const notRecorded = runner.get(Counting).waitFor(orders, reserved + 1, { signal: stopping.signal })
    await delay(50)
    stopping.abort(new Error('no longer needed'))
    // Both at once: a rejection not yet awaited while the other is would be reported as unhandled.
    await Promise.all([
      expect(stopped).rejects.toThrow('no longer needed'),
      expect(notRecorded).rejects.toThrow('no longer needed'),
    ])
  })
})

describe('many waits at once', () => {
  it('listen to a runner’s failure signal without a warning of a listener leak', async () => {
    const warnings: Error[] = []
    const warned = (warning: Error) => warnings.push(warning)
    process.on('warning', warned)
    try {
      await using runner = new EventLoopRunner(system, { persistence: memory() })
      await runner.start()
      const orders = runner.get(Orders)
      const ids = await Promise.all(Array.from({ length: 20 }, async (_, n) => (await create(orders, `many ${n}`)).id))
      await Promise.all(ids.map((id) => runner.waitFor(Orders, id)))
      // Warnings are emitted on the next turn.
      await delay(10)
    } finally {
      process.off('warning', warned)
    }
    expect(warnings.map((warning) => warning.name)).not.toContain('MaxListenersExceededWarning')
  })
})

describe('waiting for a follower on PostgreSQL while a write below the id is still being committed', () => {
  it('waits for that write, and for the follower to process it', async () => {
    const { schema, drop } = freshSchema()
    const url = postgresUrl()
    const writer = new pg.Client({ connectionString: url })
    try {
      await using runner = new EventLoopRunner(system, { persistence: postgres({ url, schema }) })
      using _gates = gatesOpenedAtEnd()
      await runner.start()
      const orders = runner.get(Orders)
      const counting = runner.get(Counting)
      const first = await create(orders, 'first')
      await runner.waitFor(Orders, first.id)
      // A writer that has drawn an id for a new order, under the write lock as every writer does, and not committed.
      await writer.connect()
      await writer.query(`BEGIN; SELECT pg_advisory_xact_lock_shared(${writeLockKey(schema, 'orders_events')})`)
      const stored = new Mapper().toStoredEvent(Order.create(Order.Created, { name: 'late' }).collectEvents()[0]!)
      const insert = `INSERT INTO "${schema}".orders_events (originator_id, originator_version, topic, state)
        VALUES ($1, $2, $3, $4) RETURNING notification_id AS id`
      const values = [stored.originatorId, stored.originatorVersion, stored.topic, stored.state]
      const late = Number((await writer.query<{ id: string }>(insert, values)).rows[0]!.id)
      // Committed after it: an event Counting does not follow.
      const reserved = await reserve(orders, first.order)
      expect(late).toBeLessThan(reserved)
      const waiting = runner.waitFor(Orders, reserved)
      await delay(300)
      expect(await settled(waiting)).toBe(false)
      await writer.query('COMMIT')
      await waiting
      expect(await counting.position('Orders')).toBe(late)
      expect(await counting.notificationLog.select({ limit: 10 })).toHaveLength(2)
    } finally {
      await writer.end()
      await drop()
    }
  })
})

describe('waiting for a follower: what cannot be waited for', () => {
  it('rejects an unknown upstream, one no follower run here follows, a runner not started, and bad ids', async () => {
    const persistence = memory()
    const runner = new EventLoopRunner(system, { persistence })
    await expect(runner.waitFor(Orders, 1)).rejects.toThrow('The runner has not started: call start() first')
    await runner.start()
    try {
      await expect(runner.waitFor('Nope', 1)).rejects.toThrow("No application named 'Nope' in this system")
      await expect(runner.waitFor(Counting, 1)).rejects.toThrow(
        'No follower in this system follows Counting, so there is nothing to wait for',
      )
      await expect(runner.waitFor(Orders, 1.5)).rejects.toThrow(ProgrammingError)
      await expect(runner.waitFor(Orders, Number.NaN)).rejects.toThrow('A notification id is an integer, got NaN')
    } finally {
      await runner.stop()
    }
    await using elsewhere = new EventLoopRunner(system, { persistence, run: [] })
    await elsewhere.start()
    await expect(elsewhere.waitFor(Orders, 1)).rejects.toThrow(
      'No follower among those this runner runs (none) follows Orders, so there is nothing to wait for',
    )
  })
})
