// The orders system spread over three child processes that share PostgreSQL,
// each running one follower, compared with the system in one process; and
// what such a child does when its follower fails.

import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { Order, Orders, ordersSystem, Payments, Reservation, Reservations } from '../../examples/orders.js'
import { EventLoopRunner, getTopic, memory, uuid4, WaitTimeoutError } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { freshDatabase } from '../postgres/fixtures.js'
import { killChildren, SystemChild } from './children.js'
import { auditOrders, expectEachOrderOnce, type OrdersApps, orderStates, untilAllPaid } from './orders-audit.js'

const ORDERS = 300
const NAMES = Array.from({ length: ORDERS }, (_, i) => `order ${i}`)

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  await killChildren()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Makes an order of each name, a few at a time, and returns their ids in the order of the names. */
async function createOrders(orders: Orders, names: readonly string[]): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < names.length; i += 5) {
    ids.push(...(await Promise.all(names.slice(i, i + 5).map((name) => orders.createOrder(name)))))
  }
  return ids
}

describe('the orders system over three processes sharing PostgreSQL', () => {
  it('reserves and pays every order once, ending as the system does in one process', { timeout: 90_000 }, async () => {
    const database = await freshDatabase()
    cleanups.push(database.drop)
    const env = { PERSISTENCE: 'postgres', POSTGRES_URL: database.url, POSTGRES_POOL_SIZE: '2' }
    const runs = ['Reservations', 'Payments', 'Orders']
    const children = runs.map((run) => new SystemChild({ ...env, RUN: run }))
    await Promise.all(children.map((child, i) => child.until(() => child.started, 30_000, `${runs[i]} to start`)))
    const apps: OrdersApps = {
      orders: new Orders({ env }),
      reservations: new Reservations({ env }),
      payments: new Payments({ env }),
    }
    cleanups.push(() => Promise.all(Object.values(apps).map((app) => app.close())))

    const ids = await createOrders(apps.orders, NAMES)
    await untilAllPaid(apps, ORDERS, children, 'every order to be paid')
    const audit = await auditOrders(env)
    expectEachOrderOnce(audit, ids)
    // Each process ran its one follower, which did all of that follower's work.
    for (const [i, child] of children.entries()) {
      const upstreams = ordersSystem.leadersOf(runs[i]!)
      const expected = {
        [runs[i]!]: Object.fromEntries(upstreams.map((up) => [up, audit.tracking[`${runs[i]} of ${up}`]!.position])),
      }
      await child.until(() => isDeepStrictEqual(child.positions, expected), 5000, `${runs[i]} to report its positions`)
    }
    const exits = await Promise.all(children.map((child) => child.stop()))
    expect(exits, children.map((child) => child.stderr).join('\n')).toEqual(runs.map(() => ({ code: 0, signal: null })))

    const spread = await orderStates(apps, ids)
    const once = (name: string) => ({
      name,
      version: 3,
      reservation: { of: name, version: 1 },
      payment: { of: name, version: 1 },
    })
    expect(spread).toEqual([...NAMES].sort((a, b) => a.localeCompare(b)).map(once))

    await using runner = new EventLoopRunner(ordersSystem, { persistence: memory() })
    await runner.start()
    const local: OrdersApps = {
      orders: runner.get(Orders),
      reservations: runner.get(Reservations),
      payments: runner.get(Payments),
    }
    const localIds = await createOrders(local.orders, NAMES)
    await untilAllPaid(local, ORDERS, [], 'every order to be paid in one process')
    expect(spread).toEqual(await orderStates(local, localIds))
  })
})

describe.each([
  [
    'PostgreSQL',
    async (): Promise<Record<string, string>> => {
      const database = await freshDatabase()
      cleanups.push(database.drop)
      return { PERSISTENCE: 'postgres', POSTGRES_URL: database.url, POSTGRES_POOL_SIZE: '2' }
    },
  ],
  [
    'an SQLite file',
    async (): Promise<Record<string, string>> => ({
      PERSISTENCE: 'sqlite',
      SQLITE_PATH: join(tempDir('es-wait-'), 'orders.db'),
    }),
  ],
])('waiting in one process for a follower run by another, sharing %s', (_, newEnv) => {
  it('resolves once the follower processed a notification, or passed one it does not follow', async () => {
    const env = await newEnv()
    const child = new SystemChild({ ...env, RUN: 'Reservations' })
    await child.until(() => child.started, 30_000, 'Reservations to start')
    await using orders = new Orders({ env })
    await using reservations = new Reservations({ env })

    const order = Order.create(Order.Created, { name: 'socks' })
    const created = (await orders.save(order)).at(-1)!.notification.id
    await reservations.waitFor(orders, created)
    const reservation = await reservations.repository.get(Reservation, Reservation.reserve(order.id).id)
    expect(reservation.orderId).toBe(order.id)
    expect(await reservations.position('Orders')).toBe(created)

    // No Orders runs here to record the reservation: recorded by hand, it is of a topic Reservations does not follow.
    order.reserve(reservation.id)
    const reserved = (await orders.save(order)).at(-1)!.notification.id
    await reservations.waitFor(orders, reserved)
    expect(await reservations.position('Orders')).toBe(created)

    // Stopped, the follower processes nothing more: a wait for a new order runs out of time.
    expect(await child.stop()).toEqual({ code: 0, signal: null })
    const later = (await orders.save(Order.create(Order.Created, { name: 'hat' }))).at(-1)!.notification.id
    await expect(reservations.waitFor(orders, later, { timeoutMs: 300 })).rejects.toThrow(WaitTimeoutError)
  })
})

describe('a child process running the orders system', () => {
  it('exits 1 and prints the error when a follower fails', async () => {
    const path = join(tempDir('es-child-'), 'orders.db')
    const child = new SystemChild({ PERSISTENCE: 'sqlite', SQLITE_PATH: path })
    await child.until(() => child.started, 30_000, 'the child to start')
    await using recorders = await sqlite({ path }).open('Orders')
    const state = new TextEncoder().encode('not JSON')
    await recorders.events.insertEvents([
      { originatorId: uuid4(), originatorVersion: 1, topic: getTopic(Order.Created), state },
    ])
    expect(await child.exited).toEqual({ code: 1, signal: null })
    expect(child.stderr).toMatch(/^Reservations failed: ProcessingError/)
    expect(child.stderr).toContain(getTopic(Order.Created))
  })
})
