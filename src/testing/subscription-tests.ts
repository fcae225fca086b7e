// The conformance tests of live subscriptions to the notification log.

import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { isPaged } from '../persistence/commit-signal.js'
import type { ProcessRecorder, SubscribeOptions } from '../persistence/recorder.js'
import type { Notification } from '../persistence/stored-event.js'
import { plainNotification, range, storeTest } from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the tests of `subscribe`: recorded then new notifications, filters, and ending when aborted or left. */
export function testSubscribe(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
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

    test('subscribe applies originatorId to recorded and new notifications', async (open) => {
      const one = (await open()).events
      const two = (await open()).events
      const ids = await one.insertEvents([...range('a', 1, 2), ...range('b', 1, 2)])
      const { seen, later } = await follow(one, { originatorId: 'b' }, 3, (count) =>
        count === 2 ? () => two.insertEvents([...range('a', 3, 3), ...range('b', 3, 3)]) : undefined,
      )
      assert.deepEqual(
        seen.map((n) => n.id),
        [ids[2], ids[3], later[1]],
      )
    })

    test('a paged subscription yields what is recorded as one page, then new notifications, in pages', async (open) => {
      const one = (await open()).events
      const two = (await open()).events
      const first = await one.insertEvents(range('a', 1, 3))
      const controller = new AbortController()
      const subscription = one.subscribe({ signal: controller.signal })
      // Paging is optional in the contract (readers group the notifications of other recorders as they arrive).
      if (!isPaged(subscription)) return
      const pages: number[][] = []
      let later: number[] = []
      for await (const page of subscription.pages()) {
        pages.push(page.map((n) => n.id))
        if (pages.length === 1) later = await two.insertEvents(range('a', 4, 5))
        if (pages.flat().length === 5) controller.abort()
      }
      assert.deepEqual(pages[0], first)
      assert.deepEqual(pages.flat(), [...first, ...later])
    })

    test('subscribe ends without error when aborted while waiting, or aborted before it starts', async (open) => {
      const { events } = await open()
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 20)
      for await (const n of events.subscribe({ signal: controller.signal })) assert.fail(`yielded ${n.id}`)
      await events.insertEvents(range('a', 1, 2))
      for await (const n of events.subscribe({ signal: AbortSignal.abort() })) assert.fail(`yielded ${n.id}`)
    })

    test('a subscription waiting for new notifications ends promptly when aborted', async (open) => {
      const { events } = await open()
      const [id] = await events.insertEvents(range('a', 1, 1))
      const controller = new AbortController()
      const seen: number[] = []
      const reading = (async () => {
        for await (const n of events.subscribe({ signal: controller.signal })) seen.push(n.id)
      })()
      // Long enough for the subscription to have yielded what is recorded and to be waiting for more.
      await delay(50)
      assert.deepEqual(seen, [id])
      controller.abort()
      // Ending must not wait for the backend's next poll, however far off that is.
      await endsWithin(reading, 500, 'the subscription did not end within 500 ms of being aborted')
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
}

/** Resolves when `promise` does, or fails with `message` if it has not settled within `ms`. */
async function endsWithin(promise: Promise<unknown>, ms: number, message: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message })), ms)
  })
  try {
    await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
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
