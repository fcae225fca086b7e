// Orders-system benchmark: the orders system of examples/orders.ts (restated
// here in JavaScript, since benchmarks import the built package) on an
// EventLoopRunner, with batched followers (the runner's default batch size)
// beside one notification per transaction (batchSize 1, the behaviour before
// batches), in the same run, on an SQLite file and on PostgreSQL.
//
// - Catch-up: ORDERS orders (default 5,000) are created first, then a runner
//   starts and processes them: 4 follower-processed events per order
//   (Reservations: Order.Created; Orders: Reservation.Created; Payments:
//   Order.Reserved; Orders: Payment.Created), counted from the tracking
//   records and the logs, in follower events/s.
// - Live latency: with the runner caught up, one order at a time, the time
//   from the start of the upstream save to the commit of the first follower
//   (Reservations) of its event, p50 and p99 over LIVE samples (default 200);
//   each next order waits until the last one is paid, so the system is idle.
// - Where the time goes: each round also prints how long the Orders follower
//   (2 of the 4 events per order, the only policies that read an aggregate,
//   one batch at a time) spent in `repository.get` reading orders (each
//   batch prefetches its orders, `idsToPrefetch`, as examples/orders.ts does,
//   so these gets take them from the batch's one read).
//
// Uses POSTGRES_URL when set, else an embedded server with fsync and
// synchronous_commit on. Run with `npm run build && node bench/orders.mjs`.
// ROUNDS=n (default 3, medians shown), BACKENDS=sqlite|postgres, ORDERS=n and
// LIVE=n narrow a run.
import { Aggregate, DEFAULT_BATCH_SIZE, EventLoopRunner, ProcessApplication, System, uuid5 } from 'eventsourcing'
import { postgres } from 'eventsourcing/postgres'
import { sqlite } from 'eventsourcing/sqlite'
import { freshPath, median, postgresServer, removeFreshPaths } from './shared.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const ORDERS = Number(process.env.ORDERS ?? 5_000)
const LIVE = Number(process.env.LIVE ?? 200)
const only = process.env.BACKENDS?.split(',') ?? ['sqlite', 'postgres']
const NAMESPACE = '1f6a5e0e-7b1c-4a47-9d33-0d7c3b0f4a10'
const WAIT = { timeoutMs: 30 * 60_000 }

// ---------------------------------------------------------------- the orders system (examples/orders.ts)

class Order extends Aggregate {
  static topic = 'orders:Order'
  static Created = Order.created('orders:Order.Created', (order, e) => {
    order.name = e.name
  })
  static Reserved = Order.event('orders:Order.Reserved', (order, e) => {
    order.reservationId = e.reservationId
  })
  static Paid = Order.event('orders:Order.Paid', (order, e) => {
    order.paymentId = e.paymentId
  })
  reserve(reservationId) {
    this.trigger(Order.Reserved, { reservationId })
  }
  pay(paymentId) {
    this.trigger(Order.Paid, { paymentId })
  }
}

class Reservation extends Aggregate {
  static topic = 'orders:Reservation'
  static Created = Reservation.created('orders:Reservation.Created', (reservation, e) => {
    reservation.orderId = e.orderId
  })
  static reserve(orderId) {
    return Reservation.create(Reservation.Created, { orderId }, { id: uuid5(NAMESPACE, `reservation:${orderId}`) })
  }
}

class Payment extends Aggregate {
  static topic = 'orders:Payment'
  static Created = Payment.created('orders:Payment.Created', (payment, e) => {
    payment.orderId = e.orderId
  })
  static pay(orderId) {
    return Payment.create(Payment.Created, { orderId }, { id: uuid5(NAMESPACE, `payment:${orderId}`) })
  }
}

/** The time the Orders follower spends reading orders, in ms (its batches are processed one at a time). */
const probe = { readMs: 0 }

class Orders extends ProcessApplication {
  static applicationName = 'Orders'
  static followTopics = [Reservation.Created, Payment.Created]
  async getOrder(id) {
    const start = performance.now()
    const order = await this.repository.get(Order, id)
    probe.readMs += performance.now() - start
    return order
  }
  idsToPrefetch(event) {
    return event instanceof Reservation.Created || event instanceof Payment.Created ? [event.orderId] : []
  }
  async createOrder(name) {
    const order = Order.create(Order.Created, { name })
    const recordings = await this.save(order)
    return recordings.at(-1).notification.id
  }
  async policy(event, processing) {
    if (event instanceof Reservation.Created) {
      const order = await this.getOrder(event.orderId)
      order.reserve(event.originatorId)
      processing.save(order)
    } else if (event instanceof Payment.Created) {
      const order = await this.getOrder(event.orderId)
      order.pay(event.originatorId)
      processing.save(order)
    }
  }
}

class Reservations extends ProcessApplication {
  static applicationName = 'Reservations'
  static followTopics = [Order.Created]
  policy(event, processing) {
    if (event instanceof Order.Created) processing.save(Reservation.reserve(event.originatorId))
  }
}

class Payments extends ProcessApplication {
  static applicationName = 'Payments'
  static followTopics = [Order.Reserved]
  policy(event, processing) {
    if (event instanceof Order.Reserved) processing.save(Payment.pay(event.originatorId))
  }
}

const system = new System([
  [Orders, Reservations, Orders],
  [Orders, Payments, Orders],
])

// ---------------------------------------------------------------- measurements

/** Waits hop by hop until every order made so far is reserved and paid, recorded in Orders. */
async function untilPaid(runner) {
  const orders = runner.get(Orders)
  await runner.waitFor(Orders, await orders.notificationLog.maxId(), WAIT)
  await runner.waitFor(Reservations, await runner.get(Reservations).notificationLog.maxId(), WAIT)
  await runner.waitFor(Orders, await orders.notificationLog.maxId(), WAIT)
  await runner.waitFor(Payments, await runner.get(Payments).notificationLog.maxId(), WAIT)
}

/** Counts the upstream events each follower processed (its followed topics up to its tracking position), in total. */
async function processedEvents(runner) {
  let total = 0
  for (const follower of system.followers) {
    const application = runner.get(system.get(follower))
    for (const leader of system.leadersOf(follower)) {
      const stop = await application.position(leader)
      const upstream = runner.get(system.get(leader))
      const topics = application.followedTopics
      for (let start = 0; start < stop; ) {
        const page = await upstream.notificationLog.select({
          start,
          stop,
          topics,
          limit: 10_000,
          inclusiveOfStart: false,
        })
        if (page.length === 0) break
        total += page.length
        start = page.at(-1).id
      }
    }
  }
  return total
}

/** Creates ORDERS orders, then times a runner catching up with them; returns follower events/s. */
async function catchUp(persistence, batchSize) {
  {
    const orders = new Orders({ persistence })
    for (let i = 0; i < ORDERS; i++) await orders.createOrder(`order ${i}`)
    await orders.close()
  }
  const runner = new EventLoopRunner(system, { persistence, batchSize })
  probe.readMs = 0
  const started = performance.now()
  await runner.start()
  await untilPaid(runner)
  const seconds = (performance.now() - started) / 1000
  const events = await processedEvents(runner)
  await runner.stop()
  if (events !== 4 * ORDERS) throw new Error(`The followers processed ${events} events, not ${4 * ORDERS}`)
  return { rate: events / seconds, seconds, reads: probe.readMs / 1000 }
}

/** Returns the p50 and p99 latency (ms) from an upstream save to Reservations' commit of its event, one at a time. */
async function liveLatency(persistence, batchSize) {
  const runner = new EventLoopRunner(system, { persistence, batchSize })
  await runner.start()
  const orders = runner.get(Orders)
  let committed
  runner.get(Reservations).subscribe(() => committed?.(performance.now()))
  const samples = []
  // The first orders warm up connections and code paths.
  for (let i = 0; i < LIVE + 10; i++) {
    const done = new Promise((resolve) => {
      committed = resolve
    })
    const start = performance.now()
    await orders.createOrder(`live ${i}`)
    const end = await done
    if (i >= 10) samples.push(end - start)
    await untilPaid(runner)
  }
  await runner.stop()
  samples.sort((a, b) => a - b)
  return { p50: samples[Math.floor(samples.length * 0.5)], p99: samples[Math.floor(samples.length * 0.99)] }
}

const settings = [
  ['batched', DEFAULT_BATCH_SIZE],
  ['one per transaction', 1],
]

async function measure(backend, persistenceOf) {
  const results = Object.fromEntries(settings.map(([name]) => [name, { rate: [], p50: [], p99: [] }]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, batchSize] of settings) {
      const { rate, seconds, reads } = await catchUp(persistenceOf(`c${round}_${batchSize}`), batchSize)
      const { p50, p99 } = await liveLatency(persistenceOf(`l${round}_${batchSize}`), batchSize)
      results[name].rate.push(rate)
      results[name].p50.push(p50)
      results[name].p99.push(p99)
      console.log(
        `  ${backend} round ${round} ${name}: ${Math.round(rate)} follower events/s (${seconds.toFixed(2)} s, of which the Orders follower read orders ${reads.toFixed(2)} s), live p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
      )
    }
  }
  return results
}

function report(backend, results) {
  const base = median(results['one per transaction'].rate)
  console.log(
    `\n${backend}: orders-system catch-up (${ORDERS} orders, ${4 * ORDERS} follower events), medians of ${ROUNDS}`,
  )
  console.log('| setting | follower events/s | vs one per transaction | live p50 (ms) | live p99 (ms) |')
  console.log('|---|---:|---:|---:|---:|')
  for (const [name, batchSize] of settings) {
    const { rate, p50, p99 } = results[name]
    console.log(
      `| ${name} (batchSize ${batchSize}) | ${Math.round(median(rate)).toLocaleString('en-US')} | ${(median(rate) / base).toFixed(1)}× | ${median(p50).toFixed(2)} | ${median(p99).toFixed(2)} |`,
    )
  }
}

if (only.includes('sqlite')) {
  console.log('SQLite (a file per run, WAL, synchronous=NORMAL):')
  const results = await measure('sqlite', () => sqlite({ path: freshPath() }))
  report('SQLite', results)
  removeFreshPaths()
}

if (only.includes('postgres')) {
  const server = await postgresServer(['fsync=on', 'synchronous_commit=on'])
  try {
    console.log(`PostgreSQL (${server.embedded ? 'embedded, fsync on' : 'POSTGRES_URL'}, a schema per run):`)
    const results = await measure('postgres', (name) => postgres({ url: server.url, schema: `bench_orders_${name}` }))
    report('PostgreSQL', results)
  } finally {
    await server.stop()
  }
}
