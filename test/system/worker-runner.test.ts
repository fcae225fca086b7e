import { once } from 'node:events'
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import {
  Order,
  Orders,
  ordersSystem,
  Payment,
  Payments,
  placeOrder,
  Reservation,
  Reservations,
} from '../../examples/orders.js'
import {
  type Environment,
  EventLoopRunner,
  memory,
  ProcessingError,
  ProgrammingError,
  type Runner,
  WorkerThreadError,
  WorkerThreadRunner,
  type WorkerThreadRunnerOptions,
} from '../../src/index.js'
import { tempDir } from '../fixtures/temp.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'
import { auditedSystem, BatchSizes, batchSizesSystem, Seen } from './worker-systems.js'

const ordersModule = new URL('../../examples/orders.ts', import.meta.url)
const auditedModule = new URL('./worker-systems.ts', import.meta.url)
// The workers import the TypeScript sources, through tsx.
const workerSetup = new URL('../fixtures/register-tsx.mjs', import.meta.url)

const drops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const drop of drops.splice(0)) await drop()
})

/** The storages the workers share: a fresh one per call. */
const storages: [name: string, newEnv: () => Environment][] = [
  ['an SQLite file', () => ({ PERSISTENCE: 'sqlite', SQLITE_PATH: join(tempDir('es-workers-'), 'orders.db') })],
  [
    'PostgreSQL',
    () => {
      const { schema, drop } = freshSchema()
      drops.push(drop)
      return { PERSISTENCE: 'postgres', POSTGRES_URL: postgresUrl(), POSTGRES_SCHEMA: schema, POSTGRES_POOL_SIZE: '3' }
    },
  ],
]

/** Resolves once `check` returns true, polling; fails after `timeoutMs`. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not done within ${timeoutMs} ms`)
    await setTimeout(50)
  }
}

/** Creates orders named `prefix 0`, `prefix 1`, … and returns their ids. */
function createOrders(runner: Runner, prefix: string, count: number): Promise<string[]> {
  const orders = runner.get(Orders)
  return Promise.all(Array.from({ length: count }, (_, i) => orders.createOrder(`${prefix} ${i}`)))
}

/** Resolves once every one of the orders is paid. */
async function allPaid(runner: Runner, ids: readonly string[]): Promise<void> {
  const orders = runner.get(Orders)
  await eventually(async () => (await Promise.all(ids.map((id) => orders.getOrder(id)))).every((o) => o.paymentId))
}

/**
 * Returns the orders' final state, normalised to be the same on any run: per
 * order name, whether it is reserved and paid by the reservation and payment
 * whose ids derive from the order's id.
 */
async function finalState(runner: Runner, ids: readonly string[]): Promise<Record<string, unknown>> {
  const orders = runner.get(Orders)
  const states = await Promise.all(
    ids.map(async (id) => {
      const order = await orders.getOrder(id)
      const reserved = order.reservationId === Reservation.reserve(id).id
      const paid = order.paymentId === Payment.pay(id).id
      return [order.name, { reserved, paid }] as const
    }),
  )
  return Object.fromEntries(states)
}

/** Counts the reservations, payments, and the Reserved and Paid events of orders, in the logs. */
async function counts(runner: Runner): Promise<Record<string, number>> {
  const reservations = await runner.get(Reservations).notificationLog.select({ limit: 10_000 })
  const payments = await runner.get(Payments).notificationLog.select({ limit: 10_000 })
  const log = await runner.get(Orders).notificationLog.selectRecordings({ limit: 10_000 })
  return {
    reservations: reservations.length,
    payments: payments.length,
    reserved: log.filter((r) => r.domainEvent instanceof Order.Reserved).length,
    paid: log.filter((r) => r.domainEvent instanceof Order.Paid).length,
  }
}

function states(runner: Runner): [string, string][] {
  return runner.status().map((status) => [status.name, status.state])
}

describe.each(storages)('the orders system on worker threads over %s', (_, newEnv) => {
  it('reserves and pays every order once, ending as the event loop runner does', async () => {
    const env = newEnv()
    await using runner = new WorkerThreadRunner(ordersSystem, { module: ordersModule, workerSetup, env })
    const errors: Error[] = []
    runner.on('followerError', (error) => errors.push(error))
    await runner.start()
    expect(states(runner)).toEqual([
      ['Reservations', 'running'],
      ['Orders', 'running'],
      ['Payments', 'running'],
    ])
    const ids = await createOrders(runner, 'order', 50)
    await allPaid(runner, ids)
    expect(await counts(runner)).toEqual({ reservations: 50, payments: 50, reserved: 50, paid: 50 })
    // Waiting for the followers in the workers, hop by hop, through the tracking they record.
    const placed = await placeOrder(runner, 'placed')
    expect(placed).toMatchObject({
      reservationId: Reservation.reserve(placed.id).id,
      paymentId: Payment.pay(placed.id).id,
    })

    await using inProcess = new EventLoopRunner(ordersSystem, { persistence: memory() })
    await inProcess.start()
    const inProcessIds = await createOrders(inProcess, 'order', 50)
    await allPaid(inProcess, inProcessIds)
    const expected = await finalState(inProcess, inProcessIds)
    expect(Object.values(expected).every((order) => JSON.stringify(order) === '{"reserved":true,"paid":true}')).toBe(
      true,
    )
    expect(await finalState(runner, ids)).toEqual(expected)

    // The workers report their progress: Orders has processed the last reservation and payment.
    const reservationsId = await runner.get(Reservations).notificationLog.maxId()
    const paymentsId = await runner.get(Payments).notificationLog.maxId()
    await eventually(() => {
      const positions = runner.status().find((status) => status.name === 'Orders')?.positions
      return positions?.Reservations === reservationsId && positions.Payments === paymentsId
    })
    expect(errors).toEqual([])
  })

  it('stops gracefully, and a new runner resumes from tracking without processing anything twice', async () => {
    const options: WorkerThreadRunnerOptions = { module: ordersModule, workerSetup, env: newEnv() }
    const first = new WorkerThreadRunner(ordersSystem, options)
    await first.start()
    const before = await createOrders(first, 'before', 25)
    // Stopped while the orders are being processed.
    await eventually(async () => ((await counts(first)).reservations ?? 0) > 0)
    await first.stop()
    expect(states(first)).toEqual([
      ['Reservations', 'stopped'],
      ['Orders', 'stopped'],
      ['Payments', 'stopped'],
    ])
    await first.stop()
    await expect(first.start()).rejects.toThrow(ProgrammingError)

    await using second = new WorkerThreadRunner(ordersSystem, options)
    await second.start()
    const after = await createOrders(second, 'after', 25)
    await allPaid(second, [...before, ...after])
    expect(await counts(second)).toEqual({ reservations: 50, payments: 50, reserved: 50, paid: 50 })
    expect(states(second).every(([, state]) => state === 'running')).toBe(true)
  })

  it('reports a follower whose policy throws, while the other workers go on', async () => {
    await using runner = new WorkerThreadRunner(auditedSystem, {
      module: auditedModule,
      exportName: 'auditedSystem',
      workerSetup,
      env: newEnv(),
      attempts: 2,
      retryDelayMs: 10,
    })
    await runner.start()
    const reported = once(runner, 'followerError')
    const [badId] = await createOrders(runner, 'bad', 1)
    const waiting = runner.waitFor(Orders, await runner.get(Orders).notificationLog.maxId())
    const [error, follower] = (await reported) as [Error, string]
    // A wait for what the follower did not process rejects with its error, whether it began before the failure or after.
    await expect(waiting).rejects.toBe(error)
    await expect(runner.waitFor(Orders, 1)).rejects.toBe(error)
    expect(follower).toBe('Audit')
    expect(error).toBeInstanceOf(ProcessingError)
    const processingError = error as ProcessingError
    expect(processingError.follower).toBe('Audit')
    expect(processingError.upstream).toBe('Orders')
    expect(processingError.attempts).toBe(2)
    expect(processingError.notification.topic).toBe('orders:Order.Created')
    const created = await runner.get(Orders).notificationLog.selectRecordings({ limit: 1 })
    expect(created[0]!.domainEvent.originatorId).toBe(badId)
    expect(processingError.notification.id).toBe(created[0]!.notification.id)
    expect(processingError.message).toContain('Cannot audit bad 0')
    expect((processingError.cause as Error).message).toBe('Cannot audit bad 0')
    // The stacks are the worker's.
    expect((processingError.cause as Error).stack).toContain('worker-systems.ts')

    const audit = runner.status().find((status) => status.name === 'Audit')
    expect(audit?.state).toBe('failed')
    expect(audit?.error).toBe(error)
    const ids = await createOrders(runner, 'good', 5)
    await allPaid(runner, [badId!, ...ids])
    expect(states(runner)).toEqual([
      ['Reservations', 'running'],
      ['Orders', 'running'],
      ['Payments', 'running'],
      ['Audit', 'failed'],
    ])
    await runner.stop()
    expect(runner.status().find((status) => status.name === 'Audit')?.state).toBe('failed')
  })
})

describe('batches on worker threads', () => {
  it.each([1, 8])('are at most batchSize %i, and that large when catching up', async (batchSize) => {
    const env: Environment = { PERSISTENCE: 'sqlite', SQLITE_PATH: join(tempDir('es-workers-'), 'orders.db') }
    const ids: string[] = []
    {
      await using orders = new Orders({ env })
      for (let i = 0; i < 40; i++) ids.push(await orders.createOrder(`order ${i}`))
    }
    await using runner = new WorkerThreadRunner(batchSizesSystem, {
      module: auditedModule,
      exportName: 'batchSizesSystem',
      workerSetup,
      env,
      batchSize,
    })
    await runner.start()
    await runner.waitFor(Orders, await runner.get(Orders).notificationLog.maxId(), { timeoutMs: 30_000 })
    const seen = runner.get(BatchSizes)
    const sizes = await Promise.all(ids.map(async (id) => (await seen.repository.get(Seen, Seen.idOf(id))).batch))
    // The backlog is read in pages far larger than the batch size, so the first batches are full.
    expect(Math.max(...sizes)).toBe(batchSize)
  })
})

describe('the worker-thread runner', () => {
  const sqliteEnv = storages[0]![1]

  it.each([
    ['exits', 'exit', { exitCode: 7 }, 'The worker thread of Audit exited unexpectedly with code 7'],
    ['crashes', 'crash', { exitCode: undefined }, 'The worker thread of Audit crashed: Crashed on crash 0'],
  ])('reports a worker that %s while running, while the other workers go on', async (_, name, fields, message) => {
    await using runner = new WorkerThreadRunner(auditedSystem, {
      module: auditedModule,
      exportName: 'auditedSystem',
      workerSetup,
      env: sqliteEnv(),
    })
    await runner.start()
    const reported = once(runner, 'followerError')
    const [crashId] = await createOrders(runner, name, 1)
    const [error, follower] = (await reported) as [Error, string]
    expect(follower).toBe('Audit')
    expect(error).toBeInstanceOf(WorkerThreadError)
    expect(error).toMatchObject({ follower: 'Audit', ...fields })
    expect(error.message).toBe(message)
    expect(runner.status().find((status) => status.name === 'Audit')).toMatchObject({ state: 'failed', error })
    // Waiting for an order created since rejects with the error: nothing runs Audit now.
    await createOrders(runner, 'after', 1)
    await expect(runner.waitFor(Orders, await runner.get(Orders).notificationLog.maxId())).rejects.toBe(error)
    // The others go on, and can be waited for.
    await runner.waitFor(Reservations, await runner.get(Reservations).notificationLog.maxId())
    await allPaid(runner, [crashId!, ...(await createOrders(runner, 'good', 5))])
  })

  it('rejects storage in memory, which threads cannot share', () => {
    const module = ordersModule
    const sqliteMemory = { PERSISTENCE: 'sqlite', SQLITE_PATH: ':memory:' }
    const prefixed = { ...sqliteEnv(), RESERVATIONS_PERSISTENCE: 'memory' }
    for (const env of [{}, { PERSISTENCE: 'memory' }, sqliteMemory, prefixed]) {
      expect(() => new WorkerThreadRunner(ordersSystem, { module, env })).toThrow(ProgrammingError)
    }
    expect(() => new WorkerThreadRunner(ordersSystem, { module, env: {} })).toThrow(
      /Orders would store its events in memory.*PERSISTENCE=sqlite with SQLITE_PATH.*PERSISTENCE=postgres/,
    )
    expect(() => new WorkerThreadRunner(ordersSystem, { module, env: prefixed })).toThrow(/^Reservations would/)
    const withBackend = { module, env: sqliteEnv(), persistence: memory() } as WorkerThreadRunnerOptions
    expect(() => new WorkerThreadRunner(ordersSystem, withBackend)).toThrow(/cannot be passed to worker threads/)
    expect(() => new WorkerThreadRunner(ordersSystem, { module: './orders.js', env: sqliteEnv() })).toThrow(
      /module must be a URL or an absolute file path/,
    )
    expect(() => new WorkerThreadRunner(ordersSystem, { module, env: sqliteEnv(), run: ['Nope'] })).toThrow(
      ProgrammingError,
    )
  })

  // The runner's own condition: where Node strips types (22.18+, 23.6+), a TypeScript setup runs and is accepted.
  const stripsTypes = Boolean((process.features as { typescript?: unknown }).typescript)

  it.skipIf(stripsTypes)(
    'rejects a TypeScript worker setup where Node cannot import it without the loader it would register',
    () => {
      const env = sqliteEnv()
      const module = ordersModule
      const setups = [
        new URL('./setup.ts', import.meta.url),
        join(tempDir('es-setup-'), 'setup.mts'),
        'file:///setup.cts',
      ]
      for (const workerSetup of setups) {
        expect(() => new WorkerThreadRunner(ordersSystem, { module, env, workerSetup })).toThrow(
          /^workerSetup must be JavaScript, got file:.*setup\.[mc]?ts: Node v\d+\.\d+\.\d+ cannot import TypeScript without a loader.*Give a \.js or \.mjs module that registers the loader, e\.g\. with tsx: import \{ register \} from 'tsx\/esm\/api'; register\(\)$/,
        )
      }
      // A JavaScript setup that registers tsx runs TypeScript modules in the workers (as every test here does).
      expect(() => new WorkerThreadRunner(ordersSystem, { module, env, workerSetup })).not.toThrow()
    },
  )

  it('does not start when the module does not export the system, or several like it', async () => {
    const env = sqliteEnv()
    const mismatched = new WorkerThreadRunner(auditedSystem, { module: ordersModule, workerSetup, env, run: ['Audit'] })
    await expect(mismatched.start()).rejects.toThrow(ProgrammingError)
    await expect(
      new WorkerThreadRunner(auditedSystem, { module: ordersModule, workerSetup, env, run: ['Audit'] }).start(),
    ).rejects.toThrow(/exports no System with the applications of the runner's.*ordersSystem: Orders/)
    await expect(
      new WorkerThreadRunner(auditedSystem, { module: auditedModule, workerSetup, env, run: ['Audit'] }).start(),
    ).rejects.toThrow(/several systems like the runner's \(auditedSystem, auditedSystemAgain\).*exportName/)
    // The applications of the calling thread were closed when starting failed.
    expect(() => mismatched.get(Orders).notificationLog).not.toThrow()
    await expect(mismatched.get(Orders).createOrder('late')).rejects.toThrow(/is closed/)
  })

  it('runs only the followers it is told to', async () => {
    const env = sqliteEnv()
    await using reservations = new WorkerThreadRunner(ordersSystem, {
      module: ordersModule,
      workerSetup,
      env,
      run: ['Reservations'],
    })
    const starting = reservations.start()
    // Its applications are made at once, its worker later: a wait needs both.
    await expect(reservations.waitFor(Orders, 1)).rejects.toThrow(
      'The runner has not finished starting: await start() before waitFor',
    )
    await starting
    expect(states(reservations)).toEqual([['Reservations', 'running']])
    const ids = await createOrders(reservations, 'order', 5)
    await eventually(async () => (await counts(reservations)).reservations === 5)
    await setTimeout(200)
    expect(await counts(reservations)).toEqual({ reservations: 5, payments: 0, reserved: 0, paid: 0 })
    await reservations.stop()

    await using rest = new WorkerThreadRunner(ordersSystem, {
      module: ordersModule,
      workerSetup,
      env,
      run: ['Orders', 'Payments'],
    })
    await rest.start()
    await allPaid(rest, ids)
    expect(await counts(rest)).toEqual({ reservations: 5, payments: 5, reserved: 5, paid: 5 })
  })
})
