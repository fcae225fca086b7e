// Stress of the PostgreSQL backend: many backend objects (so many pools and
// write queues, inserting and committing side by side on separate connections) writing
// while subscriptions and a paging reader follow the log.

import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { IntegrityError } from '../../src/persistence/errors.js'
import type { ProcessRecorder, Recorders } from '../../src/persistence/recorder.js'
import type { StoredEvent } from '../../src/persistence/stored-event.js'
import { postgres } from '../../src/postgres/index.js'
import { admin, freshSchema, postgresUrl } from './fixtures.js'

const WRITERS = 16
const SAVES_PER_WRITER = 2000
// Saves in flight per writer, so that its queue coalesces them and splits a
// group when one of them conflicts.
const LANES = 4
const SUBSCRIBERS = 3
// Most saves go to the writer's own aggregates; the rest to a few shared ones,
// where writers' knowledge of the last version goes stale and saves conflict.
const OWN_AGGREGATES = 50
const SHARED_AGGREGATES = 20
const SHARED_RATE = 0.1

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Opens the recorders of application `app` in `schema` through a backend object of its own. */
async function openOwn(schema: string, poolSize = 2): Promise<ProcessRecorder> {
  const recorders: Recorders = await postgres({ url: postgresUrl(), schema, poolSize }).open('app')
  cleanups.push(() => recorders.close())
  return recorders.events
}

function event(originatorId: string, originatorVersion: number): StoredEvent {
  return { originatorId, originatorVersion, topic: 'topic', state: new TextEncoder().encode(originatorId) }
}

/** What a save or a read says about one notification: its id and its event's key. */
function entry(id: number, originatorId: string, originatorVersion: number): string {
  return `${id} ${originatorId}@${originatorVersion}`
}

/** Resolves once `isDone()`, checking every 20 ms; throws if `ms` passes first. */
async function until(isDone: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!isDone()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await delay(20)
  }
}

/** A reader's record of the log: ids in the order read, and their entries. */
interface Reading {
  readonly ids: number[]
  readonly entries: string[]
}

function expectExactlyOnceInOrder(reading: Reading, committed: readonly string[]): void {
  for (let i = 1; i < reading.ids.length; i++) {
    if (!(reading.ids[i]! > reading.ids[i - 1]!)) {
      throw new Error(`ids out of order at ${i}: ${reading.ids[i - 1]} then ${reading.ids[i]}`)
    }
  }
  expect(reading.entries).toEqual(committed)
}

describe('postgres: stress', () => {
  it(`${WRITERS} writers × ${SAVES_PER_WRITER} saves, ${SUBSCRIBERS} subscriptions and a paging reader: every committed event read once, in order`, async () => {
    const started = Date.now()
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const writers = await Promise.all(Array.from({ length: WRITERS }, () => openOwn(schema)))
    const subscribers = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => openOwn(schema)))
    const pager = await openOwn(schema)

    // Bounds the whole test: readers stop at the latest when this aborts.
    const guard = new AbortController()
    const timer = setTimeout(() => guard.abort(), 150_000)
    cleanups.push(async () => clearTimeout(timer))

    const readings = subscribers.map(() => ({ ids: [] as number[], entries: [] as string[] }))
    const stops = subscribers.map(() => new AbortController())
    const following = subscribers.map(async (recorder, r) => {
      const signal = AbortSignal.any([stops[r]!.signal, guard.signal])
      for await (const n of recorder.subscribe({ signal })) {
        readings[r]!.ids.push(n.id)
        readings[r]!.entries.push(entry(n.id, n.originatorId, n.originatorVersion))
      }
    })

    let writing = true
    const paged: Reading = { ids: [], entries: [] }
    const paging = (async () => {
      let last = 0
      let target = Number.POSITIVE_INFINITY
      while (last < target && !guard.signal.aborted) {
        // Once writing has ended, read up to the last id committed by then.
        if (!writing && target === Number.POSITIVE_INFINITY) target = await pager.maxNotificationId()
        const page = await pager.selectNotifications({ start: last, inclusiveOfStart: false, limit: 100 })
        for (const n of page) {
          paged.ids.push(n.id)
          paged.entries.push(entry(n.id, n.originatorId, n.originatorVersion))
          last = n.id
        }
        if (page.length < 100) await delay(5)
      }
    })()

    const committed: string[] = []
    let conflicts = 0
    const unexpected: unknown[] = []
    const saving = writers.map(async (recorder, w) => {
      const own = (i: number) => `w${w}-${i}`
      const known = new Map<string, number>()
      const lane = async (saves: number) => {
        for (let s = 0; s < saves; s++) {
          const id =
            Math.random() < SHARED_RATE
              ? `shared-${Math.floor(Math.random() * SHARED_AGGREGATES)}`
              : own(Math.floor(Math.random() * OWN_AGGREGATES))
          const version = (known.get(id) ?? 0) + 1
          try {
            const [notificationId] = await recorder.insertEvents([event(id, version)])
            committed.push(entry(notificationId!, id, version))
            known.set(id, Math.max(version, known.get(id) ?? 0))
          } catch (error) {
            if (!(error instanceof IntegrityError)) {
              unexpected.push(error)
              return
            }
            conflicts++
            // The optimistic concurrency check said no: learn the current version.
            const [last] = await recorder.selectEvents(id, { desc: true, limit: 1 })
            known.set(id, Math.max(last?.originatorVersion ?? 0, known.get(id) ?? 0))
          }
        }
      }
      await Promise.all(Array.from({ length: LANES }, () => lane(SAVES_PER_WRITER / LANES)))
    })
    await Promise.all(saving)
    writing = false
    const wrote = Date.now()

    expect(unexpected).toEqual([])
    expect(committed.length + conflicts).toBe(WRITERS * SAVES_PER_WRITER)
    expect(conflicts).toBeGreaterThan(0)
    const byId = (a: string, b: string) => Number.parseInt(a, 10) - Number.parseInt(b, 10)
    committed.sort(byId)
    const maxId = Number.parseInt(committed.at(-1)!, 10)

    await until(() => readings.every((reading) => reading.ids.at(-1) === maxId), 60_000, 'the subscriptions')
    for (const stop of stops) stop.abort()
    await Promise.all([...following, paging])
    expect(guard.signal.aborted).toBe(false)

    // The table holds exactly what the writers were told was committed.
    const { rows } = await admin<{ id: string; originator_id: string; originator_version: number }>(
      `SELECT notification_id AS id, originator_id, originator_version FROM "${schema}"."app_events" ORDER BY notification_id`,
    )
    expect(rows.map((row) => entry(Number(row.id), row.originator_id, row.originator_version))).toEqual(committed)
    for (const reading of [...readings, paged]) expectExactlyOnceInOrder(reading, committed)

    if (process.env.EVENTSOURCING_TIMING) {
      console.log(
        `stress: ${committed.length} committed, ${conflicts} conflicts; writes ${wrote - started} ms, total ${Date.now() - started} ms`,
      )
    }
  }, 180_000)

  it('twenty concurrent saves of the same new aggregate from twenty backend objects: exactly one succeeds', async () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const recorders = await Promise.all(Array.from({ length: 20 }, () => openOwn(schema, 1)))
    const results = await Promise.allSettled(recorders.map((recorder) => recorder.insertEvents([event('same', 1)])))
    const succeeded = results.filter((result) => result.status === 'fulfilled')
    const failed = results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []))
    expect(succeeded).toHaveLength(1)
    expect(failed).toHaveLength(19)
    for (const error of failed) expect(error).toBeInstanceOf(IntegrityError)
    expect(await recorders[0]!.selectEvents('same')).toHaveLength(1)
  })
})
