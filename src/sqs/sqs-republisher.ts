import { EventEmitter } from 'node:events'
import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs'
import { errorMessage, OperationalError, ProgrammingError } from '../persistence/errors.js'
import type { Verdict } from '../system/relay.js'
import {
  backoff,
  checkClientOptions,
  checkQueueUrl,
  connect,
  integerOption,
  isTransient,
  retrying,
  type SqsClientOptions,
  type SqsConnection,
  sqsError,
} from './sqs-client.js'

/** What an {@link SqsRepublisher} hands the messages' bodies to: a `Republisher` is one. */
export interface MessageHandler {
  /**
   * Processes the bodies of the messages of one receive, in order, and
   * returns a verdict for each; the messages are deleted once this resolves.
   *
   * @throws OperationalError to leave the messages in the queue, to be received again.
   */
  handleBatch(bodies: readonly string[]): Promise<Verdict[]>
}

/** How {@link sqsRepublisher} is set up. */
export interface SqsRepublisherOptions extends SqsClientOptions {
  /** The FIFO queue that a relay publishes to (see `sqsPublisher`). */
  readonly queueUrl: string
  /** Where messages that can never be processed go, with the reason (FIFO or standard). */
  readonly deadLetterQueueUrl: string
  /** What processes the messages: a `Republisher` of the local process application. */
  readonly republisher: MessageHandler
  /** How long a receive waits for messages: long polling (0 to 20 s, default 20). */
  readonly waitTimeSeconds?: number
  /**
   * How long a received message stays hidden from other receivers (1 to
   * 43,200 s, default 30); it is extended while the message is in hand.
   */
  readonly visibilityTimeoutSeconds?: number
  /**
   * Whether messages in hand are kept hidden for as long as their handling
   * takes, by `ChangeMessageVisibility` every third of the visibility
   * timeout (default true). Without it, a message whose handling outlasts
   * the timeout is received again meanwhile, and dropped then as a duplicate.
   */
  readonly extendVisibility?: boolean
  /** At most this many messages per receive (1 to 10, default 10). */
  readonly maxMessages?: number
  /**
   * How many receive loops run at once (default 1; each receives the next
   * batch while it handles one). A FIFO queue holds back a group's messages
   * while one of them is in hand, so the loops never handle one aggregate's
   * events at the same time, nor out of order (unless a visibility timeout
   * runs out while a message is in hand: it is received again, and one of the two is dropped as a duplicate).
   */
  readonly concurrency?: number
  /** The delay after a failure (of SQS, or of the follower's database) before trying again, doubled each time (default 100 ms). */
  readonly retryDelayMs?: number
  /** The longest of those delays (default 5,000 ms). */
  readonly maxRetryDelayMs?: number
}

/** What an {@link SqsRepublisher} is doing, and has done since it was made. */
export interface SqsRepublisherStatus {
  /** `running` until stopped, or `failed` when it stopped on an error (see `error`). */
  readonly state: 'running' | 'stopped' | 'failed'
  /** Messages received (a message received twice counts twice). */
  readonly received: number
  /** Messages whose events took effect. */
  readonly processed: number
  /** Messages dropped because their events had taken effect before (redeliveries). */
  readonly duplicates: number
  /** Messages dropped because the follower does not follow their events' topics. */
  readonly skipped: number
  /** Messages moved to the dead-letter queue. */
  readonly deadLettered: number
  /** Messages left in the queue after a failure, to be received again. */
  readonly released: number
  /** Failures that were retried (a request to SQS, a message left for later). */
  readonly retries: number
  /** The last of those failures. */
  readonly lastError?: Error
  /** Why it stopped, when it failed. */
  readonly error?: Error
}

/** The events an {@link SqsRepublisher} emits. */
export interface SqsRepublisherEvents {
  /** It stopped because of an error it cannot get past (a missing queue, a handler that threw something unexpected). */
  republisherError: [error: Error]
}

/** The message attribute, on a dead-lettered message, that says why it could not be processed (as RabbitMQ's header). */
export const ERROR_ATTRIBUTE = 'x-eventsourcing-error'
/** The message attribute, on a dead-lettered message, that holds the URL of the queue it came from. */
export const SOURCE_QUEUE_ATTRIBUTE = 'x-eventsourcing-source-queue'

// The most attributes SQS allows on a message, and the longest reason kept.
const MAX_ATTRIBUTES = 10
const MAX_REASON_LENGTH = 4000
// Tries of a delete or a dead-letter send, which are cheap to repeat.
const ATTEMPTS = 5

/** A message received and not yet deleted or released. */
interface InHand {
  readonly message: Message
  /** When its visibility timeout was last set (received or extended). */
  extendedAt: number
}

/** What a receive brought: messages, or the error it failed with. */
type Received = { readonly messages: Message[] } | { readonly error: unknown }

/** One run, from a start to its stop or failure. */
interface Run {
  readonly stop: AbortController
  readonly connection: SqsConnection
  readonly inHand: Map<string, InHand>
  readonly deadLetterFifo: boolean
  done: Promise<void>
  failure?: Error
}

/**
 * Returns a consumer that receives a relay's messages from an SQS FIFO
 * queue and hands them to a `Republisher` (see {@link SqsRepublisher}).
 * Nothing is opened until {@link SqsRepublisher.start}.
 *
 * @throws ProgrammingError for a missing or invalid option.
 * @example
 * ```ts
 * await using consumer = sqsRepublisher({
 *   queueUrl,
 *   deadLetterQueueUrl,
 *   republisher: new Republisher({ follower: reservations }),
 * })
 * await consumer.start()
 * ```
 */
export function sqsRepublisher(options: SqsRepublisherOptions): SqsRepublisher {
  return new SqsRepublisher(options)
}

/**
 * Receives messages from an SQS FIFO queue with long polling, and hands
 * those of each receive (up to `maxMessages`) to a republisher as one batch,
 * in the order received, so that each aggregate's events are processed in
 * order and a batch commits in one transaction of the follower. Messages are
 * deleted (`DeleteMessageBatch`) only after the republisher resolved (their
 * effects are committed then); one that can never be processed goes to the
 * dead-letter queue with the reason as the {@link ERROR_ATTRIBUTE}
 * attribute, and is deleted. When the republisher throws an
 * OperationalError (the follower's database is down), the batch is made
 * visible again at once, and receiving pauses (with backoff) before going on.
 * Messages in hand are kept hidden while they are handled (see
 * `extendVisibility`).
 *
 * Delivery is at least once (a consumer that stops between committing and
 * deleting, or a visibility timeout that runs out, has a message received
 * again); the republisher's tracking drops what was processed already.
 * It requires a FIFO queue: a standard queue may deliver an aggregate's
 * events out of order, and the republisher would drop the earlier as a
 * duplicate of the later.
 */
export class SqsRepublisher extends EventEmitter<SqsRepublisherEvents> implements AsyncDisposable {
  /** The queue the messages are received from. */
  readonly queueUrl: string
  /** The queue that dead-lettered messages go to. */
  readonly deadLetterQueueUrl: string
  readonly #handler: MessageHandler
  readonly #waitTimeSeconds: number
  readonly #visibilityTimeoutSeconds: number
  readonly #extendVisibility: boolean
  readonly #maxMessages: number
  readonly #concurrency: number
  readonly #retryDelayMs: number
  readonly #maxRetryDelayMs: number
  readonly #connect: () => Promise<SqsConnection>
  #opened: SqsConnection | undefined
  #run: Run | undefined
  #starting = false
  #closed = false
  #state: SqsRepublisherStatus['state'] = 'stopped'
  #error: Error | undefined
  #lastError: Error | undefined
  readonly #counts = {
    received: 0,
    processed: 0,
    duplicates: 0,
    skipped: 0,
    deadLettered: 0,
    released: 0,
    retries: 0,
  }

  /** Use {@link sqsRepublisher}. */
  constructor(options: SqsRepublisherOptions) {
    super()
    checkClientOptions(options)
    this.queueUrl = checkQueueUrl(options.queueUrl, 'queueUrl')
    this.deadLetterQueueUrl = checkQueueUrl(options.deadLetterQueueUrl, 'deadLetterQueueUrl')
    if (this.deadLetterQueueUrl === this.queueUrl) {
      throw new ProgrammingError('The dead-letter queue must be another queue than the one the messages come from')
    }
    if (typeof options.republisher?.handleBatch !== 'function') {
      throw new ProgrammingError('An SQS republisher needs a republisher: new Republisher({ follower })')
    }
    this.#handler = options.republisher
    this.#waitTimeSeconds = integerOption('waitTimeSeconds', options.waitTimeSeconds ?? 20, 0, 20)
    this.#visibilityTimeoutSeconds = integerOption(
      'visibilityTimeoutSeconds',
      options.visibilityTimeoutSeconds ?? 30,
      1,
      43_200,
    )
    this.#extendVisibility = options.extendVisibility ?? true
    this.#maxMessages = integerOption('maxMessages', options.maxMessages ?? 10, 1, 10)
    this.#concurrency = integerOption('concurrency', options.concurrency ?? 1, 1)
    this.#retryDelayMs = integerOption('retryDelayMs', options.retryDelayMs ?? 100, 0)
    this.#maxRetryDelayMs = integerOption('maxRetryDelayMs', options.maxRetryDelayMs ?? 5000, this.#retryDelayMs)
    this.#connect = connect(options)
  }

  /**
   * Checks the queues, then starts receiving; resolves once it has started.
   *
   * @throws ProgrammingError if it is running or closed, if the queue is not
   * a FIFO queue, or if the SDK is missing; OperationalError naming the
   * queue that cannot be reached or does not exist.
   */
  async start(): Promise<void> {
    if (this.#closed) throw new ProgrammingError(`The SQS republisher of ${this.queueUrl} is closed`)
    if (this.#run !== undefined || this.#starting) {
      throw new ProgrammingError(`The SQS republisher of ${this.queueUrl} is running already`)
    }
    this.#starting = true
    try {
      this.#opened ??= await this.#connect()
      const connection = this.#opened
      const [queue, deadLetter] = await Promise.all([
        this.#attributes(connection, this.queueUrl),
        this.#attributes(connection, this.deadLetterQueueUrl),
      ])
      if (queue.FifoQueue !== 'true') {
        throw new ProgrammingError(
          `${this.queueUrl} is not a FIFO queue: a standard queue may deliver an aggregate's events out of order, ` +
            'and the republisher would drop the earlier as a duplicate of the later; relay to a FIFO queue (a name ending in .fifo)',
        )
      }
      const run: Run = {
        stop: new AbortController(),
        connection,
        inHand: new Map(),
        deadLetterFifo: deadLetter.FifoQueue === 'true',
        done: Promise.resolve(),
      }
      this.#run = run
      this.#state = 'running'
      this.#error = undefined
      const heartbeat = this.#extendVisibility ? this.#heartbeat(run) : undefined
      const loops = Array.from({ length: this.#concurrency }, () => this.#poll(run))
      run.done = Promise.all(loops).then(() => {
        if (heartbeat !== undefined) clearInterval(heartbeat)
        this.#run = undefined
        this.#state = run.failure ? 'failed' : 'stopped'
        this.#error = run.failure
        if (run.failure) this.emit('republisherError', run.failure)
      })
    } finally {
      this.#starting = false
    }
  }

  /**
   * Stops receiving (a receive that is waiting is aborted), lets the
   * messages in hand finish, and resolves then. Stopping one that is not
   * running does nothing.
   *
   * A receive aborted just as SQS handed it messages leaves them hidden
   * until their visibility timeout ends; they are received again then.
   */
  async stop(): Promise<void> {
    const run = this.#run
    if (run === undefined) return
    run.stop.abort()
    await run.done
  }

  /** Returns the state and the counts of messages so far. */
  status(): SqsRepublisherStatus {
    return { state: this.#state, ...this.#counts, lastError: this.#lastError, error: this.#error }
  }

  /** Stops, then destroys the client if it was made here. */
  async close(): Promise<void> {
    this.#closed = true
    await this.stop()
    this.#opened?.destroy()
  }

  /** Closes the republisher. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #attributes(connection: SqsConnection, queueUrl: string): Promise<Partial<Record<string, string>>> {
    const { sdk, client } = connection
    try {
      const result = await client.send(
        new sdk.GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['FifoQueue'] }),
      )
      return result.Attributes ?? {}
    } catch (error) {
      throw sqsError('GetQueueAttributes', queueUrl, error)
    }
  }

  /**
   * Receives and handles messages until the run stops or fails; the next
   * batch is received while one is handled (a FIFO queue holds back the
   * groups in hand, so it never holds a later message of one of them).
   */
  async #poll(run: Run): Promise<void> {
    const signal = run.stop.signal
    let failures = 0
    let next: Promise<Received> | undefined
    while (next !== undefined || !signal.aborted) {
      const received = await (next ?? this.#receive(run))
      next = undefined
      if ('error' in received) {
        if (signal.aborted) return
        const error = sqsError('ReceiveMessage', this.queueUrl, received.error)
        if (!isTransient(received.error)) return this.#fail(run, error)
        this.#retried(error)
        await backoff(this.#retryDelayMs, ++failures, signal, this.#maxRetryDelayMs)
        continue
      }
      if (received.messages.length === 0) continue
      if (!signal.aborted) next = this.#receive(run)
      if (await this.#handle(run, received.messages)) failures = 0
      else await backoff(this.#retryDelayMs, ++failures, signal, this.#maxRetryDelayMs)
    }
  }

  /** Receives messages (long polling until the run stops), and holds them in hand; never throws. */
  async #receive(run: Run): Promise<Received> {
    const { sdk, client } = run.connection
    try {
      const result = await client.send(
        new sdk.ReceiveMessageCommand({
          QueueUrl: this.queueUrl,
          MaxNumberOfMessages: this.#maxMessages,
          WaitTimeSeconds: this.#waitTimeSeconds,
          VisibilityTimeout: this.#visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['MessageGroupId'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: run.stop.signal },
      )
      const messages = result.Messages ?? []
      const now = Date.now()
      for (const message of messages) run.inHand.set(message.ReceiptHandle!, { message, extendedAt: now })
      this.#counts.received += messages.length
      return { messages }
    } catch (error) {
      return { error }
    }
  }

  /**
   * Hands received messages to the republisher as one batch, then deletes
   * those done with and releases the others (all of them when the batch
   * failed). Returns false when some were released.
   */
  async #handle(run: Run, messages: readonly Message[]): Promise<boolean> {
    const verdicts = await this.#verdicts(run, messages)
    const done: Message[] = []
    const released: Message[] = []
    // Groups with a message released: their later messages must wait for it.
    const held = new Set<string | undefined>()
    for (const [index, message] of messages.entries()) {
      const verdict = verdicts?.[index]
      const group = message.Attributes?.MessageGroupId
      if (verdict === undefined || held.has(group)) {
        released.push(message)
        continue
      }
      try {
        if (verdict.outcome === 'dead-letter') await this.#deadLetter(run, message, verdict.reason)
        done.push(message)
        this.#count(verdict)
      } catch (error) {
        held.add(group)
        released.push(message)
        if (error instanceof OperationalError) this.#retried(error)
        else this.#fail(run, error instanceof Error ? error : new Error(String(error)))
      }
    }
    for (const message of messages) run.inHand.delete(message.ReceiptHandle!)
    await Promise.all([this.#delete(run, done), this.#release(run, released)])
    return released.length === 0
  }

  /** Returns the republisher's verdicts on the messages; undefined when the run failed, or the batch did. */
  async #verdicts(run: Run, messages: readonly Message[]): Promise<Verdict[] | undefined> {
    if (run.failure !== undefined) return undefined
    try {
      return await this.#handler.handleBatch(messages.map((message) => message.Body ?? ''))
    } catch (error) {
      if (error instanceof OperationalError) this.#retried(error)
      else this.#fail(run, error instanceof Error ? error : new Error(String(error)))
      return undefined
    }
  }

  #count(verdict: Verdict): void {
    if (verdict.outcome === 'processed') this.#counts.processed++
    else if (verdict.outcome === 'duplicate') this.#counts.duplicates++
    else if (verdict.outcome === 'skipped') this.#counts.skipped++
    else this.#counts.deadLettered++
  }

  /**
   * Sends a message to the dead-letter queue with the reason, retrying
   * transient failures.
   *
   * @throws OperationalError naming the dead-letter queue.
   */
  async #deadLetter(run: Run, message: Message, reason: string): Promise<void> {
    const { sdk, client } = run.connection
    const attributes: Record<string, MessageAttributeValue> = {}
    const own = [ERROR_ATTRIBUTE, SOURCE_QUEUE_ATTRIBUTE]
    for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
      if (Object.keys(attributes).length >= MAX_ATTRIBUTES - own.length || own.includes(name)) continue
      if (value.DataType !== undefined && (value.StringValue !== undefined || value.BinaryValue !== undefined)) {
        attributes[name] = { DataType: value.DataType, StringValue: value.StringValue, BinaryValue: value.BinaryValue }
      }
    }
    attributes[ERROR_ATTRIBUTE] = { DataType: 'String', StringValue: attributeText(reason) }
    attributes[SOURCE_QUEUE_ATTRIBUTE] = { DataType: 'String', StringValue: this.queueUrl }
    const input = {
      QueueUrl: this.deadLetterQueueUrl,
      MessageBody: message.Body,
      MessageAttributes: attributes,
      ...(run.deadLetterFifo
        ? {
            MessageGroupId: message.Attributes?.MessageGroupId ?? 'dead-letter',
            // A message dead-lettered twice (its delete failed) is queued once.
            MessageDeduplicationId: message.MessageId,
          }
        : {}),
    }
    try {
      await retrying(() => client.send(new sdk.SendMessageCommand(input)), {
        attempts: ATTEMPTS,
        retryDelayMs: this.#retryDelayMs,
      })
    } catch (error) {
      throw sqsError('SendMessage', this.deadLetterQueueUrl, error)
    }
  }

  /** Deletes messages done with; one that cannot be deleted is received again, and dropped then as a duplicate. */
  async #delete(run: Run, messages: readonly Message[]): Promise<void> {
    if (messages.length === 0) return
    const { sdk, client } = run.connection
    const entries = messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle }))
    try {
      const result = await retrying(
        () => client.send(new sdk.DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries })),
        { attempts: ATTEMPTS, retryDelayMs: this.#retryDelayMs },
      )
      const failed = result.Failed?.[0]
      if (failed !== undefined) {
        this.#retried(new OperationalError(`SQS did not delete a message from ${this.queueUrl} (${failed.Code})`))
      }
    } catch (error) {
      this.#retried(sqsError('DeleteMessageBatch', this.queueUrl, error))
    }
  }

  /**
   * Makes messages visible again at once, the last first, so that a FIFO
   * queue has them back in their order. One that cannot be released is
   * received again after its visibility timeout.
   */
  async #release(run: Run, messages: readonly Message[]): Promise<void> {
    if (messages.length === 0) return
    this.#counts.released += messages.length
    const { sdk, client } = run.connection
    const entries = messages
      .map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle, VisibilityTimeout: 0 }))
      .reverse()
    try {
      await client.send(new sdk.ChangeMessageVisibilityBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }))
    } catch (error) {
      this.#retried(sqsError('ChangeMessageVisibilityBatch', this.queueUrl, error))
    }
  }

  /** Every third of the visibility timeout, extends the messages in hand that were not extended for a sixth of it. */
  #heartbeat(run: Run): NodeJS.Timeout {
    const intervalMs = (this.#visibilityTimeoutSeconds * 1000) / 3
    let busy = false
    return setInterval(() => {
      if (busy) return
      const now = Date.now()
      const due = [...run.inHand.values()].filter((held) => now - held.extendedAt >= intervalMs / 2)
      if (due.length === 0) return
      busy = true
      void this.#extend(run, due, now).finally(() => {
        busy = false
      })
    }, intervalMs)
  }

  async #extend(run: Run, due: readonly InHand[], now: number): Promise<void> {
    const { sdk, client } = run.connection
    for (let start = 0; start < due.length; start += 10) {
      const chunk = due.slice(start, start + 10)
      try {
        const result = await client.send(
          new sdk.ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: chunk.map((held, index) => ({
              Id: String(index),
              ReceiptHandle: held.message.ReceiptHandle,
              VisibilityTimeout: this.#visibilityTimeoutSeconds,
            })),
          }),
        )
        for (const entry of result.Successful ?? []) chunk[Number(entry.Id)]!.extendedAt = now
      } catch (error) {
        // The next beat tries again, while there is time left.
        this.#retried(sqsError('ChangeMessageVisibilityBatch', this.queueUrl, error))
      }
    }
  }

  /** Ends the run with `error`: the messages in hand finish, and nothing more is received. */
  #fail(run: Run, error: Error): void {
    run.failure ??= error
    run.stop.abort()
  }

  #retried(error: unknown): void {
    const lastError = error instanceof Error ? error : new Error(errorMessage(error))
    this.#counts.retries++
    this.#lastError = lastError
  }
}

/** Returns `text` as a valid SQS attribute value: at most 4,000 characters, without characters that SQS refuses. */
function attributeText(text: string): string {
  const valid = text.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD')
  return valid.length > MAX_REASON_LENGTH ? `${valid.slice(0, MAX_REASON_LENGTH - 1)}…` : valid
}
