// The DCB model-based property test: random reads and conditional appends
// through two handles, interleaved, compared with a simple model.

import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DcbConflictError, type DcbEvent, type DcbQuery, type DcbRecorder } from '../persistence/dcb.js'
import { type DcbHarness, withDcbStore } from './dcb-suite.js'
import { dcbEvent, plainDcb } from './dcb-tests.js'
import type { TestApi } from './recorder-suite.js'

const TYPES = ['A', 'B', 'C']
const TAGS = ['x', 'y', 'z']

/**
 * A step: a handle reads a query (a decision's read), keeping the head it
 * returned in a slot; or a handle appends, with no condition, or with a
 * condition whose `after` is a slot's head (a decision made earlier, perhaps
 * before other appends), an absolute position, or absent.
 */
type Step =
  | { kind: 'read'; handle: number; query: DcbQuery; after: number; limit: number | undefined; slot: number }
  | { kind: 'append'; handle: number; events: DcbEvent[]; condition: Condition | undefined }

type Condition = { query: DcbQuery; after: { slot: number } | { position: number } | undefined }

const queryArbitrary: fc.Arbitrary<DcbQuery> = fc.array(
  fc.record({ types: fc.subarray(TYPES), tags: fc.subarray(TAGS, { maxLength: 2 }) }, { requiredKeys: [] }),
  { maxLength: 2 },
)

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('read' as const),
    handle: fc.integer({ min: 0, max: 1 }),
    query: queryArbitrary,
    after: fc.integer({ min: 0, max: 8 }),
    limit: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    slot: fc.integer({ min: 0, max: 2 }),
  }),
  fc.record({
    kind: fc.constant('append' as const),
    handle: fc.integer({ min: 0, max: 1 }),
    events: fc.array(
      fc.tuple(fc.constantFrom(...TYPES), fc.subarray(TAGS)).map(([type, tags]) => dcbEvent(type, tags)),
      { maxLength: 3 },
    ),
    condition: fc.option(
      fc.record({
        query: queryArbitrary,
        after: fc.oneof(
          fc.record({ slot: fc.integer({ min: 0, max: 2 }) }),
          fc.record({ position: fc.integer({ min: 0, max: 10 }) }),
          fc.constant(undefined),
        ),
      }),
      { nil: undefined },
    ),
  }),
)

/** Declares the property test that random reads and conditional appends through two handles behave like a simple model. */
export function testDcbModel(api: TestApi, harness: DcbHarness): void {
  api.describe('model', () => {
    api.it('random reads and conditional appends through two handles behave like a simple model', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(stepArbitrary, { maxLength: 30 }), (steps) =>
          withDcbStore(harness, async (open) => checkAgainstModel([await open(), await open()], steps)),
        ),
        { numRuns: 40 },
      )
    })
  })
}

/** The model's events: what a store holds, with positions 1, 2, … in order. */
interface ModelEvent {
  readonly position: number
  readonly type: string
  readonly tags: readonly string[]
  readonly data: Uint8Array
}

function headOf(model: readonly ModelEvent[]): number {
  return model[model.length - 1]?.position ?? 0
}

function matches(query: DcbQuery, event: ModelEvent): boolean {
  return (
    query.length === 0 ||
    query.some(
      ({ types = [], tags = [] }) =>
        (types.length === 0 || types.includes(event.type)) && tags.every((tag) => event.tags.includes(tag)),
    )
  )
}

/** Applies the steps to the handles and to a model, comparing what every read and append returns. */
async function checkAgainstModel(handles: readonly DcbRecorder[], steps: readonly Step[]): Promise<void> {
  const model: ModelEvent[] = []
  const slots = [0, 0, 0]
  for (const step of steps) {
    const recorder = handles[step.handle]!
    if (step.kind === 'read') {
      const matching = model.filter((event) => event.position > step.after && matches(step.query, event))
      const limit = step.limit ?? Number.POSITIVE_INFINITY
      const expected = matching.slice(0, limit)
      const head = matching.length > limit ? expected[expected.length - 1]!.position : headOf(model)
      const result = await recorder.read(step.query, { after: step.after, limit: step.limit })
      assert.deepEqual(
        result.events.map(plainDcb),
        expected.map((event) => plainDcb({ ...event, tags: [...new Set(event.tags)] })),
      )
      assert.equal(result.head, head)
      slots[step.slot] = head
      continue
    }
    const { events, condition } = step
    const after =
      condition?.after === undefined
        ? undefined
        : 'slot' in condition.after
          ? slots[condition.after.slot]!
          : condition.after.position
    const conflict =
      condition !== undefined && model.some((event) => event.position > (after ?? 0) && matches(condition.query, event))
    const appending = recorder.append(events, condition && { failIfEventsMatch: condition.query, after })
    if (conflict) {
      await assert.rejects(appending, DcbConflictError)
    } else {
      const position = await appending
      // Positions may have gaps, so the new events' positions are read back, and only their order is checked.
      const added = (await recorder.read([], { after: headOf(model) })).events
      assert.deepEqual(
        added.map((event) => event.type),
        events.map((event) => event.type),
      )
      added.forEach((event, i) => {
        model.push({ ...events[i]!, position: event.position })
      })
      assert.equal(position, headOf(model))
    }
    assert.equal(await handles[1 - step.handle]!.head(), headOf(model))
  }
}
