// The SQS consumer against fauxqs: dead-lettering of malformed messages,
// redelivery after a visibility timeout, visibility extension for slow
// handlers, messages left for later when the follower's database is down, and
// its start and stop.

import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs'
import { describe, expect, it } from 'vitest'
import {
  encodeMessage,
  MESSAGE_FORMAT,
  OperationalError,
  ProgrammingError,
  Relay,
  Republisher,
} from '../../src/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import {
  ERROR_ATTRIBUTE,
  type MessageHandler,
  SOURCE_QUEUE_ATTRIBUTE,
  sqsPublisher,
  sqsRepublisher,
} from '../../src/sqs/index.js'
import { tempDir } from '../fixtures/temp.js'
import {
  CountingHandler,
  countMarks,
  drain,
  Marks,
  ReadingMarks,
  Sensors,
  sendRaw,
  until,
  useFauxqs,
} from './fixtures.js'

const fauxqs = useFauxqs()

/** Sensors and Marks on SQLite files of a fresh directory, with a queue, its dead-letter queue, and a relay to it. */
async function setUp(queueOptions: { visibilityTimeoutSeconds?: number } = {}) {
  const dir = tempDir('es-sqs-')
  const queues = await fauxqs.queues(queueOptions)
  const sensors = new Sensors({ persistence: sqlite({ path: join(dir, 'sensors.db') }) })
  const marks = new Marks({ persistence: sqlite({ path: join(dir, 'marks.db') }) })
  const publisher = sqsPublisher({ queueUrl: queues.queueUrl, ...fauxqs.connection })
  const relay = new Relay({
    upstream: sensors,
    publisher,
    positions: sqliteProjectionStore({ path: join(dir, 'relay.db'), name: 'relay' }),
  })
  return {
    ...queues,
    sensors,
    marks,
    relay,
    /** Records events and waits until the relay has published them; returns the last notification id. */
    async publish(count: number, events: number): Promise<number> {
      const last = await sensors.installSensors(count, events)
      await relay.start()
      await relay.waitFor(last)
      await relay.stop()
      return last
    },
    async [Symbol.asyncDispose]() {
      await relay.stop()
      await publisher.close()
      await sensors.close()
      await marks.close()
    },
  }
}

/** A relayed message whose state no mapper can read, of an unknown topic, and so on. */
function message(overrides: Record<string, unknown>): string {
  const body = JSON.parse(
    encodeMessage(
      'Sensors',
      {
        id: 1,
        originatorId: 'sensor-x',
        originatorVersion: 1,
        topic: 'sqs-test:Sensor.Installed',
        state: new Uint8Array(),
      },
      'application/json',
    ),
  )
  return JSON.stringify({ ...body, ...overrides })
}

describe('an SQS republisher', () => {
  it('sends malformed messages to the dead-letter queue with the reason, and goes on with the others', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    const malformed = {
      'not-json': 'this is not JSON',
      'other-format': message({ format: 'eventsourcing.notification/2' }),
      'unknown-topic': message({ topic: 'sqs-test:Sensor.Exploded', state: Buffer.from('{}').toString('base64') }),
    }
    for (const [group, body] of Object.entries(malformed)) await sendRaw(fauxqs.client, queueUrl, body, group)
    await setup.publish(20, 3)
    const handler = new CountingHandler(new Republisher({ follower: marks, retryDelayMs: 1 }))
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
    })
    await consumer.start()
    await until(async () => handler.verdicts.processed, 60, 20_000, 'the events')
    await until(async () => consumer.status().deadLettered, 3, 10_000, 'the dead-lettered messages')
    await consumer.stop()

    expect(consumer.status()).toMatchObject({ state: 'stopped', processed: 60, deadLettered: 3, duplicates: 0 })
    const dead = await drain(fauxqs.client, deadLetterQueueUrl)
    const reasons = Object.fromEntries(dead.map((m) => [m.Body, m.MessageAttributes?.[ERROR_ATTRIBUTE]?.StringValue]))
    expect(Object.keys(reasons).sort()).toEqual(Object.values(malformed).sort())
    expect(reasons[malformed['not-json']]).toMatch(/^The message is not JSON: "this is not JSON"/)
    expect(reasons[malformed['other-format']]).toContain(
      `format is "eventsourcing.notification/2", not ${MESSAGE_FORMAT}`,
    )
    expect(reasons[malformed['unknown-topic']]).toMatch(
      /^Marks could not process notification 1 of Sensors \(topic 'sqs-test:Sensor.Exploded'\): .*sqs-test:Sensor.Exploded/,
    )
    for (const m of dead) {
      expect(m.MessageAttributes?.[SOURCE_QUEUE_ATTRIBUTE]?.StringValue).toBe(queueUrl)
      // The dead-letter queue is a FIFO queue: a message keeps its group.
      expect(Object.keys(malformed)).toContain(m.Attributes?.MessageGroupId)
    }
    expect(await countMarks(marks)).toEqual({ marks: 60, distinct: 60 })
  })

  it("hands each receive's messages to the follower as one transaction, and dead-letters only the one that keeps failing", async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks, sensors } = setup
    await setup.publish(20, 3)
    const [, , broken] = await sensors.notificationLog.select({ limit: 3 })
    marks.broken.add(`${broken!.originatorId}/${broken!.originatorVersion}`)
    const handler = new CountingHandler(new Republisher({ follower: marks, retryDelayMs: 1 }))
    await using consumer = fauxqs.consumer({ queueUrl, deadLetterQueueUrl, republisher: handler })
    await consumer.start()
    await until(async () => consumer.status().deadLettered, 1, 20_000, 'the dead-lettered message')
    await until(async () => handler.verdicts.processed, 59, 20_000, 'the others')
    await consumer.stop()

    expect(consumer.status()).toMatchObject({ processed: 59, deadLettered: 1, duplicates: 0, released: 0 })
    // Receives of several messages, each handed over whole, and committed in fewer transactions than messages.
    expect(Math.max(...handler.batches)).toBeGreaterThan(1)
    expect(marks.writes.length).toBeLessThan(59)
    expect(marks.writes.reduce((sum, saved) => sum + saved, 0)).toBe(59)
    expect(await countMarks(marks)).toEqual({ marks: 59, distinct: 59 })
    const dead = await drain(fauxqs.client, deadLetterQueueUrl)
    expect(dead.map((m) => m.MessageAttributes?.[ERROR_ATTRIBUTE]?.StringValue)).toEqual([
      `Marks could not process notification ${broken!.id} of Sensors (topic '${broken!.topic}') after 3 attempts: The test breaks ${broken!.originatorId}/${broken!.originatorVersion}`,
    ])
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
  })

  it('deletes the messages of topics the follower does not follow, as skipped', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl } = setup
    await setup.publish(5, 3)
    await using readings = new ReadingMarks({ persistence: sqlite({ path: join(tempDir('es-sqs-'), 'readings.db') }) })
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: new Republisher({ follower: readings }),
    })
    await consumer.start()
    await until(async () => consumer.status().processed + consumer.status().skipped, 15, 20_000, 'the messages')
    await consumer.stop()
    // Each sensor's Installed event is skipped, and its two readings are processed.
    expect(consumer.status()).toMatchObject({ processed: 10, skipped: 5, duplicates: 0, deadLettered: 0 })
    expect(await countMarks(readings)).toEqual({ marks: 10, distinct: 10 })
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
  })

  it('drops a message received again after its visibility timeout, when a consumer processed it but stopped before deleting it', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await setup.publish(50, 2)
    const republisher = new Republisher({ follower: marks })

    // A consumer that processes what it receives, commits, and "crashes" before deleting anything.
    const { Messages: first = [] } = await fauxqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 1 }),
    )
    expect(first.length).toBeGreaterThan(0)
    for (const m of first) expect(await republisher.handle(m.Body!)).toEqual({ outcome: 'processed' })

    const handler = new CountingHandler(republisher)
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
    })
    await consumer.start()
    await until(async () => handler.verdicts.processed + handler.verdicts.duplicate, 100, 20_000, 'the messages')
    await consumer.stop()

    // Those received before came back once their visibility timeout ended, and were dropped.
    expect(handler.verdicts).toEqual({
      processed: 100 - first.length,
      duplicate: first.length,
      skipped: 0,
      'dead-letter': 0,
    })
    for (const m of first) expect(handler.calls.get(m.Body!)).toBe(1)
    expect(await countMarks(marks)).toEqual({ marks: 100, distinct: 100 })
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
  })

  it('drops a message received again while a handler slower than the visibility timeout still works on it', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await setup.publish(4, 1)
    const handler = new CountingHandler(new Republisher({ follower: marks }))
    // The first message handled commits, then takes 2.5 s more to return: past its 1 s visibility timeout.
    let slow: string | undefined
    handler.after = (body) => {
      slow ??= body
      return body === slow && handler.calls.get(body) === 1 ? delay(2500) : undefined
    }
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
      visibilityTimeoutSeconds: 1,
      extendVisibility: false,
      maxMessages: 1,
      concurrency: 2,
    })
    await consumer.start()
    await until(async () => handler.verdicts.processed, 4, 20_000, 'the messages')
    await until(async () => handler.calls.get(slow!) ?? 0, 2, 20_000, 'the slow message again')
    await consumer.stop()

    // The other loop received it again meanwhile (and the next one, held by the slow loop), and dropped it.
    expect(handler.verdicts).toMatchObject({ processed: 4, 'dead-letter': 0 })
    expect(handler.verdicts.duplicate).toBeGreaterThanOrEqual(1)
    expect(await countMarks(marks)).toEqual({ marks: 4, distinct: 4 })
  })

  it('keeps a message hidden while a slow handler works on it, when extending its visibility', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await setup.publish(2, 1)
    const handler = new CountingHandler(new Republisher({ follower: marks }))
    // Each message takes 2.5 s, while its visibility timeout is 1 s.
    handler.before = () => delay(2500)
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
      visibilityTimeoutSeconds: 1,
      maxMessages: 1,
      // A loop is free to receive a message of the others again, if it became visible.
      concurrency: 3,
    })
    await consumer.start()
    await until(async () => handler.verdicts.processed, 2, 30_000, 'the messages')
    await consumer.stop()

    expect([...handler.calls.values()]).toEqual([1, 1])
    expect(consumer.status()).toMatchObject({ received: 2, processed: 2, duplicates: 0 })
    expect(await countMarks(marks)).toEqual({ marks: 2, distinct: 2 })
  })

  it('leaves a message in the queue while the follower cannot reach its database, and processes it once it can', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await setup.publish(5, 2)
    const handler = new CountingHandler(new Republisher({ follower: marks }))
    let outage = 3
    handler.before = () => {
      if (outage-- > 0) throw new OperationalError('the database is down')
    }
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
      retryDelayMs: 10,
    })
    await consumer.start()
    await until(async () => handler.verdicts.processed, 10, 20_000, 'the messages')
    await consumer.stop()

    // Each failed batch went back to the queue whole.
    const released = handler.batches.slice(0, 3).reduce((sum, size) => sum + size, 0)
    expect(consumer.status()).toMatchObject({ state: 'stopped', processed: 10, duplicates: 0, released })
    expect(consumer.status().lastError?.message).toBe('the database is down')
    expect(await countMarks(marks)).toEqual({ marks: 10, distinct: 10 })
  })

  it('retries when SQS fails for a while', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await setup.publish(5, 2)
    // A client whose first two requests of each kind fail as a server fault would.
    const client = new SQSClient(fauxqs.connection)
    const calls = new Map<string, number>()
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const call = (calls.get(context.commandName!) ?? 0) + 1
        calls.set(context.commandName!, call)
        if (context.commandName !== 'GetQueueAttributesCommand' && call <= 2) {
          throw Object.assign(new Error('We encountered an internal error'), {
            name: 'InternalError',
            $fault: 'server',
          })
        }
        return next(args)
      },
      { step: 'initialize' },
    )
    await using consumer = sqsRepublisher({
      queueUrl,
      deadLetterQueueUrl,
      republisher: new Republisher({ follower: marks }),
      waitTimeSeconds: 1,
      retryDelayMs: 1,
      client,
    })
    await consumer.start()
    await until(async () => consumer.status().processed, 10, 20_000, 'the messages')
    await consumer.stop()
    expect(consumer.status()).toMatchObject({ state: 'stopped', processed: 10, duplicates: 0 })
    expect(consumer.status().retries).toBeGreaterThanOrEqual(2)
    expect(consumer.status().lastError?.message).toMatch(
      / on .*\.fifo failed \(InternalError: We encountered an internal error\)$/,
    )
    expect(await countMarks(marks)).toEqual({ marks: 10, distinct: 10 })
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
    client.destroy()
  })

  it('stops, leaving the message in the queue, when the handler throws something unexpected', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl } = setup
    await setup.publish(1, 1)
    const failure = new TypeError('a bug')
    const errors: Error[] = []
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: {
        handleBatch: async () => {
          throw failure
        },
      },
    })
    consumer.on('republisherError', (error) => errors.push(error))
    await consumer.start()
    await until(async () => errors.length, 1, 10_000, 'the error')
    expect(consumer.status()).toMatchObject({ state: 'failed', error: failure, received: 1, released: 1 })
    expect(await drain(fauxqs.client, queueUrl)).toHaveLength(1)
  })

  it('stops at once while waiting for messages, and can start again', async () => {
    await using setup = await setUp()
    const { queueUrl, deadLetterQueueUrl, marks } = setup
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: new Republisher({ follower: marks }),
      // The library's default long poll, which stop() aborts.
      waitTimeSeconds: 20,
      // A receive aborted by stop() may still take messages at the server: they come back after this.
      visibilityTimeoutSeconds: 1,
    })
    await consumer.start()
    await expect(consumer.start()).rejects.toThrow(ProgrammingError)
    await delay(100)
    // The long poll (20 s) is aborted.
    const stopped = await Promise.race([consumer.stop().then(() => true), delay(10_000).then(() => false)])
    expect(stopped).toBe(true)
    expect(consumer.status().state).toBe('stopped')
    await setup.publish(2, 1)
    await consumer.start()
    await until(async () => consumer.status().processed, 2, 10_000, 'the messages')
  })

  it('refuses a standard queue, and names a queue that does not exist', async () => {
    const { queueUrl, deadLetterQueueUrl } = await fauxqs.queues({ fifo: false })
    const republisher = {
      handleBatch: async (bodies: readonly string[]) => bodies.map(() => ({ outcome: 'processed' as const })),
    }
    await using standard = sqsRepublisher({ queueUrl, deadLetterQueueUrl, republisher, ...fauxqs.connection })
    await expect(standard.start()).rejects.toThrow(
      new ProgrammingError(
        `${queueUrl} is not a FIFO queue: a standard queue may deliver an aggregate's events out of order, ` +
          'and the republisher would drop the earlier as a duplicate of the later; relay to a FIFO queue (a name ending in .fifo)',
      ),
    )
    const missing = `${fauxqs.endpoint}/000000000000/missing.fifo`
    await using consumer = fauxqs.consumer({
      queueUrl: missing,
      deadLetterQueueUrl,
      republisher,
      waitTimeSeconds: 20, // the library's default
    })
    const error = await consumer.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as Error).message).toMatch(
      `SQS GetQueueAttributes on ${missing} failed (QueueDoesNotExist: The specified queue does not exist.): create it (see createQueues)`,
    )
  })

  it('checks its options', () => {
    const republisher = {
      handleBatch: async (bodies: readonly string[]) => bodies.map(() => ({ outcome: 'processed' as const })),
    }
    const queueUrl = 'http://127.0.0.1:1/000000000000/q.fifo'
    const deadLetterQueueUrl = 'http://127.0.0.1:1/000000000000/d.fifo'
    const options = { queueUrl, deadLetterQueueUrl, republisher, endpoint: 'http://127.0.0.1:1' }
    expect(() => sqsRepublisher({ ...options, queueUrl: 'orders' })).toThrow(
      /^queueUrl must be a queue URL such as https:\/\/sqs/,
    )
    expect(() => sqsRepublisher({ ...options, deadLetterQueueUrl: queueUrl })).toThrow(ProgrammingError)
    expect(() => sqsRepublisher({ ...options, waitTimeSeconds: 21 })).toThrow(
      new ProgrammingError('waitTimeSeconds must be an integer from 0 to 20, got 21'),
    )
    expect(() => sqsRepublisher({ ...options, maxMessages: 0 })).toThrow(ProgrammingError)
    expect(() => sqsRepublisher({ ...options, visibilityTimeoutSeconds: 0 })).toThrow(ProgrammingError)
    expect(() => sqsRepublisher({ ...options, republisher: undefined as unknown as MessageHandler })).toThrow(
      /needs a republisher/,
    )
    expect(() => sqsRepublisher({ ...options, client: fauxqs.client })).toThrow(
      new ProgrammingError('Give either an SQS client, or the endpoint, region and credentials to make one with'),
    )
  })
})
