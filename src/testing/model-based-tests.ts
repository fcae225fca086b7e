// The model-based property test: random sequences of writes compared with a simple model.

import assert from 'node:assert/strict'
import fc from 'fast-check'
import { IntegrityError } from '../persistence/errors.js'
import type { ProcessRecorder } from '../persistence/recorder.js'
import type { Notification, StoredEvent, Tracking } from '../persistence/stored-event.js'
import { event, key, plain, plainNotification, readLog, withStore } from './fixtures.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Declares the property test that random sequences of writes, duplicates, tracking and deletes behave like a simple model. */
export function testModel(api: TestApi, harness: RecorderHarness): void {
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
