// Helpers of the SQS tests: the fauxqs emulator on 127.0.0.1, an upstream
// application and a follower whose effects can be counted, and a republisher
// wrapper that counts what it is handed.

import { type ChildProcess, fork } from 'node:child_process'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs'
import { buildApp } from 'fauxqs'
import { afterAll, beforeAll } from 'vitest'
import {
  Aggregate,
  type AggregateChanges,
  Application,
  type DomainEvent,
  ProcessApplication,
  type ProcessingEvent,
  type Republisher,
  type Tracking,
  uuid5,
  type Verdict,
} from '../../src/index.js'
import {
  type CreateQueuesOptions,
  createQueues,
  type Queues,
  type SqsClientOptions,
  type SqsRepublisher,
  type SqsRepublisherOptions,
  sqsRepublisher,
} from '../../src/sqs/index.js'

/** The credentials the SDK signs requests to the emulator with (it checks none). */
export const credentials = { accessKeyId: 'test', secretAccessKey: 'test' }

/** A running fauxqs server: its endpoint, the client options that reach it, and how to stop it. */
export interface Fauxqs {
  readonly endpoint: string
  readonly connection: SqsClientOptions
  /** An SDK client of the test's own, for sending and receiving around the library. */
  readonly client: SQSClient
  /** Creates a FIFO queue (or a standard one) and its dead-letter queue, with a fresh name. */
  queues(options?: Partial<CreateQueuesOptions>): Promise<Queues>
  close(): Promise<void>
}

let queueNumber = 0

/**
 * Starts fauxqs before the tests of the calling file and closes it after
 * them; the returned object reaches the running server from inside tests.
 */
export function useFauxqs(): Omit<Fauxqs, 'close'> & {
  /** A consumer of the running server's queue, long polling for 1 s; `options` may set any other option. */
  consumer(
    options: Partial<SqsRepublisherOptions> & Pick<SqsRepublisherOptions, RequiredConsumerOptions>,
  ): SqsRepublisher
} {
  let started: Fauxqs | undefined
  beforeAll(async () => {
    started = await startFauxqs()
  })
  afterAll(async () => {
    await started?.close()
  })
  const running = (): Fauxqs => {
    if (started === undefined) throw new Error('fauxqs runs only while the tests of this file run')
    return started
  }
  return {
    get endpoint() {
      return running().endpoint
    },
    get connection() {
      return running().connection
    },
    get client() {
      return running().client
    },
    queues: (options) => running().queues(options),
    consumer: (options) => sqsRepublisher({ waitTimeSeconds: 1, ...running().connection, ...options }),
  }
}

type RequiredConsumerOptions = 'queueUrl' | 'deadLetterQueueUrl' | 'republisher'

/** Starts fauxqs in this process, listening on 127.0.0.1 only. */
async function startFauxqs(): Promise<Fauxqs> {
  const app = buildApp({ logger: false })
  const endpoint = await app.listen({ port: 0, host: '127.0.0.1' })
  const connection = { endpoint, region: 'us-east-1', credentials }
  const client = new SQSClient(connection)
  return {
    endpoint,
    connection,
    client,
    queues: (options = {}) => createQueues({ name: `test-${++queueNumber}`, ...connection, ...options }),
    close: async () => {
      client.destroy()
      await app.close()
    },
  }
}

/** A sensor whose readings are the upstream events. */
export class Sensor extends Aggregate {
  static readonly topic = 'sqs-test:Sensor'
  readings = 0

  static readonly Installed = Sensor.created('sqs-test:Sensor.Installed')
  static readonly Read = Sensor.event('sqs-test:Sensor.Read', (sensor, _e: { value: number }) => {
    sensor.readings++
  })

  static install(): Sensor {
    return Sensor.create(Sensor.Installed, {})
  }

  read(value: number): void {
    this.trigger(Sensor.Read, { value })
  }
}

/** The upstream application. */
export class Sensors extends Application {
  static override readonly applicationName = 'Sensors'

  /**
   * Records `sensors` new sensors of `events` events each (installed, then
   * readings), `perSave` sensors per save; returns the last notification id.
   */
  async installSensors(sensors: number, events: number, perSave = 100): Promise<number> {
    let last = 0
    for (let start = 0; start < sensors; start += perSave) {
      const saved = Array.from({ length: Math.min(perSave, sensors - start) }, () => {
        const sensor = Sensor.install()
        for (let value = 1; value < events; value++) sensor.read(value)
        return sensor
      })
      last = (await this.save(...saved)).at(-1)!.notification.id
    }
    return last
  }
}

const MARKS = '5b0f9c1e-0d7a-4d55-9a8e-3f7e1c2b6a40'

/** One effect of one upstream event; its id is derived from the event, so a second effect of one event cannot be saved. */
export class Mark extends Aggregate {
  static readonly topic = 'sqs-test:Mark'
  upstream = ''

  static readonly Made = Mark.created('sqs-test:Mark.Made', (mark, e: { upstream: string }) => {
    mark.upstream = e.upstream
  })
}

/** Returns the id of the mark of an upstream event. */
export function markId(originatorId: string, originatorVersion: number): string {
  return uuid5(MARKS, `${originatorId}/${originatorVersion}`)
}

/** The follower: one mark per upstream event. */
export class Marks extends ProcessApplication {
  static override readonly applicationName: string = 'Marks'
  /** Upstream events whose processing always fails, by `<originator id>/<version>`. */
  readonly broken = new Set<string>()
  /** The number of marks each write recorded: one per message processed in that transaction. */
  readonly writes: number[] = []

  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    const upstream = `${event.originatorId}/${event.originatorVersion}`
    if (this.broken.has(upstream)) throw new Error(`The test breaks ${upstream}`)
    processing.save(Mark.create(Mark.Made, { upstream }, { id: markId(event.originatorId, event.originatorVersion) }))
  }

  protected override recordChanges(changes: readonly AggregateChanges[], tracking?: Tracking | readonly Tracking[]) {
    this.writes.push(changes.length)
    return super.recordChanges(changes, tracking)
  }
}

/** A follower of the readings only: the sensors' Installed events are skipped. */
export class ReadingMarks extends Marks {
  static override readonly applicationName = 'ReadingMarks'
  static override readonly followTopics = [Sensor.Read]
}

/** Returns the number of marks recorded, and the number of distinct upstream events they mark. */
export async function countMarks(marks: Marks): Promise<{ marks: number; distinct: number }> {
  const seen = new Set<string>()
  let count = 0
  for (let start = 1; ; ) {
    const page = await marks.notificationLog.select({ start, limit: 1000 })
    if (page.length === 0) break
    for (const notification of page) {
      count++
      seen.add(notification.originatorId)
    }
    start = page.at(-1)!.id + 1
  }
  return { marks: count, distinct: seen.size }
}

/** Resolves once `count()` returns at least `expected`, or fails with what it returned last after `timeoutMs`. */
export async function until(count: () => Promise<number>, expected: number, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs
  let last = await count()
  while (last < expected) {
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}: ${last} of ${expected}`)
    await delay(50)
    last = await count()
  }
  return last
}

/** A republisher that counts the calls and verdicts per body, and the batches, and can be slowed or made to fail. */
export class CountingHandler {
  readonly calls = new Map<string, number>()
  readonly verdicts = { processed: 0, duplicate: 0, skipped: 0, 'dead-letter': 0 }
  /** The size of each batch handed over, in order. */
  readonly batches: number[] = []
  /** Called before handling, for each body of a batch; what it throws is thrown to the consumer. */
  before: (body: string, call: number) => Promise<void> | void = () => {}
  /** Called after handling, for each body of a batch, before the verdicts are returned. */
  after: (body: string, call: number, verdict: Verdict) => Promise<void> | void = () => {}

  constructor(readonly republisher: Pick<Republisher, 'handleBatch'>) {}

  async handleBatch(bodies: readonly string[]): Promise<Verdict[]> {
    this.batches.push(bodies.length)
    const calls = bodies.map((body) => {
      const call = (this.calls.get(body) ?? 0) + 1
      this.calls.set(body, call)
      return call
    })
    for (const [index, body] of bodies.entries()) await this.before(body, calls[index]!)
    const verdicts = await this.republisher.handleBatch(bodies)
    for (const [index, body] of bodies.entries()) {
      this.verdicts[verdicts[index]!.outcome]++
      await this.after(body, calls[index]!, verdicts[index]!)
    }
    return verdicts
  }
}

/** Receives every message now in a queue (deleting them), waiting up to `waitSeconds` for the first. */
export async function drain(client: SQSClient, queueUrl: string, waitSeconds = 1): Promise<Message[]> {
  const all: Message[] = []
  for (;;) {
    const { Messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: all.length === 0 ? waitSeconds : 0,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    )
    if (Messages.length === 0) return all
    all.push(...Messages)
    await client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: Messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle })),
      }),
    )
  }
}

/** Sends one body to a FIFO queue, in its own group. */
export async function sendRaw(client: SQSClient, queueUrl: string, body: string, group: string): Promise<void> {
  await client.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: body,
      MessageGroupId: group,
      MessageDeduplicationId: group,
    }),
  )
}

const CHILD = fileURLToPath(new URL('./relay-child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** What the relay child sends to its parent. */
export type RelayChildMessage = { readonly type: 'started' } | { readonly type: 'progress'; readonly position: number }

const children = new Set<ChildProcess>()

/** A child process running a relay of Sensors to SQS (relay-child.ts). */
export class RelayChild {
  readonly #process: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  position = 0
  stderr = ''
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined

  constructor(env: { UPSTREAM_PATH: string; POSITIONS_PATH: string; SQS_ENDPOINT: string; QUEUE_URL: string }) {
    this.#process = fork(CHILD, [], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    children.add(this.#process)
    this.#process.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.#process.on('message', (message: RelayChildMessage) => {
      if (message.type === 'progress') this.position = message.position
    })
    this.exited = new Promise((resolve) => {
      this.#process.on('close', (code, signal) => {
        children.delete(this.#process)
        this.#exit = { code, signal }
        resolve(this.#exit)
      })
    })
  }

  /** Resolves once the relay's position reaches `position`; fails if the child exits first or `timeoutMs` passes. */
  async until(position: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.position < position) {
      if (this.#exit) throw new Error(`The relay child exited (${JSON.stringify(this.#exit)}):\n${this.stderr}`)
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for the relay to reach ${position} (at ${this.position}):\n${this.stderr}`)
      }
      await delay(10)
    }
  }

  /** Kills the child with SIGKILL. */
  async kill(): Promise<void> {
    if (!this.#exit) this.#process.kill('SIGKILL')
    await this.exited
  }

  /** Stops the child with SIGTERM. */
  async stop(): Promise<void> {
    if (!this.#exit) this.#process.kill('SIGTERM')
    await this.exited
  }
}

/** Kills every relay child still running, for the end of a test that failed half way. */
export async function killRelayChildren(): Promise<void> {
  for (const child of children) child.kill('SIGKILL')
  while (children.size > 0) await delay(10)
}
