// The conformance tests of concurrent writers and readers on separate connections.

import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { IntegrityError } from '../persistence/errors.js'
import type { ProcessRecorder } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'
import { assertIncreasing, event, key, type Open, range, readLog, storeTest, versions } from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the tests of concurrent connections: batches never interleave, readers skip no committed event, one of two equal tracking records wins. */
export function testConcurrency(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
  api.describe('concurrency', () => {
    // What this proves depends on the backend. A backend whose writes are
    // synchronous (memory, and SQLite through better-sqlite3) runs each
    // insertEvents to its end before the other starts, so it passes whatever
    // it does: for such backends this test cannot fail. It is kept for
    // asynchronous backends (such as PostgreSQL), whose two transactions run at
    // the same time on separate connections: there it proves that a batch gets
    // one unbroken run of ids, and is placed in the log as one block, even
    // while another batch is being written.
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
}

async function openMany(open: Open, count: number): Promise<ProcessRecorder[]> {
  const recorders: ProcessRecorder[] = []
  for (let i = 0; i < count; i++) recorders.push((await open()).events)
  return recorders
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not done within ${timeoutMs} ms`)
    await delay(5)
  }
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
