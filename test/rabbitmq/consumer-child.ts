// A child process that consumes a queue into Receipts (an SQLite file) and
// holds its first batch uncommitted, for the test that kills a consumer with
// SIGKILL before its commit. Settings come from the environment:
// SQLITE_PATH, RABBITMQ_URL, EXCHANGE and QUEUE. Over IPC it sends the size
// of the batch in hand once its policies run; they then wait for ever.
// Losing the parent ends it, so that no child outlives its test.

import { Republisher } from '../../src/index.js'
import { rabbitMqRepublisher } from '../../src/rabbitmq/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { Receipts } from './apps.js'

/** What the child sends to its parent: the number of messages in the batch it holds. */
export interface ConsumerChildMessage {
  readonly holding: number
}

const { SQLITE_PATH: path, RABBITMQ_URL: url, EXCHANGE: exchange, QUEUE: queue } = process.env
if (!path || !url || !exchange || !queue) throw new Error('SQLITE_PATH, RABBITMQ_URL, EXCHANGE and QUEUE must be set')

/** Receipts whose batch never reaches its commit. */
class Holding extends Receipts {
  protected override recordChanges(): never {
    throw new Error('unreachable: the policies wait for ever')
  }

  protected override async policy(): Promise<void> {
    await new Promise(() => {})
  }
}

const receipts = new Holding({ persistence: sqlite({ path }) })
const republisher = new Republisher({ follower: receipts })
const consumer = rabbitMqRepublisher({
  url,
  exchange,
  queue,
  republisher: {
    handleBatch(bodies) {
      if (process.connected) process.send?.({ holding: bodies.length } satisfies ConsumerChildMessage)
      return republisher.handleBatch(bodies)
    },
  },
})
process.on('disconnect', () => process.exit(0))
await consumer.start()
