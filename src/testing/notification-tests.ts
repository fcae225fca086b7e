// The conformance tests of the notification log of the application recorder.

import assert from 'node:assert/strict'
import type { ProcessRecorder } from '../persistence/recorder.js'
import { assertIncreasing, event, plainNotification, range, readLog, storeTest } from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the tests of the notification log: ids positive and increasing in input order, and the selection options. */
export function testNotificationLog(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
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

    test('selectNotifications filters by originator, in id order, with the other options', async (open) => {
      const { events } = await open()
      // b's version 1 is recorded after its version 2: its log order is not its version order.
      const ids = await events.insertEvents([
        event('a', 1, 't1'),
        event('b', 2, 't2'),
        event('a', 2, 't2'),
        event('b', 1, 't1'),
        event('c', 1, 't1'),
        event('b', 3, 't1'),
      ])
      const select = async (options: Parameters<ProcessRecorder['selectNotifications']>[0]) =>
        (await events.selectNotifications(options)).map((n) => `${n.originatorId}@${n.originatorVersion}#${n.id}`)
      const of = (...indexes: number[]) =>
        indexes.map((i) => {
          const [id, version] = [
            ['a', 1],
            ['b', 2],
            ['a', 2],
            ['b', 1],
            ['c', 1],
            ['b', 3],
          ][i]!
          return `${id}@${version}#${ids[i]}`
        })
      assert.deepEqual(await select({ originatorId: 'b', limit: 100 }), of(1, 3, 5))
      assert.deepEqual(await select({ originatorId: 'b', limit: 2 }), of(1, 3))
      assert.deepEqual(
        await select({ originatorId: 'b', start: ids[1], inclusiveOfStart: false, limit: 100 }),
        of(3, 5),
      )
      assert.deepEqual(await select({ originatorId: 'b', stop: ids[4], limit: 100 }), of(1, 3))
      assert.deepEqual(await select({ originatorId: 'b', topics: ['t1'], limit: 100 }), of(3, 5))
      assert.deepEqual(await select({ originatorId: 'a', topics: ['t1', 't2'], start: ids[1], limit: 100 }), of(2))
      assert.deepEqual(await select({ originatorId: 'unknown', limit: 100 }), [])
      await events.deleteEvents('b')
      assert.deepEqual(await select({ originatorId: 'b', limit: 100 }), [])
      assert.deepEqual(await select({ originatorId: 'c', limit: 100 }), of(4))
    })
  })
}
