import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import fc from 'fast-check'
import { IntegrityError, WaitTimeoutError } from '../persistence/errors.js'
import type { Persistence, ProcessRecorder, Recorders, SubscribeOptions } from '../persistence/recorder.js'
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'

/**
 * The `describe` and `it` functions of a test framework, which the suite
 * declares its tests with; those of vitest, node:test, Jest and Mocha fit.
 */
export interface TestApi {
  /** Declares a group of tests. */
  describe(name: string, body: () => void): unknown
  /** Declares a test, which fails when the returned promise rejects. */
  it(name: string, body: () => Promise<void>): unknown
}

/** A fresh, empty store made by a {@link RecorderHarness} for one test. */
export interface RecorderStore {
  /**
   * The backend under test. Opening the same application name twice must give
   * two handles (connections) on the same storage: the concurrency tests use them.
   */
  readonly persistence: Persistence
  /** Removes the store (files, schemas); called after each test, once its recorders are closed. */
  teardown(): Promise<void>
}

/** Describes a backend to {@link testRecorders}. */
export interface RecorderHarness {
  /** The name the tests are grouped under, e.g. `sqlite :memory:`. */
  readonly name: string
  /** Makes a fresh, empty store; called once per test (and per run of the property-based test). */
  setup(): Promise<RecorderStore>
}

/**
 * Declares the recorder conformance suite for one backend: every rule of the
 * recorder contracts (atomic batches, unique versions, increasing ids that no
 * reader can skip under concurrent writers, monotonic tracking committed with
 * its events, live subscriptions, deletion, snapshots), plus a model-based
 * property test over random sequences of writes. A backend is done when it
 * passes unchanged. Assertions use `node:assert/strict`, so the suite runs
 * under any test framework.
 *
 * @example
 * ```ts
 * import { describe, it } from 'vitest'
 * import { testRecorders } from 'eventsourcing/testing'
 *
 * testRecorders({ describe, it }, {
 *   name: 'my backend',
 *   async setup() {
 *     const persistence = myBackend({ url: await createTestDatabase() })
 *     return { persistence, teardown: () => dropTestDatabase() }
 *   },
 * })
 * ```
 */
export function testRecorders(api: TestApi, harness: RecorderHarness): void {
  const test = (name: string, body: (open: Open) => Promise<void>) => api.it(name, () => withStore(harness, body))

  api.describe(`recorder conformance: ${harness.name}`, () => {
    api.describe('events', () => {
      test('inserted events are selected with the same fields and bytes', async (open) => {
        const { events } = await open()
        const all = Uint8Array.from({ length: 256 }, (_, i) => i)
        const large = Uint8Array.from({ length: 65_536 }, (_, i) => (i * 31) % 251)
        const id = '5f0c7a36-9a43-4c8e-b1c4-0d0e3f2a9b61'
        const given = [
          event(id, 1, 'dogschool:Dog.Registered', new Uint8Array(0)),
          event(id, 2, 'dogschool:Dog.TrickAdded', all),
          event(id, 3, 'dogschool:Dog.TrickAdded', large),
        ]
        const ids = await events.insertEvents(given)
        assert.equal(ids.length, 3)
        assert.deepEqual((await events.selectEvents(id)).map(plain), given.map(plain))
        const unicode = event('Hündin 🐕 «Rex»', 1, 'thème:Événement')
        await events.insertEvents([unicode])
        assert.deepEqual((await events.selectEvents(unicode.originatorId)).map(plain), [plain(unicode)])
        assert.deepEqual(await events.selectEvents('unknown'), [])
      })

      test('an empty batch writes nothing and returns no ids', async (open) => {
        const { events } = await open()
        assert.deepEqual(await events.insertEvents([]), [])
        assert.equal(await events.maxNotificationId(), 0)
      })

      test('what was recorded cannot be changed through the objects given or returned', async (open) => {
        const { events } = await open()
        const given = { originatorId: 'a', originatorVersion: 1, topic: 't', state: bytes('x') }
        await events.insertEvents([given])
        Object.assign(given, { originatorId: 'z', originatorVersion: 9, topic: 'changed' })
        tryToChange(await events.selectEvents('a'))
        tryToChange(await events.selectNotifications({ limit: 10 }))
        assert.deepEqual((await events.selectEvents('a')).map(plain), [plain(event('a', 1, 't', bytes('x')))])
        assert.deepEqual(
          (await readLog(events)).map((n) => n.topic),
          ['t'],
        )
        assert.deepEqual(await events.selectEvents('z'), [])
      })

      test('a version already recorded fails the whole batch with IntegrityError', async (open) => {
        const { events } = await open()
        await events.insertEvents(range('a', 1, 2))
        const before = await contents(events)
        await assert.rejects(events.insertEvents([event('b', 1), event('a', 2), event('c', 1)]), IntegrityError)
        assert.deepEqual(await contents(events), before)
      })

      test('a version repeated within a batch fails the whole batch with IntegrityError', async (open) => {
        const { events } = await open()
        await assert.rejects(
          events.insertEvents([event('a', 1), event('b', 1), event('a', 1, 'other')]),
          IntegrityError,
        )
        await assert.rejects(events.insertEvents([event('c', 3), event('c', 1), event('c', 3)]), IntegrityError)
        assert.deepEqual(await contents(events), { log: [], max: 0, a: [], b: [], c: [] })
      })

      test('events are selected in version order whatever order they were inserted in', async (open) => {
        const { events } = await open()
        await events.insertEvents([event('a', 3), event('a', 1)])
        await events.insertEvents([event('a', 2)])
        assert.deepEqual(versions(await events.selectEvents('a')), [1, 2, 3])
      })

      test('selectEvents applies gt, lte, desc and limit', async (open) => {
        const { events } = await open()
        await events.insertEvents(range('a', 1, 10))
        await events.insertEvents(range('b', 1, 3))
        const select = async (options: Parameters<ProcessRecorder['selectEvents']>[1]) =>
          versions(await events.selectEvents('a', options))
        assert.deepEqual(await select(undefined), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        assert.deepEqual(await select({ gt: 3 }), [4, 5, 6, 7, 8, 9, 10])
        assert.deepEqual(await select({ lte: 5 }), [1, 2, 3, 4, 5])
        assert.deepEqual(await select({ gt: 3, lte: 7 }), [4, 5, 6, 7])
        assert.deepEqual(await select({ desc: true }), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
        assert.deepEqual(await select({ limit: 3 }), [1, 2, 3])
        assert.deepEqual(await select({ desc: true, limit: 3 }), [10, 9, 8])
        assert.deepEqual(await select({ gt: 3, limit: 2 }), [4, 5])
        assert.deepEqual(await select({ lte: 7, desc: true, limit: 2 }), [7, 6])
        assert.deepEqual(await select({ gt: 8, desc: true }), [10, 9])
        assert.deepEqual(await select({ gt: 2, lte: 9, desc: true, limit: 3 }), [9, 8, 7])
        assert.deepEqual(await select({ gt: 10 }), [])
        assert.deepEqual(await select({ lte: 0 }), [])
        assert.deepEqual(await select({ gt: 5, lte: 5 }), [])
        assert.deepEqual(await select({ limit: 0 }), [])
        assert.deepEqual(await select({ limit: 100 }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      })
    })

    api.describe('notification log', () => {
      test('an empty log has no notifications and a max id of 0', async (open) => {
        const { events } = await open()
        assert.equal(await events.maxNotificationId(), 0)
        assert.deepEqual(await events.selectNotifications({ limit: 10 }), [])
        assert.deepEqual(await events.selectNotifications({ start: 1, limit: 10, topics: ['t'] }), [])
      })

      test('ids are positive, increase within and across batches, and follow the input order', async (open) => {
        const { events } = await open()
        const batch = [event('b', 1), event('a', 1), event('c', 1), event('a', 2), event('b', 2)]
        const ids = await events.insertEvents(batch)
        assert.ok(
          ids.every((id) => Number.isSafeInteger(id) && id > 0),
          `ids are positive integers: ${ids}`,
        )
        assertIncreasing(ids)
        const log = await readLog(events)
        assert.deepEqual(
          log.map(plainNotification),
          batch.map((e, i) => plainNotification({ ...e, id: ids[i]! })),
        )
        const [next] = await events.insertEvents([event('a', 3)])
        assert.ok(next! > ids[ids.length - 1]!, 'a later batch has higher ids')
        assert.equal(await events.maxNotificationId(), next)
      })

      test('selectNotifications applies start, inclusiveOfStart, limit, stop and topics', async (open) => {
        const { events } = await open()
        const topics = ['t1', 't2', 't3']
        const ids = [
          ...(await events.insertEvents([1, 2, 3, 4].map((v) => event('a', v, topics[(v - 1) % 3])))),
          ...(await events.insertEvents([5, 6, 7, 8, 9].map((v) => event('a', v, topics[(v - 1) % 3])))),
        ]
        const at = (...indexes: number[]) => indexes.map((i) => ids[i]!)
        const select = async (options: Parameters<ProcessRecorder['selectNotifications']>[0]) =>
          (await events.selectNotifications(options)).map((n) => n.id)
        const notifications = await events.selectNotifications({ limit: 100 })
        assert.deepEqual(
          notifications.map(plainNotification),
          range('a', 1, 9, topics).map((e, i) => plainNotification({ ...e, id: ids[i]! })),
        )
        assert.deepEqual(await select({ limit: 4 }), at(0, 1, 2, 3))
        assert.deepEqual(await select({ start: ids[3], limit: 3 }), at(3, 4, 5))
        assert.deepEqual(await select({ start: ids[3], inclusiveOfStart: true, limit: 3 }), at(3, 4, 5))
        assert.deepEqual(await select({ start: ids[3], inclusiveOfStart: false, limit: 3 }), at(4, 5, 6))
        assert.deepEqual(await select({ start: ids[1], stop: ids[4], limit: 100 }), at(1, 2, 3, 4))
        assert.deepEqual(await select({ stop: ids[2], limit: 100 }), at(0, 1, 2))
        assert.deepEqual(await select({ start: ids[2], stop: ids[6], limit: 2 }), at(2, 3))
        assert.deepEqual(await select({ topics: ['t2'], limit: 100 }), at(1, 4, 7))
        assert.deepEqual(await select({ topics: ['t1', 't3'], limit: 3 }), at(0, 2, 3))
        assert.deepEqual(await select({ topics: ['t1'], start: ids[1], stop: ids[6], limit: 100 }), at(3, 6))
        assert.deepEqual(await select({ topics: ['t3'], start: ids[2], inclusiveOfStart: false, limit: 100 }), at(5, 8))
        assert.deepEqual(await select({ topics: [], limit: 100 }), ids)
        assert.deepEqual(await select({ topics: ['unknown'], limit: 100 }), [])
        assert.deepEqual(await select({ start: ids[8]! + 1, limit: 10 }), [])
        assert.deepEqual(await select({ start: ids[5], stop: ids[4], limit: 10 }), [])
        assert.deepEqual(await select({ limit: 0 }), [])
        assert.equal(await events.maxNotificationId(), ids[8])
      })
    })

    api.describe('concurrency', () => {
      test('two large batches written at once never interleave their ids', async (open) => {
        const one = (await open()).events
        const two = (await open()).events
        const [a, b] = await Promise.all([one.insertEvents(range('a', 1, 500)), two.insertEvents(range('b', 1, 500))])
        assertIncreasing(a)
        assertIncreasing(b)
        assert.ok(a[499]! < b[0]! || b[499]! < a[0]!, 'the ids of the two batches interleave')
        const log = (await readLog(one)).map((n) => n.originatorId)
        assert.equal(log.length, 1000)
        assert.equal(new Set(log.slice(0, 500)).size, 1, 'the log interleaves the two batches')
        assert.equal(new Set(log.slice(500)).size, 1, 'the log interleaves the two batches')
      })

      test('readers tailing the log see every committed event once, in order, despite concurrent writers', async (open) => {
        const writers = await openMany(open, 8)
        const [tailer1, tailer2, subscriber] = [(await open()).events, (await open()).events, (await open()).events]
        const random = seededRandom(7)
        const committed = new Map<number, string>()
        let writing = true
        const write = async (recorder: ProcessRecorder) => {
          for (let save = 0; save < 50; save++) {
            const originatorId = `aggregate-${Math.floor(random() * 12)}`
            const [last] = await recorder.selectEvents(originatorId, { desc: true, limit: 1 })
            const from = (last?.originatorVersion ?? 0) + 1
            const batch = range(originatorId, from, from + Math.floor(random() * 3))
            let ids: number[]
            try {
              ids = await recorder.insertEvents(batch)
            } catch (error) {
              // Another writer recorded this version since it was read: the optimistic concurrency check.
              if (error instanceof IntegrityError) continue
              throw error
            }
            for (const [i, id] of ids.entries()) committed.set(id, key(batch[i]!))
            if (save % 5 === 0) await assert.rejects(recorder.insertEvents(batch), IntegrityError)
          }
        }
        const tail = async (recorder: ProcessRecorder) => {
          const seen: Notification[] = []
          for (;;) {
            // Read before querying: once writing is over, an empty page means nothing is left.
            const finished = !writing
            const start = seen[seen.length - 1]?.id ?? 0
            const page = await recorder.selectNotifications({ start, inclusiveOfStart: false, limit: 20 })
            seen.push(...page)
            if (page.length === 0) {
              if (finished) return seen
              await delay(1)
            }
          }
        }
        const controller = new AbortController()
        const followed: Notification[] = []
        const following = (async () => {
          for await (const n of subscriber.subscribe({ signal: controller.signal })) followed.push(n)
        })()
        const tailing = Promise.all([tail(tailer1), tail(tailer2)])
        try {
          await Promise.all(writers.map(write))
          writing = false
          const max = await subscriber.maxNotificationId()
          await until(() => (followed[followed.length - 1]?.id ?? 0) >= max)
        } finally {
          writing = false
          controller.abort()
        }
        await following
        const expected = [...committed].sort(([a], [b]) => a - b).map(([id, k]) => `${id} ${k}`)
        assert.ok(expected.length > 0)
        const seenBy = (seen: Notification[]) => seen.map((n) => `${n.id} ${key(n)}`)
        for (const seen of [...(await tailing), followed, await readLog(subscriber)]) {
          assert.deepEqual(seenBy(seen), expected)
        }
        for (const originatorId of new Set([...committed.values()].map((k) => k.split('@')[0]!))) {
          const recorded = versions(await subscriber.selectEvents(originatorId))
          assert.deepEqual(
            recorded,
            recorded.map((_, i) => i + 1),
            `versions of ${originatorId} have a gap`,
          )
        }
      })

      test('of two connections recording the same tracking record with events, exactly one succeeds', async (open) => {
        const one = (await open()).events
        const two = (await open()).events
        const tracking = { applicationName: 'upstream', notificationId: 1 }
        const results = await Promise.allSettled([
          one.insertEvents([event('a', 1)], { tracking }),
          two.insertEvents([event('b', 1)], { tracking }),
        ])
        const failed = results.filter((r) => r.status === 'rejected')
        assert.equal(failed.length, 1, 'exactly one of the two writes fails')
        assert.ok(failed[0]!.reason instanceof IntegrityError, `${failed[0]!.reason}`)
        const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b'
        assert.deepEqual((await readLog(one)).map(key), [`${winner}@1`])
        assert.equal(await two.maxTrackingId('upstream'), 1)
      })
    })

    api.describe('tracking', () => {
      test('with nothing tracked, maxTrackingId is 0 and only an undefined id counts as tracked', async (open) => {
        const { events } = await open()
        assert.equal(await events.maxTrackingId('upstream'), 0)
        assert.equal(await events.hasTrackingId('upstream', 1), false)
        assert.equal(await events.hasTrackingId('upstream', undefined), true)
      })

      test('tracking ids increase per upstream application: a lower or equal id fails with IntegrityError', async (open) => {
        const { events } = await open()
        await events.insertTracking({ applicationName: 'up', notificationId: 5 })
        await assert.rejects(events.insertTracking({ applicationName: 'up', notificationId: 5 }), IntegrityError)
        await assert.rejects(events.insertTracking({ applicationName: 'up', notificationId: 3 }), IntegrityError)
        assert.equal(await events.maxTrackingId('up'), 5)
        await events.insertTracking({ applicationName: 'up', notificationId: 7 })
        await events.insertTracking({ applicationName: 'other', notificationId: 1 })
        assert.equal(await events.maxTrackingId('up'), 7)
        assert.equal(await events.maxTrackingId('other'), 1)
        await events.insertTracking({ applicationName: 'other', notificationId: 2 })
        assert.equal(await events.maxTrackingId('up'), 7)
      })

      test('hasTrackingId is true for ids up to the highest tracked', async (open) => {
        const { events } = await open()
        await events.insertTracking({ applicationName: 'up', notificationId: 3 })
        await events.insertTracking({ applicationName: 'up', notificationId: 5 })
        for (const id of [1, 3, 4, 5]) assert.equal(await events.hasTrackingId('up', id), true, `id ${id}`)
        assert.equal(await events.hasTrackingId('up', 6), false)
        assert.equal(await events.hasTrackingId('other', 1), false)
      })

      test('events and their tracking record are recorded together', async (open) => {
        const { events } = await open()
        const ids = await events.insertEvents(range('a', 1, 2), {
          tracking: { applicationName: 'up', notificationId: 4 },
        })
        assert.equal(ids.length, 2)
        assert.equal(await events.maxTrackingId('up'), 4)
        assert.deepEqual(versions(await events.selectEvents('a')), [1, 2])
      })

      test('a tracking record can be recorded with no events', async (open) => {
        const { events } = await open()
        assert.deepEqual(await events.insertEvents([], { tracking: { applicationName: 'up', notificationId: 2 } }), [])
        assert.equal(await events.maxTrackingId('up'), 2)
        assert.equal(await events.maxNotificationId(), 0)
      })

      test('a batch with a duplicate version and a tracking record writes neither', async (open) => {
        const { events } = await open()
        await events.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 1 } })
        const before = await contents(events)
        const tracking = { applicationName: 'up', notificationId: 2 }
        await assert.rejects(events.insertEvents([event('b', 1), event('a', 1)], { tracking }), IntegrityError)
        assert.deepEqual(await contents(events), before)
        assert.equal(await events.maxTrackingId('up'), 1)
      })

      test('a tracking record that is not newer fails the batch and writes no events', async (open) => {
        const { events } = await open()
        await events.insertTracking({ applicationName: 'up', notificationId: 5 })
        for (const notificationId of [5, 4]) {
          const tracking = { applicationName: 'up', notificationId }
          await assert.rejects(events.insertEvents(range('a', 1, 2), { tracking }), IntegrityError)
        }
        assert.deepEqual(await contents(events), { log: [], max: 0, a: [], b: [], c: [] })
        assert.equal(await events.maxTrackingId('up'), 5)
      })

      test('waitForTracking resolves at once for a tracked id', async (open) => {
        const { events } = await open()
        await events.insertTracking({ applicationName: 'up', notificationId: 4 })
        await events.waitForTracking('up', 4)
        await events.waitForTracking('up', 2, { timeoutMs: 1 })
      })

      test('waitForTracking resolves when another connection records the tracking', async (open) => {
        const one = (await open()).events
        const two = (await open()).events
        let resolved = false
        const waiting = one.waitForTracking('up', 5, { timeoutMs: 10_000 }).then(() => {
          resolved = true
        })
        await two.insertTracking({ applicationName: 'up', notificationId: 3 })
        await delay(30)
        assert.equal(resolved, false, 'resolved before the id was tracked')
        await two.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 7 } })
        await waiting
      })

      test('waitForTracking rejects with WaitTimeoutError naming the application and id', async (open) => {
        const { events } = await open()
        await events.insertTracking({ applicationName: 'upstream', notificationId: 1 })
        await assert.rejects(events.waitForTracking('upstream', 42, { timeoutMs: 50 }), (error: unknown) => {
          assert.ok(error instanceof WaitTimeoutError, `${error}`)
          assert.match(error.message, /upstream/)
          assert.match(error.message, /42/)
          return true
        })
      })

      test('waitForTracking rejects with the reason of an aborted signal', async (open) => {
        const { events } = await open()
        const controller = new AbortController()
        const reason = new Error('stopped')
        const waiting = events.waitForTracking('up', 1, { signal: controller.signal })
        setTimeout(() => controller.abort(reason), 20)
        await assert.rejects(waiting, (error: unknown) => error === reason)
      })
    })

    api.describe('subscribe', () => {
      test('subscribe yields recorded notifications, then new ones from another connection, until aborted', async (open) => {
        const one = (await open()).events
        const two = (await open()).events
        const first = await one.insertEvents(range('a', 1, 3))
        const { seen, later } = await follow(one, {}, 5, (count) =>
          count === 3 ? () => two.insertEvents(range('a', 4, 5)) : undefined,
        )
        assert.deepEqual(seen.map(plainNotification), [
          ...range('a', 1, 5).map((e, i) => plainNotification({ ...e, id: [...first, ...later][i]! })),
        ])
      })

      test('subscribe applies gt and topics to recorded and new notifications', async (open) => {
        const one = (await open()).events
        const two = (await open()).events
        const ids = await one.insertEvents(range('a', 1, 4, ['t1', 't2']))
        const { seen, later } = await follow(one, { gt: ids[1], topics: ['t2'] }, 2, (count) =>
          count === 1 ? () => two.insertEvents(range('a', 5, 6, ['t1', 't2'])) : undefined,
        )
        assert.deepEqual(
          seen.map((n) => n.id),
          [ids[3], later[1]],
        )
      })

      test('subscribe ends without error when aborted while waiting, or aborted before it starts', async (open) => {
        const { events } = await open()
        const controller = new AbortController()
        setTimeout(() => controller.abort(), 20)
        for await (const n of events.subscribe({ signal: controller.signal })) assert.fail(`yielded ${n.id}`)
        await events.insertEvents(range('a', 1, 2))
        for await (const n of events.subscribe({ signal: AbortSignal.abort() })) assert.fail(`yielded ${n.id}`)
      })

      test('a subscription ends when the loop reading it breaks', async (open) => {
        const { events } = await open()
        const [id] = await events.insertEvents(range('a', 1, 2))
        for await (const n of events.subscribe()) {
          assert.equal(n.id, id)
          break
        }
      })
    })

    api.describe('deleteEvents', () => {
      test('deleteEvents removes one originator from selectEvents and the log, which keeps its gap', async (open) => {
        const { events } = await open()
        await events.insertEvents(range('b', 1, 2))
        await events.insertEvents(range('a', 1, 3))
        const [c] = await events.insertEvents([event('c', 1)])
        assert.equal(await events.deleteEvents('a'), 3)
        assert.deepEqual(await events.selectEvents('a'), [])
        assert.deepEqual(versions(await events.selectEvents('b')), [1, 2])
        assert.deepEqual((await readLog(events)).map(key), ['b@1', 'b@2', 'c@1'])
        assert.equal(await events.deleteEvents('a'), 0)
        assert.equal(await events.deleteEvents('unknown'), 0)
        assert.equal(await events.deleteEvents('c'), 1)
        assert.equal(await events.maxNotificationId(), (await readLog(events))[1]!.id)
        const [d] = await events.insertEvents([event('d', 1)])
        assert.ok(d! > c!, 'an id was given again after a delete')
        assert.deepEqual((await readLog(events)).map(key), ['b@1', 'b@2', 'd@1'])
      })
    })

    api.describe('snapshots', () => {
      test('snapshots are inserted, selected, rejected when repeated, and deleted', async (open) => {
        const { events, snapshots } = await open()
        await snapshots.insertEvents([event('a', 5, 'snapshot')])
        await snapshots.insertEvents([event('a', 10, 'snapshot')])
        assert.deepEqual(versions(await snapshots.selectEvents('a')), [5, 10])
        assert.deepEqual(versions(await snapshots.selectEvents('a', { desc: true, limit: 1 })), [10])
        assert.deepEqual(versions(await snapshots.selectEvents('a', { lte: 7, desc: true, limit: 1 })), [5])
        await assert.rejects(snapshots.insertEvents([event('a', 5, 'snapshot')]), IntegrityError)
        assert.deepEqual(await events.selectEvents('a'), [])
        assert.equal(await events.maxNotificationId(), 0)
        await events.insertEvents([event('a', 5)])
        assert.deepEqual(versions(await snapshots.selectEvents('a')), [5, 10])
        assert.equal(await snapshots.deleteEvents('a'), 2)
        assert.deepEqual(await snapshots.selectEvents('a'), [])
        assert.deepEqual(versions(await events.selectEvents('a')), [5])
      })
    })

    api.describe('applications', () => {
      test('applications opened on the same backend have separate events, logs and tracking', async (open) => {
        const one = (await open('app')).events
        const two = (await open('other')).events
        await one.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 3 } })
        await two.insertEvents([event('a', 1)])
        assert.deepEqual((await readLog(one)).map(key), ['a@1'])
        assert.deepEqual((await readLog(two)).map(key), ['a@1'])
        assert.equal(await two.maxTrackingId('up'), 0)
      })
    })

    api.describe('model', () => {
      api.it('random sequences of writes, duplicates, tracking and deletes behave like a simple model', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(stepArbitrary, { maxLength: 25 }), (steps) =>
            withStore(harness, async (open) => checkAgainstModel((await open()).events, steps)),
          ),
          { numRuns: 30 },
        )
      })
    })
  })
}

type Open = (applicationName?: string) => Promise<Recorders>

/** Runs a test on a fresh store, closing every recorder it opened and removing the store afterwards. */
async function withStore(harness: RecorderHarness, body: (open: Open) => Promise<void>): Promise<void> {
  const { persistence, teardown } = await harness.setup()
  const opened: Recorders[] = []
  try {
    await body(async (applicationName = 'app') => {
      const recorders = await persistence.open(applicationName)
      opened.push(recorders)
      return recorders
    })
  } finally {
    try {
      for (const recorders of opened.reverse()) await recorders.close()
    } finally {
      await teardown()
    }
  }
}

async function openMany(open: Open, count: number): Promise<ProcessRecorder[]> {
  const recorders: ProcessRecorder[] = []
  for (let i = 0; i < count; i++) recorders.push((await open()).events)
  return recorders
}

/**
 * Subscribes until `count` notifications arrive (or 10 s pass). After each one,
 * `act` may return a write, which runs a little later so that the subscription
 * is waiting for it; the ids it returns are `later`.
 */
async function follow(
  recorder: ProcessRecorder,
  options: SubscribeOptions,
  count: number,
  act: (seen: number) => (() => Promise<number[]>) | undefined,
): Promise<{ seen: Notification[]; later: number[] }> {
  const controller = new AbortController()
  const guard = setTimeout(() => controller.abort(), 10_000)
  const seen: Notification[] = []
  let writing: Promise<number[]> = Promise.resolve([])
  try {
    for await (const n of recorder.subscribe({ ...options, signal: controller.signal })) {
      seen.push(n)
      const write = act(seen.length)
      if (write) {
        writing = delay(20).then(write)
        writing.catch(() => {})
      }
      if (seen.length === count) controller.abort()
    }
  } finally {
    clearTimeout(guard)
  }
  assert.equal(seen.length, count, 'the subscription did not yield every notification')
  return { seen, later: await writing }
}

/** Changes the topic of each object, unless it is frozen. */
function tryToChange(objects: readonly StoredEvent[]): void {
  for (const object of objects) {
    try {
      Object.assign(object, { topic: 'changed' })
    } catch {
      // A backend may return frozen objects; they are safe too.
    }
  }
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not done within ${timeoutMs} ms`)
    await delay(5)
  }
}

async function readLog(recorder: ProcessRecorder): Promise<Notification[]> {
  const log: Notification[] = []
  for (;;) {
    const start = log[log.length - 1]?.id ?? 0
    const page = await recorder.selectNotifications({ start, inclusiveOfStart: false, limit: 100 })
    log.push(...page)
    if (page.length < 100) return log
  }
}

/** What a test compares to show that a failed write changed nothing. */
async function contents(recorder: ProcessRecorder) {
  return {
    log: (await readLog(recorder)).map(plainNotification),
    max: await recorder.maxNotificationId(),
    a: (await recorder.selectEvents('a')).map(plain),
    b: (await recorder.selectEvents('b')).map(plain),
    c: (await recorder.selectEvents('c')).map(plain),
  }
}

const encoder = new TextEncoder()

function bytes(text: string): Uint8Array {
  return encoder.encode(text)
}

function event(originatorId: string, originatorVersion: number, topic = 'topic', state?: Uint8Array): StoredEvent {
  return { originatorId, originatorVersion, topic, state: state ?? bytes(`${originatorId}@${originatorVersion}`) }
}

/** Events `from` to `to` of one originator, their topics taken from `topics` in turn. */
function range(originatorId: string, from: number, to: number, topics = ['topic']): StoredEvent[] {
  const events: StoredEvent[] = []
  for (let v = from; v <= to; v++) events.push(event(originatorId, v, topics[(v - from) % topics.length]))
  return events
}

function key(event: StoredEvent): string {
  return `${event.originatorId}@${event.originatorVersion}`
}

function versions(events: readonly StoredEvent[]): number[] {
  return events.map((e) => e.originatorVersion)
}

function plain({ originatorId, originatorVersion, topic, state }: StoredEvent) {
  assert.ok(state instanceof Uint8Array, `the state of ${originatorId}@${originatorVersion} is not a Uint8Array`)
  return { originatorId, originatorVersion, topic, state: Buffer.from(state).toString('hex') }
}

function plainNotification(notification: Notification) {
  return { id: notification.id, ...plain(notification) }
}

function assertIncreasing(ids: readonly number[]): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids do not increase: ${ids}`)
}

/** A small deterministic generator (mulberry32), so that a failing run can be repeated. */
function seededRandom(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ORIGINATORS = ['a', 'b', 'c']
const UPSTREAMS = ['up1', 'up2']

type Step =
  | { kind: 'insert'; events: StoredEvent[]; tracking: Tracking | undefined }
  | { kind: 'track'; tracking: Tracking }
  | { kind: 'delete'; originatorId: string }

const trackingArbitrary = fc.record({
  applicationName: fc.constantFrom(...UPSTREAMS),
  notificationId: fc.integer({ min: 1, max: 8 }),
})

// Few originators, versions and tracking ids, so that duplicates are frequent.
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      events: fc.array(
        fc
          .tuple(fc.constantFrom(...ORIGINATORS), fc.integer({ min: 1, max: 6 }), fc.constantFrom('t1', 't2'))
          .map(([originatorId, version, topic]) => event(originatorId, version, topic)),
        { maxLength: 4 },
      ),
      tracking: fc.option(trackingArbitrary, { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('track' as const), tracking: trackingArbitrary }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), originatorId: fc.constantFrom(...ORIGINATORS) }),
  },
)

/** Applies the steps to the recorder and to a model, comparing everything the recorder shows after each. */
async function checkAgainstModel(recorder: ProcessRecorder, steps: readonly Step[]): Promise<void> {
  let log: Notification[] = []
  let lastId = 0
  const tracked = new Map<string, number>()
  for (const step of steps) {
    if (step.kind === 'delete') {
      const deleted = log.filter((n) => n.originatorId === step.originatorId).length
      assert.equal(await recorder.deleteEvents(step.originatorId), deleted)
      log = log.filter((n) => n.originatorId !== step.originatorId)
    } else {
      const batch = step.kind === 'insert' ? step.events : []
      const keys = batch.map(key)
      const recorded = new Set(log.map(key))
      const conflict =
        keys.some((k, i) => recorded.has(k) || keys.indexOf(k) !== i) ||
        (step.tracking !== undefined &&
          step.tracking.notificationId <= (tracked.get(step.tracking.applicationName) ?? 0))
      const writing =
        step.kind === 'insert'
          ? recorder.insertEvents(batch, { tracking: step.tracking })
          : recorder.insertTracking(step.tracking).then(() => [])
      if (conflict) {
        await assert.rejects(writing, IntegrityError)
      } else {
        const ids = await writing
        assert.equal(ids.length, batch.length)
        ids.forEach((id, i) => {
          assert.ok(id > lastId, `id ${id} is not above ${lastId}, the last id given`)
          lastId = id
          log.push({ ...batch[i]!, id })
        })
        if (step.tracking) tracked.set(step.tracking.applicationName, step.tracking.notificationId)
      }
    }
    assert.deepEqual((await readLog(recorder)).map(plainNotification), log.map(plainNotification))
    assert.equal(await recorder.maxNotificationId(), log[log.length - 1]?.id ?? 0)
    for (const originatorId of ORIGINATORS) {
      const expected = log
        .filter((n) => n.originatorId === originatorId)
        .sort((x, y) => x.originatorVersion - y.originatorVersion)
      assert.deepEqual((await recorder.selectEvents(originatorId)).map(plain), expected.map(plain))
    }
    for (const upstream of UPSTREAMS) assert.equal(await recorder.maxTrackingId(upstream), tracked.get(upstream) ?? 0)
  }
}
