// Faults on a real cluster: three nodes on 127.0.0.1-3 (cluster.ts),
// replication factor 3, QUORUM reads and writes. One node is killed (SIGKILL)
// while writers save concurrently and a subscription follows the log: every
// save that was acknowledged is there afterwards, conflicts are still
// detected, the subscription goes on; the node restarted rejoins. Then with
// two nodes down, and with no node at all, the errors name the contact points
// and the consistency. A file of its own (it starts three JVMs, about a minute
// on two cores), bounded by its deadlines. It needs nodes it may kill, so
// CASSANDRA_CONTACT_POINTS skips it.

import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cassandra } from '../../src/cassandra/index.js'
import { IntegrityError, OperationalError } from '../../src/persistence/errors.js'
import type { ProcessRecorder, Recorders } from '../../src/persistence/recorder.js'
import type { Notification } from '../../src/persistence/stored-event.js'
import { event } from '../../src/testing/fixtures.js'
import { cassandra as cassandraService, skipNote, skipReason } from '../services.js'
import { type CassandraCluster, startCassandraCluster } from './cluster.js'

const missing = await skipReason(cassandraService)
if (missing !== undefined) console.warn(skipNote(cassandraService, missing))
const named = process.env.CASSANDRA_CONTACT_POINTS
if (named && missing === undefined)
  console.warn(
    'Skipping the Cassandra cluster test: it kills nodes of its own, and CASSANDRA_CONTACT_POINTS names a cluster',
  )

/** How long the writers run before the kill, and after it. */
const BEFORE_KILL_MS = 3_000
const AFTER_KILL_MS = 6_000
/** How long the subscription and the restarted node may take to catch up. */
const CATCH_UP_MS = 60_000
const WRITERS = 4

describe.skipIf(missing !== undefined || Boolean(named))('a three-node Cassandra cluster', () => {
  let cluster: CassandraCluster | undefined
  const keyspace = `es_cluster_${randomBytes(4).toString('hex')}`
  const options = () => ({
    contactPoints: cluster!.contactPoints,
    localDataCenter: cluster!.localDataCenter,
    keyspace,
    replication: 3,
    consistency: 'QUORUM' as const,
  })

  beforeAll(async () => {
    cluster = await startCassandraCluster(3)
  }, 600_000)

  afterAll(async () => {
    await cluster?.stop()
  }, 60_000)

  it('loses no acknowledged save, still detects conflicts, and keeps a subscription going while a node is killed and restarted', async () => {
    const persistence = cassandra(options())
    await using recorders = await persistence.open('app')
    const { events } = recorders
    const stopping = new AbortController()
    const seen = follow(events, stopping.signal)

    const acknowledged: string[] = []
    const failed: unknown[] = []
    let writing = true
    const writers = Array.from({ length: WRITERS }, (_, w) =>
      write(events, `w${w}`, () => writing, acknowledged, failed),
    )
    await delay(BEFORE_KILL_MS)
    const victim = cluster!.nodes[1]!
    await victim.kill()
    const ackedAtKill = acknowledged.length
    await delay(AFTER_KILL_MS)
    writing = false
    await Promise.all(writers)

    // Saves went on after the kill; the few that failed did so with typed errors.
    const counts = `${ackedAtKill} events acknowledged before the kill, ${acknowledged.length} in all; failures: ${failed.map(String).slice(0, 3)}`
    expect(acknowledged.length, counts).toBeGreaterThan(ackedAtKill)
    for (const error of failed) expect(error).toBeInstanceOf(OperationalError)
    await expectRecorded(events, acknowledged)
    // A conflict is still detected, with two replicas of three.
    const [first] = acknowledged[0]!.split('@')
    await expect(events.insertEvents([event(first!, 1)])).rejects.toBeInstanceOf(IntegrityError)
    // The subscription sees every acknowledged save, in increasing ids.
    await until(
      () => acknowledged.every((key) => seen.keys.has(key)),
      () =>
        `the subscription to catch up (${seen.notifications.length} seen, the last ${seen.notifications.at(-1)?.id}; ` +
        `${acknowledged.filter((key) => !seen.keys.has(key)).length} acknowledged not seen; ${counts})`,
      seen,
    )
    expectIncreasing(seen.notifications)

    // Restarted, the node rejoins: every node, as coordinator, reaches every replica again.
    await victim.start()
    await cluster!.untilJoined()
    await events.insertEvents([event('after-restart', 1)])
    await until(
      () => seen.keys.has('after-restart@1'),
      () => 'the subscription to see a save after the restart',
      seen,
    )
    stopping.abort()
    await seen.done
  }, 300_000)

  it('names the contact points and the consistency when too few replicas are alive, or no node answers', async () => {
    const persistence = cassandra(options())
    await using recorders: Recorders = await persistence.open('app')
    await Promise.all(cluster!.nodes.slice(1).map((node) => node.kill()))
    const save = recorders.events.insertEvents([event('alone', 1)])
    await expect(save).rejects.toBeInstanceOf(OperationalError)
    await expect(save).rejects.toThrow(/127\.0\.0\.1:9042.*consistency QUORUM/)
    await expect(recorders.events.selectEvents('alone')).rejects.toThrow(/127\.0\.0\.1:9042.*consistency QUORUM/)

    const unreachable = cassandra({ ...options(), contactPoints: ['127.0.0.1:1', '127.0.0.2:1'] }).open('app')
    await expect(unreachable).rejects.toBeInstanceOf(OperationalError)
    await expect(unreachable).rejects.toThrow(/127\.0\.0\.1:1, 127\.0\.0\.2:1.*consistency QUORUM/)
  }, 120_000)
})

/** Saves new aggregates of one writer, two events each, while `going()`; records what was acknowledged and what failed. */
async function write(
  events: ProcessRecorder,
  writer: string,
  going: () => boolean,
  acknowledged: string[],
  failed: unknown[],
): Promise<void> {
  for (let n = 0; going(); n++) {
    const id = `${writer}-${n}`
    try {
      await events.insertEvents([event(id, 1), event(id, 2)])
      acknowledged.push(`${id}@1`, `${id}@2`)
    } catch (error) {
      // Not acknowledged: it may or may not be recorded, and nothing is asserted of it.
      failed.push(error)
    }
  }
}

/** Every acknowledged event can be read back from its aggregate. */
async function expectRecorded(events: ProcessRecorder, acknowledged: readonly string[]): Promise<void> {
  const ids = [...new Set(acknowledged.map((key) => key.split('@')[0]!))]
  const stored = await events.selectEventsOfMany(ids.map((originatorId) => ({ originatorId })))
  const found = new Set(stored.flat().map((e) => `${e.originatorId}@${e.originatorVersion}`))
  expect(acknowledged.filter((key) => !found.has(key))).toEqual([])
}

/** Follows the log from the start in the background, keeping what it sees and the error that ended it, if any. */
function follow(events: ProcessRecorder, signal: AbortSignal) {
  const seen = {
    notifications: [] as Notification[],
    keys: new Set<string>(),
    error: undefined as unknown,
    done: Promise.resolve(),
  }
  seen.done = (async () => {
    try {
      for await (const notification of events.subscribe({ signal })) {
        seen.notifications.push(notification)
        seen.keys.add(`${notification.originatorId}@${notification.originatorVersion}`)
      }
    } catch (error) {
      seen.error = error
    }
  })()
  return seen
}

function expectIncreasing(notifications: readonly Notification[]): void {
  const ids = notifications.map((notification) => notification.id)
  expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true)
}

/**
 * Waits until `done()` holds, polling, or fails saying what it waited for
 * after {@link CATCH_UP_MS}, or at once with the error that ended the subscription.
 */
async function until(done: () => boolean, what: () => string, seen: { error: unknown }): Promise<void> {
  const deadline = Date.now() + CATCH_UP_MS
  while (!done()) {
    if (seen.error !== undefined)
      throw new Error(`The subscription failed while waiting for ${what()}`, { cause: seen.error })
    if (Date.now() > deadline) throw new Error(`Waited ${CATCH_UP_MS / 1000} s for ${what()}`)
    await delay(200)
  }
}
