// Helpers of the RabbitMQ tests: fresh names, and a raw amqplib channel to
// look at queues with (the broker itself is in broker.ts).

import { randomBytes } from 'node:crypto'
import amqp from 'amqplib'
import { RABBITMQ_URL } from './broker.js'

/** Returns a fresh name for an exchange or a queue, e.g. `es-test-1f2e3d4c5b6a`. */
export function freshName(prefix = 'es-test'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`
}

/** A raw amqplib connection and channel, for what the tests publish and read without the library. */
export interface RawBroker {
  readonly channel: amqp.ConfirmChannel
  /** Publishes a message to an exchange and waits for the broker's confirmation. */
  publish(exchange: string, routingKey: string, body: string | Buffer, options?: amqp.Options.Publish): Promise<void>
  /** Takes every message of a queue, acknowledging them. */
  drain(queue: string): Promise<amqp.GetMessage[]>
  /** The number of messages ready in a queue. */
  count(queue: string): Promise<number>
  /** Deletes exchanges and queues, ignoring those that do not exist. */
  remove(names: { exchanges?: readonly string[]; queues?: readonly string[] }): Promise<void>
  close(): Promise<void>
}

/** Opens a raw connection to the test broker. */
export async function rawBroker(): Promise<RawBroker> {
  const connection = await amqp.connect(RABBITMQ_URL)
  connection.on('error', () => {})
  let channel = await connection.createConfirmChannel()
  channel.on('error', () => {})
  // A failed passive declaration closes the channel: the next operation gets a new one.
  const fresh = async () => {
    channel = await connection.createConfirmChannel()
    channel.on('error', () => {})
  }
  return {
    get channel() {
      return channel
    },
    async publish(exchange, routingKey, body, options = {}) {
      channel.publish(exchange, routingKey, Buffer.from(body), { persistent: true, ...options })
      await channel.waitForConfirms()
    },
    async drain(queue) {
      const messages: amqp.GetMessage[] = []
      for (;;) {
        const message = await channel.get(queue, { noAck: true })
        if (message === false) return messages
        messages.push(message)
      }
    },
    async count(queue) {
      return (await channel.checkQueue(queue)).messageCount
    },
    async remove({ exchanges = [], queues = [] }) {
      for (const queue of queues) await channel.deleteQueue(queue).catch(fresh)
      for (const exchange of exchanges) await channel.deleteExchange(exchange).catch(fresh)
    },
    async close() {
      await connection.close().catch(() => {})
    },
  }
}
