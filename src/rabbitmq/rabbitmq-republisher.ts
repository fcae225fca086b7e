import { Buffer } from 'node:buffer'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import type { ConsumeMessage } from 'amqplib'
import { OperationalError, ProgrammingError } from '../persistence/errors.js'
import type { Republisher, Verdict } from '../system/relay.js'
import { openSession, publishConfirmed, rabbitMqError, type Session } from './rabbitmq-connection.js'
import {
  type ConnectionSettings,
  checkName,
  connectionSettings,
  positiveInteger,
  type RabbitMqConnectionOptions,
} from './rabbitmq-settings.js'

/** The header of a dead-lettered message that says why it could not be processed. */
export const ERROR_HEADER = 'x-eventsourcing-error'

/** Options of {@link rabbitMqRepublisher}. */
export interface RabbitMqRepublisherOptions extends RabbitMqConnectionOptions {
  /** The topic exchange the relay publishes to, declared (durable) if missing. */
  readonly exchange: string
  /**
   * The queue the messages are taken from: declared durable, with a single
   * active consumer (`x-single-active-consumer`), so that several processes
   * consuming it take turns rather than interleave. Use one queue per follower.
   */
  readonly queue: string
  /**
   * The routing key patterns the queue is bound to the exchange with (default
   * `['#']`, every message). The routing key is the event's topic, whose words
   * are separated by dots: `dogschool:Dog.*` takes every event of the `Dog`
   * aggregate. Bindings made before are kept.
   */
  readonly bindings?: readonly string[]
  /**
   * How many messages the broker sends ahead of the acknowledgements (default
   * 100): the most that can be in hand, and so in one batch.
   */
  readonly prefetch?: number
  /**
   * At most this many messages are handed to the follower at once, to be
   * processed in one transaction (default 100). A batch is what has arrived
   * while the one before was processed, so a message that arrives alone is
   * processed at once, and batches grow only when messages come faster than
   * one transaction a message.
   */
  readonly batchSize?: number
  /** The durable queue that messages which cannot be processed go to (default `<queue>.dead-letter`). */
  readonly deadLetterQueue?: string
  /** Processes the messages' bodies, a batch at a time (a `Republisher` over the follower). */
  readonly republisher: Pick<Republisher, 'handleBatch'>
  /**
   * How long a message waits before it is tried again after the follower's
   * storage failed (OperationalError), doubled after each further failure up to
   * 30 s (default 1,000 ms).
   */
  readonly retryDelayMs?: number
}

/** The state of a {@link RabbitMqRepublisher}, and what it did with the messages it took. */
export interface RabbitMqRepublisherStatus {
  /**
   * `running` while consuming; `reconnecting` after the connection was lost or
   * the follower's storage failed (see `error`); `failed` when it stopped for
   * an error it cannot get past (see `error`); `stopped` otherwise.
   */
  readonly state: 'running' | 'reconnecting' | 'stopped' | 'failed'
  /** Why it is reconnecting, or failed. */
  readonly error?: Error
  /** Messages processed by the follower. */
  readonly processed: number
  /** Messages dropped as redeliveries of messages processed before. */
  readonly duplicates: number
  /** Messages moved to the dead-letter queue. */
  readonly deadLettered: number
}

/** The events a {@link RabbitMqRepublisher} emits. */
export interface RabbitMqRepublisherEvents {
  /** It stopped for an error it cannot get past; the messages in hand stay in the queue. */
  republisherError: [error: Error]
}

/**
 * The receiving side of RabbitMQ: takes the messages a relay published from a
 * durable queue bound to the exchange and hands them, in batches and in
 * order, to a `Republisher` (see `batchSize`), which processes each batch in
 * one transaction of the follower. Messages are acknowledged only once their
 * batch is handled: processed (the follower committed its effects), a
 * duplicate, or moved to the dead-letter queue (with the reason in the
 * `x-eventsourcing-error` header, confirmed by the broker). When the
 * follower's storage cannot be reached, the batch and the messages behind it
 * go back to the queue, in order, and are tried again after a delay. After
 * the connection is lost it reconnects with backoff, for as long as it runs.
 */
export interface RabbitMqRepublisher extends EventEmitter<RabbitMqRepublisherEvents>, AsyncDisposable {
  /**
   * Connects, declares the exchange, the queue (bound to the exchange) and the
   * dead-letter queue, and starts consuming; resolves once consuming.
   *
   * @throws OperationalError naming the broker when it cannot be reached within
   * the timeout; ProgrammingError for bad credentials, an unknown virtual host,
   * an exchange or queue of that name declared with other settings, or if it is
   * running already or closed.
   */
  start(): Promise<void>
  /**
   * Lets the batch in hand finish, then stops consuming and closes the
   * connection; messages received but not handled go back to the queue. It can
   * be started again. Stopping one that is not running does nothing.
   */
  stop(): Promise<void>
  /** Stops, for good. */
  close(): Promise<void>
  /** Returns the state and counts. */
  status(): RabbitMqRepublisherStatus
}

/**
 * Returns a consumer of a RabbitMQ queue that republishes what a relay
 * published into a local follower; nothing happens until
 * {@link RabbitMqRepublisher.start}.
 *
 * @throws ProgrammingError for a URL that is not `amqp://` or `amqps://`,
 * invalid exchange or queue names, or numbers that are not positive integers.
 * @example
 * ```ts
 * const consumer = rabbitMqRepublisher({
 *   url: 'amqp://guest:guest@localhost:5672',
 *   exchange: 'dogschool',
 *   queue: 'tricks',
 *   republisher: new Republisher({ follower: tricks }),
 * })
 * await consumer.start()
 * ```
 */
export function rabbitMqRepublisher(options: RabbitMqRepublisherOptions): RabbitMqRepublisher {
  return new Consumer(options)
}

const DEFAULT_PREFETCH = 100
const DEFAULT_BATCH_SIZE = 100
// At most this many messages are acknowledged together (and at most half the prefetch).
const MAX_ACK_BATCH = 50
const DEFAULT_RETRY_DELAY_MS = 1000
const MAX_RETRY_DELAY_MS = 30_000
// A pause between attempts to consume again, besides the backoff of connecting.
const RECONNECT_PAUSE_MS = 1000
// Header values must fit the 64 KiB header table, with room for the others.
const MAX_REASON_LENGTH = 4000

/** Why a consumption ended: what to do next. */
type Ending =
  | { readonly kind: 'stopped' }
  /** The connection or channel was lost: reconnect. */
  | { readonly kind: 'lost'; readonly error?: Error }
  /** The follower's storage failed: give the messages back, and try again later. */
  | { readonly kind: 'retry'; readonly error: Error }
  /** An error it cannot get past. */
  | { readonly kind: 'failed'; readonly error: Error }

/** Consuming on one connection. */
interface Consumption {
  readonly session: Session
  /** Set once it ended: messages received and not yet started are left for the broker to deliver again. */
  ended: boolean
  readonly ending: Promise<Ending>
  end(ending: Ending): void
  /** Messages received and not yet started, in the order received. */
  readonly received: ConsumeMessage[]
  /** The last message handled and not yet acknowledged, and how many are (acknowledged together, up to it). */
  unacknowledged: ConsumeMessage | undefined
  unacknowledgedCount: number
}

interface Run {
  readonly stop: AbortController
  done: Promise<void>
}

class Consumer extends EventEmitter<RabbitMqRepublisherEvents> implements RabbitMqRepublisher {
  readonly #settings: ConnectionSettings
  readonly #exchange: string
  readonly #queue: string
  readonly #deadLetterQueue: string
  readonly #bindings: readonly string[]
  readonly #prefetch: number
  readonly #ackBatch: number
  readonly #batchSize: number
  readonly #retryDelayMs: number
  readonly #republisher: Pick<Republisher, 'handleBatch'>
  #run: Run | undefined
  #current: Consumption | undefined
  /** Handles batches one at a time, in the order received. */
  #chain: Promise<void> = Promise.resolve()
  #failures = 0
  #closed = false
  #state: RabbitMqRepublisherStatus['state'] = 'stopped'
  #error: Error | undefined
  #processed = 0
  #duplicates = 0
  #deadLettered = 0

  constructor(options: RabbitMqRepublisherOptions) {
    super()
    this.#settings = connectionSettings(options)
    checkName('exchange', options.exchange)
    checkName('queue', options.queue)
    this.#deadLetterQueue = options.deadLetterQueue ?? `${options.queue}.dead-letter`
    checkName('queue', this.#deadLetterQueue)
    if (this.#deadLetterQueue === options.queue) {
      throw new ProgrammingError(`The dead-letter queue must not be the queue itself ('${options.queue}')`)
    }
    this.#bindings = options.bindings ?? ['#']
    if (this.#bindings.length === 0 || this.#bindings.some((pattern) => !isPattern(pattern))) {
      throw new ProgrammingError(
        `bindings must be routing key patterns of 1 to 255 characters (such as 'dogschool:Dog.*' or '#'), got ${JSON.stringify(options.bindings)}`,
      )
    }
    this.#prefetch = options.prefetch ?? DEFAULT_PREFETCH
    positiveInteger('prefetch', this.#prefetch)
    this.#ackBatch = Math.min(MAX_ACK_BATCH, Math.ceil(this.#prefetch / 2))
    this.#batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
    positiveInteger('batchSize', this.#batchSize)
    this.#retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS
    positiveInteger('retryDelayMs', this.#retryDelayMs)
    this.#exchange = options.exchange
    this.#queue = options.queue
    this.#republisher = options.republisher
  }

  async start(): Promise<void> {
    const name = `The republisher of queue '${this.#queue}'`
    if (this.#closed) throw new ProgrammingError(`${name} is closed`)
    if (this.#run !== undefined) throw new ProgrammingError(`${name} is running already`)
    const run: Run = { stop: new AbortController(), done: Promise.resolve() }
    this.#run = run
    let consumption: Consumption
    try {
      consumption = await this.#consume(Date.now() + this.#settings.timeoutMs, run.stop.signal)
    } catch (error) {
      this.#run = undefined
      throw error
    }
    this.#setState('running')
    run.done = this.#follow(consumption, run.stop.signal).finally(() => {
      if (this.#run === run) this.#run = undefined
    })
  }

  async stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    run.stop.abort()
    this.#current?.end({ kind: 'stopped' })
    await run.done
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.stop()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  status(): RabbitMqRepublisherStatus {
    return {
      state: this.#state,
      ...(this.#error && { error: this.#error }),
      processed: this.#processed,
      duplicates: this.#duplicates,
      deadLettered: this.#deadLettered,
    }
  }

  /** Consumes until stopped or failed, consuming again after each loss of the connection. */
  async #follow(first: Consumption, signal: AbortSignal): Promise<void> {
    let consumption = first
    for (;;) {
      const ending = await consumption.ending
      // The batch in hand finishes (and is acknowledged, if the channel is still open) before the channel closes.
      await this.#chain
      try {
        acknowledge(consumption)
      } catch {
        // The channel closed: what was handled comes again, and is dropped as a duplicate then.
      }
      await consumption.session.close()
      this.#current = undefined
      if (ending.kind === 'stopped' || signal.aborted) return this.#setState('stopped')
      if (ending.kind === 'failed') return this.#fail(ending.error)
      this.#setState('reconnecting', ending.error)
      if (ending.kind === 'retry') {
        const pause = Math.min(MAX_RETRY_DELAY_MS, this.#retryDelayMs * 2 ** this.#failures++)
        await delay(pause, undefined, { signal }).catch(() => {})
      }
      for (;;) {
        if (signal.aborted) return this.#setState('stopped')
        try {
          consumption = await this.#consume(Number.POSITIVE_INFINITY, signal)
          break
        } catch (error) {
          if (signal.aborted) return this.#setState('stopped')
          if (!(error instanceof OperationalError)) return this.#fail(error as Error)
          this.#setState('reconnecting', error)
          await delay(RECONNECT_PAUSE_MS, undefined, { signal }).catch(() => {})
        }
      }
      this.#setState('running')
    }
  }

  /**
   * Connects, declares, and starts consuming.
   *
   * @throws what connecting throws (OperationalError once `deadline` passes, ProgrammingError).
   */
  async #consume(deadline: number, signal: AbortSignal): Promise<Consumption> {
    const session = await openSession(
      this.#settings,
      `eventsourcing republisher from ${this.#queue}`,
      async (channel) => {
        await channel.assertExchange(this.#exchange, 'topic', { durable: true })
        await channel.assertQueue(this.#deadLetterQueue, { durable: true })
        await channel.assertQueue(this.#queue, { durable: true, arguments: { 'x-single-active-consumer': true } })
        for (const pattern of this.#bindings) await channel.bindQueue(this.#queue, this.#exchange, pattern)
        await channel.prefetch(this.#prefetch)
      },
      deadline,
      signal,
    )
    let end: (ending: Ending) => void = () => {}
    const consumption: Consumption = {
      session,
      ended: false,
      received: [],
      unacknowledged: undefined,
      unacknowledgedCount: 0,
      ending: new Promise<Ending>((resolve) => {
        end = resolve
      }),
      end: (ending) => {
        consumption.ended = true
        end(ending)
      },
    }
    void session.closed.then((error) => consumption.end({ kind: 'lost', error }))
    if (signal.aborted) consumption.end({ kind: 'stopped' })
    this.#current = consumption
    try {
      await session.channel.consume(
        this.#queue,
        (message) => {
          // null: the broker cancelled the consumer (the queue was deleted); consuming again declares it again.
          if (message === null) consumption.end({ kind: 'lost' })
          else {
            consumption.received.push(message)
            // Messages that arrive before the batch is taken join it.
            if (consumption.received.length === 1) this.#handleLater(consumption)
          }
        },
        { noAck: false },
      )
    } catch (error) {
      consumption.end({ kind: 'stopped' })
      await session.close()
      throw rabbitMqError(error, this.#settings.server)
    }
    return consumption
  }

  /** Handles the next batch of received messages once the batch in hand is done. */
  #handleLater(consumption: Consumption): void {
    this.#chain = this.#chain
      .then(() => this.#handle(consumption))
      .catch((error: unknown) => consumption.end({ kind: 'failed', error: error as Error }))
  }

  /** Handles a batch of the received messages and acknowledges it, unless the consumption ended before. */
  async #handle(consumption: Consumption): Promise<void> {
    const batch = consumption.received.splice(0, this.#batchSize)
    if (consumption.received.length > 0) this.#handleLater(consumption)
    if (consumption.ended || batch.length === 0) return
    const { session } = consumption
    let verdicts: Verdict[]
    try {
      verdicts = await this.#republisher.handleBatch(batch.map((message) => message.content))
    } catch (error) {
      const typed = error instanceof Error ? error : new Error(String(error))
      consumption.end(
        error instanceof OperationalError ? { kind: 'retry', error: typed } : { kind: 'failed', error: typed },
      )
      return
    }
    this.#failures = 0
    // Counted once the follower took them: their effects are committed, whether or not the acknowledgement gets through.
    for (const { outcome } of verdicts) {
      if (outcome === 'processed') this.#processed++
      else if (outcome === 'duplicate') this.#duplicates++
    }
    // A channel that closed meanwhile gives the messages back to the queue; they come again, as duplicates.
    if (session.isClosed()) return
    try {
      for (const [index, verdict] of verdicts.entries()) {
        if (verdict.outcome !== 'dead-letter') continue
        await this.#deadLetter(session, batch[index]!, verdict.reason)
        this.#deadLettered++
      }
      consumption.unacknowledged = batch.at(-1)
      consumption.unacknowledgedCount += batch.length
      // Acknowledging several batches at once spares the broker work; when none is waiting, this one is not kept waiting.
      if (consumption.received.length === 0 || consumption.unacknowledgedCount >= this.#ackBatch) {
        acknowledge(consumption)
      }
    } catch (error) {
      consumption.end({ kind: 'lost', error: error as Error })
    }
  }

  /** Publishes a copy of the message to the dead-letter queue with the reason, and waits for the broker's confirmation. */
  async #deadLetter(session: Session, message: ConsumeMessage, reason: string): Promise<void> {
    const { properties, fields } = message
    await publishConfirmed(session, this.#settings.server, '', this.#deadLetterQueue, message.content, {
      persistent: true,
      mandatory: true,
      messageId: typeof properties.messageId === 'string' ? properties.messageId : randomUUID(),
      contentType: properties.contentType,
      type: properties.type,
      headers: {
        ...properties.headers,
        [ERROR_HEADER]: reason.length > MAX_REASON_LENGTH ? `${reason.slice(0, MAX_REASON_LENGTH)}…` : reason,
        'x-eventsourcing-exchange': fields.exchange,
        'x-eventsourcing-routing-key': fields.routingKey,
        'x-eventsourcing-queue': this.#queue,
      },
    })
  }

  #setState(state: RabbitMqRepublisherStatus['state'], error?: Error): void {
    this.#state = state
    this.#error = error
  }

  #fail(error: Error): void {
    this.#setState('failed', error)
    this.emit('republisherError', error)
  }
}

/**
 * Acknowledges the messages handled and not yet acknowledged, at once.
 *
 * @throws when the channel has closed.
 */
function acknowledge(consumption: Consumption): void {
  if (consumption.unacknowledged === undefined || consumption.session.isClosed()) return
  consumption.session.channel.ack(consumption.unacknowledged, true)
  consumption.unacknowledged = undefined
  consumption.unacknowledgedCount = 0
}

function isPattern(pattern: unknown): boolean {
  return typeof pattern === 'string' && pattern.length > 0 && Buffer.byteLength(pattern) <= 255
}
