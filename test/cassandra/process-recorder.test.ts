// The Cassandra process recorder (src/cassandra/cassandra-application-recorder.ts)
// against a real node: atomic saves of several aggregates, a clash aborting a
// whole save, a save abandoned by a crashed writer aborted by a reader, readers
// that never skip an event while several "processes" write, exactly-once
// tracking, subscriptions, group commit, and a bucket of the log filling up.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CassandraProcessRecorder,
  createApplicationTables,
} from '../../src/cassandra/cassandra-application-recorder.js'
import { mark, type Placed, writeIntents, writeTracking } from '../../src/cassandra/cassandra-save.js'
import { BUCKET, cassandraTables } from '../../src/cassandra/cassandra-schema.js'
import { CassandraSession, type CqlStatement } from '../../src/cassandra/cassandra-session.js'
import {
  type CassandraOptions,
  cassandraOptionsFromEnvironment,
  cassandraSettings,
} from '../../src/cassandra/cassandra-settings.js'
import {
  OperationalError,
  ProgrammingError,
  TrackingConflictError,
  VersionConflictError,
  WaitTimeoutError,
} from '../../src/persistence/errors.js'
import type { Notification } from '../../src/persistence/stored-event.js'
import { contents, event, plainNotification, range, readLog, versions } from '../../src/testing/fixtures.js'
import { cassandra, skipNote, skipReason } from '../services.js'
import type { CassandraNode } from './server.js'
import { sharedCassandra } from './shared-node.js'

const missing = await skipReason(cassandra)
if (missing !== undefined) console.warn(skipNote(cassandra, missing))

describe('cassandra application table names', () => {
  it('refuses a name whose tables pass 48 characters, naming the limit', () => {
    expect(cassandraTables('DogSchool')).toEqual({
      events: 'dogschool_events',
      log: 'dogschool_log',
      tracking: 'dogschool_tracking',
      snapshots: 'dogschool_snapshots',
    })
    expect(cassandraTables('a'.repeat(38)).snapshots).toHaveLength(48)
    expect(() => cassandraTables('a'.repeat(39))).toThrow(/48 characters \(use at most 38\)/)
    expect(() => cassandraTables('a'.repeat(39))).toThrow(ProgrammingError)
  })
})

describe('cassandra log settings', () => {
  const base = { contactPoints: ['127.0.0.1'], localDataCenter: 'datacenter1', keyspace: 'dogs' }

  it('default to abandoning a save after 10 s and polling every 100 ms, and take positive integers only', () => {
    expect(cassandraSettings(base)).toMatchObject({ abandonAfterMs: 10_000, pollIntervalMs: 100 })
    expect(cassandraSettings({ ...base, abandonAfterMs: 500, pollIntervalMs: 20 })).toMatchObject({
      abandonAfterMs: 500,
      pollIntervalMs: 20,
    })
    expect(() => cassandraSettings({ ...base, abandonAfterMs: 0 })).toThrow(/abandonAfterMs must be a positive integer/)
    expect(() => cassandraSettings({ ...base, pollIntervalMs: 1.5 })).toThrow(ProgrammingError)
  })

  it('are read from CASSANDRA_ABANDON_AFTER_MS and CASSANDRA_POLL_INTERVAL_MS', () => {
    const env: Record<string, string> = {
      CASSANDRA_CONTACT_POINTS: '10.0.0.1',
      CASSANDRA_KEYSPACE: 'dogs',
      CASSANDRA_ABANDON_AFTER_MS: '2000',
      CASSANDRA_POLL_INTERVAL_MS: '50',
    }
    expect(cassandraOptionsFromEnvironment((name) => env[name])).toMatchObject({
      abandonAfterMs: 2000,
      pollIntervalMs: 50,
    })
    expect(() =>
      cassandraOptionsFromEnvironment((name) => ({ ...env, CASSANDRA_ABANDON_AFTER_MS: '2s' })[name]),
    ).toThrow(/CASSANDRA_ABANDON_AFTER_MS must be a positive integer, got "2s"/)
  })
})

describe.skipIf(missing !== undefined)('the Cassandra process recorder', () => {
  let node: CassandraNode | undefined
  const sessions: CassandraSession[] = []
  const keyspace = `es_test_${randomBytes(4).toString('hex')}`
  let apps = 0
  const open = async (options: Partial<CassandraOptions> = {}) => {
    const settings = cassandraSettings({
      contactPoints: node!.contactPoints,
      localDataCenter: node!.localDataCenter,
      keyspace,
      ...options,
    })
    const session = await CassandraSession.open(settings)
    sessions.push(session)
    return session
  }
  let session: CassandraSession
  // A fresh application for each test, so that tests do not see each other's rows.
  const fresh = async (s = session) => {
    const name = `app${++apps}`
    await createApplicationTables(s, name)
    return { name, recorder: new CassandraProcessRecorder(s, name) }
  }

  beforeAll(async () => {
    node = await sharedCassandra()
    session = await open()
  }, 600_000)

  afterAll(async () => {
    await session?.client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {})
    for (const s of sessions) await s.close()
  }, 60_000)

  it('records a save of several aggregates with increasing ids, on every read path', async () => {
    const { recorder } = await fresh()
    expect(await recorder.maxNotificationId()).toBe(0)
    expect(await recorder.selectNotifications({ limit: 10 })).toEqual([])
    const ids = await recorder.insertEvents([event('a', 1), event('b', 1), event('a', 2)])
    expect(ids).toEqual([1, 2, 3])
    const more = await recorder.insertEvents([event('c', 1, 'other')])
    expect(more[0]).toBeGreaterThan(3)
    const log = await readLog(recorder)
    expect(log.map((n) => [n.id, n.originatorId, n.originatorVersion])).toEqual([
      [1, 'a', 1],
      [2, 'b', 1],
      [3, 'a', 2],
      [more[0], 'c', 1],
    ])
    expect(plainNotification(log[0]!)).toEqual(plainNotification({ ...event('a', 1), id: 1 }))
    expect(await recorder.maxNotificationId()).toBe(more[0])
    expect(versions(await recorder.selectEvents('a'))).toEqual([1, 2])
    expect((await recorder.selectNotifications({ limit: 10, topics: ['other'] })).map((n) => n.id)).toEqual(more)
    expect((await recorder.selectNotifications({ start: 2, limit: 2 })).map((n) => n.id)).toEqual([2, 3])
    expect((await recorder.selectNotifications({ start: 1, inclusiveOfStart: false, limit: 9, stop: 3 })).length).toBe(
      2,
    )
    expect(versions(await recorder.selectEvents('a', { desc: true, limit: 1 }))).toEqual([2])
    const ofA = (options: { start?: number; stop?: number; limit?: number; topics?: string[] }) =>
      recorder.selectNotifications({ limit: 10, ...options, originatorId: 'a' }).then((page) => page.map((n) => n.id))
    expect(await ofA({})).toEqual([1, 3])
    expect(await ofA({ limit: 1 })).toEqual([1])
    expect(await ofA({ start: 2 })).toEqual([3])
    expect(await ofA({ stop: 2 })).toEqual([1])
    expect(await ofA({ topics: ['other'] })).toEqual([])
    expect(
      (await recorder.selectEventsOfMany([{ originatorId: 'b' }, { originatorId: 'a', gt: 1 }])).map(versions),
    ).toEqual([[1], [2]])
  }, 60_000)

  it('fails a save whole when one of its aggregates clashes: nothing of it on any read path', async () => {
    const { recorder } = await fresh()
    await recorder.insertEvents([event('a', 1), event('b', 1)])
    const before = await contents(recorder)
    const clash = recorder.insertEvents([event('c', 1), event('a', 2), event('b', 1), event('a', 3)])
    await expect(clash).rejects.toMatchObject({
      constructor: VersionConflictError,
      originatorId: 'b',
      originatorVersion: 1,
    })
    expect(await contents(recorder)).toEqual(before)
    // The intents of the aborted save stay, never shown, and a later save replaces them.
    const [id] = await recorder.insertEvents([event('c', 1, 'again')])
    expect((await recorder.selectEvents('c')).map((e) => e.topic)).toEqual(['again'])
    expect((await readLog(recorder)).map((n) => n.id).at(-1)).toBe(id)
    await expect(recorder.insertEvents([event('d', 1), event('d', 1)])).rejects.toBeInstanceOf(VersionConflictError)
  }, 60_000)

  it('aborts a save abandoned between its intents and its commit, after abandonAfterMs; it never appears', async () => {
    const quick = await open({ abandonAfterMs: 400 })
    const { name, recorder: writer } = await fresh(quick)
    const reader = new CassandraProcessRecorder(quick, name)
    await writer.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 1 } })
    // Steps 1 and 2 of a save of two aggregates and a tracking record; the writer then "crashes".
    const events = [event('a', 2), event('b', 1)]
    const saveId = quick.driver.types.Uuid.random()
    const claimed = Date.now()
    const position = await writer.writer.claim(events, saveId)
    const save = { saveId, position }
    const placed = (i: number): Placed[] => [{ event: events[i]!, id: position + i }]
    await Promise.all([
      writeIntents(writer.context, placed(0), save),
      writeIntents(writer.context, placed(1), save),
      writeTracking(writer.context, [{ applicationName: 'up', notificationId: 2 }], save),
    ])
    const log = await reader.selectNotifications({ limit: 10 })
    // The reader waited for the save until abandonAfterMs after its claim.
    expect(Date.now() - claimed).toBeGreaterThanOrEqual(400)
    expect(log.map((n) => n.originatorId)).toEqual(['a'])
    expect(versions(await reader.selectEvents('a'))).toEqual([1])
    expect(await reader.selectEvents('b')).toEqual([])
    expect(await reader.maxTrackingId('up')).toBe(1)
    // The writer's commit, if it came back now, finds the save aborted.
    expect(await writer.writer.decide(position, 'committed')).toBe(false)
    expect(await reader.maxNotificationId()).toBe(log[0]!.id)
    // The aborted save's claim does not count: the same tracking is recorded by the next save, once.
    await reader.insertEvents([event('a', 2)], { tracking: { applicationName: 'up', notificationId: 2 } })
    await expect(
      reader.insertEvents([event('c', 1)], { tracking: { applicationName: 'up', notificationId: 2 } }),
    ).rejects.toBeInstanceOf(TrackingConflictError)
    expect(versions(await reader.selectEvents('a'))).toEqual([1, 2])
  }, 60_000)

  it('fails a save that a reader abandoned while it was slow, with an OperationalError; nothing is recorded', async () => {
    const quick = await open({ abandonAfterMs: 300 })
    const { name, recorder } = await fresh(quick)
    const reader = new CassandraProcessRecorder(quick, name)
    const conditional = quick.conditional.bind(quick)
    // The intents of this save take longer than abandonAfterMs.
    quick.conditional = async (statements: readonly CqlStatement[]) => {
      if (statements[0]!.query.includes('_events')) await new Promise((resolve) => setTimeout(resolve, 800))
      return conditional(statements)
    }
    // A reader that reads all along aborts each try of the save.
    let saving = true
    const reading = (async () => {
      while (saving) expect(await reader.selectNotifications({ limit: 10 })).toEqual([])
    })()
    try {
      const save = recorder.insertEvents([event('a', 1)])
      await expect(save).rejects.toBeInstanceOf(OperationalError)
      await expect(save).rejects.toThrow(/each time it was tried.*abandonAfterMs \(300 ms\).*nothing was recorded/)
    } finally {
      saving = false
      quick.conditional = conditional
      await reading
    }
    expect(await reader.selectEvents('a')).toEqual([])
    expect(await reader.maxNotificationId()).toBe(0)
  }, 60_000)

  it('never lets a reader skip an event while writers of several processes save at once', async () => {
    const { name } = await fresh()
    const writers = await Promise.all([1, 2, 3].map(async () => new CassandraProcessRecorder(await open(), name)))
    const reader = new CassandraProcessRecorder(await open(), name)
    let writing = true
    const followed: Notification[] = []
    const follow = (async () => {
      for (;;) {
        // Once the writers are done before a read, an empty read means the end.
        const done = !writing
        const after = followed.at(-1)?.id ?? 0
        const page = await reader.selectNotifications({ start: after, inclusiveOfStart: false, limit: 7 })
        followed.push(...page)
        if (done && page.length === 0) return
      }
    })()
    const saves = writers.flatMap((writer, w) =>
      Array.from({ length: 10 }, (_, i) =>
        writer.insertEvents([event(`w${w}-${i}`, 1), event(`w${w}-${i}`, 2), event(`x${w}-${i}`, 1)]),
      ),
    )
    const ids = (await Promise.all(saves)).flat()
    writing = false
    await follow
    const log = await readLog(reader)
    expect(log).toHaveLength(90)
    expect(new Set(log.map((n) => n.id))).toEqual(new Set(ids))
    // The follower read after its last id each time: it saw the whole log, in order, once.
    expect(followed.map((n) => n.id)).toEqual(log.map((n) => n.id))
  }, 120_000)

  it('records tracking exactly once: a repeat or a racer is a TrackingConflictError, several upstreams at once', async () => {
    const { recorder } = await fresh()
    expect(await recorder.maxTrackingId('up')).toBe(0)
    expect(await recorder.hasTrackingId('up', undefined)).toBe(true)
    await recorder.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 5 } })
    await expect(
      recorder.insertEvents([event('b', 1)], { tracking: { applicationName: 'up', notificationId: 5 } }),
    ).rejects.toMatchObject({ constructor: TrackingConflictError, applicationName: 'up', notificationId: 5 })
    expect(await recorder.selectEvents('b')).toEqual([])
    const racers = await Promise.allSettled(
      [1, 2, 3, 4].map((i) =>
        recorder.insertEvents([event(`r${i}`, 1)], { tracking: { applicationName: 'up', notificationId: 6 } }),
      ),
    )
    expect(racers.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    for (const r of racers) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(TrackingConflictError)
    expect((await readLog(recorder)).map((n) => n.originatorId).filter((id) => id.startsWith('r'))).toHaveLength(1)
    await recorder.insertTracking({ applicationName: 'other', notificationId: 2 })
    await expect(recorder.insertTracking({ applicationName: 'other', notificationId: 2 })).rejects.toBeInstanceOf(
      TrackingConflictError,
    )
    await expect(
      recorder.insertEvents([], {
        tracking: [
          { applicationName: 'third', notificationId: 3 },
          { applicationName: 'third', notificationId: 3 },
        ],
      }),
    ).rejects.toBeInstanceOf(TrackingConflictError)
    await recorder.insertEvents([event('c', 1)], {
      tracking: [
        { applicationName: 'other', notificationId: 3 },
        { applicationName: 'third', notificationId: 1 },
      ],
    })
    expect(await recorder.selectTracking()).toEqual([
      { applicationName: 'other', notificationId: 3 },
      { applicationName: 'third', notificationId: 1 },
      { applicationName: 'up', notificationId: 6 },
    ])
    expect(await recorder.hasTrackingId('up', 6)).toBe(true)
    expect(await recorder.hasTrackingId('up', 7)).toBe(false)
  }, 60_000)

  it('waits for tracking: resolved by a commit, or a WaitTimeoutError', async () => {
    const { name, recorder } = await fresh()
    const other = new CassandraProcessRecorder(await open({ pollIntervalMs: 20 }), name)
    const waiting = other.waitForTracking('up', 3, { timeoutMs: 10_000 })
    await recorder.insertTracking({ applicationName: 'up', notificationId: 3 })
    await waiting
    await expect(recorder.waitForTracking('up', 4, { timeoutMs: 50 })).rejects.toBeInstanceOf(WaitTimeoutError)
  }, 60_000)

  it('yields new events to a subscription, at once for its own commits and by polling for others', async () => {
    const { name, recorder } = await fresh()
    const other = new CassandraProcessRecorder(await open({ pollIntervalMs: 50 }), name)
    await recorder.insertEvents([event('a', 1)])
    const controller = new AbortController()
    const seen: Notification[] = []
    const done = (async () => {
      for await (const notification of other.subscribe({ signal: controller.signal })) {
        seen.push(notification)
        if (seen.length === 3) controller.abort()
      }
    })()
    await recorder.insertEvents([event('a', 2)])
    await other.insertEvents([event('a', 3)])
    await done
    expect(versions(seen)).toEqual([1, 2, 3])
  }, 60_000)

  it('deletes an aggregate: a gap in the log, its versions free again', async () => {
    const { recorder } = await fresh()
    await recorder.insertEvents(range('b', 1, 2))
    await recorder.insertEvents(range('a', 1, 3))
    const [c] = await recorder.insertEvents([event('c', 1)])
    expect(await recorder.deleteEvents('a')).toBe(3)
    expect(await recorder.deleteEvents('a')).toBe(0)
    expect((await readLog(recorder)).map((n) => `${n.originatorId}@${n.originatorVersion}`)).toEqual([
      'b@1',
      'b@2',
      'c@1',
    ])
    expect(await recorder.deleteEvents('c')).toBe(1)
    expect(await recorder.maxNotificationId()).toBe(2)
    const [d] = await recorder.insertEvents([event('a', 1)])
    expect(d).toBeGreaterThan(c!)
  }, 60_000)

  it('groups concurrent saves into fewer claims, and records a save of 1,000 events', async () => {
    const grouping = await open()
    const { recorder } = await fresh(grouping)
    const conditional = grouping.conditional.bind(grouping)
    let claims = 0
    grouping.conditional = (statements: readonly CqlStatement[]) => {
      if (statements.some((statement) => /SET head = \?/.test(statement.query))) claims++
      return conditional(statements)
    }
    const started = performance.now()
    const ids = await Promise.all(Array.from({ length: 16 }, (_, i) => recorder.insertEvents([event(`g${i}`, 1)])))
    const elapsed = performance.now() - started
    console.info(`16 concurrent single-event saves: ${claims} claims, ${Math.round(16 / (elapsed / 1000))} saves/s`)
    expect(claims).toBeLessThan(16)
    expect(new Set(ids.flat()).size).toBe(16)
    const big = await recorder.insertEvents(range('big', 1, 1000))
    expect(big).toEqual(Array.from({ length: 1000 }, (_, i) => big[0]! + i))
    expect(await recorder.selectEvents('big')).toHaveLength(1000)
    expect((await readLog(recorder)).length).toBe(1016)
  }, 120_000)

  it('closes a bucket that a save does not fit in, and reads on across it', async () => {
    const { name, recorder } = await fresh()
    const other = new CassandraProcessRecorder(await open(), name)
    for (let i = 0; i < 9; i++) await recorder.insertEvents(range(`fill${i}`, 1, 1000))
    const [last] = await other.insertEvents([event('a', 1)])
    expect(last).toBe(9001)
    // 1,500 events do not fit in the 999 ids left: the bucket is closed, and the save takes the next one.
    const big = await recorder.insertEvents(range('big', 1, 1500))
    expect(big[0]).toBe(BUCKET + 1)
    // The other recorder finds the bucket closed when its claim fails, and follows.
    const [after] = await other.insertEvents([event('b', 1)])
    expect(after).toBe(BUCKET + 1501)
    expect(await other.maxNotificationId()).toBe(after)
    const across = await other.selectNotifications({ start: 9001, limit: 3 })
    expect(across.map((n) => n.id)).toEqual([9001, BUCKET + 1, BUCKET + 2])
    expect((await readLog(recorder)).length).toBe(9000 + 1 + 1500 + 1)
    const fresh2 = new CassandraProcessRecorder(await open(), name)
    const [third] = await fresh2.insertEvents([event('c', 1)])
    expect(third).toBe(after! + 1)
  }, 240_000)

  it('settles writes whose answers were lost, recording each save and tracking record once', async () => {
    const lossy = await open()
    const { name, recorder } = await fresh(lossy)
    const conditional = lossy.conditional.bind(lossy)
    const lost = () => new lossy.driver.errors.OperationTimedOutError('answer lost', '127.0.0.1')
    let calls = 0
    // Every third write is applied and its answer lost, the next is lost before it is applied.
    lossy.conditional = async (statements: readonly CqlStatement[]) => {
      const call = calls++
      if (call % 3 === 1) throw lost()
      const result = await conditional(statements)
      if (call % 3 === 0) throw lost()
      return result
    }
    try {
      for (let i = 1; i <= 6; i++) {
        await recorder.insertEvents([event('a', i), event('b', i)], {
          tracking: { applicationName: 'up', notificationId: i },
        })
      }
      await recorder.insertTracking({ applicationName: 'other', notificationId: 1 })
    } finally {
      lossy.conditional = conditional
    }
    const reader = new CassandraProcessRecorder(await open(), name)
    const log = await readLog(reader)
    expect(log.map((n) => `${n.originatorId}@${n.originatorVersion}`)).toEqual(
      [1, 2, 3, 4, 5, 6].flatMap((i) => [`a@${i}`, `b@${i}`]),
    )
    expect(versions(await reader.selectEvents('a'))).toEqual([1, 2, 3, 4, 5, 6])
    expect(await reader.selectTracking()).toEqual([
      { applicationName: 'other', notificationId: 1 },
      { applicationName: 'up', notificationId: 6 },
    ])
  }, 60_000)

  it('never holds up two saves that each need a row of the other (wound-wait): the older is recorded', async () => {
    const { recorder } = await fresh()
    for (let round = 1; round <= 5; round++) {
      const started = Date.now()
      const outcomes = await Promise.allSettled([
        recorder.insertEvents([event('x', round, 'x to y'), event('y', round, 'x to y')]),
        recorder.insertEvents([event('y', round, 'y to x'), event('x', round, 'y to x')]),
      ])
      // Without wound-wait, each would wait for the other until abandonAfterMs (10 s here), and both could fail.
      expect(Date.now() - started).toBeLessThan(5000)
      // Both were claimed in one batch, in the order of the calls: the first is the older, and wins.
      expect(outcomes[0]!.status).toBe('fulfilled')
      expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: expect.any(VersionConflictError) })
      const [x] = await recorder.selectEvents('x', { gt: round - 1 })
      const [y] = await recorder.selectEvents('y', { gt: round - 1 })
      expect([x!.topic, y!.topic]).toEqual(['x to y', 'x to y'])
    }
  }, 120_000)

  it('never holds up saves that clash on an aggregate and on tracking: all settle at once, as one history', async () => {
    const { recorder } = await fresh()
    for (let round = 0; round < 5; round++) {
      const [a, b, up] = [`a${round}`, `b${round}`, `up${round}`]
      const saves = [
        { events: [event(a, 1, 's1')], tracking: { applicationName: up, notificationId: 1 } },
        { events: [event(b, 1, 's2')], tracking: { applicationName: up, notificationId: 1 } },
        { events: [event(a, 1, 's3')], tracking: { applicationName: up, notificationId: 2 } },
      ]
      const started = Date.now()
      const outcomes = await Promise.allSettled(saves.map((save) => recorder.insertEvents(save.events, save)))
      expect(Date.now() - started).toBeLessThan(5000)
      const done = saves.filter((_, i) => outcomes[i]!.status === 'fulfilled')
      // As if written one at a time in the order of the calls: the first wins, each other names its own clash.
      expect(outcomes[0]!.status).toBe('fulfilled')
      expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: expect.any(TrackingConflictError) })
      expect(outcomes[2]).toMatchObject({ status: 'rejected', reason: expect.any(VersionConflictError) })
      const recorded = [...(await recorder.selectEvents(a)), ...(await recorder.selectEvents(b))]
      expect(recorded.map((e) => e.topic).sort()).toEqual(done.map((save) => save.events[0]!.topic).sort())
      expect(await recorder.maxTrackingId(up)).toBe(Math.max(...done.map((save) => save.tracking.notificationId)))
    }
  }, 120_000)

  it('shows a save cut off at each step boundary all or nothing on every read path', async () => {
    const quick = await open({ abandonAfterMs: 400 })
    const { name, recorder: writer } = await fresh(quick)
    // The steps of a save, run by hand up to a boundary, as a writer that crashes there would have.
    const upTo = async (steps: number, originatorId: string, notificationId: number) => {
      const events = [event(originatorId, 1), event(`${originatorId}-other`, 1)]
      const saveId = quick.driver.types.Uuid.random()
      const position = await writer.writer.claim(events, saveId)
      const save = { saveId, position }
      const placed = events.map((e, i): Placed[] => [{ event: e, id: position + i }])
      const tracking = [{ applicationName: 'up', notificationId }]
      if (steps >= 2) {
        await Promise.all([
          ...placed.map((p) => writeIntents(writer.context, p, save)),
          writeTracking(writer.context, tracking, save),
        ])
      }
      if (steps >= 3) expect(await writer.writer.decide(position, 'committed')).toBe(true)
      if (steps >= 4) await mark(writer.context, placed, tracking, save)
    }
    await upTo(1, 'claimed', 1)
    await upTo(2, 'intended', 1)
    await upTo(3, 'committed', 1)
    await upTo(4, 'marked', 2)
    // A reader of another process: it knows nothing of the writer's saves.
    const reader = new CassandraProcessRecorder(await open({ abandonAfterMs: 400 }), name)
    const log = await readLog(reader)
    expect(log.map((n) => n.originatorId)).toEqual(['committed', 'committed-other', 'marked', 'marked-other'])
    for (const id of ['claimed', 'intended']) expect(await reader.selectEvents(id)).toEqual([])
    for (const id of ['committed', 'marked']) expect(versions(await reader.selectEvents(`${id}-other`))).toEqual([1])
    expect(await reader.maxTrackingId('up')).toBe(2)
    expect(await reader.maxNotificationId()).toBe(log.at(-1)!.id)
  }, 60_000)

  it('shows the save of a writer killed (SIGKILL) before its intents, commit or marks all or nothing; a re-run of its tracking records it once', async () => {
    const quick = await open({ abandonAfterMs: 500 })
    const { name } = await fresh(quick)
    const script = fileURLToPath(new URL('./crashing-writer.ts', import.meta.url))
    // Runs a writer process until it stops before the step, then kills it.
    const crash = (step: string, id: number) =>
      new Promise<void>((resolve, reject) => {
        const args = ['--import', 'tsx', '--no-warnings', script, node!.contactPoints.join(','), keyspace, name, step]
        const child = spawn(process.execPath, [...args, String(id)], { stdio: ['ignore', 'pipe', 'pipe'] })
        let output = ''
        const collect = (chunk: Buffer) => {
          output += chunk.toString()
          if (output.includes('READY')) child.kill('SIGKILL')
        }
        child.stdout.on('data', collect)
        child.stderr.on('data', collect)
        child.once('exit', (_, signal) =>
          signal === 'SIGKILL' ? resolve() : reject(new Error(`The writer exited by itself: ${output}`)),
        )
      })
    await crash('intents', 1)
    await crash('commit', 1)
    await crash('marks', 2)
    const reader = new CassandraProcessRecorder(quick, name)
    const log = await readLog(reader)
    expect(log.map((n) => n.originatorId)).toEqual(['marks-a', 'marks-b'])
    for (const id of ['intents-a', 'commit-b']) expect(await reader.selectEvents(id)).toEqual([])
    expect(versions(await reader.selectEvents('marks-b'))).toEqual([1])
    expect(await reader.maxTrackingId('up')).toBe(2)
    // The killed writers' notifications processed again: the one recorded conflicts, the next is recorded once.
    await expect(
      reader.insertEvents([event('again', 1)], { tracking: { applicationName: 'up', notificationId: 2 } }),
    ).rejects.toBeInstanceOf(TrackingConflictError)
    await reader.insertEvents([event('again', 1)], { tracking: { applicationName: 'up', notificationId: 3 } })
    expect((await readLog(reader)).map((n) => n.originatorId)).toEqual(['marks-a', 'marks-b', 'again'])
  }, 120_000)
})
