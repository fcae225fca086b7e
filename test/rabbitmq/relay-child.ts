// A child process that relays the Tickets log (an SQLite file) to a RabbitMQ
// exchange, for the test that kills the relay with SIGKILL. Settings come
// from the environment: SQLITE_PATH, RABBITMQ_URL and EXCHANGE. Over IPC it
// sends `started`, then its position whenever it moves. SIGTERM stops the
// relay and exits 0; a relay error is printed and exits 1; losing the parent
// stops it too, so that no child outlives its test.

import { inspect } from 'node:util'
import { Relay } from '../../src/index.js'
import { rabbitMqPublisher } from '../../src/rabbitmq/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { Tickets } from './apps.js'

/** What the child sends to its parent. */
export type RelayChildMessage = { readonly type: 'started' } | { readonly type: 'position'; readonly position: number }

const { SQLITE_PATH: path, RABBITMQ_URL: url, EXCHANGE: exchange } = process.env
if (!path || !url || !exchange) throw new Error('SQLITE_PATH, RABBITMQ_URL and EXCHANGE must be set')

function send(message: RelayChildMessage): void {
  if (process.connected) process.send?.(message)
}

const tickets = new Tickets({ persistence: sqlite({ path }) })
const publisher = rabbitMqPublisher({ url, exchange })
const relay = new Relay({ upstream: tickets, publisher, positions: sqliteProjectionStore({ path, name: 'relay' }) })

let stopping = false
async function exit(code: number): Promise<void> {
  if (stopping) return
  stopping = true
  setTimeout(() => process.exit(2), 10_000).unref()
  await relay.stop()
  await publisher.close()
  await tickets.close()
  process.exit(code)
}

relay.on('followerError', (error) => {
  console.error(`The relay failed: ${inspect(error, { depth: 5 })}`)
  void exit(1)
})
process.on('SIGTERM', () => void exit(0))
process.on('disconnect', () => void exit(0))

await relay.start()
send({ type: 'started' })
let reported = 0
setInterval(() => {
  const position = relay.status().positions[tickets.name] ?? 0
  if (position !== reported) send({ type: 'position', position })
  reported = position
}, 5)
