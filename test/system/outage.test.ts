// Followers through an outage of their store: the orders system on an
// EventLoopRunner, orders arriving every 10 ms, while PostgreSQL is stopped
// and started again on the same data, or while another process holds the
// SQLite file locked. Every follower retries for as long as it lasts, shows
// it in status() and events, and resumes by itself: every order gets paid.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { Order, Orders, ordersSystem, Payments, placeOrder, Reservations } from '../../examples/orders.js'
import type { Environment } from '../../src/application/config.js'
import type { DomainEvent } from '../../src/index.js'
import { memory } from '../../src/memory/memory-recorder.js'
import { OperationalError } from '../../src/persistence/errors.js'
import { type PostgresTransaction, postgres, postgresProjectionStore } from '../../src/postgres/index.js'
import { follow } from '../../src/system/follow.js'
import { Projection, ProjectionRunner } from '../../src/system/projection.js'
import { EventLoopRunner, type FollowerStatus, type Runner } from '../../src/system/runner.js'
import { WorkerThreadRunner } from '../../src/system/worker-runner.js'
import { startEmbeddedServer } from '../postgres/global-setup.js'

// Orders placed before the outage, and again after it, before placing stops.
const ORDERS_EACH_SIDE = 100

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Resolves once `isDone()`, checking every 20 ms; throws if `ms` passes first. */
async function until(isDone: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!isDone()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await delay(20)
  }
}

/**
 * Runs the orders system on `runner`, placing an order every 10 ms, and
 * calls `outage` once enough orders are placed; then places as many again,
 * stops placing, and checks that every order placed is paid, that no
 * follower failed, and that they were seen retrying. When `ordersDown`, the
 * outage refuses orders too (Orders' store is down); when not, the followers
 * have work throughout.
 */
async function throughOutage(runner: Runner, ordersDown: boolean, outage: () => Promise<void>): Promise<void> {
  const failures: Error[] = []
  const retrying = new Set<string>()
  const retryErrors: unknown[] = []
  const resumed = new Set<string>()
  runner.on('followerError', (error) => failures.push(error))
  runner.on('followerRetrying', (error, follower, since) => {
    retryErrors.push(error, since)
    retrying.add(follower)
  })
  runner.on('followerResumed', (follower) => resumed.add(follower))
  await runner.start()
  cleanups.push(() => runner.stop())
  const seen: FollowerStatus[] = []
  const sampling = setInterval(() => seen.push(...runner.status()), 20)
  cleanups.push(async () => clearInterval(sampling))

  const orders = runner.get(Orders)
  const placed: string[] = []
  let refused = 0
  let placing = true
  const placer = (async () => {
    while (placing) {
      try {
        placed.push(await orders.createOrder('socks'))
      } catch (error) {
        expect(error).toBeInstanceOf(OperationalError)
        refused++
      }
      await delay(10)
    }
  })()
  try {
    await until(() => placed.length >= ORDERS_EACH_SIDE, 30_000, 'orders before the outage')
    await outage()
    const before = placed.length
    await until(() => placed.length >= before + ORDERS_EACH_SIDE, 60_000, 'orders after the outage')
  } finally {
    placing = false
    await placer
  }

  // Hop by hop, as placeOrder waits, for the last event of each log.
  const wait = { timeoutMs: 60_000 }
  await runner.waitFor(Orders, await orders.notificationLog.maxId(), wait)
  await runner.waitFor(Reservations, await runner.get(Reservations).notificationLog.maxId(), wait)
  await runner.waitFor(Orders, await orders.notificationLog.maxId(), wait)
  await runner.waitFor(Payments, await runner.get(Payments).notificationLog.maxId(), wait)
  for (const id of placed) expect((await orders.getOrder(id)).paymentId).toBeDefined()

  expect(failures).toEqual([])
  // The outage fell in the middle of the traffic, and the followers retried through it.
  expect(refused > 0).toBe(ordersDown)
  expect(retrying.size).toBeGreaterThan(0)
  expect(resumed).toEqual(retrying)
  for (const [index, value] of retryErrors.entries()) expect(value).toBeInstanceOf(index % 2 ? Date : OperationalError)
  const shown = seen.filter((status) => status.state === 'retrying')
  expect(shown.length).toBeGreaterThan(0)
  for (const status of shown) {
    expect(status.error).toBeInstanceOf(OperationalError)
    expect(status.since).toBeInstanceOf(Date)
  }
  expect(seen.some((status) => status.state === 'failed')).toBe(false)
  expect(runner.status().map(({ state, error, since }) => ({ state, error, since }))).toEqual(
    runner.status().map(() => ({ state: 'running', error: undefined, since: undefined })),
  )
}

describe('followers through an outage', () => {
  for (const downMs of [4000, 30_000]) {
    it(
      `PostgreSQL stopped for ${downMs / 1000} s: every order is paid, no follower fails`,
      async () => {
        const server = await startEmbeddedServer()
        cleanups.push(() => server.close())
        // A subscription that gives up after a second is made again by its follower, which shows retrying.
        const persistence = postgres({ url: server.url, subscriptionRetryMs: 1000, pollMs: 200 })
        const runner = new EventLoopRunner(ordersSystem, { persistence, maxRetryDelayMs: 1000 })
        await throughOutage(runner, true, async () => {
          await server.stop()
          await delay(downMs)
          await server.start()
        })
      },
      60_000 + downMs * 2,
    )
  }

  it('a projection runner goes on through PostgreSQL stopped for 4 s: every order is in the view, once', async () => {
    const server = await startEmbeddedServer()
    cleanups.push(() => server.close())
    const orders = new Orders({ persistence: postgres({ url: server.url, subscriptionRetryMs: 1000, pollMs: 200 }) })
    await orders.connect()
    cleanups.push(() => orders.close())
    const store = postgresProjectionStore({ url: server.url, name: 'names' })
    cleanups.push(() => store.close())
    const runner = new ProjectionRunner({
      upstream: orders,
      projection: new OrderNames(),
      store,
      maxRetryDelayMs: 1000,
    })
    const failures: Error[] = []
    const retried: Error[] = []
    runner.on('followerError', (error) => failures.push(error))
    runner.on('followerRetrying', (error) => retried.push(error))
    await runner.start()
    cleanups.push(() => runner.stop())
    const placed: string[] = []
    for (let n = 0; n < 50; n++) placed.push(await orders.createOrder(`before ${n}`))
    await server.stop()
    await until(() => runner.status().state === 'retrying', 10_000, 'the runner to retry')
    expect(runner.status().error).toBeInstanceOf(OperationalError)
    await delay(4000)
    await server.start()
    for (let n = 0; n < 50; n++) placed.push(await orders.createOrder(`after ${n}`))
    await runner.waitFor(await orders.notificationLog.maxId(), { timeoutMs: 30_000 })
    const ids = await store.read(async (transaction) =>
      (await transaction.query<{ id: string }>('SELECT id FROM order_names ORDER BY id')).rows.map((row) => row.id),
    )
    expect(ids).toEqual(placed.toSorted())
    expect(failures).toEqual([])
    expect(retried.length).toBeGreaterThan(0)
    expect(runner.status().state).toBe('running')
  }, 60_000)

  it('stops promptly while retrying through an outage, and resumes where it was when started again', async () => {
    const server = await startEmbeddedServer()
    cleanups.push(() => server.close())
    const persistence = postgres({ url: server.url, subscriptionRetryMs: 1000, pollMs: 200 })
    const runner = new EventLoopRunner(ordersSystem, { persistence })
    await runner.start()
    await server.stop()
    await until(() => runner.status().every((status) => status.state === 'retrying'), 10_000, 'every follower to retry')
    const stopping = Date.now()
    await runner.stop()
    // At most the pool's own retries of the query in hand (about 1.5 s), not the outage.
    expect(Date.now() - stopping).toBeLessThan(3000)
    expect(runner.status().map(({ state, error }) => ({ state, error }))).toEqual(
      runner.status().map(() => ({ state: 'stopped', error: undefined })),
    )
    await server.start()
    await using again = new EventLoopRunner(ordersSystem, { persistence })
    await again.start()
    const order = await placeOrder(again, 'socks')
    expect(order.paymentId).toBeDefined()
  }, 60_000)

  it('settles a commit of unknown outcome by the tracking record, and retries the rest, without counting attempts', async () => {
    await using orders = new Orders({ persistence: memory() })
    await orders.connect()
    for (let n = 0; n < 5; n++) await orders.createOrder(`order ${n}`)
    await using tracking = await memory().open('follower')
    const processed: number[] = []
    const retried: Error[] = []
    let resumed = 0
    let unreachable = 0
    let lost = 0
    const stop = new AbortController()
    const following = follow({
      follower: 'follower',
      upstream: orders,
      position: () => tracking.events.maxTrackingId('Orders'),
      process: async (batch) => {
        const last = batch.at(-1)!.id
        // Notification 2 commits, and the connection is lost before the answer; 4 meets the store unreachable.
        if (last === 4 && unreachable++ < 5) throw new OperationalError('PostgreSQL at test is unavailable')
        await tracking.events.insertTracking({ applicationName: 'Orders', notificationId: last })
        processed.push(...batch.map((notification) => notification.id))
        if (last === 2 && lost++ === 0) {
          throw new OperationalError('The connection failed while committing, so the write may or may not be recorded')
        }
        if (last === 5) stop.abort()
      },
      isProcessed: (id) => tracking.events.hasTrackingId('Orders', id),
      onRetrying: (error) => retried.push(error),
      onResumed: () => resumed++,
      attempts: 1,
      retryDelayMs: 1,
      signal: stop.signal,
    })
    await following
    // Each notification once: 2 was found processed, not processed again; 4 outlasted 5 failures with 1 attempt.
    expect(processed).toEqual([1, 2, 3, 4, 5])
    expect(retried.map((error) => error.message)).toEqual(Array(5).fill('PostgreSQL at test is unavailable'))
    expect(resumed).toBe(1)
  })

  // One attempt: the lock, a transient failure, must not count against attempts (it would stop the follower).
  const runners: [name: string, (env: Environment) => Runner][] = [
    ['an EventLoopRunner', (env) => new EventLoopRunner(ordersSystem, { env, attempts: 1, maxRetryDelayMs: 1000 })],
    [
      'a WorkerThreadRunner (status and events across threads)',
      (env) =>
        new WorkerThreadRunner(ordersSystem, {
          module: new URL('../../examples/orders.ts', import.meta.url),
          workerSetup: new URL('../fixtures/register-tsx.mjs', import.meta.url),
          env,
          attempts: 1,
          maxRetryDelayMs: 1000,
        }),
    ],
  ]
  for (const [name, makeRunner] of runners) {
    it(`SQLite locked by another process past the busy timeout, on ${name}: every order is paid, no follower fails`, async () => {
      const directory = await mkdtemp(join(tmpdir(), 'eventsourcing-outage-'))
      cleanups.push(() => rm(directory, { recursive: true, force: true }))
      // A file per application: while the file of Reservations is locked, orders keep arriving for it to process.
      const env = {
        PERSISTENCE: 'sqlite',
        ORDERS_SQLITE_PATH: join(directory, 'orders.db'),
        RESERVATIONS_SQLITE_PATH: join(directory, 'reservations.db'),
        PAYMENTS_SQLITE_PATH: join(directory, 'payments.db'),
      }
      await throughOutage(makeRunner(env), false, async () => {
        // Longer than the busy timeout (5 s) by several seconds.
        const locker = holdLocked(env.RESERVATIONS_SQLITE_PATH, 9000)
        cleanups.push(async () => locker.kill())
        await once(locker.stdout!, 'data')
        await once(locker, 'exit')
      })
    }, 120_000)
  }
})
/** A view of the names of the orders created, a row each. */
class OrderNames extends Projection<PostgresTransaction> {
  override readonly topics = [Order.Created]

  override async createTables(transaction: PostgresTransaction): Promise<void> {
    await transaction.query('CREATE TABLE IF NOT EXISTS order_names (id TEXT PRIMARY KEY, name TEXT NOT NULL)')
  }

  async process(event: DomainEvent, transaction: PostgresTransaction): Promise<void> {
    if (!(event instanceof Order.Created)) return
    await transaction.query('INSERT INTO order_names VALUES ($1, $2)', [event.originatorId, event.name])
  }

  async clear(transaction: PostgresTransaction): Promise<void> {
    await transaction.query('DELETE FROM order_names')
  }
}

/** Starts a process that holds an exclusive lock on the SQLite file for `ms`, says `locked` once it has it, then exits. */
function holdLocked(path: string, ms: number): ChildProcess {
  const script = `
    const Database = require('better-sqlite3')
    const db = new Database(process.argv[1], { timeout: 10000 })
    db.exec('BEGIN EXCLUSIVE')
    process.stdout.write('locked\\n')
    setTimeout(() => { db.exec('COMMIT'); db.close() }, Number(process.argv[2]))
  `
  return spawn(process.execPath, ['-e', script, path, String(ms)], {
    cwd: process.cwd(),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
}
