// A child process that relays the Sensors application's log (an SQLite file)
// to an SQS queue, for the crash test; start it with `new RelayChild(env)`
// (fixtures.ts). It sends `started`, then `progress` with the relay's position
// whenever it moves. SIGTERM, or losing the parent, stops it.

import { Relay } from '../../src/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { sqsPublisher } from '../../src/sqs/index.js'
import { credentials, type RelayChildMessage, Sensors } from './fixtures.js'

function send(message: RelayChildMessage): void {
  if (process.connected) process.send?.(message)
}

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const sensors = new Sensors({ persistence: sqlite({ path: env('UPSTREAM_PATH'), pollMs: 20 }) })
const publisher = sqsPublisher({
  queueUrl: env('QUEUE_URL'),
  endpoint: env('SQS_ENDPOINT'),
  region: 'us-east-1',
  credentials,
})
const relay = new Relay({
  upstream: sensors,
  publisher,
  positions: sqliteProjectionStore({ path: env('POSITIONS_PATH'), name: 'relay' }),
})

let last = 0
const reporter = setInterval(() => {
  const position = relay.status().positions[sensors.name] ?? 0
  if (position !== last) send({ type: 'progress', position })
  last = position
}, 5)

relay.on('followerError', (error) => {
  console.error(error)
  process.exit(1)
})

async function exit(): Promise<void> {
  clearInterval(reporter)
  await relay.stop()
  await publisher.close()
  await sensors.close()
  process.exit(0)
}

process.on('SIGTERM', () => void exit())
process.on('disconnect', () => void exit())

await relay.start()
send({ type: 'started' })
