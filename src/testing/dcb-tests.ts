// The DCB conformance tests of appends, reads, tracking and subscriptions on one connection or a few.

import assert from 'node:assert/strict'
import { DcbConflictError, type DcbEvent, type DcbRecorder, type DcbSequencedEvent } from '../persistence/dcb.js'
import { ProgrammingError, TrackingConflictError } from '../persistence/errors.js'
import { type DcbHarness, dcbTest } from './dcb-suite.js'
import { bytes, rejection } from './fixtures.js'
import type { TestApi } from './recorder-suite.js'

/** Returns a DCB event of a type and tags, whose data names them (or is `data`). */
export function dcbEvent(type: string, tags: readonly string[] = [], data?: string): DcbEvent {
  return { type, tags, data: bytes(data ?? `${type}(${tags.join(',')})`) }
}

/** Returns the fields of a recorded event as plain values, for comparing with `deepEqual`. */
export function plainDcb(event: DcbSequencedEvent) {
  const { position, type, data, tags, metadata } = event
  return {
    position,
    type,
    data: Buffer.from(data).toString('hex'),
    tags: [...tags].sort(),
    metadata: metadata === undefined ? undefined : Buffer.from(metadata).toString('hex'),
  }
}

/** Returns the positions of recorded events. */
export function positions(events: readonly DcbSequencedEvent[]): number[] {
  return events.map((event) => event.position)
}

/** Declares the tests of appends: positions, the stored fields, conditions, atomicity and validation. */
export function testDcbWrite(api: TestApi, harness: DcbHarness): void {
  const test = dcbTest(api, harness)
  api.describe('append', () => {
    test('an empty store has head 0 and no events', async (open) => {
      const recorder = await open()
      assert.equal(await recorder.head(), 0)
      assert.deepEqual(await recorder.read(), { events: [], head: 0 })
    })

    test('appends get increasing positions and return the last; events read back as given', async (open) => {
      const recorder = await open()
      const first: DcbEvent = { type: 'A', data: bytes('one'), tags: ['x', 'y'], metadata: bytes('meta') }
      const last = await recorder.append([first, dcbEvent('B', [])])
      assert.equal(last, await recorder.head())
      const next = await recorder.append([dcbEvent('C', ['x', 'x', 'z'])])
      assert.ok(next > last, `the next append's position ${next} is not above ${last}`)
      const { events, head } = await recorder.read()
      assert.equal(head, next)
      const firstPosition = events[0]!.position
      assert.ok(
        firstPosition > 0 && firstPosition < last,
        `positions ${positions(events)} do not increase from 1 or more`,
      )
      assert.deepEqual(positions(events), [firstPosition, last, next])
      assert.deepEqual(events.map(plainDcb), [
        { position: firstPosition, type: 'A', data: hex('one'), tags: ['x', 'y'], metadata: hex('meta') },
        { position: last, type: 'B', data: hex('B()'), tags: [], metadata: undefined },
        { position: next, type: 'C', data: hex('C(x,x,z)'), tags: ['x', 'z'], metadata: undefined },
      ])
      assert.ok(!('metadata' in events[1]!), 'an event appended without metadata is read with a metadata field')
    })

    test('data of every byte value, large data, and tags and types of any characters round-trip', async (open) => {
      const recorder = await open()
      const data = new Uint8Array(300_000).map((_, i) => (i * 7) % 256)
      const tags = ['émail:zoë@example.com', 'quote:"\'', 'comma,colon:;', '日本']
      await recorder.append([{ type: 'Type with spaces ✓', data, tags }])
      const [event] = (await recorder.read([{ tags: ['日本', 'quote:"\''] }])).events
      assert.ok(event !== undefined, 'the event is not found by its tags')
      assert.deepEqual(Buffer.from(event.data), Buffer.from(data))
      assert.deepEqual([...event.tags].sort(), [...tags].sort())
      assert.equal(event.type, 'Type with spaces ✓')
    })

    test('an append fails on its condition when a matching event follows its after, and writes nothing', async (open) => {
      const recorder = await open()
      await recorder.append([dcbEvent('Registered', ['course:1']), dcbEvent('Registered', ['course:2'])])
      const query = [{ tags: ['course:1'] }]
      const { head } = await recorder.read(query)
      await recorder.append([dcbEvent('Subscribed', ['course:1', 'student:a'])])
      const error = await rejection(
        recorder.append([dcbEvent('Subscribed', ['course:1'])], { failIfEventsMatch: query, after: head }),
      )
      assert.ok(error instanceof DcbConflictError, `expected a DcbConflictError, got ${String(error)}`)
      assert.deepEqual(error.query, query)
      assert.equal(error.after, head)
      const table = harness.tables?.('app').events
      if (table !== undefined) assert.equal(error.table, table)
      else assert.ok(error.table !== '', 'the conflict names no table')
      assert.match(error.message, /read the events again, decide again/)
      assert.equal((await recorder.read([], { after: head })).events.length, 1, 'the failed append wrote events')
    })

    test('an append succeeds when matching events are at or before its after, or later ones do not match', async (open) => {
      const recorder = await open()
      await recorder.append([dcbEvent('Registered', ['course:1'])])
      const query = [{ types: ['Subscribed'], tags: ['course:1'] }]
      const { head } = await recorder.read(query)
      await recorder.append([dcbEvent('Subscribed', ['course:2']), dcbEvent('Renamed', ['course:1'])])
      const position = await recorder.append([dcbEvent('Subscribed', ['course:1'])], {
        failIfEventsMatch: query,
        after: head,
      })
      assert.equal(position, await recorder.head())
      await recorder.append([dcbEvent('Subscribed', ['course:1'])], { failIfEventsMatch: query, after: position })
      await assert.rejects(
        recorder.append([dcbEvent('Subscribed', ['course:1'])], { failIfEventsMatch: query, after: position }),
        DcbConflictError,
      )
    })

    test('a condition without after fails when any matching event exists, and the empty query matches any event', async (open) => {
      const recorder = await open()
      const unique = [{ types: ['UsernameClaimed'], tags: ['username:zoe'] }]
      await recorder.append([dcbEvent('UsernameClaimed', ['username:zoe'])], { failIfEventsMatch: unique })
      await assert.rejects(
        recorder.append([dcbEvent('UsernameClaimed', ['username:zoe'])], { failIfEventsMatch: unique }),
        DcbConflictError,
      )
      await recorder.append([dcbEvent('UsernameClaimed', ['username:ann'])], {
        failIfEventsMatch: [{ tags: ['username:ann'] }],
      })
      const head = await recorder.head()
      await recorder.append([dcbEvent('Other')], { failIfEventsMatch: [], after: head })
      await assert.rejects(
        recorder.append([dcbEvent('Other')], { failIfEventsMatch: [], after: head }),
        DcbConflictError,
      )
      await assert.rejects(
        recorder.append([dcbEvent('Other')], { failIfEventsMatch: [{}], after: head }),
        DcbConflictError,
      )
      assert.equal((await recorder.read([], { after: head })).events.length, 1)
    })

    test('an empty append writes nothing, returns the head, and still checks its condition', async (open) => {
      const recorder = await open()
      assert.equal(await recorder.append([]), 0)
      const head = await recorder.append([dcbEvent('A', ['t'])])
      assert.equal(await recorder.append([], { failIfEventsMatch: [{ tags: ['t'] }], after: head }), head)
      await assert.rejects(recorder.append([], { failIfEventsMatch: [{ tags: ['t'] }], after: 0 }), DcbConflictError)
      assert.equal((await recorder.read()).events.length, 1)
    })

    test('a batch with an invalid event fails whole with ProgrammingError naming the problem', async (open) => {
      const recorder = await open()
      const good = dcbEvent('A', ['t'])
      const invalid: [unknown, RegExp][] = [
        [{ type: '', data: bytes('x'), tags: [] }, /type of DCB event 1 must be a non-empty string, got ""/],
        [{ type: 7, data: bytes('x'), tags: [] }, /type of DCB event 1 must be a non-empty string, got 7/],
        [{ type: 'A', data: 'text', tags: [] }, /data of DCB event 1 must be a Uint8Array/],
        [{ type: 'A', data: bytes('x'), tags: [''] }, /tags of DCB event 1.*non-empty string/],
        [{ type: 'A', data: bytes('x'), tags: [3] }, /tags of DCB event 1.*non-empty string, got 3/],
        [{ type: 'A', data: bytes('x'), tags: 'course:1' }, /tags of DCB event 1 must be an array/],
        [{ type: 'A', data: bytes('x'), tags: [], metadata: 'm' }, /metadata of DCB event 1 must be a Uint8Array/],
        [null, /DCB event 1 is null/],
      ]
      for (const [event, message] of invalid) {
        await assert.rejects(recorder.append([good, event as DcbEvent]), (error: unknown) => {
          assert.ok(error instanceof ProgrammingError, `expected a ProgrammingError, got ${String(error)}`)
          assert.match(error.message, message)
          return true
        })
      }
      assert.equal(await recorder.head(), 0)
    })

    test('an invalid condition, query, after or limit fails with ProgrammingError naming it', async (open) => {
      const recorder = await open()
      const head = await recorder.append([dcbEvent('A')])
      const refusals: [Promise<unknown>, RegExp][] = [
        [recorder.append([dcbEvent('A')], { failIfEventsMatch: [], after: -1 }), /after must be a position.*got -1/],
        [recorder.append([dcbEvent('A')], { failIfEventsMatch: [], after: 1.5 }), /after must be a position.*got 1.5/],
        [recorder.append([dcbEvent('A')], { failIfEventsMatch: {} as never }), /query must be an array/],
        [
          recorder.append([dcbEvent('A')], { failIfEventsMatch: [{ types: [''] }] }),
          /types of query item 0.*non-empty/,
        ],
        [recorder.read([{ tags: 'x' as never }]), /tags of query item 0 must be an array/],
        [recorder.read([null as never]), /Item 0 of a DCB query must be an object/],
        [recorder.read([], { after: Number.NaN }), /after must be a position.*got NaN/],
        [recorder.read([], { limit: 0 }), /limit must be a positive integer, got 0/],
        [recorder.read([], { limit: 2.5 }), /limit must be a positive integer, got 2.5/],
      ]
      for (const [refused, message] of refusals) {
        await assert.rejects(refused, (error: unknown) => {
          assert.ok(error instanceof ProgrammingError, `expected a ProgrammingError, got ${String(error)}`)
          assert.match(error.message, message)
          return true
        })
      }
      assert.throws(() => recorder.subscribe([], { after: -2 }), ProgrammingError)
      assert.equal(await recorder.head(), head)
    })

    test('handles opened on one application share its events; other applications, and aggregate recorders, have their own', async (open, store) => {
      const one = await open('courses')
      const two = await open('courses')
      const other = await open('billing')
      await one.append([dcbEvent('A', ['t'])])
      await two.append([dcbEvent('B', ['t'])])
      assert.deepEqual(
        (await one.read()).events.map((event) => event.type),
        ['A', 'B'],
      )
      assert.deepEqual(await other.read(), { events: [], head: 0 })
      await using recorders = await store.persistence.open('courses')
      assert.equal(await recorders.events.maxNotificationId(), 0)
    })
  })
}

/** Declares the tests of reads: query semantics, after, limit and the head a read returns. */
export function testDcbRead(api: TestApi, harness: DcbHarness): void {
  const test = dcbTest(api, harness)
  api.describe('read', () => {
    /** Appends six events of a small course store, and returns a function from their numbers (1 to 6) to their positions. */
    async function courses(recorder: DcbRecorder): Promise<(...numbers: number[]) => number[]> {
      await recorder.append([
        dcbEvent('CourseDefined', ['course:c1']),
        dcbEvent('CourseDefined', ['course:c2']),
        dcbEvent('StudentSubscribed', ['course:c1', 'student:s1']),
        dcbEvent('StudentSubscribed', ['course:c2', 'student:s1']),
        dcbEvent('StudentRegistered', ['student:s2']),
        dcbEvent('StudentSubscribed', ['course:c1', 'student:s2']),
      ])
      const all = positions((await recorder.read()).events)
      return (...numbers) => numbers.map((n) => all[n - 1]!)
    }

    test('an item matches one of its types and all of its tags; a query matches any of its items', async (open) => {
      const recorder = await open()
      const at = await courses(recorder)
      const cases: [Parameters<DcbRecorder['read']>[0], number[]][] = [
        [undefined, [1, 2, 3, 4, 5, 6]],
        [[], [1, 2, 3, 4, 5, 6]],
        [[{}], [1, 2, 3, 4, 5, 6]],
        [[{ types: [], tags: [] }], [1, 2, 3, 4, 5, 6]],
        [[{ tags: ['course:c1'] }], [1, 3, 6]],
        [[{ tags: ['course:c1', 'student:s1'] }], [3]],
        [[{ tags: ['student:s1', 'course:c1', 'student:s1'] }], [3]],
        [[{ types: ['StudentSubscribed'] }], [3, 4, 6]],
        [[{ types: ['CourseDefined', 'StudentRegistered'] }], [1, 2, 5]],
        [[{ types: ['StudentSubscribed'], tags: ['student:s2'] }], [6]],
        [[{ types: ['CourseDefined', 'StudentSubscribed'], tags: ['course:c2'] }], [2, 4]],
        [
          [{ tags: ['course:c2'] }, { types: ['StudentRegistered'] }, { tags: ['course:c2'] }],
          [2, 4, 5],
        ],
        [
          [{ tags: ['course:c1'] }, {}],
          [1, 2, 3, 4, 5, 6],
        ],
        [[{ tags: ['course:c3'] }], []],
        [[{ types: ['Unknown'] }], []],
        [[{ types: ['CourseDefined'], tags: ['student:s1'] }], []],
      ]
      for (const [query, expected] of cases) {
        const { events, head } = await recorder.read(query)
        assert.deepEqual(positions(events), at(...expected), `read(${JSON.stringify(query)})`)
        assert.equal(head, at(6)[0], `the head of read(${JSON.stringify(query)})`)
      }
    })

    test('a read after a position returns the matching events after it, and the store head', async (open) => {
      const recorder = await open()
      const at = await courses(recorder)
      const [three, four, six] = at(3, 4, 6)
      assert.deepEqual(positions((await recorder.read([{ tags: ['course:c1'] }], { after: three })).events), at(6))
      assert.deepEqual(positions((await recorder.read([], { after: four })).events), at(5, 6))
      assert.deepEqual(await recorder.read([], { after: six }), { events: [], head: six })
      assert.deepEqual(await recorder.read([], { after: six! + 100 }), { events: [], head: six })
      assert.deepEqual(await recorder.read([{ tags: ['course:c2'] }], { after: four }), { events: [], head: six })
    })

    test('a read cut by its limit returns the head of the last event returned; one not cut, the store head', async (open) => {
      const recorder = await open()
      const at = await courses(recorder)
      const query = [{ tags: ['course:c1'] }]
      const cut = await recorder.read(query, { limit: 2 })
      assert.deepEqual(positions(cut.events), at(1, 3))
      assert.equal(cut.head, at(3)[0], 'a decision must not take the store head after a truncated read')
      const rest = await recorder.read(query, { after: cut.head, limit: 2 })
      assert.deepEqual(positions(rest.events), at(6))
      assert.equal(rest.head, at(6)[0])
      const exact = await recorder.read([{ tags: ['course:c2'] }], { limit: 2 })
      assert.deepEqual(positions(exact.events), at(2, 4))
      assert.equal(exact.head, at(6)[0], 'a read that the limit did not cut returns the store head')
      const all = await recorder.read([], { after: at(2)[0], limit: 3 })
      assert.deepEqual(positions(all.events), at(3, 4, 5))
      assert.equal(all.head, at(5)[0])
    })

    test('a decision: read a boundary, then append with its head as the condition', async (open) => {
      const recorder = await open()
      await courses(recorder)
      const decide = async () => {
        const query = [{ types: ['StudentSubscribed'], tags: ['course:c1'] }]
        const { events, head } = await recorder.read(query)
        if (events.length >= 3) throw new Error('course c1 is full')
        return recorder.append([dcbEvent('StudentSubscribed', ['course:c1', `student:${head}`])], {
          failIfEventsMatch: query,
          after: head,
        })
      }
      const head = await decide()
      await assert.rejects(decide(), /course c1 is full/)
      assert.equal(await recorder.head(), head)
    })

    test('many events are read in position order, by tag, type and whole store', async (open) => {
      const recorder = await open()
      for (let batch = 0; batch < 10; batch++) {
        await recorder.append(
          Array.from({ length: 100 }, (_, i) => dcbEvent(`T${i % 3}`, [`n:${(batch * 100 + i) % 7}`, 'all'])),
        )
      }
      const all = positions((await recorder.read()).events)
      assert.equal(all.length, 1000)
      assert.deepEqual(positions((await recorder.read([{ tags: ['all'] }])).events), all)
      const some = await recorder.read([{ tags: ['n:3'], types: ['T1'] }])
      const expected = all.filter((_, n) => n % 7 === 3 && (n % 100) % 3 === 1)
      assert.deepEqual(positions(some.events), expected)
    })
  })
}

/** Declares the tests of tracking records committed with appends. */
export function testDcbTracking(api: TestApi, harness: DcbHarness): void {
  const test = dcbTest(api, harness)
  api.describe('tracking', () => {
    test('events and their tracking records commit together, or not at all', async (open) => {
      const recorder = await open()
      assert.equal(await recorder.maxTrackingId('upstream'), 0)
      await recorder.append([dcbEvent('A')], undefined, {
        tracking: { applicationName: 'upstream', notificationId: 5 },
      })
      assert.equal(await recorder.maxTrackingId('upstream'), 5)
      assert.equal(await recorder.hasTrackingId('upstream', 5), true)
      assert.equal(await recorder.hasTrackingId('upstream', 6), false)
      assert.equal(await recorder.hasTrackingId('upstream', undefined), true)
      const error = await rejection(
        recorder.append([dcbEvent('B')], undefined, { tracking: { applicationName: 'upstream', notificationId: 5 } }),
      )
      assert.ok(error instanceof TrackingConflictError, `expected a TrackingConflictError, got ${String(error)}`)
      const table = harness.tables?.('app').tracking
      if (table !== undefined) assert.equal(error.table, table)
      const head = await recorder.head()
      await assert.rejects(
        recorder.append(
          [dcbEvent('C', ['t'])],
          { failIfEventsMatch: [{ types: ['A'] }] },
          {
            tracking: { applicationName: 'upstream', notificationId: 6 },
          },
        ),
        DcbConflictError,
      )
      assert.equal(await recorder.maxTrackingId('upstream'), 5, 'a failed condition wrote its tracking record')
      await recorder.append([], undefined, {
        tracking: [
          { applicationName: 'upstream', notificationId: 6 },
          { applicationName: 'other', notificationId: 2 },
        ],
      })
      assert.equal(await recorder.maxTrackingId('upstream'), 6)
      assert.equal(await recorder.maxTrackingId('other'), 2)
      await assert.rejects(
        recorder.insertTracking({ applicationName: 'other', notificationId: 2 }),
        TrackingConflictError,
      )
      await recorder.insertTracking({ applicationName: 'other', notificationId: 3 })
      assert.equal(await recorder.maxTrackingId('other'), 3)
      assert.deepEqual(await recorder.selectTracking(), [
        { applicationName: 'other', notificationId: 3 },
        { applicationName: 'upstream', notificationId: 6 },
      ])
      assert.equal((await recorder.read()).events.length, 1)
      assert.equal(await recorder.head(), head)
    })

    test('waitForTracking resolves once another handle tracks the notification', async (open) => {
      const [waiter, writer] = [await open(), await open()]
      const waiting = waiter.waitForTracking('upstream', 2, { timeoutMs: 5000 })
      await writer.append([dcbEvent('A')], undefined, { tracking: { applicationName: 'upstream', notificationId: 2 } })
      await waiting
      await assert.rejects(waiter.waitForTracking('upstream', 3, { timeoutMs: 10 }), /not tracked within 10 ms/)
    })
  })
}

/** Declares the tests of subscriptions. */
export function testDcbSubscribe(api: TestApi, harness: DcbHarness): void {
  const test = dcbTest(api, harness)
  api.describe('subscribe', () => {
    test('yields the matching events after a position, then new ones appended by another handle, until aborted', async (open) => {
      const [reader, writer] = [await open(), await open()]
      const first = await writer.append([dcbEvent('A', ['x'])])
      await writer.append([dcbEvent('B', ['y']), dcbEvent('C', ['x'])])
      const controller = new AbortController()
      const seen: number[] = []
      const following = (async () => {
        for await (const event of reader.subscribe([{ tags: ['x'] }], { after: first, signal: controller.signal })) {
          seen.push(event.position)
          if (seen.length === 4) controller.abort()
        }
      })()
      await writer.append([dcbEvent('D', ['y'])])
      await writer.append([dcbEvent('E', ['x', 'y']), dcbEvent('F', ['z'])])
      for (let i = 0; i < 3; i++) await writer.append([dcbEvent('G', ['x'])])
      await following
      const expected = (await reader.read()).events.filter((event) => 'CEGG'.includes(event.type)).slice(0, 4)
      assert.deepEqual(seen, positions(expected))
    })

    test('yields every event once and in order while writers append concurrently, across more than a page', async (open) => {
      const reader = await open()
      const writers = [await open(), await open(), await open()]
      const total = 3 * 40 * 15
      const controller = new AbortController()
      const seen: number[] = []
      const following = (async () => {
        for await (const event of reader.subscribe([{ tags: ['w'] }], { signal: controller.signal })) {
          seen.push(event.position)
          if (seen.length === total) controller.abort()
        }
      })()
      await Promise.all(
        writers.map(async (writer) => {
          for (let i = 0; i < 40; i++) {
            await writer.append(Array.from({ length: 15 }, () => dcbEvent('W', ['w'])))
          }
        }),
      )
      await following
      assert.deepEqual(seen, positions((await reader.read()).events))
    })
  })
}

function hex(text: string): string {
  return Buffer.from(text).toString('hex')
}
