// Waiting for followers: a runner's and a process application's waitFor, on
// every backend, for notifications a follower follows, ones it passes over,
// ones not recorded yet, and when it fails, times out or is told to stop.

import { setTimeout as delay } from 'node:timers/promises'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { Order, Orders } from '../../examples/orders.js'
import {
  EventLoopRunner,
  Mapper,
  memory,
  type Persistence,
  ProcessingError,
  ProgrammingError,
  type RunnerOptions,
  System,
  WaitTimeoutError,
} from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { writeLockKey } from '../../src/postgres/postgres-schema.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'
import { Counting, failOn, hold, openGates } from './counting.js'
import { systemBackends } from './system-backends.js'

const system = new System([[Orders, Counting]])

/**
 * Starts a runner of the system on `persistence`; with it, its Orders and
 * Counting. Disposing it opens every gate (see `hold`) and forgets `failOn`
 * before stopping the runner, which waits for the order in hand.
 */
async function started(persistence: Persistence, options: Omit<RunnerOptions, 'persistence'> = {}) {
  const runner = new EventLoopRunner(system, { ...options, persistence })
  const stop = async () => {
    openGates()
    failOn.clear()
    await runner.stop()
  }
  try {
    await runner.start()
  } catch (error) {
    await stop()
    throw error
  }
  return { runner, orders: runner.get(Orders), counting: runner.get(Counting), [Symbol.asyncDispose]: stop }
}

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
    await using run = await started(newStore()())
    const { runner, orders, counting } = run
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
    await using run = await started(newStore()())
    const { runner, orders, counting } = run
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
    await using run = await started(newStore()())
    const { runner, orders, counting } = run
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
    await using run = await started(newStore()(), { attempts: 2, retryDelayMs: 1 })
    const { runner, orders } = run
    const good = await create(orders, 'good')
    failOn.add('bad')
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
    await using run = await started(newStore()())
    const { runner, orders } = run
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
      await using run = await started(memory())
      const { runner, orders } = run
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
      await using run = await started(postgres({ url, schema }))
      const { runner, orders, counting } = run
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
  it('rejects an unknown upstream, one no follower run here follows, a runner not started or starting, and bad ids', async () => {
    const persistence = memory()
    const runner = new EventLoopRunner(system, { persistence })
    await expect(runner.waitFor(Orders, 1)).rejects.toThrow('The runner has not started: call start() first')
    const starting = runner.start()
    // Its applications are made at once, its followers once they are connected: a wait needs both.
    await expect(runner.waitFor(Orders, 1)).rejects.toThrow(
      'The runner has not finished starting: await start() before waitFor',
    )
    await starting
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

describe('waiting for a follower: timeoutMs', () => {
  it('must be a finite number, 0 or more, for every wait: a runner’s, an application’s, a recorder’s', async () => {
    await using run = await started(memory())
    const { runner, orders, counting } = run
    const { id } = await create(orders, 'one')
    await runner.waitFor(Orders, id)
    await using recorders = await memory().open('Elsewhere')
    const invalid: [timeoutMs: number, shown: string][] = [
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [-1, '-1'],
      ['100' as unknown as number, '"100"'],
    ]
    for (const [timeoutMs, shown] of invalid) {
      const message = `timeoutMs must be a finite number of milliseconds, 0 or more, got ${shown}`
      // Followed and processed, followed and not, and not recorded yet: each path checks it first.
      for (const waited of [id, id + 1]) {
        await expect(runner.waitFor(Orders, waited, { timeoutMs })).rejects.toThrow(message)
        await expect(counting.waitFor(orders, waited, { timeoutMs })).rejects.toThrow(message)
      }
      await expect(recorders.events.waitForTracking('Orders', 1, { timeoutMs })).rejects.toThrow(ProgrammingError)
    }
  })

  it('may be a fraction of a millisecond, rounded up, or more than a timer takes at once', async () => {
    await using run = await started(memory())
    const { runner, orders } = run
    const { id } = await create(orders, 'one')
    await expect(runner.waitFor(Orders, id + 1, { timeoutMs: 50.5 })).rejects.toThrow(
      `Counting has not reached notification ${id + 1} of Orders within 51 ms: the log ends at ${id}`,
    )
    const warnings: Error[] = []
    const warned = (warning: Error) => warnings.push(warning)
    process.on('warning', warned)
    try {
      // Node's timers take at most 2 ** 31 - 1 ms (and fire at once, with a warning, when given more).
      for (const timeoutMs of [2 ** 31 + 5, 2 ** 40]) {
        const next = (await orders.notificationLog.maxId()) + 1
        const waiting = runner.waitFor(Orders, next, { timeoutMs })
        await delay(100)
        expect(await settled(waiting)).toBe(false)
        await create(orders, `after ${timeoutMs}`)
        await waiting
      }
      await delay(10)
    } finally {
      process.off('warning', warned)
    }
    expect(warnings.map((warning) => warning.name)).toEqual([])
  })
})
