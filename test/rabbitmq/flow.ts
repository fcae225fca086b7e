// The relay flow of the tests: Tickets (an SQLite file) relayed to a fresh
// exchange, and a fresh queue republished into Receipts (another SQLite file).

import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Relay, Republisher } from '../../src/index.js'
import { type RabbitMqRepublisher, rabbitMqPublisher, rabbitMqRepublisher } from '../../src/rabbitmq/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { Receipts, Tickets } from './apps.js'
import { RABBITMQ_URL } from './broker.js'
import { freshName, rawBroker } from './fixtures.js'

/** The two sides of a flow, and what is left to close. */
export interface Flow {
  readonly exchange: string
  readonly queue: string
  readonly deadLetterQueue: string
  /** The upstream application's database file (the relay records its position there too). */
  readonly upstreamPath: string
  /** The downstream application's database file. */
  readonly receiptsPath: string
  readonly tickets: Tickets
  readonly receipts: Receipts
  readonly consumer: RabbitMqRepublisher
  /** Starts a relay in this process; it is stopped by `close`. */
  startRelay(): Promise<Relay>
  /** Resolves once the consumer has processed `count` messages; throws after `timeoutMs`, or if it failed. */
  untilProcessed(count: number, timeoutMs: number): Promise<void>
  /** Stops and closes everything, and deletes the exchange and queues. */
  close(): Promise<void>
}

/** Makes the applications, and starts the consumer, which declares the queue before anything is published. */
export async function openFlow(options: { prefetch?: number } = {}): Promise<Flow> {
  const exchange = freshName()
  const queue = freshName()
  const deadLetterQueue = `${queue}.dead-letter`
  const dir = tempDir('es-rabbitmq-')
  const upstreamPath = join(dir, 'tickets.db')
  const tickets = new Tickets({ persistence: sqlite({ path: upstreamPath }) })
  const receiptsPath = join(dir, 'receipts.db')
  const receipts = new Receipts({ persistence: sqlite({ path: receiptsPath }) })
  const consumer = rabbitMqRepublisher({
    url: RABBITMQ_URL,
    exchange,
    queue,
    prefetch: options.prefetch,
    republisher: new Republisher({ follower: receipts }),
    retryDelayMs: 50,
  })
  await consumer.start()
  const closers: (() => Promise<void>)[] = []
  return {
    exchange,
    queue,
    deadLetterQueue,
    upstreamPath,
    receiptsPath,
    tickets,
    receipts,
    consumer,
    async startRelay() {
      const publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
      const relay = new Relay({
        upstream: tickets,
        publisher,
        positions: sqliteProjectionStore({ path: upstreamPath, name: 'relay' }),
      })
      await relay.start()
      closers.push(
        () => relay.stop(),
        () => publisher.close(),
      )
      return relay
    },
    async untilProcessed(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const status = consumer.status()
        if (status.state === 'failed') throw status.error
        if (status.processed >= count) return
        if (Date.now() > deadline) {
          throw new Error(`Timed out after ${timeoutMs} ms with ${JSON.stringify(status)} of ${count} processed`)
        }
        await delay(20)
      }
    },
    async close() {
      for (const close of closers.splice(0)) await close()
      await consumer.close()
      await tickets.close()
      await receipts.close()
      const raw = await rawBroker()
      await raw.remove({ exchanges: [exchange], queues: [queue, deadLetterQueue] })
      await raw.close()
    },
  }
}
