import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { Dog, DogSchool } from '../../examples/dog-school.js'
import {
  Aggregate,
  type AggregateChanges,
  type BrokerPublisher,
  type DomainEvent,
  decodeMessage,
  MESSAGE_FORMAT,
  memory,
  OperationalError,
  type OutgoingMessage,
  ProcessApplication,
  type ProcessingEvent,
  Relay,
  Republisher,
  type Tracking,
  uuid5,
  WaitTimeoutError,
} from '../../src/index.js'
import { sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'

/** A broker in this process: keeps what was published, refuses while `down`, and answers once `held` resolves. */
class LoopbackBroker implements BrokerPublisher {
  readonly messages: OutgoingMessage[] = []
  down = false
  held: Promise<void> | undefined

  async publish(messages: readonly OutgoingMessage[]): Promise<void> {
    await this.held
    if (this.down) throw new OperationalError('The loopback broker is down')
    this.messages.push(...messages)
  }
}

/** Records one Learnt aggregate per relayed trick, with an id derived from the upstream event. */
class Learning extends Aggregate {
  static readonly topic = 'tests:Learning'
  trick = ''
  static readonly Learnt = Learning.created('tests:Learning.Learnt', (learning, e: { trick: string }) => {
    learning.trick = e.trick
  })
}

let failOnTrick: string | undefined

class Tricks extends ProcessApplication {
  static override readonly applicationName = 'Tricks'
  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    if (!(event instanceof Dog.TrickAdded)) return
    if (event.trick === failOnTrick) throw new Error(`cannot learn ${event.trick}`)
    const id = uuid5('6f0c1f7e-8a4b-4f3e-9c55-1c1c1c1c1c1c', `${event.originatorId}:${event.originatorVersion}`)
    processing.save(Learning.create(Learning.Learnt, { trick: event.trick }, { id }))
  }
}

/** Tricks that records each of its writes: how many aggregates it saved, and under how many tracking records. */
class CountedTricks extends Tricks {
  readonly writes: { saved: number; tracking: number }[] = []
  /** When set, processing fails with an OperationalError, as when the database is down. */
  down = false

  protected override policy(event: DomainEvent, processing: ProcessingEvent): void {
    if (this.down) throw new OperationalError('The test database is down')
    super.policy(event, processing)
  }

  protected override recordChanges(changes: readonly AggregateChanges[], tracking?: Tracking | readonly Tracking[]) {
    this.writes.push({ saved: changes.length, tracking: [tracking ?? []].flat().length })
    return super.recordChanges(changes, tracking)
  }
}

/** The relayed messages of a school with `count` tricks (2 dogs registered, then the tricks, alternating). */
async function relayedTricks(count: number): Promise<{ school: DogSchool; bodies: string[] }> {
  const { school } = await schoolWithTricks(count)
  const broker = new LoopbackBroker()
  await using positions = sqliteProjectionStore({ path: ':memory:', name: 'relay' })
  await using relay = new Relay({ upstream: school, publisher: broker, positions })
  await relay.start()
  await relay.waitFor(count + 2)
  return { school, bodies: broker.messages.map((message) => message.body) }
}

async function schoolWithTricks(count: number): Promise<{ school: DogSchool; dogs: string[] }> {
  const school = new DogSchool({ persistence: memory() })
  const dogs = [await school.register('Fido'), await school.register('Buster')]
  for (let i = 0; i < count; i++) await school.addTrick(dogs[i % 2]!, `trick ${i}`)
  return { school, dogs }
}

describe('a relay', () => {
  it('publishes the log in order, records its position after the broker took the messages, and resumes', async () => {
    const { school } = await schoolWithTricks(8)
    const broker = new LoopbackBroker()
    await using positions = sqliteProjectionStore({ path: join(tempDir('es-relay-'), 'relay.db'), name: 'relay' })
    {
      await using relay = new Relay({ upstream: school, publisher: broker, positions })
      await relay.start()
      await relay.waitFor(10)
    }
    expect(broker.messages).toHaveLength(10)
    const first = broker.messages[0]!
    expect(first.topic).toBe('dogschool:Dog.Registered')
    expect(first.deduplicationId).toBe('DogSchool:1')
    const decoded = decodeMessage(first.body)
    expect(decoded.application).toBe('DogSchool')
    expect(decoded.notification).toMatchObject({ id: 1, originatorId: first.groupId, originatorVersion: 1 })
    expect(JSON.parse(first.body)).toMatchObject({ format: MESSAGE_FORMAT, contentType: 'application/json' })
    expect(broker.messages.map((m) => decodeMessage(m.body).notification.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])

    // Restarted, it publishes only what is new.
    await school.register('Rex')
    await using relay = new Relay({ upstream: school, publisher: broker, positions, topics: [Dog.Registered] })
    await relay.start()
    await relay.waitFor(11)
    expect(broker.messages).toHaveLength(11)
    await school.close()
  })

  it('does not move past messages the broker did not take, retries while it is down, and resumes by itself', async () => {
    const { school } = await schoolWithTricks(2)
    const broker = new LoopbackBroker()
    broker.down = true
    await using positions = sqliteProjectionStore({ path: join(tempDir('es-relay-'), 'relay.db'), name: 'relay' })
    await using relay = new Relay({ upstream: school, publisher: broker, positions, attempts: 2, retryDelayMs: 1 })
    const errors: Error[] = []
    const retried: Error[] = []
    const resumed: string[] = []
    relay.on('followerError', (error) => errors.push(error))
    relay.on('followerRetrying', (error) => retried.push(error))
    relay.on('followerResumed', (name) => resumed.push(name))
    await relay.start()
    // The broker being down is transient: it does not count against the 2 attempts.
    await expect(relay.waitFor(1, { timeoutMs: 300 })).rejects.toBeInstanceOf(WaitTimeoutError)
    expect(retried.length).toBeGreaterThan(2)
    expect(retried[0]?.message).toBe('The loopback broker is down')
    const { state, error, since } = relay.status()
    expect({ state, error, since }).toEqual({ state: 'retrying', error: retried.at(-1), since: expect.any(Date) })
    expect(await positions.maxTrackingId('DogSchool')).toBe(0)
    broker.down = false
    await relay.waitFor(4)
    expect(broker.messages).toHaveLength(4)
    expect(errors).toEqual([])
    expect(resumed).toEqual(['relay'])
    expect(relay.status()).toEqual({ name: 'relay', state: 'running', positions: { DogSchool: 4 } })
    await school.close()
  })

  it('with topics, is waited for up to the last notification of its topics, and not before', async () => {
    await using school = new DogSchool({ persistence: memory() })
    const broker = new LoopbackBroker()
    await using positions = sqliteProjectionStore({ path: join(tempDir('es-relay-'), 'relay.db'), name: 'relay' })
    const relay = new Relay({ upstream: school, publisher: broker, positions, topics: [Dog.Registered] })
    await relay.start()
    const fido = await school.register('Fido')
    await relay.waitFor(await school.notificationLog.maxId())
    let answer!: () => void
    broker.held = new Promise((resolve) => {
      answer = resolve
    })
    await school.register('Buster')
    await school.addTrick(fido, 'sit')
    // The trick is not of the relay's topics, but Buster's registration before it is not published yet.
    const waiting = relay.waitFor(await school.notificationLog.maxId())
    await delay(200)
    const pending = Symbol('pending')
    expect(await Promise.race([waiting, delay(0, pending)])).toBe(pending)
    answer()
    await waiting
    expect(broker.messages.map((message) => message.topic)).toEqual([
      'dogschool:Dog.Registered',
      'dogschool:Dog.Registered',
    ])

    // Stopped, it has passed a notification of another topic, and not one of its own.
    await relay.stop()
    await school.addTrick(fido, 'beg')
    await relay.waitFor(await school.notificationLog.maxId(), { timeoutMs: 1000 })
    await school.register('Rex')
    await expect(relay.waitFor(await school.notificationLog.maxId(), { timeoutMs: 200 })).rejects.toThrow(
      WaitTimeoutError,
    )
  })
})

describe('a republisher', () => {
  it('processes each relayed event once, in any order across aggregates, and says what to do with the message', async () => {
    const { school } = await schoolWithTricks(6)
    const broker = new LoopbackBroker()
    await using positions = sqliteProjectionStore({ path: ':memory:', name: 'relay' })
    await using relay = new Relay({ upstream: school, publisher: broker, positions })
    await relay.start()
    await relay.waitFor(8)

    await using tricks = new Tricks({ persistence: memory() })
    const republisher = new Republisher({ follower: tricks })
    // Fido's events (odd tricks) first, then Buster's: per aggregate the order holds.
    const byDog = [...broker.messages].sort((a, b) => a.groupId.localeCompare(b.groupId))
    const verdicts = []
    for (const message of byDog) verdicts.push((await republisher.handle(message.body)).outcome)
    expect(verdicts).toEqual(Array(8).fill('processed'))
    // Redelivered, every message is a duplicate.
    for (const message of broker.messages)
      expect(await republisher.handle(message.body)).toEqual({ outcome: 'duplicate' })
    const learnt = await tricks.notificationLog.select({ limit: 100 })
    expect(learnt).toHaveLength(6)
    // A follower that follows some topics acknowledges the others without processing them.
    class Registrations extends ProcessApplication {
      static override readonly followTopics = [Dog.Registered]
      protected policy(): void {}
    }
    await using registrations = new Registrations({ persistence: memory() })
    const outcomes = new Republisher({ follower: registrations })
    const handled = await Promise.all(broker.messages.slice(1, 3).map((message) => outcomes.handle(message.body)))
    expect(handled.map((verdict) => verdict.outcome)).toEqual(['processed', 'skipped'])
    await school.close()
  })

  it('sends unreadable messages and ones that keep failing to the dead letters, with the reason', async () => {
    const { school } = await schoolWithTricks(2)
    const broker = new LoopbackBroker()
    await using positions = sqliteProjectionStore({ path: ':memory:', name: 'relay' })
    await using relay = new Relay({ upstream: school, publisher: broker, positions })
    await relay.start()
    await relay.waitFor(4)
    await using tricks = new Tricks({ persistence: memory() })
    const republisher = new Republisher({ follower: tricks, retryDelayMs: 1 })
    const message = JSON.parse(broker.messages[2]!.body)

    const reason = async (body: string) => {
      const verdict = await republisher.handle(body)
      return verdict.outcome === 'dead-letter' ? verdict.reason : verdict.outcome
    }
    expect(await reason('{not json')).toBe('The message is not JSON: "{not json"')
    expect(await reason(JSON.stringify({ ...message, format: 'other/9' }))).toMatch(
      /^The message's format is "other\/9", not eventsourcing.notification\/1/,
    )
    expect(await reason(JSON.stringify({ ...message, notificationId: -1 }))).toMatch(
      /^The message's notificationId is not a positive integer/,
    )
    expect(await reason(JSON.stringify({ ...message, topic: 'dogschool:Dog.Unheard' }))).toMatch(
      /^Tricks could not process notification 3 of DogSchool \(topic 'dogschool:Dog.Unheard'\): .*dogschool:Dog.Unheard/,
    )
    failOnTrick = 'trick 0'
    try {
      expect(await reason(broker.messages[2]!.body)).toBe(
        "Tricks could not process notification 3 of DogSchool (topic 'dogschool:Dog.TrickAdded') after 3 attempts: cannot learn trick 0",
      )
    } finally {
      failOnTrick = undefined
    }
    // Nothing of the failed ones was recorded; the next message is processed.
    expect(await reason(broker.messages[3]!.body)).toBe('processed')
    expect(await tricks.notificationLog.select({ limit: 100 })).toHaveLength(1)
    await school.close()
  })

  it('processes a batch of messages in one write, with a tracking record per upstream aggregate, and drops it as duplicates when delivered again', async () => {
    const { school, bodies } = await relayedTricks(8)
    await using tricks = new CountedTricks({ persistence: memory() })
    const republisher = new Republisher({ follower: tricks })
    const verdicts = await republisher.handleBatch(bodies)
    expect(verdicts).toEqual(Array(10).fill({ outcome: 'processed' }))
    // One write: the 8 tricks learnt, tracked under Fido and Buster.
    expect(tricks.writes).toEqual([{ saved: 8, tracking: 2 }])
    expect(await tricks.notificationLog.select({ limit: 100 })).toHaveLength(8)
    // Delivered again, whole or with one message twice: dropped before processing, nothing written.
    expect(await republisher.handleBatch(bodies)).toEqual(Array(10).fill({ outcome: 'duplicate' }))
    expect(tricks.writes).toHaveLength(1)
    const { bodies: more } = await relayedTricks(0)
    const fresh = new Republisher({ follower: new CountedTricks({ persistence: memory() }) })
    expect((await fresh.handleBatch([more[0]!, more[0]!, more[1]!])).map((verdict) => verdict.outcome)).toEqual([
      'processed',
      'duplicate',
      'processed',
    ])
    await school.close()
  })

  it('takes a batch apart when one message keeps failing: the others take effect, and it goes to the dead letters after its attempts', async () => {
    const { school, bodies } = await relayedTricks(8)
    await using tricks = new CountedTricks({ persistence: memory() })
    const republisher = new Republisher({ follower: tricks, retryDelayMs: 1 })
    failOnTrick = 'trick 4'
    let verdicts: Awaited<ReturnType<Republisher['handleBatch']>>
    try {
      verdicts = await republisher.handleBatch(bodies)
    } finally {
      failOnTrick = undefined
    }
    const outcomes = verdicts.map((verdict) => verdict.outcome)
    // Registrations, then tricks 0 to 7: trick 4 is the 7th message.
    expect(outcomes).toEqual([...Array(6).fill('processed'), 'dead-letter', ...Array(3).fill('processed')])
    expect(verdicts[6]).toEqual({
      outcome: 'dead-letter',
      reason:
        "Tricks could not process notification 7 of DogSchool (topic 'dogschool:Dog.TrickAdded') after 3 attempts: cannot learn trick 4",
    })
    const learnt = await tricks.notificationLog.selectRecordings({ limit: 100 })
    expect(learnt.map(({ domainEvent }) => (domainEvent as InstanceType<typeof Learning.Learnt>).trick).sort()).toEqual(
      ['trick 0', 'trick 1', 'trick 2', 'trick 3', 'trick 5', 'trick 6', 'trick 7'].sort(),
    )
    // The whole batch failed once, then halves of it committed, then the bad one alone failed 3 times.
    expect(tricks.writes.length).toBeLessThan(8)
    expect(tricks.writes.reduce((sum, write) => sum + write.saved, 0)).toBe(7)
    await school.close()
  })

  it('throws the OperationalError of a follower whose database is down, recording nothing, so that the broker keeps the messages', async () => {
    const { school, bodies } = await relayedTricks(4)
    await using tricks = new CountedTricks({ persistence: memory() })
    const republisher = new Republisher({ follower: tricks, retryDelayMs: 1 })
    tricks.down = true
    await expect(republisher.handleBatch(bodies)).rejects.toThrow(OperationalError)
    expect(await tricks.notificationLog.select({ limit: 100 })).toEqual([])
    tricks.down = false
    expect((await republisher.handleBatch(bodies)).every((verdict) => verdict.outcome === 'processed')).toBe(true)
    await school.close()
  })
})
