// The conformance tests of the aggregate recorder contract: events, their deletion, and snapshots.

import assert from 'node:assert/strict'
import type { VersionConflictError } from '../persistence/errors.js'
import type { ProcessRecorder } from '../persistence/recorder.js'
import type { StoredEvent } from '../persistence/stored-event.js'
import {
  bytes,
  contents,
  event,
  expectedTables,
  key,
  plain,
  range,
  readLog,
  rejection,
  storeTest,
  versionConflict,
  versions,
} from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the tests of inserting and selecting events: fields and bytes kept, batches atomic, versions unique, selection options. */
export function testEvents(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
  const tables = expectedTables(harness)
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

    test('what was recorded cannot be changed through the record objects given or returned', async (open) => {
      const { events } = await open()
      const given = { originatorId: 'a', originatorVersion: 1, topic: 't', state: bytes('xyz') }
      await events.insertEvents([given])
      Object.assign(given, { originatorId: 'z', originatorVersion: 9, topic: 'changed' })
      tryToChange(await events.selectEvents('a'))
      tryToChange(await events.selectNotifications({ limit: 10 }))
      const recorded = plain(event('a', 1, 't', bytes('xyz')))
      assert.deepEqual((await events.selectEvents('a')).map(plain), [recorded])
      assert.deepEqual((await readLog(events)).map(plain), [recorded])
      assert.deepEqual(await events.selectEvents('z'), [])
    })

    test('a version already recorded fails the whole batch with a VersionConflictError naming it', async (open) => {
      const { events } = await open()
      await events.insertEvents(range('a', 1, 2))
      const before = await contents(events)
      await assert.rejects(
        events.insertEvents([event('b', 1), event('a', 2), event('c', 1)]),
        versionConflict('a', 2, tables.events),
      )
      assert.deepEqual(await contents(events), before)
      const odd = 'Hündin, (Rex) 2'
      await events.insertEvents([event(odd, 1)])
      await assert.rejects(events.insertEvents([event(odd, 1)]), versionConflict(odd, 1, tables.events))
    })

    test('a version repeated within a batch fails the whole batch with a VersionConflictError naming it', async (open) => {
      const { events } = await open()
      await assert.rejects(
        events.insertEvents([event('a', 1), event('b', 1), event('a', 1, 'other')]),
        versionConflict('a', 1, tables.events),
      )
      await assert.rejects(
        events.insertEvents([event('c', 3), event('c', 1), event('c', 3)]),
        versionConflict('c', 3, tables.events),
      )
      assert.deepEqual(await contents(events), { log: [], max: 0, a: [], b: [], c: [] })
    })

    test('batches written at once fail alone, each naming its own clash', async (open) => {
      const { events } = await open()
      await events.insertEvents(range('a', 1, 3))
      const [b1, a2, b2, a3] = await Promise.allSettled([
        events.insertEvents([event('b', 1)]),
        events.insertEvents([event('c', 1), event('a', 2)]),
        events.insertEvents([event('b', 2)]),
        events.insertEvents([event('a', 3), event('c', 2)]),
      ])
      assert.equal(b1!.status, 'fulfilled')
      assert.equal(b2!.status, 'fulfilled')
      assert.ok(a2!.status === 'rejected' && versionConflict('a', 2, tables.events)(a2!.reason))
      assert.ok(a3!.status === 'rejected' && versionConflict('a', 3, tables.events)(a3!.reason))
      assert.deepEqual(versions(await events.selectEvents('b')), [1, 2])
      assert.deepEqual(await events.selectEvents('c'), [])
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

    test('selectEventsOfMany returns, for each query in order, what selectEvents returns after its gt', async (open) => {
      const { events, snapshots } = await open()
      await events.insertEvents([...range('a', 1, 4), ...range('b', 1, 2), event('Hündin 🐕', 1)])
      await events.insertEvents([event('a', 5, 'later', new Uint8Array([0, 255]))])
      const queries = [
        { originatorId: 'b' },
        { originatorId: 'a', gt: 3 },
        { originatorId: 'unknown' },
        { originatorId: 'a' },
        { originatorId: 'Hündin 🐕', gt: 0 },
        { originatorId: 'b', gt: 2 },
      ]
      const selected = await events.selectEventsOfMany(queries)
      const expected = await Promise.all(
        queries.map(({ originatorId, gt }) => events.selectEvents(originatorId, { gt })),
      )
      assert.deepEqual(
        selected.map((list) => list.map(plain)),
        expected.map((list) => list.map(plain)),
      )
      assert.deepEqual(selected.map(versions), [[1, 2], [4, 5], [], [1, 2, 3, 4, 5], [1], []])
      assert.deepEqual(await events.selectEventsOfMany([]), [])
      await snapshots.insertEvents([event('a', 2, 'snapshot'), event('a', 4, 'snapshot')])
      assert.deepEqual((await snapshots.selectEventsOfMany([{ originatorId: 'a', gt: 2 }])).map(versions), [[4]])
    })
  })
}

/** Declares the tests of deleting the events of one originator. */
export function testDeleteEvents(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
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
}

/** Declares the tests of the snapshot recorder, kept apart from the events and their log. */
export function testSnapshots(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
  const tables = expectedTables(harness)
  api.describe('snapshots', () => {
    test('snapshots are inserted, selected, rejected when repeated, and deleted', async (open) => {
      const { events, snapshots } = await open()
      await snapshots.insertEvents([event('a', 5, 'snapshot')])
      await snapshots.insertEvents([event('a', 10, 'snapshot')])
      assert.deepEqual(versions(await snapshots.selectEvents('a')), [5, 10])
      assert.deepEqual(versions(await snapshots.selectEvents('a', { desc: true, limit: 1 })), [10])
      assert.deepEqual(versions(await snapshots.selectEvents('a', { lte: 7, desc: true, limit: 1 })), [5])
      const snapshotClash = await rejection(snapshots.insertEvents([event('a', 5, 'snapshot')]))
      versionConflict('a', 5, tables.snapshots)(snapshotClash)
      assert.deepEqual(await events.selectEvents('a'), [])
      assert.equal(await events.maxNotificationId(), 0)
      await events.insertEvents([event('a', 5)])
      const eventClash = await rejection(events.insertEvents([event('a', 5)]))
      versionConflict('a', 5, tables.events)(eventClash)
      assert.notEqual(
        (snapshotClash as VersionConflictError).table,
        (eventClash as VersionConflictError).table,
        'a conflict of snapshots names the table of events',
      )
      assert.deepEqual(versions(await snapshots.selectEvents('a')), [5, 10])
      assert.equal(await snapshots.deleteEvents('a'), 2)
      assert.deepEqual(await snapshots.selectEvents('a'), [])
      assert.deepEqual(versions(await events.selectEvents('a')), [5])
    })
  })
}

/** Changes the topic of each object, unless it is frozen, and overwrites its state bytes. */
function tryToChange(objects: readonly StoredEvent[]): void {
  for (const object of objects) {
    try {
      Object.assign(object, { topic: 'changed' })
    } catch {
      // A backend may return frozen objects; they are safe too.
    }
  }
}
