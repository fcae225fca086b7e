// The conformance test of several applications on one backend.

import assert from 'node:assert/strict'
import { event, key, readLog, storeTest } from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the test that applications opened on the same backend are kept apart. */
export function testApplications(api: TestApi, harness: RecorderHarness): void {
  const test = storeTest(api, harness)
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
}
