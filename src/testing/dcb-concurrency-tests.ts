// The DCB conformance tests of racing appenders: on one boundary exactly one
// commits, and on disjoint boundaries none fails.

import assert from 'node:assert/strict'
import { setImmediate } from 'node:timers/promises'
import type { DcbEvent, DcbQuery } from '../persistence/dcb.js'
import { localRacer, type Racer, type RacerResponse, startRacer } from './dcb-racer.js'
import { type DcbHarness, type DcbStore, dcbTest, type OpenDcb } from './dcb-suite.js'
import { dcbEvent, positions } from './dcb-tests.js'
import type { TestApi } from './recorder-suite.js'

/** How many appenders race in each round. */
export const RACERS = 16

/** What one racer reads and appends in a round: it decides on `query` and appends `event`, which `query` matches. */
export interface RacerTask {
  readonly query: DcbQuery
  readonly event: DcbEvent
}

/**
 * The boundaries of a round in which all racers decide on the same boundary,
 * in turn one named by a tag and a type, one by a type alone, and the whole
 * store (the empty query), since a backend may guard each differently.
 */
export function sameBoundary(round: number): RacerTask[] {
  const task: RacerTask = [
    {
      query: [{ types: ['Subscribed'], tags: [`course:${round}`] }],
      event: dcbEvent('Subscribed', [`course:${round}`, 'student']),
    },
    { query: [{ types: [`Counted${round}`] }], event: dcbEvent(`Counted${round}`, ['counter']) },
    { query: [], event: dcbEvent('Anything', [`round:${round}`]) },
  ][round % 3]!
  return Array.from({ length: RACERS }, () => task)
}

/** The boundaries of a round in which each racer decides on its own boundary: by tag, or by type. */
export function disjointBoundaries(round: number): RacerTask[] {
  return Array.from({ length: RACERS }, (_, racer): RacerTask => {
    const tag = `user:${round}:${racer}`
    return round % 2 === 0
      ? { query: [{ types: ['Claimed'], tags: [tag] }], event: dcbEvent('Claimed', [tag, 'shared']) }
      : { query: [{ types: [`Claimed${round}:${racer}`] }], event: dcbEvent(`Claimed${round}:${racer}`, ['shared']) }
  })
}

/**
 * Runs rounds of a race and returns how many racers committed in each: all
 * racers read their boundary (so all hold the same head), then all append at
 * once with the condition their read implies. Racers run in worker threads
 * when the store says how to open it there (see `DcbStore.worker`),
 * otherwise on handles in this event loop.
 *
 * @throws AssertionError if an append fails with anything but a conflict.
 */
export async function race(
  store: DcbStore,
  open: OpenDcb,
  rounds: number,
  tasks: (round: number) => RacerTask[],
): Promise<number[]> {
  const racers = await startRacers(store, open)
  try {
    const commits: number[] = []
    for (let round = 0; round < rounds; round++) {
      const roundTasks = tasks(round)
      const heads = await Promise.all(racers.map((racer, i) => racer.run({ op: 'read', query: roundTasks[i]!.query })))
      const responses = await Promise.all(
        racers.map((racer, i) => {
          const { query, event } = roundTasks[i]!
          return racer.run({
            op: 'append',
            events: [event],
            condition: { failIfEventsMatch: query, after: position(heads[i]!) },
          })
        }),
      )
      for (const response of responses) {
        if (!response.ok && response.name !== 'DcbConflictError') {
          assert.fail(`A racer's append failed with ${response.name}: ${response.message}`)
        }
      }
      commits.push(responses.filter((response) => response.ok).length)
    }
    return commits
  } finally {
    await Promise.all(racers.map((racer) => racer.close()))
  }
}

/** Declares the racing tests: exactly one of 16 racers on one boundary commits, and none of 16 on disjoint ones fails. */
export function testDcbConcurrency(api: TestApi, harness: DcbHarness): void {
  const test = dcbTest(api, harness)
  const rounds = harness.rounds ?? 20
  api.describe('racing appenders', () => {
    test(`exactly one of ${RACERS} racers deciding on one boundary commits, every round`, async (open, store) => {
      const commits = await race(store, open, rounds, sameBoundary)
      assert.deepEqual(commits, Array(rounds).fill(1), `commits per round: ${commits.join(' ')}`)
      const recorder = await open()
      for (let round = 0; round < rounds; round++) {
        const { query } = sameBoundary(round)[0]!
        if (query.length > 0) assert.equal((await recorder.read(query)).events.length, 1, `round ${round}'s boundary`)
      }
      assert.equal((await recorder.read()).events.length, rounds)
    })

    test(`none of ${RACERS} racers on disjoint boundaries fails another, every round`, async (open, store) => {
      const commits = await race(store, open, rounds, disjointBoundaries)
      assert.deepEqual(commits, Array(rounds).fill(RACERS), `commits per round: ${commits.join(' ')}`)
      const recorder = await open()
      assert.equal((await recorder.read([{ tags: ['shared'] }])).events.length, rounds * RACERS)
    })

    // The trap of a store whose positions are drawn before commit (a
    // PostgreSQL sequence): a read could return a head above an event that
    // is still committing, and a condition after that head would miss it.
    // Where appends are synchronous (memory, better-sqlite3) each read runs
    // between whole appends and this test cannot fail; it is kept for
    // asynchronous backends, whose appends commit while reads run.
    test('the head a read returns is settled: no matching event at or below it appears later', async (open) => {
      const writers = await Promise.all(Array.from({ length: 4 }, () => open()))
      const reader = await open()
      const query = [{ tags: ['w'] }]
      const reads: { head: number; seen: number[] }[] = []
      let writing = true
      const appending = Promise.all(
        writers.map(async (writer, i) => {
          for (let n = 0; n < 50; n++) await writer.append([dcbEvent('W', ['w', `writer:${i}`]), dcbEvent('V', [])])
        }),
      ).finally(() => {
        writing = false
      })
      const reading = (async () => {
        while (writing) {
          const { events, head } = await reader.read(query)
          reads.push({ head, seen: positions(events) })
          await setImmediate()
        }
      })()
      await Promise.all([appending, reading])
      const all = positions((await reader.read(query)).events)
      assert.equal(all.length, 200)
      for (const { head, seen } of reads) {
        assert.deepEqual(
          seen,
          all.filter((position) => position <= head),
          `a read returned head ${head}`,
        )
      }
    })
  })
}

async function startRacers(store: DcbStore, open: OpenDcb): Promise<Racer[]> {
  const { worker } = store
  if (worker === undefined) return Promise.all(Array.from({ length: RACERS }, async () => localRacer(await open())))
  const started = await Promise.allSettled(Array.from({ length: RACERS }, () => startRacer(worker, 'app')))
  const racers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
  const failure = started.find((result) => result.status === 'rejected')
  if (failure !== undefined) {
    await Promise.all(racers.map((racer) => racer.close()))
    throw failure.reason
  }
  return racers
}

function position(response: RacerResponse): number {
  if (!response.ok) assert.fail(`A racer's read failed with ${response.name}: ${response.message}`)
  return response.position
}
