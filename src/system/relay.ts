import { setTimeout } from 'node:timers/promises'
import type { NotificationLog } from '../application/notification-log.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { errorMessage, OperationalError } from '../persistence/errors.js'
import { Mapper } from '../persistence/mapper.js'
import type { ProjectionStore } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'
import { isPermanent } from './follow.js'
import { type FollowedTopic, type ProcessApplication, type Source, topicsOf } from './process-application.js'
import { decodeMessage, encodeMessage, MalformedMessageError } from './relay-message.js'
import { TrackedFollower, type TrackedFollowerOptions } from './tracked-follower.js'

/** A message for a broker, made by a {@link Relay} from one notification. */
export interface OutgoingMessage {
  /** The message's JSON (see `RelayMessage`). */
  readonly body: string
  /** The event's topic: the routing key on RabbitMQ. */
  readonly topic: string
  /** The event's originator id: the message group on SQS FIFO queues (order is kept per group). */
  readonly groupId: string
  /** `<application>:<notification id>`: the same for every publication of one notification. */
  readonly deduplicationId: string
}

/** The sending side of a message broker, as a {@link Relay} uses it. */
export interface BrokerPublisher {
  /**
   * Publishes messages in order, and resolves once the broker has confirmed
   * that it holds every one of them durably.
   *
   * @throws OperationalError when the broker cannot be reached or refuses a
   * message; some of the messages may have been published then.
   */
  publish(messages: readonly OutgoingMessage[]): Promise<void>
}

/** How a {@link Relay} is set up. */
export interface RelayOptions extends TrackedFollowerOptions {
  /** The application whose log is published. */
  readonly upstream: TrackedFollowerOptions['upstream'] & {
    readonly notificationLog: Pick<NotificationLog, 'contentType'>
  }
  /** Where the messages go. */
  readonly publisher: BrokerPublisher
  /**
   * Where the relay records how far it got (tracking only; its name names the
   * relay): a projection store, in any database.
   */
  readonly positions: ProjectionStore<unknown>
  /** Only notifications of these classes or topics are published (all when not given). */
  readonly topics?: readonly FollowedTopic[]
  /** At most this many messages per publication (default 100). */
  readonly batchSize?: number
  /** Tries per batch before the relay stops on a failure other than an outage, which is retried while it lasts (default 10). */
  readonly attempts?: number
}

/**
 * Publishes an application's notification log to a message broker: what is
 * recorded already, then new notifications as they are recorded, in order.
 * Its position is recorded only after the broker confirmed the messages, so
 * every notification is delivered at least once, also across crashes; after a
 * restart it resumes from its position (republishing at most the batch that
 * was in flight). Downstream, a {@link Republisher} drops the duplicates.
 */
export class Relay extends TrackedFollower {
  readonly #publisher: BrokerPublisher
  readonly #positions: ProjectionStore<unknown>
  readonly #topics: ReadonlySet<string> | undefined
  readonly #contentType: () => Promise<string>

  /** Makes the relay; nothing happens until {@link TrackedFollower.start}. */
  constructor(options: RelayOptions) {
    const topics = topicsOf(options.topics)
    super(options.positions.name, options.positions, {
      ...options,
      batchSize: options.batchSize ?? 100,
      attempts: options.attempts ?? 10,
      topics,
    })
    this.#publisher = options.publisher
    this.#positions = options.positions
    this.#topics = topics && new Set(topics)
    this.#contentType = () => options.upstream.notificationLog.contentType()
  }

  protected async process(batch: readonly Notification[]): Promise<void> {
    const contentType = await this.#contentType()
    const application = this.upstream.name
    const messages = batch
      .filter((notification) => this.#topics === undefined || this.#topics.has(notification.topic))
      .map((notification) => ({
        body: encodeMessage(application, notification, contentType),
        topic: notification.topic,
        groupId: notification.originatorId,
        deduplicationId: `${application}:${notification.id}`,
      }))
    if (messages.length > 0) await this.#publisher.publish(messages)
    await this.#positions.write({ applicationName: application, notificationId: batch.at(-1)!.id }, () => {})
  }
}

/** What a {@link Republisher} made of a message, and so what the broker should do with it. */
export type Verdict =
  /** Processed now: acknowledge it. */
  | { readonly outcome: 'processed' }
  /** Processed before (a redelivery): acknowledge it. */
  | { readonly outcome: 'duplicate' }
  /** Of a topic the follower does not follow (`followTopics`): acknowledge it. */
  | { readonly outcome: 'skipped' }
  /** It can never be processed: move it to the dead-letter destination with the reason, and acknowledge it. */
  | { readonly outcome: 'dead-letter'; readonly reason: string }

/** How a {@link Republisher} is set up. */
export interface RepublisherOptions {
  /** The process application that processes the relayed events. */
  readonly follower: ProcessApplication
  /**
   * Decodes the states of the relayed events: a mapper with the upstream
   * applications' settings (compression, cipher key; default plain JSON).
   */
  readonly mapper?: Mapper
  /** Tries per message before it goes to the dead-letter destination (default 3). */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
}

/** A message read, and not yet processed: the notification, and the source it is tracked under. */
interface Readable {
  /** The message's place in its batch. */
  readonly index: number
  readonly application: string
  readonly source: Source
  readonly notification: Notification
}

const PROCESSED: Verdict = { outcome: 'processed' }
const DUPLICATE: Verdict = { outcome: 'duplicate' }
const SKIPPED: Verdict = { outcome: 'skipped' }

/**
 * Hands messages received from a broker to a local process application, so
 * that each relayed event takes effect exactly once: the follower's tracking
 * drops redeliveries, and a message should be acknowledged only after
 * {@link Republisher.handleBatch} (or {@link Republisher.handle}) resolved
 * (its effects are committed then).
 *
 * Tracking is kept per upstream aggregate (`<application>/<originator id>`),
 * since brokers keep order only per message group (SQS FIFO) or lose it on
 * redelivery: a duplicate is a notification whose id is not above the last
 * one processed for its aggregate.
 */
export class Republisher {
  readonly #follower: ProcessApplication
  readonly #mapper: Mapper
  readonly #attempts: number
  readonly #retryDelayMs: number

  /** Makes the republisher. */
  constructor(options: RepublisherOptions) {
    this.#follower = options.follower
    this.#mapper = options.mapper ?? new Mapper()
    this.#attempts = options.attempts ?? 3
    this.#retryDelayMs = options.retryDelayMs ?? 100
  }

  /**
   * Processes one message's body, trying again after failures: a batch of one
   * (see {@link Republisher.handleBatch}).
   */
  async handle(body: string | Uint8Array): Promise<Verdict> {
    return (await this.handleBatch([body]))[0]!
  }

  /**
   * Processes the bodies of messages, in the order given, as one unit of work
   * of the follower (see `ProcessApplication.processMany`): the new events of
   * all of them are recorded in one atomic write, with the tracking record of
   * the last notification of each upstream aggregate. Redeliveries (ids not
   * above what is tracked, or above an earlier message of the batch for the
   * same aggregate) are dropped before processing. When the batch fails, its
   * halves are processed in turn, down to single messages, which are tried
   * again after a delay: only a message that keeps failing goes to the dead
   * letters, and the others take effect.
   *
   * @returns a verdict per body, in order: `processed`, `duplicate` or
   * `skipped` (acknowledge it), or `dead-letter` with the reason for a
   * message that cannot be read (not JSON, another format version, an unknown
   * topic, an undecodable state) or whose processing kept failing.
   * @throws OperationalError when the follower's database cannot be reached:
   * leave the messages with the broker, to be delivered again later (those
   * committed already are dropped then as duplicates).
   */
  async handleBatch(bodies: readonly (string | Uint8Array)[]): Promise<Verdict[]> {
    const verdicts = new Array<Verdict>(bodies.length)
    const readable: Readable[] = []
    for (const [index, body] of bodies.entries()) {
      const read = this.#read(index, body)
      if ('outcome' in read) verdicts[index] = read
      else readable.push(read)
    }
    const fresh = await this.#dropDuplicates(readable, verdicts)
    await this.#processHalving(fresh, verdicts)
    return verdicts
  }

  /** Decodes a message's body; the verdict instead for one that is malformed or of a topic not followed. */
  #read(index: number, body: string | Uint8Array): Readable | Verdict {
    let application: string
    let notification: Notification
    try {
      ;({ application, notification } = decodeMessage(body))
    } catch (error) {
      if (error instanceof MalformedMessageError) return { outcome: 'dead-letter', reason: error.message }
      throw error
    }
    if (!(this.#follower.followedTopics?.includes(notification.topic) ?? true)) return SKIPPED
    const source = {
      name: `${application}/${notification.originatorId}`,
      notificationLog: {
        decode: async (stored: Notification): Promise<DomainEvent> => this.#mapper.toDomainEvent(stored),
      },
    }
    return { index, application, source, notification }
  }

  /** Returns the messages not processed before, nor repeated in the batch; marks the others duplicates. */
  async #dropDuplicates(readable: readonly Readable[], verdicts: Verdict[]): Promise<Readable[]> {
    const names = [...new Set(readable.map((message) => message.source.name))]
    const positions = new Map<string, number>()
    for (const name of names) positions.set(name, await this.#follower.position(name))
    const fresh: Readable[] = []
    for (const message of readable) {
      const { name } = message.source
      if (message.notification.id <= positions.get(name)!) verdicts[message.index] = DUPLICATE
      else {
        positions.set(name, message.notification.id)
        fresh.push(message)
      }
    }
    return fresh
  }

  /** Processes messages as one unit; when that fails, each half in turn, down to single messages. */
  async #processHalving(messages: readonly Readable[], verdicts: Verdict[]): Promise<void> {
    if (messages.length === 0) return
    if (messages.length === 1) {
      verdicts[messages[0]!.index] = await this.#processOne(messages[0]!)
      return
    }
    try {
      await this.#follower.processMany(messages)
      for (const message of messages) verdicts[message.index] = PROCESSED
    } catch (error) {
      if (error instanceof OperationalError) throw error
      const half = Math.ceil(messages.length / 2)
      await this.#processHalving(messages.slice(0, half), verdicts)
      await this.#processHalving(messages.slice(half), verdicts)
    }
  }

  /** Processes one message, trying again after failures, up to the attempts. */
  async #processOne({ application, source, notification }: Readable): Promise<Verdict> {
    for (let attempt = 1; ; attempt++) {
      if (await this.#follower.isProcessed(source.name, notification.id)) return DUPLICATE
      try {
        await this.#follower.process(source, notification)
        return PROCESSED
      } catch (error) {
        if (error instanceof OperationalError) throw error
        const permanent = isPermanent(error)
        if (permanent || attempt >= this.#attempts) {
          const tries = permanent ? '' : ` after ${attempt} attempts`
          return {
            outcome: 'dead-letter',
            reason: `${this.#follower.name} could not process notification ${notification.id} of ${application} (topic '${notification.topic}')${tries}: ${errorMessage(error)}`,
          }
        }
      }
      await setTimeout(this.#retryDelayMs * 2 ** (attempt - 1))
    }
  }
}
