import { setTimeout } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { Order, Orders, ordersSystem, Payments, Reservations } from '../../examples/orders.js'
import { EventLoopRunner } from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { backends, type Store } from '../fixtures/backends.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

/** The backends of the other application tests, and PostgreSQL with a fresh schema per store. */
function systemBackends(): [name: string, newStore: () => Store][] {
  const newPostgresStore = (): Store => {
    const { schema } = freshSchema()
    return () => postgres({ url: postgresUrl(), schema })
  }
  return [...backends(), ['postgres', newPostgresStore]]
}

/** Resolves once `check` returns true, polling; fails after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not done within ${timeoutMs} ms`)
    await setTimeout(20)
  }
}

describe.each(systemBackends())('the orders system on %s, in one process', (_, newStore) => {
  it('reserves and pays every order once', async () => {
    await using runner = new EventLoopRunner(ordersSystem, { persistence: newStore()() })
    await runner.start()
    const orders = runner.get(Orders)
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => orders.createOrder(`order ${i}`)))
    await eventually(async () => {
      const states = await Promise.all(ids.map((id) => orders.getOrder(id)))
      return states.every((order) => order.paymentId !== undefined)
    })
    const reservations = await runner.get(Reservations).notificationLog.select({ limit: 1000 })
    const payments = await runner.get(Payments).notificationLog.select({ limit: 1000 })
    expect(reservations).toHaveLength(20)
    expect(payments).toHaveLength(20)
    const log = await orders.notificationLog.selectRecordings({ limit: 1000 })
    expect(log.filter((r) => r.domainEvent instanceof Order.Reserved)).toHaveLength(20)
    expect(log.filter((r) => r.domainEvent instanceof Order.Paid)).toHaveLength(20)
    expect(runner.status().map((s) => [s.name, s.state])).toEqual([
      ['Reservations', 'running'],
      ['Orders', 'running'],
      ['Payments', 'running'],
    ])
  })
})
