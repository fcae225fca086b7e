// The orders system: an order is created in Orders; Reservations reserves it;
// Orders records the reservation; Payments takes the payment of a reserved
// order; Orders records the payment. Each arrow is a follower processing its
// upstream log exactly once, on any runner. `placeOrder` waits for the chain
// hop by hop:
//
//   await using runner = new EventLoopRunner(ordersSystem)
//   await runner.start()
//   const order = await placeOrder(runner, 'socks')   // reserved and paid
import {
  Aggregate,
  type DomainEvent,
  ProcessApplication,
  type ProcessingEvent,
  type Runner,
  System,
  uuid5,
} from '../src/index.js'

const NAMESPACE = '1f6a5e0e-7b1c-4a47-9d33-0d7c3b0f4a10'

/** An order: created, then reserved, then paid. */
export class Order extends Aggregate {
  static readonly topic = 'orders:Order'

  name = ''
  reservationId: string | undefined
  paymentId: string | undefined

  static readonly Created = Order.created('orders:Order.Created', (order, e: { name: string }) => {
    order.name = e.name
  })

  static readonly Reserved = Order.event('orders:Order.Reserved', (order, e: { reservationId: string }) => {
    order.reservationId = e.reservationId
  })

  static readonly Paid = Order.event('orders:Order.Paid', (order, e: { paymentId: string }) => {
    order.paymentId = e.paymentId
  })

  /** Records the reservation of the order's goods. */
  reserve(reservationId: string): void {
    this.trigger(Order.Reserved, { reservationId })
  }

  /** Records the order's payment. */
  pay(paymentId: string): void {
    this.trigger(Order.Paid, { paymentId })
  }
}

/** A reservation of the goods of one order; its id is derived from the order's, so there is one per order. */
export class Reservation extends Aggregate {
  static readonly topic = 'orders:Reservation'

  orderId = ''

  static readonly Created = Reservation.created('orders:Reservation.Created', (reservation, e: { orderId: string }) => {
    reservation.orderId = e.orderId
  })

  /** Reserves the goods of an order. */
  static reserve(orderId: string): Reservation {
    return Reservation.create(Reservation.Created, { orderId }, { id: uuid5(NAMESPACE, `reservation:${orderId}`) })
  }
}

/** The payment of one order; its id is derived from the order's. */
export class Payment extends Aggregate {
  static readonly topic = 'orders:Payment'

  orderId = ''

  static readonly Created = Payment.created('orders:Payment.Created', (payment, e: { orderId: string }) => {
    payment.orderId = e.orderId
  })

  /** Takes the payment of an order. */
  static pay(orderId: string): Payment {
    return Payment.create(Payment.Created, { orderId }, { id: uuid5(NAMESPACE, `payment:${orderId}`) })
  }
}

/** Takes orders, and records their reservations and payments. */
export class Orders extends ProcessApplication {
  static override readonly applicationName = 'Orders'
  static override readonly followTopics = [Reservation.Created, Payment.Created]

  /** Creates an order and returns its id. */
  async createOrder(name: string): Promise<string> {
    const order = Order.create(Order.Created, { name })
    await this.save(order)
    return order.id
  }

  /** Returns an order's state as plain data. */
  async getOrder(id: string): Promise<{ name: string; reservationId?: string; paymentId?: string }> {
    const { name, reservationId, paymentId } = await this.repository.get(Order, id)
    return { name, reservationId, paymentId }
  }

  /** A batch of reservations and payments reads all their orders at once. */
  protected override idsToPrefetch(event: DomainEvent): readonly string[] {
    return event instanceof Reservation.Created || event instanceof Payment.Created ? [event.orderId] : []
  }

  protected async policy(event: DomainEvent, processing: ProcessingEvent): Promise<void> {
    if (event instanceof Reservation.Created) {
      const order = await this.repository.get(Order, event.orderId)
      order.reserve(event.originatorId)
      processing.save(order)
    } else if (event instanceof Payment.Created) {
      const order = await this.repository.get(Order, event.orderId)
      order.pay(event.originatorId)
      processing.save(order)
    }
  }
}

/** Reserves the goods of each new order. */
export class Reservations extends ProcessApplication {
  static override readonly applicationName = 'Reservations'
  static override readonly followTopics = [Order.Created]

  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    if (event instanceof Order.Created) processing.save(Reservation.reserve(event.originatorId))
  }
}

/** Takes the payment of each reserved order. */
export class Payments extends ProcessApplication {
  static override readonly applicationName = 'Payments'
  static override readonly followTopics = [Order.Reserved]

  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    if (event instanceof Order.Reserved) processing.save(Payment.pay(event.originatorId))
  }
}

/** The orders system: Orders ⇄ Reservations, Orders ⇄ Payments. */
export const ordersSystem = new System([
  [Orders, Reservations, Orders],
  [Orders, Payments, Orders],
])

/**
 * Places an order and returns it once the system has reserved and paid it.
 * The runner must run every follower. It waits hop by hop, each hop for the
 * followers of one log: Reservations for the order's creation (its id from
 * the save), then Orders for the log of Reservations, which now has the
 * reservation, then Payments for the log of Orders, which now has the
 * reservation recorded, then Orders for the log of Payments.
 */
export async function placeOrder(
  runner: Runner,
  name: string,
): Promise<{ id: string; name: string; reservationId?: string; paymentId?: string }> {
  const orders = runner.get(Orders)
  const order = Order.create(Order.Created, { name })
  const recordings = await orders.save(order)
  await runner.waitFor(Orders, recordings.at(-1)!.notification.id)
  await runner.waitFor(Reservations, await runner.get(Reservations).notificationLog.maxId())
  await runner.waitFor(Orders, await orders.notificationLog.maxId())
  await runner.waitFor(Payments, await runner.get(Payments).notificationLog.maxId())
  return { id: order.id, ...(await orders.getOrder(order.id)) }
}
