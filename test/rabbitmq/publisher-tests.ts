// The publisher on its own: what it publishes, and how it fails.

import { afterEach, expect, it } from 'vitest'
import { encodeMessage, OperationalError, type OutgoingMessage, ProgrammingError, uuid4 } from '../../src/index.js'
import { rabbitMqPublisher } from '../../src/rabbitmq/index.js'
import { RABBITMQ_URL } from './broker.js'
import { freshName, type RawBroker, rawBroker } from './fixtures.js'

const cleanups: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Returns `count` messages of notifications 1, 2, ... of an application `App`, alternating two topics. */
function messages(count: number): OutgoingMessage[] {
  const originatorId = uuid4()
  return Array.from({ length: count }, (_, index) => {
    const topic = index % 2 === 0 ? 'relay-test:Ticket.Issued' : 'relay-test:Ticket.Stamped'
    const notification = { id: index + 1, originatorId, originatorVersion: index + 1, topic, state: new Uint8Array(2) }
    return {
      body: encodeMessage('App', notification, 'application/json'),
      topic,
      groupId: originatorId,
      deduplicationId: `App:${index + 1}`,
    }
  })
}

/** Opens a raw connection, and declares an exchange with a queue bound to it by `#`, all removed after the test. */
async function exchangeWithQueue(arguments_: Record<string, unknown> = {}): Promise<{
  raw: RawBroker
  exchange: string
  queue: string
}> {
  const raw = await rawBroker()
  const exchange = freshName()
  const queue = freshName()
  cleanups.push(async () => {
    await raw.remove({ exchanges: [exchange], queues: [queue] })
    await raw.close()
  })
  await raw.channel.assertExchange(exchange, 'topic', { durable: true })
  await raw.channel.assertQueue(queue, { durable: true, arguments: arguments_ })
  await raw.channel.bindQueue(queue, exchange, '#')
  return { raw, exchange, queue }
}

export function publisherTests(): void {
  it('publishes persistent messages with the topic as routing key, in order, and resolves once they are confirmed', async () => {
    const { raw, exchange, queue } = await exchangeWithQueue()
    await using publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
    const sent = messages(5)
    await publisher.publish(sent)
    // Confirmed means held: the messages are in the queue as soon as publish resolves.
    const received = await raw.drain(queue)
    expect(received.map((message) => message.content.toString())).toEqual(sent.map((message) => message.body))
    expect(received.map((message) => message.fields.routingKey)).toEqual(sent.map((message) => message.topic))
    expect(received.map((message) => message.properties.messageId)).toEqual(sent.map((m) => m.deduplicationId))
    for (const message of received) {
      expect(message.properties.deliveryMode).toBe(2)
      expect(message.properties.contentType).toBe('application/json')
    }
    await publisher.publish([])
  })

  it('fails with OperationalError naming the broker when a message is refused (a nack)', async () => {
    // A queue that holds one message and refuses the next makes the broker nack it.
    const { exchange } = await exchangeWithQueue({ 'x-max-length': 1, 'x-overflow': 'reject-publish' })
    await using publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
    const error = await publisher.publish(messages(2)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as Error).message).toMatch(/RabbitMQ at 127\.0\.0\.1:5672\/ refused message App:2/)
  })

  it('with `mandatory`, fails with OperationalError when no queue is bound for a message', async () => {
    const raw = await rawBroker()
    const exchange = freshName()
    cleanups.push(async () => {
      await raw.remove({ exchanges: [exchange] })
      await raw.close()
    })
    await using publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange, mandatory: true })
    await expect(publisher.publish(messages(1))).rejects.toThrow(
      /has no queue for message App:1 \(routing key 'relay-test:Ticket.Issued' on exchange/,
    )
    // Without it, the broker drops the message and confirms it.
    await using dropping = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
    await dropping.publish(messages(1))
  })

  it('fails with ProgrammingError when the exchange exists with another type', async () => {
    const raw = await rawBroker()
    const exchange = freshName()
    cleanups.push(async () => {
      await raw.remove({ exchanges: [exchange] })
      await raw.close()
    })
    await raw.channel.assertExchange(exchange, 'fanout', { durable: true })
    await using publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
    const error = await publisher.publish(messages(1)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProgrammingError)
    expect((error as Error).message).toMatch(/declared with other settings.*inequivalent arg 'type'/)
  })

  it('fails with OperationalError naming the broker when it cannot be reached within the timeout', async () => {
    await using publisher = rabbitMqPublisher({ url: 'amqp://guest:guest@127.0.0.1:1', exchange: 'x', timeoutMs: 300 })
    const started = Date.now()
    const error = await publisher.publish(messages(1)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as Error).message).toMatch(/^RabbitMQ at 127\.0\.0\.1:1\/ cannot be reached \(tried for 300 ms\)/)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('connects on request, declaring the exchange, and fails to connect as publishing would', async () => {
    const raw = await rawBroker()
    const exchange = freshName()
    cleanups.push(async () => {
      await raw.remove({ exchanges: [exchange] })
      await raw.close()
    })
    await using publisher = rabbitMqPublisher({ url: RABBITMQ_URL, exchange })
    await publisher.connect()
    await publisher.connect()
    // The exchange exists now: checking it on another channel does not close that channel.
    await raw.channel.checkExchange(exchange)
    await using unreachable = rabbitMqPublisher({ url: 'amqp://guest:guest@127.0.0.1:1', exchange, timeoutMs: 300 })
    await expect(unreachable.connect()).rejects.toThrow(OperationalError)
    await publisher.close()
    await expect(publisher.connect()).rejects.toThrow(/is closed/)
  })

  it('fails with ProgrammingError for bad credentials, without retrying', async () => {
    const url = new URL(RABBITMQ_URL)
    url.password = 'not-the-password'
    await using publisher = rabbitMqPublisher({ url: url.toString(), exchange: 'x' })
    const error = await publisher.publish(messages(1)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProgrammingError)
    expect((error as Error).message).toMatch(/refused the credentials/)
    expect((error as Error).message).not.toMatch(/not-the-password/)
  })

  it('rejects bad options with ProgrammingError', async () => {
    const url = RABBITMQ_URL
    expect(() => rabbitMqPublisher({ url: 'http://localhost', exchange: 'x' })).toThrow(/must start with amqp:\/\//)
    expect(() => rabbitMqPublisher({ url: 'not a url', exchange: 'x' })).toThrow(ProgrammingError)
    expect(() => rabbitMqPublisher({ url, exchange: '' })).toThrow(/Invalid exchange name ""/)
    expect(() => rabbitMqPublisher({ url, exchange: 'two words' })).toThrow(ProgrammingError)
    expect(() => rabbitMqPublisher({ url, exchange: 'amq.topic' })).toThrow(/not starting with amq\./)
    expect(() => rabbitMqPublisher({ url, exchange: 'x'.repeat(256) })).toThrow(ProgrammingError)
    expect(() => rabbitMqPublisher({ url, exchange: 'x', timeoutMs: 0 })).toThrow(/timeoutMs must be a positive/)
    const closed = rabbitMqPublisher({ url, exchange: freshName() })
    await closed.close()
    await expect(closed.publish(messages(1))).rejects.toThrow(/is closed/)
  })
}
