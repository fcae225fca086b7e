// 10,000 events of an application relayed to an SQS FIFO queue (fauxqs) and
// republished into a follower with storage of its own: each takes effect
// exactly once, counted from the follower's log.

import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Relay, Republisher } from '../../src/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { sqsPublisher } from '../../src/sqs/index.js'
import { tempDir } from '../fixtures/temp.js'
import { CountingHandler, countMarks, drain, Marks, Sensors, until, useFauxqs } from './fixtures.js'

const fauxqs = useFauxqs()

describe('relaying through SQS', () => {
  it('delivers 10,000 events, half recorded before the relay started and half while it ran, each exactly once', async () => {
    const dir = tempDir('es-sqs-')
    const { queueUrl, deadLetterQueueUrl } = await fauxqs.queues()
    await using sensors = new Sensors({ persistence: sqlite({ path: join(dir, 'sensors.db') }) })
    await using marks = new Marks({ persistence: sqlite({ path: join(dir, 'marks.db') }) })
    // 1,000 sensors of 5 events each before the relay starts.
    await sensors.installSensors(1000, 5)

    await using publisher = sqsPublisher({ queueUrl, ...fauxqs.connection })
    await using relay = new Relay({
      upstream: sensors,
      publisher,
      positions: sqliteProjectionStore({ path: join(dir, 'relay.db'), name: 'relay' }),
    })
    const handler = new CountingHandler(new Republisher({ follower: marks }))
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
    })
    await relay.start()
    await consumer.start()
    // And 1,000 more while the relay and the consumer run.
    const last = await sensors.installSensors(1000, 5, 50)
    expect(last).toBe(10_000)

    await until(async () => handler.verdicts.processed, 10_000, 100_000, 'the events')
    await relay.waitFor(last)
    await consumer.stop()
    await relay.stop()

    expect(await countMarks(marks)).toEqual({ marks: 10_000, distinct: 10_000 })
    expect(handler.verdicts).toEqual({ processed: 10_000, duplicate: 0, skipped: 0, 'dead-letter': 0 })
    expect(consumer.status()).toMatchObject({ state: 'stopped', processed: 10_000, deadLettered: 0 })
    expect(await drain(fauxqs.client, deadLetterQueueUrl, 0)).toEqual([])
    expect(await drain(fauxqs.client, queueUrl, 0)).toEqual([])
    // About 15 s on 2 idle cores; more on a busy machine.
  }, 120_000)
})
