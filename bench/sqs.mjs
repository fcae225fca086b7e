// SQS relay benchmark: an application's events relayed to an SQS FIFO queue
// (the fauxqs emulator, in a child process on 127.0.0.1) and republished into a
// follower on SQLite, beside the AWS SDK alone sending, receiving and deleting
// the same number of messages of the same size on the same emulator, in the
// same run. Run with `npm run build && node bench/sqs.mjs`.
import { spawn } from 'node:child_process'
import { setTimeout as delay } from 'node:timers/promises'
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs'
import {
  Aggregate,
  Application,
  encodeMessage,
  memory,
  ProcessApplication,
  Relay,
  Republisher,
  uuid5,
} from 'eventsourcing'
import { sqlite, sqliteProjectionStore } from 'eventsourcing/sqlite'
import { createQueues, sqsPublisher, sqsRepublisher } from 'eventsourcing/sqs'
import { Counter, freshPath, median, removeFreshPaths } from './shared.mjs'

const RUNS = 3
const EVENTS = Number(process.env.SQS_BENCH_EVENTS ?? 10_000)
// Events per aggregate: each aggregate is a message group of the FIFO queue.
const PER_AGGREGATE = 5
const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' }
const MARKS = '3c7f3f0e-55a4-4f57-8a3b-2a4e0c2d9b61'

class Mark extends Aggregate {
  static Made = Mark.created('bench:Mark.Made')
}

/** The follower: one new aggregate per upstream event. */
class Marks extends ProcessApplication {
  static applicationName = 'Marks'
  policy(event, processing) {
    const id = uuid5(MARKS, `${event.originatorId}/${event.originatorVersion}`)
    processing.save(Mark.create(Mark.Made, {}, { id }))
  }
}

/** Starts fauxqs in a child process listening on 127.0.0.1; returns its endpoint and a function that stops it. */
async function startFauxqs() {
  const code = `
    const { buildApp } = await import('fauxqs')
    const app = buildApp({ logger: false })
    console.log(await app.listen({ port: 0, host: '127.0.0.1' }))`
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: new URL('..', import.meta.url),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const endpoint = await new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').once('data', (line) => resolve(line.trim()))
    child.once('exit', (code) => reject(new Error(`fauxqs exited with ${code}`)))
  })
  return { endpoint, stop: () => child.kill() }
}

/** An upstream application (on a fresh SQLite file by default) with EVENTS events; returns it and its notifications' message bodies. */
async function upstream(persistence = sqlite({ path: freshPath() })) {
  const app = new Application({ name: 'Upstream', persistence })
  for (let saved = 0; saved < EVENTS; saved += 100 * PER_AGGREGATE) {
    const counters = Array.from({ length: Math.min(100, (EVENTS - saved) / PER_AGGREGATE) }, () => {
      const counter = Counter.start()
      for (let i = 1; i < PER_AGGREGATE; i++) counter.add(i)
      return counter
    })
    await app.save(...counters)
  }
  const contentType = await app.notificationLog.contentType()
  const notifications = await app.notificationLog.select({ limit: EVENTS })
  const messages = notifications.map((n) => ({
    body: encodeMessage(app.name, n, contentType),
    groupId: n.originatorId,
    deduplicationId: `${app.name}:${n.id}`,
  }))
  return { app, messages }
}

let queueNumber = 0
const fresh = (connection) => createQueues({ name: `bench-${++queueNumber}`, ...connection })

async function timed(body) {
  const start = process.hrtime.bigint()
  await body()
  return EVENTS / (Number(process.hrtime.bigint() - start) / 1e9)
}

async function untilCount(count) {
  while (count() < EVENTS) await delay(2)
}

/** The relay publishing the application's log to a queue: events per second. */
async function oursPublish(connection, app, queueUrl) {
  const publisher = sqsPublisher({ queueUrl, ...connection })
  const relay = new Relay({
    upstream: app,
    publisher,
    positions: sqliteProjectionStore({ path: freshPath(), name: 'relay' }),
  })
  const rate = await timed(async () => {
    await relay.start()
    await relay.waitFor(EVENTS, { timeoutMs: 600_000 })
  })
  await relay.stop()
  await publisher.close()
  return rate
}

/** The consumer handing a queue's messages to a follower on SQLite: events per second. */
async function oursConsume(connection, queues) {
  const marks = new Marks({ persistence: sqlite({ path: freshPath() }) })
  await marks.connect()
  const consumer = sqsRepublisher({ ...queues, republisher: new Republisher({ follower: marks }), ...connection })
  const rate = await timed(async () => {
    await consumer.start()
    await untilCount(() => consumer.status().processed)
  })
  await consumer.close()
  await marks.close()
  return rate
}

/**
 * Relay and consumer at once, from a log of EVENTS events to the follower: events per second. The
 * follower is on a fresh SQLite file, or in memory (with the relay's position in an in-memory database).
 */
async function oursEndToEnd(connection, app, queues, inMemory = false) {
  const marks = new Marks({ persistence: inMemory ? memory() : sqlite({ path: freshPath() }) })
  await marks.connect()
  const publisher = sqsPublisher({ queueUrl: queues.queueUrl, ...connection })
  const positions = sqliteProjectionStore({ path: inMemory ? ':memory:' : freshPath(), name: 'relay' })
  const relay = new Relay({ upstream: app, publisher, positions })
  const consumer = sqsRepublisher({ ...queues, republisher: new Republisher({ follower: marks }), ...connection })
  const rate = await timed(async () => {
    await Promise.all([relay.start(), consumer.start()])
    await untilCount(() => consumer.status().processed)
  })
  await relay.stop()
  await consumer.close()
  await publisher.close()
  await marks.close()
  return rate
}

/**
 * The follower alone: the same bodies handed to the republisher directly, without SQS, in batches of
 * `batchSize` (10, as a receive brings them): events per second.
 */
async function followerAlone(messages, batchSize = 10) {
  const marks = new Marks({ persistence: sqlite({ path: freshPath() }) })
  await marks.connect()
  const republisher = new Republisher({ follower: marks })
  const rate = await timed(async () => {
    for (let i = 0; i < messages.length; i += batchSize) {
      await republisher.handleBatch(messages.slice(i, i + batchSize).map((message) => message.body))
    }
  })
  await marks.close()
  return rate
}

/** The SDK alone: SendMessageBatch of the messages, 10 per request in order, 4 requests at once. */
async function rawSend(client, queueUrl, messages) {
  const requests = []
  for (let i = 0; i < messages.length; i += 10) requests.push(messages.slice(i, i + 10))
  let next = 0
  const worker = async () => {
    while (next < requests.length) {
      const batch = requests[next++]
      const result = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: batch.map((m, index) => ({
            Id: String(index),
            MessageBody: m.body,
            MessageGroupId: m.groupId,
            MessageDeduplicationId: m.deduplicationId,
          })),
        }),
      )
      if (result.Failed?.length) throw new Error(`SendMessageBatch failed: ${JSON.stringify(result.Failed)}`)
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
}

/** The SDK alone: ReceiveMessage (10 at most, long polling) and DeleteMessageBatch until `count` are received. */
async function rawReceive(client, queueUrl, count) {
  let received = 0
  while (received < count) {
    const { Messages = [] } = await client.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 }),
    )
    if (Messages.length === 0) continue
    received += Messages.length
    await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: Messages.map((m, index) => ({ Id: String(index), ReceiptHandle: m.ReceiptHandle })),
      }),
    )
  }
}

const fauxqs = await startFauxqs()
const connection = { endpoint: fauxqs.endpoint, region: 'us-east-1', credentials }
const client = new SQSClient(connection)
const results = {}
const record = (line, value) => {
  results[line] ??= []
  results[line].push(value)
}

console.log(
  `Node ${process.version}; ${EVENTS.toLocaleString('en-US')} events of ${PER_AGGREGATE} per aggregate; ` +
    `fauxqs in a child process; median of ${RUNS} runs`,
)
try {
  for (let run = 0; run < RUNS; run++) {
    const { app, messages } = await upstream()
    if (run === 0) {
      const bytes = messages.reduce((sum, m) => sum + Buffer.byteLength(m.body), 0) / messages.length
      console.log(`message bodies: ${Math.round(bytes)} bytes on average`)
    }
    // Publishing, then consuming what was published: ours and the SDK's, on queues of their own.
    const ours = await fresh(connection)
    const raw = await fresh(connection)
    const publish = await oursPublish(connection, app, ours.queueUrl)
    const send = await timed(() => rawSend(client, raw.queueUrl, messages))
    const consume = await oursConsume(connection, ours)
    const receive = await timed(() => rawReceive(client, raw.queueUrl, EVENTS))
    record('publish', [publish, send])
    record('consume', [consume, receive])
    // Both at once, on fresh queues.
    const oursBoth = await fresh(connection)
    const rawBoth = await fresh(connection)
    const endToEnd = await oursEndToEnd(connection, app, oursBoth)
    const sendReceive = await timed(() =>
      Promise.all([rawSend(client, rawBoth.queueUrl, messages), rawReceive(client, rawBoth.queueUrl, EVENTS)]),
    )
    record('end to end', [endToEnd, sendReceive])
    const inMemory = await upstream(memory())
    record('end to end, memory', [await oursEndToEnd(connection, inMemory.app, await fresh(connection), true)])
    await inMemory.app.close()
    record('follower alone', [await followerAlone(messages)])
    await app.close()
    removeFreshPaths()
    console.log(
      `run ${run + 1}: ${Object.entries(results)
        .map(
          ([line, values]) =>
            `${line} ${values
              .at(-1)
              .map((v) => Math.round(v))
              .join('/')}`,
        )
        .join('; ')}`,
    )
  }
  const number = (value) => Math.round(value).toLocaleString('en-US')
  const spread = (values) => `${number(median(values))} (${number(Math.min(...values))}–${number(Math.max(...values))})`
  const row = (label, line) => {
    const values = results[line]
    const ours = values.map(([o]) => o)
    if (values[0].length === 1) {
      console.log(`${label}: ${spread(ours)}/s`)
      return
    }
    const raw = values.map(([, r]) => r)
    const ratios = values.map(([o, r]) => o / r)
    const ratio = `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×)`
    console.log(`${label}: ${spread(ours)}/s; SDK alone ${spread(raw)}/s; ${ratio}`)
  }
  row('relay → SQS (Relay + sqsPublisher)', 'publish')
  row('SQS → follower (sqsRepublisher + Republisher + SQLite)', 'consume')
  row('end to end (both at once)', 'end to end')
  row('end to end, memory on both sides', 'end to end, memory')
  row('follower alone (Republisher.handleBatch of 10, no SQS)', 'follower alone')
} finally {
  client.destroy()
  fauxqs.stop()
  removeFreshPaths()
}
