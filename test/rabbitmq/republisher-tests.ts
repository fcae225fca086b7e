// The consumer: dead letters, retries after the follower's storage failed,
// two consumers of one queue, and how it fails.

import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, expect, it } from 'vitest'
import { encodeMessage, OperationalError, ProgrammingError, Republisher, uuid4 } from '../../src/index.js'
import { ERROR_HEADER, type RabbitMqRepublisher, rabbitMqRepublisher } from '../../src/rabbitmq/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { expectEachEventOnce, Receipts } from './apps.js'
import { RABBITMQ_URL } from './broker.js'
import { freshName, rawBroker } from './fixtures.js'
import { type Flow, openFlow } from './flow.js'

const cleanups: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function flow(options: { prefetch?: number } = {}): Promise<Flow> {
  const opened = await openFlow(options)
  cleanups.push(() => opened.close())
  return opened
}

/**
 * Waits until `count` messages are dead-lettered: they are counted once the
 * broker confirmed them, which may be after the other messages of their
 * batch are counted as processed.
 */
async function untilDeadLettered(consumer: RabbitMqRepublisher, count: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (consumer.status().deadLettered < count && Date.now() < deadline) await delay(20)
}

export function republisherTests(): void {
  it('moves malformed messages to the dead-letter queue with the reason, and goes on', async () => {
    const { tickets, receipts, exchange, deadLetterQueue, consumer, startRelay, untilProcessed } = await flow()
    await startRelay()
    await tickets.issue(5, 1)
    await untilProcessed(10, 10_000)
    const raw = await rawBroker()
    cleanups.push(() => raw.close())
    const unknownTopic = encodeMessage(
      'Elsewhere',
      {
        id: 1,
        originatorId: uuid4(),
        originatorVersion: 1,
        topic: 'relay-test:Nowhere.Happened',
        state: Buffer.from('{}'),
      },
      'application/json',
    )
    const nextVersion = JSON.stringify({ ...JSON.parse(unknownTopic), format: 'eventsourcing.notification/2' })
    await raw.publish(exchange, 'relay-test:Ticket.Issued', 'not JSON', { messageId: 'bad-1' })
    await raw.publish(exchange, 'relay-test:Ticket.Issued', nextVersion, { messageId: 'bad-2' })
    await raw.publish(exchange, 'relay-test:Nowhere.Happened', unknownTopic, { messageId: 'bad-3' })
    await tickets.issue(5, 1)
    await untilProcessed(20, 10_000)
    await untilDeadLettered(consumer, 3)
    expect(consumer.status()).toMatchObject({ state: 'running', processed: 20, deadLettered: 3 })
    const dead = await raw.drain(deadLetterQueue)
    expect(dead.map((message) => message.properties.messageId)).toEqual(['bad-1', 'bad-2', 'bad-3'])
    expect(dead.map((message) => message.content.toString())).toEqual(['not JSON', nextVersion, unknownTopic])
    const reasons = dead.map((message) => String(message.properties.headers?.[ERROR_HEADER]))
    expect(reasons[0]).toMatch(/^The message is not JSON: "not JSON"/)
    expect(reasons[1]).toMatch(/format is "eventsourcing.notification\/2", not eventsourcing.notification\/1/)
    expect(reasons[2]).toMatch(
      /Receipts could not process notification 1 of Elsewhere \(topic 'relay-test:Nowhere.Happened'\)/,
    )
    expect(dead[2]!.properties.headers).toMatchObject({
      'x-eventsourcing-exchange': exchange,
      'x-eventsourcing-routing-key': 'relay-test:Nowhere.Happened',
    })
    await expectEachEventOnce(tickets, receipts)
  })

  it('hands the messages in hand to the follower in batches, one transaction each, and drops a batch delivered again as duplicates', async () => {
    const { tickets, receipts, exchange, consumer, startRelay, untilProcessed } = await flow()
    await tickets.issue(20, 9)
    await startRelay()
    await untilProcessed(200, 20_000)
    // Fewer transactions than messages, some of several messages, and every message in one of them.
    expect(receipts.writes.length).toBeLessThan(200)
    expect(Math.max(...receipts.writes)).toBeGreaterThan(1)
    expect(receipts.writes.reduce((sum, saved) => sum + saved, 0)).toBe(200)
    const writes = receipts.writes.length
    // The same 200 messages again, as a broker redelivers them: all dropped, nothing written.
    const raw = await rawBroker()
    cleanups.push(() => raw.close())
    const notifications = await tickets.notificationLog.select({ limit: 200 })
    for (const notification of notifications) {
      const body = encodeMessage('Tickets', notification, 'application/json')
      await raw.publish(exchange, notification.topic, body, { messageId: `Tickets:${notification.id}` })
    }
    const deadline = Date.now() + 10_000
    while (consumer.status().duplicates < 200 && Date.now() < deadline) await delay(20)
    expect(consumer.status()).toMatchObject({ state: 'running', processed: 200, duplicates: 200, deadLettered: 0 })
    expect(receipts.writes).toHaveLength(writes)
    await expectEachEventOnce(tickets, receipts)
  })

  it("gives messages back when the follower's storage fails, and processes them later, in order", async () => {
    const { tickets, receipts, consumer, startRelay, untilProcessed } = await flow({ prefetch: 20 })
    await tickets.issue(20, 9)
    const events = await tickets.notificationLog.select({ limit: 200 })
    // Three failures of the 51st event, while the ones behind it are prefetched already.
    const failing = events[50]!
    receipts.failures.set(`${failing.originatorId}/${failing.originatorVersion}`, 3)
    await startRelay()
    await untilProcessed(200, 20_000)
    expect(consumer.status()).toMatchObject({ state: 'running', processed: 200, deadLettered: 0 })
    expect(receipts.failures.get(`${failing.originatorId}/${failing.originatorVersion}`)).toBe(0)
    await expectEachEventOnce(tickets, receipts)
  })

  it('moves a message whose processing keeps failing to the dead-letter queue, after the attempts', async () => {
    const { tickets, receipts, deadLetterQueue, consumer, startRelay, untilProcessed } = await flow()
    await tickets.issue(3, 2)
    const [, broken] = await tickets.notificationLog.select({ limit: 9 })
    receipts.broken.add(`${broken!.originatorId}/${broken!.originatorVersion}`)
    await startRelay()
    await untilProcessed(8, 10_000)
    await untilDeadLettered(consumer, 1)
    expect(consumer.status()).toMatchObject({ state: 'running', processed: 8, deadLettered: 1 })
    // The others took effect, each once, whether in the batch that held the broken one or not.
    expect(receipts.writes.reduce((sum, saved) => sum + saved, 0)).toBe(8)
    expect((await receipts.notificationLog.select({ limit: 100 })).length).toBe(8)
    const raw = await rawBroker()
    cleanups.push(() => raw.close())
    const [dead, ...more] = await raw.drain(deadLetterQueue)
    expect(more).toEqual([])
    expect(dead!.properties.messageId).toBe(`Tickets:${broken!.id}`)
    expect(String(dead!.properties.headers?.[ERROR_HEADER])).toBe(
      `Receipts could not process notification ${broken!.id} of Tickets (topic 'relay-test:Ticket.Stamped') after 3 attempts: The test breaks ${broken!.originatorId}/2`,
    )
  })

  it('lets two consumers of one queue take turns: the second takes over when the first stops', async () => {
    const { tickets, receipts, receiptsPath, queue, exchange, consumer, startRelay, untilProcessed } = await flow({
      prefetch: 10,
    })
    // Another process's follower: another instance on the same database.
    const follower = new Receipts({ persistence: sqlite({ path: receiptsPath }) })
    const takeover = rabbitMqRepublisher({
      url: RABBITMQ_URL,
      exchange,
      queue,
      prefetch: 10,
      republisher: new Republisher({ follower }),
    })
    cleanups.push(
      () => follower.close(),
      () => takeover.close(),
    )
    await takeover.start()
    await startRelay()
    await tickets.stream(1000, 5)
    await untilProcessed(300, 20_000)
    expect(takeover.status().processed).toBe(0)
    await consumer.stop()
    expect(consumer.status().state).toBe('stopped')
    const first = consumer.status().processed
    const deadline = Date.now() + 20_000
    while (first + takeover.status().processed < 1000 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(takeover.status()).toMatchObject({ state: 'running', processed: 1000 - first })
    await expectEachEventOnce(tickets, receipts)
  })

  it('fails to start with OperationalError naming the broker when it cannot be reached', async () => {
    const consumer = rabbitMqRepublisher({
      url: 'amqp://guest:guest@127.0.0.1:1/tests',
      exchange: 'x',
      queue: 'q',
      timeoutMs: 300,
      republisher: { handleBatch: async (bodies) => bodies.map(() => ({ outcome: 'processed' as const })) },
    })
    const error = await consumer.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as Error).message).toMatch(/^RabbitMQ at 127\.0\.0\.1:1\/tests cannot be reached/)
    expect(consumer.status().state).toBe('stopped')
    await consumer.stop()
  })

  it('fails to start with ProgrammingError when the queue exists with other settings', async () => {
    const raw = await rawBroker()
    const queue = freshName()
    const exchange = freshName()
    cleanups.push(async () => {
      await raw.remove({ exchanges: [exchange], queues: [queue, `${queue}.dead-letter`] })
      await raw.close()
    })
    await raw.channel.assertQueue(queue, { durable: true })
    await using consumer = rabbitMqRepublisher({
      url: RABBITMQ_URL,
      exchange,
      queue,
      republisher: { handleBatch: async (bodies) => bodies.map(() => ({ outcome: 'processed' as const })) },
    })
    const error = await consumer.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProgrammingError)
    expect((error as Error).message).toMatch(/declared with other settings.*x-single-active-consumer/)
  })

  it('rejects bad options with ProgrammingError', async () => {
    const options = {
      url: RABBITMQ_URL,
      exchange: 'x',
      queue: 'q',
      republisher: {
        handleBatch: async (bodies: readonly unknown[]) => bodies.map(() => ({ outcome: 'processed' as const })),
      },
    }
    expect(() => rabbitMqRepublisher({ ...options, queue: 'a queue' })).toThrow(/Invalid queue name "a queue"/)
    expect(() => rabbitMqRepublisher({ ...options, deadLetterQueue: 'q' })).toThrow(/must not be the queue itself/)
    expect(() => rabbitMqRepublisher({ ...options, bindings: [] })).toThrow(/bindings must be routing key patterns/)
    expect(() => rabbitMqRepublisher({ ...options, prefetch: 0 })).toThrow(/prefetch must be a positive integer/)
    expect(() => rabbitMqRepublisher({ ...options, retryDelayMs: 1.5 })).toThrow(/retryDelayMs must be/)
    const closed = rabbitMqRepublisher(options)
    await closed.close()
    await expect(closed.start()).rejects.toThrow(/is closed/)
  })
}
