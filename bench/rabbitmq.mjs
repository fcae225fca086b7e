// RabbitMQ relay benchmark: events per second end to end, from an
// application's log through a Relay, RabbitMQ and a republisher into a
// follower, beside the broker's own baseline in the same run: raw amqplib
// publishing the same number of messages of the same size (persistent, with
// publisher confirms, in batches as large as the relay's) and consuming them
// (with acknowledgements, the same prefetch) on the same kind of exchange and
// queue. Medians of several rounds whose order rotates. Uses RABBITMQ_URL, or
// the default guest account on 127.0.0.1. Run with `npm run build && node bench/rabbitmq.mjs`.
import { randomBytes } from 'node:crypto'
import amqp from 'amqplib'
import { Aggregate, Application, encodeMessage, memory, ProcessApplication, Relay, Republisher } from 'eventsourcing'
import { rabbitMqPublisher, rabbitMqRepublisher } from 'eventsourcing/rabbitmq'
import { sqlite, sqliteProjectionStore } from 'eventsourcing/sqlite'
import { Counter, freshPath, median, removeFreshPaths } from './shared.mjs'

const ROUNDS = 3
const EVENTS = 10_000
const BATCH = 100
const PREFETCH = 100
const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

/** What the follower saves for each event it processes. */
class Receipt extends Aggregate {
  static Received = Receipt.created('bench:Receipt.Received', (receipt, e) => {
    receipt.counterId = e.counterId
  })
}

/** A follower that saves a receipt per upstream event. */
class Receipts extends ProcessApplication {
  static applicationName = 'Receipts'
  policy(event, processing) {
    processing.save(Receipt.create(Receipt.Received, { counterId: event.originatorId }))
  }
}

const freshName = () => `bench-${randomBytes(6).toString('hex')}`

/** Records `EVENTS` events in an application (counters started and added to 9 times, saved 10 at a time). */
async function record(app) {
  for (let saved = 0; saved < EVENTS; saved += BATCH) {
    const counters = Array.from({ length: BATCH / 10 }, () => {
      const counter = Counter.start()
      for (let i = 0; i < 9; i++) counter.add(i)
      return counter
    })
    await app.save(...counters)
  }
}

/** Deletes an exchange and queues on a connection of its own. */
async function remove(exchange, queues) {
  const connection = await amqp.connect(url)
  const channel = await connection.createChannel()
  for (const queue of queues) await channel.deleteQueue(queue)
  await channel.deleteExchange(exchange)
  await connection.close()
}

/**
 * Ours, one round: the events recorded before timing; timed from the relay's
 * start until the follower processed the last one. `storage()` gives each
 * side's persistence.
 */
async function ours(storage) {
  const exchange = freshName()
  const queue = freshName()
  const upstream = storage('upstream')
  const counters = new Application({ name: 'Counters', persistence: upstream.persistence })
  await record(counters)
  const receipts = new Receipts({ persistence: storage('follower').persistence })
  await receipts.connect()
  let done
  const finished = new Promise((resolve) => {
    done = resolve
  })
  const inner = new Republisher({ follower: receipts })
  let handled = 0
  const consumer = rabbitMqRepublisher({
    url,
    exchange,
    queue,
    prefetch: PREFETCH,
    republisher: {
      async handleBatch(bodies) {
        const verdicts = await inner.handleBatch(bodies)
        handled += bodies.length
        if (handled === EVENTS) done()
        return verdicts
      },
    },
  })
  await consumer.start()
  const publisher = rabbitMqPublisher({ url, exchange })
  // Connected before timing, as the baseline's connections are.
  await publisher.connect()
  const relay = new Relay({ upstream: counters, publisher, positions: upstream.positions, batchSize: BATCH })
  const start = process.hrtime.bigint()
  await relay.start()
  await finished
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await relay.stop()
  await publisher.close()
  await consumer.close()
  const status = consumer.status()
  if (status.processed !== EVENTS)
    throw new Error(`Processed ${status.processed} of ${EVENTS}: ${JSON.stringify(status)}`)
  await counters.close()
  await receipts.close()
  await remove(exchange, [queue, `${queue}.dead-letter`])
  return EVENTS / seconds
}

/** SQLite files on both sides (the relay's position in the upstream file). */
function files() {
  const path = freshPath()
  return { persistence: sqlite({ path }), positions: sqliteProjectionStore({ path, name: 'relay' }) }
}

/** Memory on both sides (the relay's position in an in-memory SQLite database): the library's own cost. */
function inMemory() {
  return { persistence: memory(), positions: sqliteProjectionStore({ path: ':memory:', name: 'relay' }) }
}

/** A message as the relay makes it, for the baseline's message size. */
async function sampleBody() {
  const app = new Application({ name: 'Counters', persistence: memory() })
  await record(app)
  const [notification] = await app.notificationLog.select({ start: 2, limit: 1 })
  await app.close()
  return Buffer.from(encodeMessage('Counters', notification, 'application/json'))
}

/**
 * The baseline, one round: raw amqplib publishing `EVENTS` messages of `body`
 * to a durable topic exchange, persistent, `BATCH` at a time waiting for the
 * confirms, while a consumer of a durable queue bound to it acknowledges each;
 * timed until the last is acknowledged.
 */
async function raw(body) {
  const exchange = freshName()
  const queue = freshName()
  const publishing = await amqp.connect(url)
  const consuming = await amqp.connect(url)
  const out = await publishing.createConfirmChannel()
  const inbound = await consuming.createChannel()
  await out.assertExchange(exchange, 'topic', { durable: true })
  await inbound.assertQueue(queue, { durable: true, arguments: { 'x-single-active-consumer': true } })
  await inbound.bindQueue(queue, exchange, '#')
  await inbound.prefetch(PREFETCH)
  let done
  const finished = new Promise((resolve) => {
    done = resolve
  })
  let consumed = 0
  await inbound.consume(queue, (message) => {
    inbound.ack(message)
    if (++consumed === EVENTS) done()
  })
  const start = process.hrtime.bigint()
  for (let sent = 0; sent < EVENTS; sent += BATCH) {
    for (let i = sent; i < sent + BATCH; i++) {
      out.publish(exchange, 'bench:Counter.Added', body, {
        persistent: true,
        messageId: `Counters:${i + 1}`,
        contentType: 'application/json',
      })
    }
    await out.waitForConfirms()
  }
  await finished
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await publishing.close()
  await consuming.close()
  await remove(exchange, [queue])
  return EVENTS / seconds
}

const body = await sampleBody()
const sides = {
  files: () => ours(files),
  memory: () => ours(inMemory),
  raw: () => raw(body),
}
const names = Object.keys(sides)
const rates = Object.fromEntries(names.map((name) => [name, []]))
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names.map((_, i) => names[(i + round) % names.length])) {
      rates[name].push(await sides[name]())
    }
  }
} finally {
  removeFreshPaths()
}

const format = (perSecond) => Math.round(perSecond).toLocaleString('en-US').padStart(8)
const ratio = (side) => median(rates[side].map((rate, i) => rate / rates.raw[i]))
console.log(
  `Node ${process.version}; median of ${ROUNDS} rounds of ${EVENTS.toLocaleString('en-US')} events; messages of ${body.length} bytes`,
)
console.log(
  `${'relay → RabbitMQ → republisher → follower, SQLite files'.padEnd(60)}${format(median(rates.files))}/s  ${ratio('files').toFixed(2)}× raw`,
)
console.log(
  `${'relay → RabbitMQ → republisher → follower, memory'.padEnd(60)}${format(median(rates.memory))}/s  ${ratio('memory').toFixed(2)}× raw`,
)
console.log(`${'  raw amqplib: publish with confirms, consume with acks'.padEnd(60)}${format(median(rates.raw))}/s`)
