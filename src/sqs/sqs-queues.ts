import { ProgrammingError } from '../persistence/errors.js'
import { checkClientOptions, connect, integerOption, type SqsClientOptions, sqsError } from './sqs-client.js'

/** How {@link createQueues} names and sets up the queues. */
export interface CreateQueuesOptions extends SqsClientOptions {
  /**
   * The queue's name (letters, digits, `-` and `_`; `.fifo` is added for a
   * FIFO queue when missing). The dead-letter queue is named after it, with `-dead-letter`.
   */
  readonly name: string
  /** Whether the queues are FIFO queues (default true, which `sqsRepublisher` requires). */
  readonly fifo?: boolean
  /** The queue's default visibility timeout in seconds (SQS's default, 30, when not given). */
  readonly visibilityTimeoutSeconds?: number
  /**
   * When given, SQS itself moves a message to the dead-letter queue after this
   * many receives (a redrive policy): a backstop for messages that keep
   * failing without a verdict, such as one that crashes the consumer each time.
   */
  readonly maxReceiveCount?: number
}

/** The URLs of a queue and of its dead-letter queue. */
export interface Queues {
  /** The queue a relay publishes to, and a republisher receives from. */
  readonly queueUrl: string
  /** The queue that messages which cannot be processed go to. */
  readonly deadLetterQueueUrl: string
}

// SQS queue names: letters, digits, - and _, up to 80 characters with the `.fifo` suffix of a FIFO queue.
const QUEUE_NAME = /^[A-Za-z0-9_-]+$/
const MAX_NAME_LENGTH = 80
const DEAD_LETTER = '-dead-letter'
const FIFO = '.fifo'

/**
 * Creates a queue for a relay and its dead-letter queue, or returns the URLs
 * of those that exist already with the same settings.
 *
 * @throws ProgrammingError for an invalid name or option; OperationalError
 * naming the queue when SQS cannot be reached, or a queue of that name
 * exists with other settings.
 * @example
 * ```ts
 * const { queueUrl, deadLetterQueueUrl } = await createQueues({ name: 'orders', endpoint: 'http://127.0.0.1:4566' })
 * ```
 */
export async function createQueues(options: CreateQueuesOptions): Promise<Queues> {
  checkClientOptions(options)
  const fifo = options.fifo ?? true
  const base = fifo && options.name?.endsWith(FIFO) ? options.name.slice(0, -FIFO.length) : options.name
  const suffix = fifo ? FIFO : ''
  const longest = MAX_NAME_LENGTH - DEAD_LETTER.length - suffix.length
  if (typeof base !== 'string' || !QUEUE_NAME.test(base) || base.length > longest) {
    throw new ProgrammingError(
      `Invalid queue name ${JSON.stringify(options.name)}: use letters, digits, - and _, ` +
        `at most ${longest} characters${fifo ? ' before .fifo' : ''}`,
    )
  }
  const attributes: Record<string, string> = fifo ? { FifoQueue: 'true' } : {}
  if (options.visibilityTimeoutSeconds !== undefined) {
    const seconds = integerOption('visibilityTimeoutSeconds', options.visibilityTimeoutSeconds, 0, 43_200)
    attributes.VisibilityTimeout = String(seconds)
  }
  const maxReceiveCount =
    options.maxReceiveCount === undefined
      ? undefined
      : integerOption('maxReceiveCount', options.maxReceiveCount, 1, 1000)
  const connection = await connect(options)()
  const { sdk, client } = connection
  const create = async (name: string, queueAttributes: Record<string, string>): Promise<string> => {
    try {
      const result = await client.send(new sdk.CreateQueueCommand({ QueueName: name, Attributes: queueAttributes }))
      return result.QueueUrl!
    } catch (error) {
      throw sqsError('CreateQueue', name, error)
    }
  }
  try {
    const deadLetterQueueUrl = await create(`${base}${DEAD_LETTER}${suffix}`, fifo ? { FifoQueue: 'true' } : {})
    if (maxReceiveCount !== undefined) {
      let arn: string | undefined
      try {
        const result = await client.send(
          new sdk.GetQueueAttributesCommand({ QueueUrl: deadLetterQueueUrl, AttributeNames: ['QueueArn'] }),
        )
        arn = result.Attributes?.QueueArn
      } catch (error) {
        throw sqsError('GetQueueAttributes', deadLetterQueueUrl, error)
      }
      attributes.RedrivePolicy = JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount })
    }
    const queueUrl = await create(`${base}${suffix}`, attributes)
    return { queueUrl, deadLetterQueueUrl }
  } finally {
    connection.destroy()
  }
}
