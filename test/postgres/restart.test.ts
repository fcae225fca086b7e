// The PostgreSQL backend across a restart of the server, on a server of this
// file's own (the shared test server is used by other files at the same
// time), and across a connection lost while committing.

import { setTimeout as delay } from 'node:timers/promises'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { OperationalError } from '../../src/persistence/errors.js'
import type { Recorders } from '../../src/persistence/recorder.js'
import type { StoredEvent } from '../../src/persistence/stored-event.js'
import { type PostgresOptions, postgres } from '../../src/postgres/index.js'
import { admin, freshSchema, postgresUrl } from './fixtures.js'
import { startEmbeddedServer } from './global-setup.js'

// Saves in flight at once: four through one backend object (coalesced), two through another.
const LANES = [4, 2]
// Saves acknowledged before the restart, and again after it, before writing stops.
const SAVES_EACH_SIDE = 200
// How long the server stays down: longer than the pool's retries of one query (about 1.5 s).
const DOWN_MS = 3000

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function open(options: PostgresOptions): Promise<Recorders> {
  const recorders = await postgres(options).open('app')
  cleanups.push(() => recorders.close())
  return recorders
}

function event(originatorId: string): StoredEvent {
  return { originatorId, originatorVersion: 1, topic: 'topic', state: new TextEncoder().encode(originatorId) }
}

/** Resolves once `isDone()`, checking every 20 ms; throws if `ms` passes first. */
async function until(isDone: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await isDone())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await delay(20)
  }
}

describe('postgres: a server restart', () => {
  it('keeps every acknowledged save, fails the others with OperationalError, and the subscription resumes without loss or duplicate', async () => {
    const started = Date.now()
    const server = await startEmbeddedServer()
    cleanups.push(() => server.close())
    const where = new URL(server.url).host
    const writers = await Promise.all(LANES.map(() => open({ url: server.url, poolSize: 4 })))
    // Polls often, so that its queries fail for as long as the server is down.
    const reader = await open({ url: server.url, pollMs: 200 })

    const controller = new AbortController()
    const guard = setTimeout(() => controller.abort(), 90_000)
    cleanups.push(async () => clearTimeout(guard))
    const followed: { id: number; key: string }[] = []
    let subscriptionError: unknown
    const following = (async () => {
      try {
        for await (const n of reader.events.subscribe({ signal: controller.signal })) {
          followed.push({ id: n.id, key: n.originatorId })
        }
      } catch (error) {
        subscriptionError = error
      }
    })()

    const acknowledged = new Map<string, number>()
    const failed = new Map<string, unknown>()
    let writing = true
    let count = 0
    const lanes = writers.flatMap(({ events }, w) =>
      Array.from({ length: LANES[w]! }, async (_, lane) => {
        for (let n = 0; writing; n++) {
          const key = `w${w}-l${lane}-${n}`
          try {
            const [id] = await events.insertEvents([event(key)])
            acknowledged.set(key, id!)
            count++
          } catch (error) {
            failed.set(key, error)
            // Does not spin while the server is down.
            await delay(50)
          }
        }
      }),
    )

    await until(() => count >= SAVES_EACH_SIDE, 30_000, 'saves before the restart')
    const stopping = Date.now()
    await server.stop()
    await delay(DOWN_MS)
    await server.start()
    const down = Date.now() - stopping
    const before = count
    await until(() => count >= before + SAVES_EACH_SIDE, 30_000, 'saves after the restart')
    writing = false
    await Promise.all(lanes)

    const client = new pg.Client({ connectionString: server.url })
    await client.connect()
    cleanups.push(() => client.end())
    const { rows } = await client.query<{ id: string; key: string }>(
      'SELECT notification_id AS id, originator_id AS key FROM app_events ORDER BY notification_id',
    )
    const recorded = rows.map((row) => ({ id: Number(row.id), key: row.key }))
    const maxId = recorded.at(-1)!.id
    await until(() => followed.at(-1)?.id === maxId || subscriptionError !== undefined, 30_000, 'the subscription')
    controller.abort()
    await following

    expect(subscriptionError).toBeUndefined()
    // Every acknowledged save is recorded, once, with the id it was given.
    const recordedIds = new Map<string, number>()
    for (const { id, key } of recorded) {
      expect(recordedIds.has(key)).toBe(false)
      recordedIds.set(key, id)
    }
    for (const [key, id] of acknowledged) expect(recordedIds.get(key)).toBe(id)
    // A failed save failed with OperationalError naming the server. It is
    // recorded only if its commit was sent and its outcome reported unknown.
    let unknown = 0
    for (const [key, error] of failed) {
      expect(error).toBeInstanceOf(OperationalError)
      const { message } = error as OperationalError
      expect(message).toContain(where)
      if (/may or may not be recorded/.test(message)) unknown++
      else expect(recordedIds.has(key)).toBe(false)
    }
    for (const { key } of recorded) {
      if (!acknowledged.has(key)) expect(String(failed.get(key))).toMatch(/may or may not be recorded/)
    }
    // The restart did fall in the middle of writes.
    expect(failed.size).toBeGreaterThan(0)
    // The subscription yielded every recorded event, once, in id order.
    expect(followed).toEqual(recorded)

    if (process.env.EVENTSOURCING_TIMING) {
      console.log(
        `restart: down ${down} ms; ${acknowledged.size} acknowledged, ${failed.size} failed (${unknown} of unknown outcome); total ${Date.now() - started} ms`,
      )
    }
  }, 120_000)

  it('a subscription whose server stays away fails with OperationalError naming it after subscriptionRetryMs', async () => {
    const { events } = await open({
      host: '127.0.0.1',
      port: 1,
      user: 'x',
      createTables: false,
      subscriptionRetryMs: 1000,
    })
    const started = Date.now()
    const error = await (async () => {
      for await (const _ of events.subscribe()) break
    })().then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as OperationalError).message).toMatch(/127\.0\.0\.1:1\b.*1000 ms/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
  })

  it('a subscription waiting for its server ends without error when its signal aborts', async () => {
    const { events } = await open({ host: '127.0.0.1', port: 1, user: 'x', createTables: false })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 2500)
    const started = Date.now()
    for await (const _ of events.subscribe({ signal: controller.signal })) break
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe('postgres: a connection lost while committing', () => {
  it('fails the save with OperationalError saying its outcome is unknown, and does not retry it', async () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const { events } = await open({ url: postgresUrl(), schema })
    // A deferred constraint trigger runs at COMMIT: this one holds the commit
    // open long enough for its connection to be ended from outside.
    await admin(
      `CREATE FUNCTION "${schema}".slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$`,
    )
    await admin(
      `CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON "${schema}".app_events DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".slow()`,
    )
    // A save of one event commits in its own statement (autocommit), where the trigger runs.
    const committing = `SELECT pid FROM pg_stat_activity WHERE application_name = 'eventsourcing' AND wait_event = 'PgSleep'`
    // Settled at once into a value: it fails while the test is still ending the connection.
    const saving = events.insertEvents([event('a')]).then(
      () => undefined,
      (error: unknown) => error,
    )
    await until(async () => (await admin(committing)).rows.length > 0, 10_000, 'the commit')
    const ending = Date.now()
    await admin(`SELECT pg_terminate_backend(pid) FROM (${committing}) AS c`)
    const error = await saving
    expect(error).toBeInstanceOf(OperationalError)
    expect((error as OperationalError).message).toMatch(
      /failed while committing, so the write may or may not be recorded/,
    )
    // A retry would have waited in the trigger again.
    expect(Date.now() - ending).toBeLessThan(5000)
    expect(await events.selectEvents('a')).toEqual([])
  })
})
