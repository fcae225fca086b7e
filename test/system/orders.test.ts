import { describe, expect, it } from 'vitest'
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
import { EventLoopRunner } from '../../src/index.js'
import { systemBackends } from './system-backends.js'

describe.each(systemBackends())('the orders system on %s, in one process', (_, newStore) => {
  it('reserves and pays every order once', async () => {
    await using runner = new EventLoopRunner(ordersSystem, { persistence: newStore()() })
    await runner.start()
    const orders = runner.get(Orders)
    // Each placement returns once the system has reserved and paid its order.
    const placed = await Promise.all(Array.from({ length: 20 }, (_, i) => placeOrder(runner, `order ${i}`)))
    for (const [i, order] of placed.entries()) {
      const reservationId = Reservation.reserve(order.id).id
      expect(order).toEqual({ id: order.id, name: `order ${i}`, reservationId, paymentId: Payment.pay(order.id).id })
    }
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
