import { Buffer } from 'node:buffer'
import { createHash } from 'node:crypto'
import type { MessageAttributeValue, SendMessageBatchRequestEntry, SendMessageBatchResult } from '@aws-sdk/client-sqs'
import { errorMessage, OperationalError, ProgrammingError } from '../persistence/errors.js'
import type { BrokerPublisher, OutgoingMessage } from '../system/relay.js'
import {
  backoff,
  checkClientOptions,
  checkQueueUrl,
  connect,
  integerOption,
  isFifoUrl,
  isTransient,
  type SqsClientOptions,
  type SqsConnection,
  sqsError,
} from './sqs-client.js'

/** How {@link sqsPublisher} is set up. */
export interface SqsPublisherOptions extends SqsClientOptions {
  /**
   * The queue the messages go to. On a FIFO queue (its name ends in `.fifo`)
   * each message's group is its event's originator id, and its deduplication
   * id is `<application>:<notification id>`.
   */
  readonly queueUrl: string
  /** Tries per message before {@link SqsPublisher.publish} fails (default 5). */
  readonly attempts?: number
  /** The delay before the first retry, doubled for each next one (default 100 ms). */
  readonly retryDelayMs?: number
  /** At most this many `SendMessageBatch` requests at once (default 4). */
  readonly concurrency?: number
  /**
   * At most this many bytes of bodies and attributes per request (default
   * 262,144: 256 KiB, the limit of SQS before it was raised to 1 MiB). A
   * larger message is sent alone.
   */
  readonly maxBatchBytes?: number
}

/** The name of the message attribute that holds the event's topic. */
export const TOPIC_ATTRIBUTE = 'topic'

// The most entries SQS takes in one SendMessageBatch request.
const MAX_ENTRIES = 10

// What SQS allows in a message group or deduplication id.
const SQS_ID = /^[\x21-\x7e]{1,128}$/

/**
 * Returns `id` as SQS takes it in a message group or deduplication id: as it
 * is when it can be, else `sha256:` and its hash (so that any originator id,
 * however long or whatever its characters, makes one group of its own).
 */
export function sqsId(id: string): string {
  return SQS_ID.test(id) ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`
}

/** A message on its way, with its tries so far. */
interface Pending {
  readonly message: OutgoingMessage
  readonly entry: Omit<SendMessageBatchRequestEntry, 'Id'>
  readonly bytes: number
  attempts: number
}

/**
 * Returns a {@link BrokerPublisher} that sends a relay's messages to an SQS
 * queue with `SendMessageBatch` (10 messages per request at most, within
 * `maxBatchBytes`), retrying what SQS did not take. Give it to a `Relay`.
 * Nothing is opened until the first publication.
 *
 * On a FIFO queue, a message's group is its aggregate's id, and its
 * deduplication id is `<application>:<notification id>` (either one is
 * replaced by `sha256:<its hash>` when SQS would refuse it: longer than 128
 * characters, or with characters other than printable ASCII). A message of
 * an aggregate is sent only after SQS took the one before it, so that no
 * failed and retried message is ever queued behind a later one of its group
 * (a republisher would drop it as a duplicate): a request holds at most one
 * message per aggregate, and several requests are sent at once. A relay
 * that catches up on few aggregates with many events each is slower for it.
 * Repeated publications of a message within SQS's five-minute deduplication
 * interval are dropped by SQS.
 *
 * A standard queue (the name does not end in `.fifo`) works too, without
 * group or deduplication ids: it neither keeps order nor drops repeated
 * publications, so it suits consumers that need neither (an `sqsRepublisher`
 * requires a FIFO queue).
 *
 * @throws ProgrammingError for a missing or invalid option.
 * @example
 * ```ts
 * await using publisher = sqsPublisher({ queueUrl, region: 'eu-west-1' })
 * await using relay = new Relay({ upstream: orders, publisher, positions: sqliteProjectionStore({ path, name: 'relay' }) })
 * await relay.start()
 * ```
 */
export function sqsPublisher(options: SqsPublisherOptions): SqsPublisher {
  return new SqsPublisher(options)
}

/** The publisher that {@link sqsPublisher} returns. */
export class SqsPublisher implements BrokerPublisher, AsyncDisposable {
  /** The queue the messages go to. */
  readonly queueUrl: string
  /** Whether the queue is a FIFO queue. */
  readonly fifo: boolean
  readonly #connection: () => Promise<SqsConnection>
  readonly #attempts: number
  readonly #retryDelayMs: number
  readonly #concurrency: number
  readonly #maxBatchBytes: number
  #opened: SqsConnection | undefined
  #closed = false

  /** Use {@link sqsPublisher}. */
  constructor(options: SqsPublisherOptions) {
    checkClientOptions(options)
    this.queueUrl = checkQueueUrl(options.queueUrl, 'queueUrl')
    this.fifo = isFifoUrl(this.queueUrl)
    this.#attempts = integerOption('attempts', options.attempts ?? 5, 1)
    this.#retryDelayMs = integerOption('retryDelayMs', options.retryDelayMs ?? 100, 0)
    this.#concurrency = integerOption('concurrency', options.concurrency ?? 4, 1)
    this.#maxBatchBytes = integerOption('maxBatchBytes', options.maxBatchBytes ?? 262_144, 1)
    const open = connect(options)
    this.#connection = async () => {
      this.#opened ??= await open()
      return this.#opened
    }
  }

  /**
   * Sends the messages, and resolves once SQS has taken every one of them.
   *
   * @throws OperationalError naming the queue when SQS cannot be reached, or
   * refuses a message (naming it), or has not taken one after `attempts`
   * tries; some of the messages may have been queued then.
   * @throws ProgrammingError when the publisher is closed or the SDK is missing.
   */
  async publish(messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new ProgrammingError(`The SQS publisher of ${this.queueUrl} is closed`)
    if (messages.length === 0) return
    const connection = await this.#connection()
    // Per group, in order; a standard queue has no groups, so every message is its own.
    const groups = new Map<string, Pending[]>()
    messages.forEach((message, index) => {
      const key = this.fifo ? message.groupId : String(index)
      const group = groups.get(key)
      if (group === undefined) groups.set(key, [this.#pending(message)])
      else group.push(this.#pending(message))
    })
    while (groups.size > 0) {
      // The first unsent message of every group, in the order given.
      const heads = [...groups.values()].map((group) => group[0]!)
      const failed = await this.#sendAll(connection, heads)
      for (const [key, group] of groups) {
        if (!failed.has(group[0]!)) group.shift()
        if (group.length === 0) groups.delete(key)
      }
      if (failed.size > 0) await backoff(this.#retryDelayMs, Math.max(...[...failed].map((p) => p.attempts)))
    }
  }

  /** Destroys the client if it was made here; publishing afterwards fails. */
  async close(): Promise<void> {
    this.#closed = true
    this.#opened?.destroy()
  }

  /** Closes the publisher. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #pending(message: OutgoingMessage): Pending {
    const attributes: Record<string, MessageAttributeValue> = {
      [TOPIC_ATTRIBUTE]: { DataType: 'String', StringValue: message.topic },
    }
    const entry = {
      MessageBody: message.body,
      MessageAttributes: attributes,
      ...(this.fifo
        ? { MessageGroupId: sqsId(message.groupId), MessageDeduplicationId: sqsId(message.deduplicationId) }
        : {}),
    }
    const bytes =
      Buffer.byteLength(message.body) +
      Buffer.byteLength(TOPIC_ATTRIBUTE) +
      Buffer.byteLength('String') +
      Buffer.byteLength(message.topic)
    return { message, entry, bytes, attempts: 0 }
  }

  /** Sends messages of distinct groups in requests, several at once; returns those that were not taken but may be retried. */
  async #sendAll(connection: SqsConnection, pending: readonly Pending[]): Promise<Set<Pending>> {
    const requests: Pending[][] = []
    let request: Pending[] = []
    let bytes = 0
    for (const item of pending) {
      if (request.length === MAX_ENTRIES || (request.length > 0 && bytes + item.bytes > this.#maxBatchBytes)) {
        requests.push(request)
        request = []
        bytes = 0
      }
      request.push(item)
      bytes += item.bytes
    }
    requests.push(request)
    const failed = new Set<Pending>()
    let next = 0
    const worker = async () => {
      while (next < requests.length) {
        const batch = requests[next++]!
        for (const item of await this.#send(connection, batch)) failed.add(item)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, requests.length) }, worker))
    return failed
  }

  /**
   * Sends one request; returns the messages that were not taken but may be retried.
   *
   * @throws OperationalError for a refused message, a request that is not
   * worth retrying, or a message out of tries.
   */
  async #send(connection: SqsConnection, batch: readonly Pending[]): Promise<Pending[]> {
    const { sdk, client } = connection
    const failures = new Map<Pending, string>()
    let result: SendMessageBatchResult
    try {
      result = await client.send(
        new sdk.SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map((item, index) => ({ Id: String(index), ...item.entry })),
        }),
      )
    } catch (error) {
      if (!isTransient(error)) throw sqsError('SendMessageBatch', this.queueUrl, error)
      result = {
        Successful: [],
        Failed: batch.map((_, index) => ({ Id: String(index), SenderFault: false, Code: errorMessage(error) })),
      }
    }
    const taken = new Set((result.Successful ?? []).map((entry) => entry.Id))
    const refusals = new Map((result.Failed ?? []).map((entry) => [entry.Id, entry]))
    batch.forEach((item, index) => {
      if (taken.has(String(index))) return
      const refusal = refusals.get(String(index))
      if (refusal?.SenderFault === true) {
        throw new OperationalError(
          `SQS refused message ${this.#describe(item)} on ${this.queueUrl} (${refusal.Code}: ${refusal.Message})`,
        )
      }
      const reason = refusal?.Code ?? 'missing from the answer'
      failures.set(item, refusal?.Message ? `${reason}: ${refusal.Message}` : reason)
    })
    for (const [item, reason] of failures) {
      item.attempts++
      if (item.attempts >= this.#attempts) {
        throw new OperationalError(
          `SQS did not take message ${this.#describe(item)} on ${this.queueUrl} in ${item.attempts} attempts (${reason})`,
        )
      }
    }
    return [...failures.keys()]
  }

  #describe(item: Pending): string {
    return `${item.message.deduplicationId} (topic '${item.message.topic}', group ${item.message.groupId})`
  }
}
