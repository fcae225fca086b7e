// The conformance tests of the tracking recorder.

import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { WaitTimeoutError } from '../persistence/errors.js'
import {
  contents,
  event,
  expectedTables,
  range,
  storeTest,
  trackingConflict,
  versionConflict,
  versions,
} from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the tests of tracking records: increasing per upstream application, recorded atomically with events, and awaited. */
export function testTracking(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
  const tables = expectedTables(harness)
  api.describe('tracking', () => {
    test('with nothing tracked, maxTrackingId is 0 and only an undefined id counts as tracked', async (open) => {
      const { events } = await open()
      assert.equal(await events.maxTrackingId('upstream'), 0)
      assert.equal(await events.hasTrackingId('upstream', 1), false)
      assert.equal(await events.hasTrackingId('upstream', undefined), true)
    })

    test('tracking ids increase per upstream application: a lower or equal id fails with a TrackingConflictError', async (open) => {
      const { events } = await open()
      await events.insertTracking({ applicationName: 'up', notificationId: 5 })
      await assert.rejects(
        events.insertTracking({ applicationName: 'up', notificationId: 5 }),
        trackingConflict('up', 5, tables.tracking),
      )
      await assert.rejects(
        events.insertTracking({ applicationName: 'up', notificationId: 3 }),
        trackingConflict('up', 3, tables.tracking),
      )
      await assert.rejects(
        events.insertTracking({ applicationName: 'new', notificationId: 0 }),
        trackingConflict('new', 0, tables.tracking),
      )
      assert.equal(await events.maxTrackingId('up'), 5)
      await events.insertTracking({ applicationName: 'up', notificationId: 7 })
      await events.insertTracking({ applicationName: 'other', notificationId: 1 })
      assert.equal(await events.maxTrackingId('up'), 7)
      assert.equal(await events.maxTrackingId('other'), 1)
      await events.insertTracking({ applicationName: 'other', notificationId: 2 })
      assert.equal(await events.maxTrackingId('up'), 7)
    })

    test('selectTracking returns the highest id tracked per upstream application, ordered by name', async (open) => {
      const { events } = await open()
      assert.deepEqual(await events.selectTracking(), [])
      await events.insertTracking({ applicationName: 'up', notificationId: 3 })
      await events.insertEvents([event('a', 1)], {
        tracking: [
          { applicationName: 'up', notificationId: 5 },
          { applicationName: 'Zeta', notificationId: 2 },
          { applicationName: 'alpha/b-1', notificationId: 9 },
        ],
      })
      await assert.rejects(events.insertTracking({ applicationName: 'Zeta', notificationId: 1 }))
      const other = (await open('other')).events
      await other.insertTracking({ applicationName: 'elsewhere', notificationId: 1 })
      // By code point, as the databases order text in bytes: upper case before lower case.
      assert.deepEqual(await events.selectTracking(), [
        { applicationName: 'Zeta', notificationId: 2 },
        { applicationName: 'alpha/b-1', notificationId: 9 },
        { applicationName: 'up', notificationId: 5 },
      ])
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
      await assert.rejects(
        events.insertEvents([event('b', 1), event('a', 1)], { tracking }),
        versionConflict('a', 1, tables.events),
      )
      assert.deepEqual(await contents(events), before)
      assert.equal(await events.maxTrackingId('up'), 1)
    })

    test('a tracking record that is not newer fails the batch and writes no events', async (open) => {
      const { events } = await open()
      await events.insertTracking({ applicationName: 'up', notificationId: 5 })
      for (const notificationId of [5, 4]) {
        const tracking = { applicationName: 'up', notificationId }
        await assert.rejects(
          events.insertEvents(range('a', 1, 2), { tracking }),
          trackingConflict('up', notificationId, tables.tracking),
        )
      }
      assert.deepEqual(await contents(events), { log: [], max: 0, a: [], b: [], c: [] })
      assert.equal(await events.maxTrackingId('up'), 5)
    })

    test('tracked batches written at once fail alone, each naming its own clash', async (open) => {
      const { events } = await open()
      const [first, again, clash] = await Promise.allSettled([
        events.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 1 } }),
        events.insertEvents([event('b', 1)], { tracking: { applicationName: 'up', notificationId: 1 } }),
        events.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 2 } }),
      ])
      assert.equal(first!.status, 'fulfilled')
      assert.ok(again!.status === 'rejected' && trackingConflict('up', 1, tables.tracking)(again!.reason))
      assert.ok(clash!.status === 'rejected' && versionConflict('a', 1, tables.events)(clash!.reason))
      assert.equal(await events.maxTrackingId('up'), 1)
      assert.deepEqual(await events.selectEvents('b'), [])
    })

    test('several tracking records (one per upstream) are recorded with the events, in one write', async (open) => {
      const { events } = await open()
      await events.insertTracking({ applicationName: 'up/b', notificationId: 2 })
      const tracking = [
        { applicationName: 'up/a', notificationId: 3 },
        { applicationName: 'up/b', notificationId: 4 },
        { applicationName: 'up/a', notificationId: 7 },
      ]
      assert.equal((await events.insertEvents(range('a', 1, 2), { tracking })).length, 2)
      assert.equal(await events.maxTrackingId('up/a'), 7)
      assert.equal(await events.maxTrackingId('up/b'), 4)
      assert.deepEqual(versions(await events.selectEvents('a')), [1, 2])
      await events.insertEvents([], { tracking: [{ applicationName: 'up/c', notificationId: 1 }] })
      assert.equal(await events.maxTrackingId('up/c'), 1)
      assert.deepEqual(await events.insertEvents([], { tracking: [] }), [])
    })

    test('one tracking record that is not newer fails the whole write: no events, none of the tracking records', async (open) => {
      const { events } = await open()
      await events.insertTracking({ applicationName: 'up/b', notificationId: 5 })
      const before = await contents(events)
      const stale = [
        { applicationName: 'up/a', notificationId: 1 },
        { applicationName: 'up/b', notificationId: 5 },
        { applicationName: 'up/c', notificationId: 1 },
      ]
      await assert.rejects(
        events.insertEvents(range('a', 1, 2), { tracking: stale }),
        trackingConflict('up/b', 5, tables.tracking),
      )
      // Checked against the records before it in the same write, too.
      const backwards = [
        { applicationName: 'up/a', notificationId: 4 },
        { applicationName: 'up/a', notificationId: 4 },
      ]
      await assert.rejects(
        events.insertEvents([event('b', 1)], { tracking: backwards }),
        trackingConflict('up/a', 4, tables.tracking),
      )
      assert.deepEqual(await contents(events), before)
      for (const name of ['up/a', 'up/c']) assert.equal(await events.maxTrackingId(name), 0, name)
      assert.equal(await events.maxTrackingId('up/b'), 5)
    })

    test('writes with several tracking records made at once fail alone', async (open) => {
      const { events } = await open()
      const both = (id: number) => [
        { applicationName: 'up/a', notificationId: id },
        { applicationName: 'up/b', notificationId: id },
      ]
      const [first, again, later] = await Promise.allSettled([
        events.insertEvents([event('a', 1)], { tracking: both(1) }),
        events.insertEvents([event('b', 1)], { tracking: both(1) }),
        events.insertEvents([event('c', 1)], { tracking: both(2) }),
      ])
      assert.equal(first!.status, 'fulfilled')
      assert.ok(again!.status === 'rejected' && trackingConflict('up/a', 1, tables.tracking)(again!.reason))
      assert.equal(later!.status, 'fulfilled')
      assert.deepEqual(versions(await events.selectEvents('b')), [])
      assert.deepEqual(versions(await events.selectEvents('c')), [1])
      assert.equal(await events.maxTrackingId('up/b'), 2)
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
}
