// A relay to SQS in a child process is killed with SIGKILL twice while
// events flow, and restarted: it resumes from the position it recorded, and
// the follower on the other side of the queue gets every event exactly once.

import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { Republisher } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import {
  CountingHandler,
  countMarks,
  drain,
  killRelayChildren,
  Marks,
  RelayChild,
  Sensors,
  until,
  useFauxqs,
} from './fixtures.js'

const fauxqs = useFauxqs()

afterEach(async () => {
  await killRelayChildren()
})

describe('a relay to SQS killed with SIGKILL', () => {
  it('loses nothing and duplicates nothing when restarted', async () => {
    const dir = tempDir('es-sqs-crash-')
    const { queueUrl, deadLetterQueueUrl } = await fauxqs.queues()
    const env = {
      UPSTREAM_PATH: join(dir, 'sensors.db'),
      POSITIONS_PATH: join(dir, 'relay.db'),
      SQS_ENDPOINT: fauxqs.endpoint,
      QUEUE_URL: queueUrl,
    }
    await using sensors = new Sensors({ persistence: sqlite({ path: env.UPSTREAM_PATH }) })
    await using marks = new Marks({ persistence: sqlite({ path: join(dir, 'marks.db') }) })
    const handler = new CountingHandler(new Republisher({ follower: marks }))
    await using consumer = fauxqs.consumer({
      queueUrl,
      deadLetterQueueUrl,
      republisher: handler,
    })
    await consumer.start()

    // 2,000 events before the relay starts, and 2,000 more (20 saves of 100) while it runs and is killed.
    await sensors.installSensors(400, 5)
    const streaming = (async () => {
      for (let save = 0; save < 20; save++) {
        await sensors.installSensors(20, 5)
        await delay(100)
      }
    })()

    const first = new RelayChild(env)
    await first.until(1000, 30_000)
    await first.kill()
    const second = new RelayChild(env)
    await second.until(2500, 30_000)
    await second.kill()
    await streaming
    const third = new RelayChild(env)
    await third.until(4000, 30_000)

    await until(async () => handler.verdicts.processed, 4000, 30_000, 'the events')
    await third.stop()
    await consumer.stop()

    expect(first.position).toBeLessThan(2500)
    expect((await first.exited).signal).toBe('SIGKILL')
    expect((await second.exited).signal).toBe('SIGKILL')
    expect(await countMarks(marks)).toEqual({ marks: 4000, distinct: 4000 })
    expect(handler.verdicts).toMatchObject({ processed: 4000, 'dead-letter': 0 })
    expect(await drain(fauxqs.client, deadLetterQueueUrl, 0)).toEqual([])
  })
})
