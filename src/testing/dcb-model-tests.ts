// The DCB model-based property test: random reads and conditional appends
// through two handles, interleaved or at once, compared with a simple model.

import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
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
 * before other appends), an absolute position, or absent; or both handles
 * append at once, with conditions on slots, which must end as if they had
 * run one after the other, in either order.
 */
type Step =
  | { kind: 'read'; handle: number; query: DcbQuery; after: number; limit: number | undefined; slot: number }
  | ({ kind: 'append'; handle: number } & Append)
  | { kind: 'race'; appends: [Append, Append] }

interface Append {
  readonly events: DcbEvent[]
  readonly condition: Condition | undefined
}

type Condition = { query: DcbQuery; after: { slot: number } | { position: number } | undefined }

const queryArbitrary: fc.Arbitrary<DcbQuery> = fc.array(
  fc.record({ types: fc.subarray(TYPES), tags: fc.subarray(TAGS, { maxLength: 2 }) }, { requiredKeys: [] }),
  { maxLength: 2 },
)

const slotArbitrary = fc.record({ slot: fc.integer({ min: 0, max: 2 }) })

/** An append, whose condition's `after` is drawn from `after`. */
const appendArbitrary = (after: fc.Arbitrary<Condition['after']>): fc.Arbitrary<Append> =>
  fc.record({
    events: fc.array(
      fc.tuple(fc.constantFrom(...TYPES), fc.subarray(TAGS)).map(([type, tags]) => dcbEvent(type, tags)),
      { maxLength: 3 },
    ),
    condition: fc.option(fc.record({ query: queryArbitrary, after }), { nil: undefined }),
  })

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      handle: fc.integer({ min: 0, max: 1 }),
      query: queryArbitrary,
      after: fc.integer({ min: 0, max: 8 }),
      limit: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      slot: fc.integer({ min: 0, max: 2 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 0, max: 1 }),
        appendArbitrary(
          fc.oneof(slotArbitrary, fc.record({ position: fc.integer({ min: 0, max: 10 }) }), fc.constant(undefined)),
        ),
      )
      .map(([handle, append]) => ({ kind: 'append' as const, handle, ...append })),
  },
  {
    weight: 2,
    // Positions after a slot's head only: new events are always after it, whichever commits first.
    arbitrary: fc.record({
      kind: fc.constant('race' as const),
      appends: fc.tuple(appendArbitrary(slotArbitrary), appendArbitrary(slotArbitrary)),
    }),
  },
)

/** Declares the property test that random reads and conditional appends through two handles behave like a simple model. */
export function testDcbModel(api: TestApi, harness: DcbHarness): void {
  api.describe('model', () => {
    api.it(
      'random reads and conditional appends through two handles, in turn and at once, behave like a simple model',
      async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(stepArbitrary, { maxLength: 30 }), (steps) =>
            withDcbStore(harness, async (open) => checkAgainstModel([await open(), await open()], steps)),
          ),
          { numRuns: 40 },
        )
      },
    )
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
    if (step.kind === 'read') {
      const matching = model.filter((event) => event.position > step.after && matches(step.query, event))
      const limit = step.limit ?? Number.POSITIVE_INFINITY
      const expected = matching.slice(0, limit)
      const head = matching.length > limit ? expected[expected.length - 1]!.position : headOf(model)
      const result = await handles[step.handle]!.read(step.query, { after: step.after, limit: step.limit })
      assert.deepEqual(
        result.events.map(plainDcb),
        expected.map((event) => plainDcb({ ...event, tags: [...new Set(event.tags)] })),
      )
      assert.equal(result.head, head)
      slots[step.slot] = head
      continue
    }
    if (step.kind === 'append') {
      await checkAppend(model, handles[step.handle]!, step, slots)
    } else {
      await checkRace(model, handles, step.appends, slots)
    }
    for (const handle of handles) assert.equal(await handle.head(), headOf(model))
  }
}

/** The position a condition's `after` names, given the heads kept in slots. */
function afterOf(condition: Condition | undefined, slots: readonly number[]): number | undefined {
  const after = condition?.after
  return after === undefined ? undefined : 'slot' in after ? slots[after.slot]! : after.position
}

/** Returns true if the model holds an event that fails the condition. */
function fails(model: readonly ModelEvent[], condition: Condition | undefined, slots: readonly number[]): boolean {
  if (condition === undefined) return false
  const after = afterOf(condition, slots) ?? 0
  return model.some((event) => event.position > after && matches(condition.query, event))
}

function run(recorder: DcbRecorder, { events, condition }: Append, slots: readonly number[]): Promise<number> {
  return recorder.append(events, condition && { failIfEventsMatch: condition.query, after: afterOf(condition, slots) })
}

async function checkAppend(model: ModelEvent[], recorder: DcbRecorder, append: Append, slots: readonly number[]) {
  const appending = run(recorder, append, slots)
  if (fails(model, append.condition, slots)) {
    await assert.rejects(appending, DcbConflictError)
    return
  }
  const position = await appending
  await recordAdded(model, recorder, append.events)
  assert.equal(position, headOf(model))
}

/**
 * Runs two appends at once and checks that they ended as they would have one
 * after the other, in one order or the other: which of them committed, and
 * the events added, in order.
 */
async function checkRace(model: ModelEvent[], handles: readonly DcbRecorder[], racing: Append[], slots: number[]) {
  // Each racer's data names it, so that the events read back tell whose they are.
  const appends = racing.map((append, racer) => ({
    ...append,
    events: append.events.map((event) => ({ ...event, data: Buffer.from(`${racer}:${hex(event.data)}`) })),
  }))
  const settled = await Promise.allSettled(appends.map((append, i) => run(handles[i]!, append, slots)))
  const committed = settled.map((result) => {
    if (result.status === 'fulfilled') return true
    if (result.reason instanceof DcbConflictError) return false
    throw result.reason
  })
  const outcomes = [
    [0, 1],
    [1, 0],
  ].map((order) => {
    const after = [...model]
    const commits = [false, false]
    const added: DcbEvent[] = []
    for (const i of order) {
      if (fails(after, appends[i]!.condition, slots)) continue
      commits[i] = true
      for (const event of appends[i]!.events) {
        // Placeholder positions above the head, which is above every slot's position.
        after.push({ ...event, position: headOf(after) + 1 })
        added.push(event)
      }
    }
    return { commits, data: added.map((event) => hex(event.data)) }
  })
  const added = (await handles[0]!.read([], { after: headOf(model) })).events
  const actual = { commits: committed, data: added.map((event) => hex(event.data)) }
  assert.ok(
    outcomes.some((outcome) => isDeepStrictEqual(outcome, actual)),
    `two appends at once ended as ${JSON.stringify(actual)}, not as either order would: ${JSON.stringify(outcomes)}`,
  )
  for (const event of added)
    model.push({ type: event.type, tags: event.tags, data: event.data, position: event.position })
}

/** Reads back the events an append added after the model's head, checks them, and adds them to the model. */
async function recordAdded(model: ModelEvent[], recorder: DcbRecorder, events: readonly DcbEvent[]): Promise<void> {
  // Positions may have gaps, so the new events' positions are read back, and only their order is checked.
  const added = (await recorder.read([], { after: headOf(model) })).events
  assert.deepEqual(
    added.map((event) => hex(event.data)),
    events.map((event) => hex(event.data)),
  )
  added.forEach((event, i) => {
    model.push({ ...events[i]!, position: event.position })
  })
}

function hex(data: Uint8Array): string {
  return Buffer.from(data).toString('hex')
}
