// Helpers of the RabbitMQ tests: the broker's URL, whether it is reachable and
// whether the tests control it, fresh names, and a raw amqplib channel to look
// at queues with.

import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import amqp from 'amqplib'

/** The broker the tests use: RABBITMQ_URL, or the default guest account on this machine. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

/** How to get a broker, for the message of skipped tests. */
export const HOW_TO_START =
  'apt-get install -y rabbitmq-server && (rabbitmq-server &) && rabbitmqctl await_startup (or set RABBITMQ_URL)'

/** True when running in continuous integration, where a missing broker fails the tests instead of skipping them. */
export const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

const run = promisify(execFile)

/** Returns undefined if the broker accepts a connection within 3 s, else why not. */
export async function unreachable(): Promise<string | undefined> {
  try {
    const connection = await amqp.connect(RABBITMQ_URL, { timeout: 3000 })
    await connection.close()
    return undefined
  } catch (error) {
    return `RabbitMQ at ${new URL(RABBITMQ_URL).host} is unreachable (${(error as Error).message})`
  }
}

/**
 * Returns undefined if the tests can stop and start the broker with
 * `rabbitmqctl` (the broker is on this machine and `rabbitmqctl status`
 * answers), else why not.
 */
export async function uncontrolled(): Promise<string | undefined> {
  const host = new URL(RABBITMQ_URL).hostname
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) return `RABBITMQ_URL names another machine (${host})`
  try {
    await rabbitmqctl('status')
    return undefined
  } catch (error) {
    return `rabbitmqctl cannot control the broker (${(error as Error).message.split('\n')[0]})`
  }
}

/** Runs `rabbitmqctl` with these arguments; throws with its output when it fails or takes over a minute. */
export async function rabbitmqctl(...args: string[]): Promise<void> {
  await run('rabbitmqctl', args, { timeout: 60_000 })
}

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
