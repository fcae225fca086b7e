// The SQS publisher and createQueues against fauxqs: batching, order per
// message group, retries of what SQS did not take, and typed errors.

import {
  GetQueueAttributesCommand,
  type SendMessageBatchCommandInput,
  type SendMessageBatchCommandOutput,
  SQSClient,
} from '@aws-sdk/client-sqs'
import { describe, expect, it } from 'vitest'
import { OperationalError, type OutgoingMessage, ProgrammingError } from '../../src/index.js'
import { createQueues, sqsPublisher, TOPIC_ATTRIBUTE } from '../../src/sqs/index.js'
import { sqsId } from '../../src/sqs/sqs-publisher.js'
import { credentials, drain, useFauxqs } from './fixtures.js'

const fauxqs = useFauxqs()

/** `count` messages spread over `groups` groups in turn, numbered from 1. */
function messages(count: number, groups: number, bodyBytes = 10): OutgoingMessage[] {
  return Array.from({ length: count }, (_, index) => ({
    body: JSON.stringify({ n: index + 1, pad: 'x'.repeat(bodyBytes) }),
    topic: `test:Event${index % 3}`,
    groupId: `group-${index % groups}`,
    deduplicationId: `App:${index + 1}`,
  }))
}

/**
 * An SDK client of the emulator that records the SendMessageBatch requests,
 * and lets a test change what SQS answers (to make entries fail).
 */
function recordingClient(
  answer: (input: SendMessageBatchCommandInput, output: SendMessageBatchCommandOutput, call: number) => void = () => {},
) {
  const client = new SQSClient(fauxqs.connection)
  const requests: SendMessageBatchCommandInput[] = []
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args)
      if (context.commandName === 'SendMessageBatchCommand') {
        const input = args.input as SendMessageBatchCommandInput
        requests.push(input)
        answer(input, result.output as SendMessageBatchCommandOutput, requests.length)
      }
      return result
    },
    { step: 'initialize' },
  )
  return { client, requests }
}

/** The numbers of the messages received, per group, in the order received. */
function numbersByGroup(received: { Body?: string; Attributes?: Partial<Record<string, string>> }[]) {
  const groups: Record<string, number[]> = {}
  for (const message of received) {
    const group = message.Attributes?.MessageGroupId ?? 'none'
    groups[group] = [...(groups[group] ?? []), JSON.parse(message.Body!).n]
  }
  return groups
}

describe('an SQS publisher', () => {
  it('sends to a FIFO queue with the group and deduplication ids, one message per group in a request', async () => {
    const { queueUrl } = await fauxqs.queues()
    const { client, requests } = recordingClient()
    await using publisher = sqsPublisher({ queueUrl, client })
    const sent = messages(45, 15)
    await publisher.publish(sent)
    // 15 groups of 3 messages: three rounds of 15 first messages, in requests of 10 and 5.
    expect(requests.map((request) => request.Entries!.length)).toEqual([10, 5, 10, 5, 10, 5])
    for (const request of requests) {
      const groups = request.Entries!.map((entry) => entry.MessageGroupId)
      expect(new Set(groups).size).toBe(groups.length)
    }

    const received = await drain(fauxqs.client, queueUrl)
    expect(received).toHaveLength(45)
    const byGroup = numbersByGroup(received)
    expect(byGroup['group-0']).toEqual([1, 16, 31])
    expect(byGroup['group-14']).toEqual([15, 30, 45])
    const first = received.find((message) => JSON.parse(message.Body!).n === 1)!
    expect(first.Attributes).toMatchObject({ MessageGroupId: 'group-0', MessageDeduplicationId: 'App:1' })
    expect(first.MessageAttributes?.[TOPIC_ATTRIBUTE]).toEqual({ DataType: 'String', StringValue: 'test:Event0' })

    // Published again within the deduplication interval, they are dropped by SQS.
    await publisher.publish(sent)
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
    client.destroy()
  })

  it('hashes a group or deduplication id that SQS would refuse', async () => {
    const { queueUrl } = await fauxqs.queues()
    await using publisher = sqsPublisher({ queueUrl, ...fauxqs.connection })
    const groupId = `an id with spaces, ünïcödé and ${'x'.repeat(120)}`
    const [message] = messages(1, 1)
    await publisher.publish([{ ...message!, groupId, deduplicationId: `App:${groupId}` }])
    const [received] = await drain(fauxqs.client, queueUrl)
    expect(received?.Attributes?.MessageGroupId).toBe(sqsId(groupId))
    expect(sqsId(groupId)).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(received?.Attributes?.MessageDeduplicationId).toBe(sqsId(`App:${groupId}`))
    expect(sqsId('7c9e6679-7425-40de-944b-e07fc1f90ae7')).toBe('7c9e6679-7425-40de-944b-e07fc1f90ae7')
  })

  it('keeps the bytes of a request within maxBatchBytes, and sends a larger message alone', async () => {
    const { queueUrl } = await fauxqs.queues()
    const { client, requests } = recordingClient()
    await using publisher = sqsPublisher({ queueUrl, client, maxBatchBytes: 3000 })
    await publisher.publish([
      ...messages(6, 6, 900),
      ...messages(1, 1, 5000).map((m) => ({ ...m, groupId: 'big', deduplicationId: 'App:big' })),
    ])
    expect(requests.map((request) => request.Entries!.length)).toEqual([3, 3, 1])
    expect(await drain(fauxqs.client, queueUrl)).toHaveLength(7)
    client.destroy()
  })

  it('sends to a standard queue without group or deduplication ids', async () => {
    const { queueUrl } = await fauxqs.queues({ fifo: false })
    expect(queueUrl.endsWith('.fifo')).toBe(false)
    const { client, requests } = recordingClient()
    await using publisher = sqsPublisher({ queueUrl, client })
    expect(publisher.fifo).toBe(false)
    await publisher.publish(messages(25, 1))
    expect(requests.map((request) => request.Entries!.length)).toEqual([10, 10, 5])
    expect(requests[0]!.Entries![0]).not.toHaveProperty('MessageGroupId')
    const received = await drain(fauxqs.client, queueUrl)
    expect(received.map((message) => JSON.parse(message.Body!).n).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 25 }, (_, index) => index + 1),
    )
    client.destroy()
  })

  it('sends again what SQS did not take, keeping each group in order', async () => {
    const { queueUrl } = await fauxqs.queues()
    // SQS answers that the first entry of the first two requests failed (it was queued all the same).
    const { client, requests } = recordingClient((_input, output, call) => {
      if (call > 2) return
      const [failed, ...taken] = output.Successful!
      output.Successful = taken
      output.Failed = [{ Id: failed!.Id, SenderFault: false, Code: 'InternalError', Message: 'try again' }]
    })
    await using publisher = sqsPublisher({ queueUrl, client, retryDelayMs: 1, concurrency: 1 })
    await publisher.publish(messages(30, 15))
    // Round 1: 10 + 5 first messages, 2 of them failed; round 2: those 2 with the 13 next; round 3: the last 2.
    expect(requests.map((request) => request.Entries!.length)).toEqual([10, 5, 10, 5, 2])
    const byGroup = numbersByGroup(await drain(fauxqs.client, queueUrl))
    expect(Object.values(byGroup)).toHaveLength(15)
    for (const [group, numbers] of Object.entries(byGroup)) {
      const g = Number(group.slice('group-'.length))
      expect(numbers).toEqual([g + 1, g + 16])
    }
    client.destroy()
  })

  it('fails with an OperationalError naming the message when SQS refuses it, or keeps not taking it', async () => {
    const { queueUrl } = await fauxqs.queues()
    await using publisher = sqsPublisher({ queueUrl, ...fauxqs.connection, attempts: 2, retryDelayMs: 1 })
    const [bad] = messages(1, 1)
    const error = await publisher.publish([{ ...bad!, body: 'a\u0000b' }]).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as Error).message).toBe(
      `SQS refused message App:1 (topic 'test:Event0', group group-0) on ${queueUrl} (InvalidMessageContents: ` +
        'Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF and #xE000 to #xFFFD.)',
    )

    const { client } = recordingClient((_input, output) => {
      output.Failed = output.Successful!.map((entry) => ({ Id: entry.Id, SenderFault: false, Code: 'InternalError' }))
      output.Successful = []
    })
    await using failing = sqsPublisher({ queueUrl, client, attempts: 3, retryDelayMs: 1 })
    await expect(failing.publish(messages(1, 1))).rejects.toThrow(
      new OperationalError(
        `SQS did not take message App:1 (topic 'test:Event0', group group-0) on ${queueUrl} in 3 attempts (InternalError)`,
      ),
    )
    client.destroy()
  })

  it('fails with an OperationalError naming the queue when it does not exist or SQS cannot be reached', async () => {
    const missing = `${fauxqs.endpoint}/000000000000/missing.fifo`
    await using publisher = sqsPublisher({ queueUrl: missing, ...fauxqs.connection })
    await expect(publisher.publish(messages(1, 1))).rejects.toThrow(
      new OperationalError(
        `SQS SendMessageBatch on ${missing} failed (QueueDoesNotExist: The specified queue does not exist.): ` +
          'create it (see createQueues), or check the queue URL and the endpoint',
      ),
    )
    // Nothing listens on port 9 of the loopback interface.
    await using unreachable = sqsPublisher({
      queueUrl: 'http://127.0.0.1:9/000000000000/q.fifo',
      endpoint: 'http://127.0.0.1:9',
      credentials,
      attempts: 2,
      retryDelayMs: 1,
    })
    await expect(unreachable.publish(messages(1, 1))).rejects.toThrow(
      /^SQS did not take message App:1 .* on http:\/\/127.0.0.1:9\/000000000000\/q.fifo in 2 attempts \(.*ECONNREFUSED/,
    )
  })

  it('checks its options, and fails once closed', async () => {
    const queueUrl = 'http://127.0.0.1:9/000000000000/q.fifo'
    expect(() => sqsPublisher({ queueUrl: '' })).toThrow(ProgrammingError)
    expect(() => sqsPublisher({ queueUrl, attempts: 0 })).toThrow(
      new ProgrammingError('attempts must be an integer at least 1, got 0'),
    )
    expect(() => sqsPublisher({ queueUrl, endpoint: 'not a url' })).toThrow(/^Invalid SQS endpoint "not a url"/)
    const publisher = sqsPublisher({ queueUrl, endpoint: 'http://127.0.0.1:9', credentials })
    await publisher.publish([])
    await publisher.close()
    await expect(publisher.publish(messages(1, 1))).rejects.toThrow(
      new ProgrammingError(`The SQS publisher of ${queueUrl} is closed`),
    )
  })
})

describe('createQueues', () => {
  it('creates a FIFO queue and its dead-letter queue, again with the same result, and a redrive policy on request', async () => {
    const created = await createQueues({ name: 'orders', ...fauxqs.connection })
    expect(created.queueUrl).toMatch(/\/orders\.fifo$/)
    expect(created.deadLetterQueueUrl).toMatch(/\/orders-dead-letter\.fifo$/)
    expect(await createQueues({ name: 'orders.fifo', ...fauxqs.connection })).toEqual(created)

    const redriven = await createQueues({ name: 'payments', maxReceiveCount: 5, ...fauxqs.connection })
    const { Attributes } = await fauxqs.client.send(
      new GetQueueAttributesCommand({ QueueUrl: redriven.queueUrl, AttributeNames: ['All'] }),
    )
    expect(Attributes?.FifoQueue).toBe('true')
    expect(JSON.parse(Attributes?.RedrivePolicy ?? '{}')).toEqual({
      deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:payments-dead-letter.fifo',
      maxReceiveCount: 5,
    })
  })

  it('checks the name', async () => {
    await expect(createQueues({ name: 'no spaces', ...fauxqs.connection })).rejects.toThrow(
      new ProgrammingError(
        'Invalid queue name "no spaces": use letters, digits, - and _, at most 63 characters before .fifo',
      ),
    )
    await expect(createQueues({ name: 'x'.repeat(69), fifo: false, ...fauxqs.connection })).rejects.toThrow(
      ProgrammingError,
    )
  })
})
