// Counts what the orders system did, from its logs and tracking records, for
// the crash and multi-process tests: nothing is assumed from what a runner said.

import { setTimeout as delay } from 'node:timers/promises'
import { expect } from 'vitest'
import { Order, Orders, Payment, Payments, Reservation, Reservations } from '../../examples/orders.js'
import { type Environment, getTopic, type Notification, type ProcessApplication } from '../../src/index.js'
import type { SystemChild } from './children.js'

const LIMIT = 1_000_000

/** Followers of the orders system, each with an application it follows. */
export type Followers = readonly [follower: ProcessApplication, upstream: Orders | Reservations | Payments][]

/** Instances of the applications of the orders system. */
export interface OrdersApps {
  readonly orders: Orders
  readonly reservations: Reservations
  readonly payments: Payments
}

/** Returns the followers of the orders system paired with their upstream applications. */
export function followersOf(apps: OrdersApps): Followers {
  const { orders, reservations, payments } = apps
  return [
    [reservations, orders],
    [payments, orders],
    [orders, reservations],
    [orders, payments],
  ]
}

/** Returns the number of followed upstream events that the followers have not processed yet, up to `limit` each. */
export async function backlog(followers: Followers, limit = LIMIT): Promise<number> {
  let total = 0
  for (const [follower, upstream] of followers) {
    const rest = await upstream.notificationLog.select({
      start: await follower.position(upstream.name),
      inclusiveOfStart: false,
      topics: follower.followedTopics,
      limit,
    })
    total += rest.length
  }
  return total
}

/**
 * Resolves once `count` orders are paid and the followers have nothing left to
 * process, checking every 100 ms.
 *
 * @throws when a child exits meanwhile (with what it wrote to stderr), or `timeoutMs` passes first.
 */
export async function untilAllPaid(
  apps: OrdersApps,
  count: number,
  children: readonly SystemChild[],
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const paid = [getTopic(Order.Paid)]
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const exited = children.find((child) => child.exit !== undefined)
    if (exited) throw new Error(`A child exited (${JSON.stringify(exited.exit)}) before ${what}\n${exited.stderr}`)
    const done = await apps.orders.notificationLog.select({ topics: paid, limit: 2 * count })
    // Counted paid first: once every order is, nothing more can be caused, so no backlog means done.
    if (done.length >= count && (await backlog(followersOf(apps))) === 0) return
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await delay(100)
  }
}

/** What the logs of the orders system hold, counted per order. */
export interface OrdersAudit {
  /** The ids of the orders in the Orders log, in log order. */
  readonly orders: string[]
  /** Per order id, the ids of the reservations made for it in the Reservations log. */
  readonly reservations: Map<string, string[]>
  /** Per order id, the ids of the payments taken for it in the Payments log. */
  readonly payments: Map<string, string[]>
  /** Per order id, the reservation ids of its Order.Reserved events in the Orders log. */
  readonly reserved: Map<string, string[]>
  /** Per order id, the payment ids of its Order.Paid events in the Orders log. */
  readonly paid: Map<string, string[]>
  /** Per follower and upstream, the last id tracked and the last id of a followed topic in the upstream log. */
  readonly tracking: Record<string, { readonly position: number; readonly head: number }>
}

function add(map: Map<string, string[]>, key: string, value: string): void {
  map.set(key, [...(map.get(key) ?? []), value])
}

/** Returns the id of the last notification with one of the topics, 0 when none. */
function head(log: readonly Notification[], topics: readonly string[] | undefined): number {
  return log.filter((n) => topics === undefined || topics.includes(n.topic)).at(-1)?.id ?? 0
}

/** Reads the logs and tracking records of the orders system stored as `env` says. */
export async function auditOrders(env: Environment): Promise<OrdersAudit> {
  await using orders = new Orders({ env })
  await using reservations = new Reservations({ env })
  await using payments = new Payments({ env })
  const logs = {
    Orders: await orders.notificationLog.selectRecordings({ limit: LIMIT }),
    Reservations: await reservations.notificationLog.selectRecordings({ limit: LIMIT }),
    Payments: await payments.notificationLog.selectRecordings({ limit: LIMIT }),
  }
  const audit: OrdersAudit = {
    orders: [],
    reservations: new Map(),
    payments: new Map(),
    reserved: new Map(),
    paid: new Map(),
    tracking: {},
  }
  for (const { domainEvent: event } of logs.Orders) {
    if (event instanceof Order.Created) audit.orders.push(event.originatorId)
    else if (event instanceof Order.Reserved) add(audit.reserved, event.originatorId, event.reservationId)
    else if (event instanceof Order.Paid) add(audit.paid, event.originatorId, event.paymentId)
  }
  for (const { domainEvent: event } of logs.Reservations) {
    if (event instanceof Reservation.Created) add(audit.reservations, event.orderId, event.originatorId)
  }
  for (const { domainEvent: event } of logs.Payments) {
    if (event instanceof Payment.Created) add(audit.payments, event.orderId, event.originatorId)
  }
  const followers: [ProcessApplication, keyof typeof logs][] = [
    [reservations, 'Orders'],
    [payments, 'Orders'],
    [orders, 'Reservations'],
    [orders, 'Payments'],
  ]
  for (const [follower, upstream] of followers) {
    const log = logs[upstream].map((recording) => recording.notification)
    audit.tracking[`${follower.name} of ${upstream}`] = {
      position: await follower.position(upstream),
      head: head(log, follower.followedTopics),
    }
  }
  return audit
}

/** Returns the entries whose list does not hold exactly one item. */
function notOnce(map: Map<string, string[]>, ids: readonly string[]): [string, string[]][] {
  return ids.map((id): [string, string[]] => [id, map.get(id) ?? []]).filter(([, values]) => values.length !== 1)
}

/**
 * Checks that each of the `ids` was created, reserved and paid exactly once,
 * with nothing for other orders, and that every follower tracked the last
 * upstream event it follows.
 */
export function expectEachOrderOnce(audit: OrdersAudit, ids: readonly string[]): void {
  expect(new Set(ids).size, 'the orders made are distinct').toBe(ids.length)
  expect([...audit.orders].sort(), 'Order.Created in the Orders log').toEqual([...ids].sort())
  expect(notOnce(audit.reservations, ids), 'orders without exactly one Reservation.Created').toEqual([])
  expect(notOnce(audit.payments, ids), 'orders without exactly one Payment.Created').toEqual([])
  expect(notOnce(audit.reserved, ids), 'orders without exactly one Order.Reserved').toEqual([])
  expect(notOnce(audit.paid, ids), 'orders without exactly one Order.Paid').toEqual([])
  for (const [name, map] of Object.entries({ reservations: audit.reservations, payments: audit.payments })) {
    expect(map.size, `orders with ${name}`).toBe(ids.length)
  }
  for (const id of ids) {
    expect(audit.reserved.get(id), `the reservation of order ${id}`).toEqual(audit.reservations.get(id))
    expect(audit.paid.get(id), `the payment of order ${id}`).toEqual(audit.payments.get(id))
  }
  for (const [name, { position, head }] of Object.entries(audit.tracking)) {
    expect(position, `the tracking position of ${name}`).toBe(head)
  }
}

/** An order's state with its reservation's and payment's, told by order name, not by the ids that differ between runs. */
export interface OrderState {
  readonly name: string
  readonly version: number
  readonly reservation?: { readonly of: string | undefined; readonly version: number }
  readonly payment?: { readonly of: string | undefined; readonly version: number }
}

/** Returns the state of each of the orders, with its reservation and payment, ordered by name. */
export async function orderStates(apps: OrdersApps, ids: readonly string[]): Promise<OrderState[]> {
  const orders = await Promise.all(ids.map((id) => apps.orders.repository.get(Order, id)))
  const names = new Map(orders.map((order) => [order.id, order.name]))
  const states: OrderState[] = []
  for (const order of orders) {
    const { reservationId, paymentId } = order
    const reservation = reservationId && (await apps.reservations.repository.get(Reservation, reservationId))
    const payment = paymentId && (await apps.payments.repository.get(Payment, paymentId))
    states.push({
      name: order.name,
      version: order.version,
      ...(reservation && { reservation: { of: names.get(reservation.orderId), version: reservation.version } }),
      ...(payment && { payment: { of: names.get(payment.orderId), version: payment.version } }),
    })
  }
  return states.sort((a, b) => a.name.localeCompare(b.name))
}
