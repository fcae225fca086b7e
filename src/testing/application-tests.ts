// The conformance test of several applications on one backend.

import assert from 'node:assert/strict'
import { ProgrammingError } from '../persistence/errors.js'
import { event, key, readLog, storeTest } from './fixtures.js'
import { offers, type RecorderHarness, type TestApi } from './recorder-suite.js'

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

    test('listApplications finds the applications stored, with their event counts and last ids, creating nothing', async (open, persistence) => {
      assert.deepEqual(await persistence.listApplications(), [])
      assert.deepEqual(await persistence.listApplications(), [], 'listing created an application')
      const app = (await open('app')).events
      await open('Other')
      await app.insertEvents([event('a', 1), event('b', 1), event('a', 2)])
      await app.deleteEvents('a')
      await app.insertEvents([event('c', 1)])
      if (offers(harness, 'dcb')) {
        const dcb = await persistence.openDcb('decisions')
        await dcb.close()
      }
      assert.deepEqual(await persistence.listApplications(), [
        { name: 'app', events: 2, maxNotificationId: 4 },
        { name: 'other', events: 0, maxNotificationId: 0 },
      ])
    })
  })
}

/**
 * Declares, for a backend whose harness says it lacks DCB, the test that
 * `openDcb` rejects with a ProgrammingError that says so, creating nothing.
 */
export function testLacking(api: TestApi, harness: RecorderHarness): void {
  const reason = harness.lacks?.dcb
  if (reason === undefined) return
  storeTest(api, harness)(
    `DCB is not offered (${reason}): openDcb fails with a ProgrammingError`,
    async (_open, persistence) => {
      await assert.rejects(persistence.openDcb('decisions'), (error: unknown) => {
        assert.ok(error instanceof ProgrammingError, `expected a ProgrammingError, got ${String(error)}`)
        assert.match(error.message, /DCB/)
        return true
      })
      assert.deepEqual(await persistence.listApplications(), [])
    },
  )
}
