// Helpers of the RabbitMQ tests: the broker's URL, whether it is reachable and
// whether the tests control it, fresh names, and a raw amqplib channel to look
// at queues with.

import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import amqp from 'amqplib'
import { installed } from '../services.js'

/** The broker the tests use: RABBITMQ_URL, or the default guest account on this machine. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

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
  await run(installed('rabbitmqctl') ?? 'rabbitmqctl', args, { timeout: 60_000 })
}

/**
 * Makes sure a broker answers at RABBITMQ_URL: when none does and none was
 * given, starts this machine's `rabbitmq-server` on 127.0.0.1 and waits until
 * it has booted (up to three minutes).
 *
 * @returns a function that stops the broker if it was started here, and does nothing otherwise.
 * @throws with the server's output when it does not start.
 */
export async function ensureBroker(): Promise<() => Promise<void>> {
  if (process.env.RABBITMQ_URL || (await unreachable()) === undefined) return async () => {}
  const server = installed('rabbitmq-server')
  if (server === undefined) throw new Error('rabbitmq-server is not installed')
  const logs = await mkdtemp(join(tmpdir(), 'es-rabbitmq-'))
  const output = createWriteStream(join(logs, 'rabbitmq-server.log'))
  const broker = spawn(server, [], {
    env: {
      ...process.env,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  broker.stdout.pipe(output)
  broker.stderr.pipe(output)
  const exited = new Promise((resolve) => broker.once('exit', resolve))
  const stop = async () => {
    await rabbitmqctl('stop').catch(() => broker.kill())
    await exited
    await stopPortMapper()
    await rm(logs, { recursive: true, force: true })
  }
  // rabbitmqctl await_startup fails at once while the node has not yet registered, so the broker is polled.
  const deadline = Date.now() + 180_000
  let why = await unreachable()
  while (why !== undefined && broker.exitCode === null && Date.now() < deadline) {
    await delay(500)
    why = await unreachable()
  }
  if (why !== undefined) {
    const log = await readFile(join(logs, 'rabbitmq-server.log'), 'utf8').catch(() => '')
    await stop()
    throw new Error(`rabbitmq-server did not start within 180 s: ${why}\n${log}`)
  }
  return stop
}

/**
 * Stops the Erlang port mapper that rabbitmq-server started, once no node is
 * registered with it any more (it refuses before; rabbitmqctl's own node
 * leaves a moment after the command returns).
 */
async function stopPortMapper(): Promise<void> {
  for (let tries = 0; tries < 20; tries++) {
    const said = await run(installed('epmd') ?? 'epmd', ['-kill']).then(
      ({ stdout, stderr }) => stdout + stderr,
      (error: Error) => error.message,
    )
    // "Killed", or "Cannot connect" when it is not running; anything else means nodes are still registered.
    if (/Killed|Cannot connect/.test(said)) return
    await delay(250)
  }
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
