import { Buffer } from 'node:buffer'
import { OperationalError, ProgrammingError } from '../persistence/errors.js'
import type { BrokerPublisher, OutgoingMessage } from '../system/relay.js'
import { openSession, publishConfirmed, type Session } from './rabbitmq-connection.js'
import {
  type ConnectionSettings,
  checkName,
  connectionSettings,
  type RabbitMqConnectionOptions,
} from './rabbitmq-settings.js'

/** Options of {@link rabbitMqPublisher}. */
export interface RabbitMqPublisherOptions extends RabbitMqConnectionOptions {
  /** The topic exchange the messages are published to, declared (durable) if missing. */
  readonly exchange: string
  /**
   * Whether a message that no queue is bound for fails the publication with
   * OperationalError, rather than being dropped by the broker (default false).
   * With it, a relay stops rather than lose messages when no queue is bound
   * yet; without it, declare the queues (start the republishers) before the
   * relay publishes.
   */
  readonly mandatory?: boolean
}

/**
 * The sending side of RabbitMQ, for a `Relay`: publishes each message
 * persistently to a durable topic exchange, with the event's topic as routing
 * key and the message's deduplication id as `messageId`, and resolves once
 * the broker confirmed every message (publisher confirms).
 */
export interface RabbitMqPublisher extends BrokerPublisher, AsyncDisposable {
  /**
   * Publishes messages in order, and resolves once the broker confirmed all
   * of them (a durable queue that takes a message has written it to disk
   * then). Connects on first use, and again, with backoff, after the
   * connection was lost.
   *
   * @throws OperationalError naming the broker when it cannot be reached
   * within the timeout, the connection is lost before it confirmed them,
   * it refuses one (a negative acknowledgement), or (with `mandatory`) no
   * queue is bound for one; some may have been published then, and a relay
   * publishes them again. ProgrammingError for bad credentials, an unknown
   * virtual host, an exchange of that name of another type, or after `close()`.
   */
  publish(messages: readonly OutgoingMessage[]): Promise<void>
  /**
   * Connects now (declaring the exchange) rather than at the first
   * publication, so that a broker that cannot be reached, or refuses the
   * credentials, is found at startup; does nothing when connected.
   *
   * @throws what {@link RabbitMqPublisher.publish} throws for connecting.
   */
  connect(): Promise<void>
  /** Closes the connection; publications not yet confirmed fail. Stop the relay first. */
  close(): Promise<void>
}

/**
 * Returns a publisher to a RabbitMQ topic exchange, for a `Relay`. It makes
 * one connection, on first use.
 *
 * @throws ProgrammingError for a URL that is not `amqp://` or `amqps://`, or an invalid exchange name.
 * @example
 * ```ts
 * const publisher = rabbitMqPublisher({ url: 'amqp://guest:guest@localhost:5672', exchange: 'dogschool' })
 * const relay = new Relay({ upstream: school, publisher, positions: sqliteProjectionStore({ path: 'relay.db', name: 'relay' }) })
 * await relay.start()
 * ```
 */
export function rabbitMqPublisher(options: RabbitMqPublisherOptions): RabbitMqPublisher {
  return new Publisher(options)
}

class Publisher implements RabbitMqPublisher {
  readonly #settings: ConnectionSettings
  readonly #exchange: string
  readonly #mandatory: boolean
  #session: Promise<Session> | undefined
  #closed = false

  constructor(options: RabbitMqPublisherOptions) {
    this.#settings = connectionSettings(options)
    checkName('exchange', options.exchange)
    this.#exchange = options.exchange
    this.#mandatory = options.mandatory ?? false
  }

  async publish(messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new ProgrammingError(`The publisher to exchange '${this.#exchange}' is closed`)
    if (messages.length === 0) return
    const { server, timeoutMs } = this.#settings
    const session = await this.#open(Date.now() + timeoutMs)
    // The channel buffers what the socket cannot take yet, so a batch is written at once, without waiting for 'drain'.
    const confirmed = Promise.all(
      messages.map((message) =>
        publishConfirmed(session, server, this.#exchange, message.topic, Buffer.from(message.body), {
          persistent: true,
          mandatory: this.#mandatory,
          messageId: message.deduplicationId,
          contentType: 'application/json',
          type: message.topic,
        }),
      ),
    )
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A broker that holds confirms back (a memory or disk alarm blocks
        // publishers) gets a fresh connection on the next try.
        void session.close()
        reject(
          new OperationalError(
            `RabbitMQ at ${server} did not confirm ${messages.length} messages within ${timeoutMs} ms (is it blocking publishers for lack of memory or disk?)`,
          ),
        )
      }, timeoutMs)
    })
    try {
      await Promise.race([confirmed, timeout])
    } finally {
      clearTimeout(timer)
      // The other confirmations are not awaited after a failure; their rejections are expected.
      confirmed.catch(() => {})
    }
  }

  async connect(): Promise<void> {
    if (this.#closed) throw new ProgrammingError(`The publisher to exchange '${this.#exchange}' is closed`)
    await this.#open(Date.now() + this.#settings.timeoutMs)
  }

  async close(): Promise<void> {
    this.#closed = true
    const session = await this.#session?.catch(() => undefined)
    this.#session = undefined
    await session?.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Returns the open session, opening one (again) when there is none. */
  async #open(deadline: number): Promise<Session> {
    for (;;) {
      this.#session ??= this.#connect(deadline)
      const opening = this.#session
      let session: Session
      try {
        session = await opening
      } catch (error) {
        if (this.#session === opening) this.#session = undefined
        throw error
      }
      if (!session.isClosed()) return session
      if (this.#session === opening) this.#session = undefined
      // A channel closed by the broker may leave its connection open.
      void session.close()
      if (Date.now() >= deadline) {
        throw new OperationalError(`RabbitMQ at ${this.#settings.server} keeps closing the connection`)
      }
    }
  }

  async #connect(deadline: number): Promise<Session> {
    const session = await openSession(
      this.#settings,
      `eventsourcing publisher to ${this.#exchange}`,
      async (channel) => {
        await channel.assertExchange(this.#exchange, 'topic', { durable: true })
      },
      deadline,
    )
    if (this.#closed) {
      await session.close()
      throw new ProgrammingError(`The publisher to exchange '${this.#exchange}' is closed`)
    }
    return session
  }
}
