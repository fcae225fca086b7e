import { setTimeout as delay } from 'node:timers/promises'
import fc from 'fast-check'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import {
  OperationalError,
  PersistenceError,
  ProgrammingError,
  TrackingConflictError,
  VersionConflictError,
} from '../../src/persistence/errors.js'
import type { Persistence, Recorders } from '../../src/persistence/recorder.js'
import { fromEnvironment, type PostgresOptions, postgres } from '../../src/postgres/index.js'
import { importDriver } from '../../src/postgres/postgres-pool.js'
import { notificationSql, writeLockKey } from '../../src/postgres/postgres-schema.js'
import { Account, Bank } from '../application/fixtures.js'
import { event, failure } from '../fixtures/recorders.js'
import { admin, freshDatabase, freshSchema, postgresUrl } from './fixtures.js'

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

let schema = ''

/** A backend on a fresh schema of the test server (kept in `schema`), dropped after the test. */
function backend(options: Omit<PostgresOptions, 'url'> = {}): Persistence {
  const fresh = freshSchema()
  cleanups.push(fresh.drop)
  schema = fresh.schema
  return postgres({ url: postgresUrl(), schema, ...options })
}

/** The qualified name of the events table of application `app` in the last schema made by {@link backend}. */
function eventsTable(): string {
  return `"${schema}"."app_events"`
}

async function open(persistence: Persistence, applicationName = 'app'): Promise<Recorders> {
  const recorders = await persistence.open(applicationName)
  cleanups.push(() => recorders.close())
  return recorders
}

/** A raw connection to the test server, ended after the test. */
async function rawClient(url = postgresUrl()): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  cleanups.push(() => client.end())
  return client
}

/** Resolves once `done()` is true, checking every 10 ms; fails after 10 s. */
async function until(done: () => boolean): Promise<void> {
  for (const start = Date.now(); !done(); await delay(10)) {
    if (Date.now() - start > 10_000) throw new Error('Timed out')
  }
}

/** Settles to 'pending' if the promise has not settled within `ms`. */
async function stateAfter(promise: Promise<unknown>, ms: number): Promise<'pending' | 'settled'> {
  return Promise.race([promise.then(() => 'settled' as const), delay(ms, 'pending' as const)])
}

describe('postgres: configuration', () => {
  it('creates the tables in the given schema', async () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    await open(postgres({ url: postgresUrl(), schema }), 'Dogs')
    const { rows } = await admin<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [schema],
    )
    expect(rows.map((row) => row.table_name)).toEqual(['dogs_events', 'dogs_snapshots', 'dogs_tracking'])
  })

  it('rejects an invalid schema name, a bad url and a bad pool size with ProgrammingError', () => {
    for (const options of [
      { url: postgresUrl(), schema: 'bad; DROP TABLE x' },
      { url: 'not a url' },
      { url: 'mysql://localhost/x' },
      { url: postgresUrl(), poolSize: 0 },
      { url: postgresUrl(), host: 'localhost' },
      { host: 'localhost', port: 70_000 },
    ]) {
      expect(() => postgres(options)).toThrow(ProgrammingError)
    }
  })

  it('with createTables false, using a missing table fails with ProgrammingError saying to create tables', async () => {
    const { events } = await open(backend({ createTables: false }))
    const error = await failure(events.insertEvents([event('a', 1)]))
    expect(error).toBeInstanceOf(ProgrammingError)
    expect(error.message).toMatch(/create the tables/)
    expect(await failure(events.maxNotificationId())).toBeInstanceOf(ProgrammingError)
  })

  it('fails at once with ProgrammingError naming the server for a wrong password or a missing database', async () => {
    const url = new URL(postgresUrl())
    url.password = 'wrong'
    const wrong = await failure(open(postgres({ url: url.toString() })))
    expect(wrong).toBeInstanceOf(ProgrammingError)
    expect(wrong.message).toContain(`${url.hostname}:${url.port}`)
    expect(wrong.message).toMatch(/password/)

    const missing = new URL(postgresUrl())
    missing.pathname = '/no_such_database'
    const error = await failure(open(postgres({ url: missing.toString() })))
    expect(error).toBeInstanceOf(ProgrammingError)
    expect(error.message).toMatch(/no_such_database/)
  })

  it('retries a refused connection, then fails with OperationalError naming host and port', async () => {
    const error = await failure(open(postgres({ host: '127.0.0.1', port: 1, user: 'x', database: 'x' })))
    expect(error).toBeInstanceOf(OperationalError)
    expect(error.message).toMatch(/127\.0\.0\.1:1\b.*after 5 attempts/)
  })

  it('reports a missing driver with ProgrammingError saying how to install it', async () => {
    const error = await failure(importDriver(() => Promise.reject(new Error("Cannot find package 'pg'"))))
    expect(error.message).toMatch(/npm install pg/)
  })

  it('fromEnvironment reads POSTGRES_URL or the split variables, the schema, pool size and CREATE_TABLES', async () => {
    const url = new URL(postgresUrl())
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const split: Record<string, string> = {
      POSTGRES_HOST: url.hostname,
      POSTGRES_PORT: url.port,
      POSTGRES_USER: decodeURIComponent(url.username),
      POSTGRES_PASSWORD: decodeURIComponent(url.password),
      POSTGRES_DBNAME: url.pathname.slice(1),
      POSTGRES_SCHEMA: schema,
      POSTGRES_POOL_SIZE: '3',
    }
    const one = fromEnvironment((name) => split[name])
    expect(one.name).toBe('postgres')
    const ids = await (await open(one)).events.insertEvents([event('a', 1)])
    const byUrl = fromEnvironment((name) => ({ POSTGRES_URL: postgresUrl(), POSTGRES_SCHEMA: schema })[name])
    expect(await (await open(byUrl)).events.maxNotificationId()).toBe(ids[0])

    const noTables = fromEnvironment((name) => ({ ...split, POSTGRES_SCHEMA: 'es_none', CREATE_TABLES: 'no' })[name])
    expect(await failure((await open(noTables)).events.maxNotificationId())).toBeInstanceOf(ProgrammingError)
    expect(() => fromEnvironment(() => undefined)).toThrow(/POSTGRES_URL is not set/)
    expect(() => fromEnvironment((name) => ({ ...split, POSTGRES_POOL_SIZE: 'ten' })[name])).toThrow(
      /POSTGRES_POOL_SIZE/,
    )
    expect(() => fromEnvironment((name) => ({ ...split, CREATE_TABLES: 'maybe' })[name])).toThrow(/CREATE_TABLES/)
  })

  it('fromEnvironment names the variable of a port or pool size that is not a positive integer', () => {
    for (const [name, value] of [
      ['POSTGRES_POOL_SIZE', '0'],
      ['POSTGRES_PORT', '0'],
      ['POSTGRES_POOL_SIZE', '2.5'],
    ] as const) {
      const env: Record<string, string> = { POSTGRES_HOST: 'localhost', [name]: value }
      expect(() => fromEnvironment((variable) => env[variable])).toThrow(
        new ProgrammingError(`${name} must be a positive integer, got "${value}"`),
      )
    }
  })

  it('creates the same tables from several backend objects at once', async () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const opened = await Promise.all(
      Array.from({ length: 8 }, () => open(postgres({ url: postgresUrl(), schema, poolSize: 2 }))),
    )
    const ids = await Promise.all(opened.map((r, i) => r.events.insertEvents([event(`a${i}`, 1)])))
    expect(new Set(ids.flat()).size).toBe(8)
  })

  it('an application configured by PERSISTENCE=postgres saves and reads back', async () => {
    const database = await freshDatabase()
    cleanups.push(database.drop)
    const env = { PERSISTENCE: 'postgres', POSTGRES_URL: database.url }
    let id: string
    {
      await using bank = new Bank({ env })
      id = await bank.open('ivy')
      await bank.credit(id, 5n)
    }
    await using again = new Bank({ env })
    const account = await again.repository.get(Account, id)
    expect(account.owner).toBe('ivy')
    expect(account.balance).toBe(5n)
    expect(await again.notificationLog.maxId()).toBe(2)
  })
})

describe('postgres: coalesced writes', () => {
  it('concurrent saves through one backend share transactions, with ids in commit order', async () => {
    const { events } = await open(backend())
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => events.insertEvents([event(`a${i}`, 1)])))
    expect(new Set(ids.flat()).size).toBe(50)
    // A row's xmin is the id of the transaction that wrote it; one backend
    // object runs one write transaction at a time, so xmin order is id order.
    const { rows } = await admin<{ id: string; tx: string }>(
      `SELECT notification_id AS id, xmin::text AS tx FROM ${eventsTable()} ORDER BY notification_id`,
    )
    expect(rows.length).toBe(50)
    const transactions = rows.map((row) => Number(row.tx))
    expect(new Set(transactions).size).toBeLessThan(50)
    expect([...transactions].sort((a, b) => a - b)).toEqual(transactions)
  })

  it('a duplicate among concurrent saves fails alone with a VersionConflictError naming it; the others succeed', async () => {
    const { events } = await open(backend())
    const batches = Array.from({ length: 50 }, (_, i) => [event(`a${i}`, 1)])
    batches[30] = [event('fresh', 1), event('a7', 1)]
    const results = await Promise.allSettled(batches.map((batch) => events.insertEvents(batch)))
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
    expect(failed).toHaveLength(1)
    const { reason } = results[failed[0]!] as PromiseRejectedResult
    expect(reason).toBeInstanceOf(VersionConflictError)
    expect(reason).toMatchObject({ originatorId: 'a7', originatorVersion: 1, table: 'app_events' })
    expect([7, 30]).toContain(failed[0])
    expect(await events.selectEvents('fresh')).toHaveLength(failed[0] === 30 ? 0 : 1)
    expect(await events.maxNotificationId()).toBeGreaterThanOrEqual(49)
    const ids = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []))
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('a value the table rejects in one of concurrent saves fails that save alone', async () => {
    const { events } = await open(backend())
    const batches = [[event('a', 1)], [event('b', 2 ** 31)], [event('c', 1)], [event('d', 1)]]
    const results = await Promise.allSettled(batches.map((batch) => events.insertEvents(batch)))
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(PersistenceError)
    for (const id of ['a', 'c', 'd']) expect(await events.selectEvents(id)).toHaveLength(1)
  })

  it('concurrent tracking records of one upstream through one backend: the one that is not newer fails alone', async () => {
    const { events } = await open(backend())
    const results = await Promise.allSettled([
      events.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 1 } }),
      events.insertEvents([event('b', 1)], { tracking: { applicationName: 'up', notificationId: 2 } }),
      events.insertEvents([event('c', 1)], { tracking: { applicationName: 'up', notificationId: 2 } }),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected'])
    expect(await events.maxTrackingId('up')).toBe(2)
    expect(await events.selectEvents('c')).toEqual([])
  })
})

describe('postgres: version conflicts', () => {
  it("name the event and the table from the server's detail, whatever the id holds", async () => {
    const { events, snapshots } = await open(backend())
    const odd = `x, 1) already exists.\n(${'y'.repeat(2000)}, 7`
    await events.insertEvents([event(odd, 7)])
    await snapshots.insertEvents([event(odd, 7)])
    for (const [recorder, table] of [
      [events, 'app_events'],
      [snapshots, 'app_snapshots'],
    ] as const) {
      const error = await failure(recorder.insertEvents([event('other', 1), event(odd, 7)]))
      expect(error).toBeInstanceOf(VersionConflictError)
      expect(error).toMatchObject({ originatorId: odd, originatorVersion: 7, table })
    }
  })
})

describe('postgres: one statement for events and their tracking', () => {
  it('a tracking id that is not newer, or not positive, fails the save with a TrackingConflictError and writes nothing', async () => {
    const { events } = await open(backend())
    await events.insertEvents([event('a', 1)], { tracking: { applicationName: 'up', notificationId: 3 } })
    for (const [applicationName, notificationId] of [
      ['up', 3],
      ['up', 2],
      ['new', 0],
    ] as const) {
      const error = await failure(
        events.insertEvents([event('b', 1)], { tracking: { applicationName, notificationId } }),
      )
      expect(error).toBeInstanceOf(TrackingConflictError)
      expect(error).toMatchObject({ applicationName, notificationId, table: 'app_tracking' })
      expect(error.message).toContain(`Notification ${notificationId} of ${applicationName} is not newer`)
    }
    expect(await events.selectEvents('b')).toEqual([])
    expect(await events.maxTrackingId('up')).toBe(3)
    expect(await events.maxTrackingId('new')).toBe(0)
    expect(
      await events.insertEvents([event('b', 1)], { tracking: { applicationName: 'up', notificationId: 4 } }),
    ).toHaveLength(1)
  })
})

describe('postgres: interleaved transactions', () => {
  /**
   * A raw connection that writes as the library does: in a transaction it
   * opens, the library's own insert statement (which takes the write lock in
   * shared mode and draws the id), then holds the transaction open until the
   * test commits or rolls it back.
   */
  async function slowWriter() {
    const raw = await rawClient()
    const sql = notificationSql(schema, 'app_events')
    return {
      raw,
      sql,
      /** Begins a transaction and inserts one event in it; returns its id. */
      async draw(originatorId: string, topic = 'topic'): Promise<number> {
        await raw.query('BEGIN')
        const { rows } = await raw.query<{ id: string }>({
          text: sql.insertEvent,
          values: [originatorId, 1, topic, Buffer.from(originatorId)],
        })
        return Number(rows[0]!.id)
      },
      /** Commits, and wakes subscribers as the library does after a commit. */
      async commit(): Promise<void> {
        await raw.query('COMMIT')
        await raw.query(sql.notify)
      },
    }
  }

  /** Follows the log after `gt` into `followed` until aborted. */
  function follow(events: Recorders['events'], gt: number) {
    const controller = new AbortController()
    const followed: number[] = []
    const done = (async () => {
      for await (const n of events.subscribe({ gt, signal: controller.signal })) followed.push(n.id)
    })()
    const stop = () => {
      controller.abort()
      return done
    }
    return { followed, stop }
  }

  const readAfter = (events: Recorders['events'], id: number) =>
    events.selectNotifications({ start: id, inclusiveOfStart: false, limit: 10 })

  it('a save does not wait for the commit of a writer that drew an id before it, and readers hold it back until then', async () => {
    const { events } = await open(backend({ settleMs: 100 }))
    const [first] = await events.insertEvents([event('a', 1)])
    const slow = await slowWriter()
    const slowId = await slow.draw('slow')
    // Not blocked: the slow writer released the write lock before its commit.
    const [fast] = await events.insertEvents([event('a', 2)])
    expect(fast).toBe(slowId + 1)
    const following = follow(events, first!)
    await delay(150)
    expect(await readAfter(events, first!)).toEqual([])
    expect(following.followed).toEqual([])
    expect(await events.maxNotificationId()).toBe(fast)
    await slow.commit()
    await until(() => following.followed.length === 2)
    await following.stop()
    expect(following.followed).toEqual([slowId, fast])
    expect((await readAfter(events, first!)).map((n) => n.originatorId)).toEqual(['slow', 'a'])
  })

  it('a read waits for an earlier id to commit, up to settleMs', async () => {
    const { events } = await open(backend({ settleMs: 5_000 }))
    const slow = await slowWriter()
    const slowId = await slow.draw('slow')
    const [fast] = await events.insertEvents([event('a', 1)])
    const reading = readAfter(events, 0)
    expect(await stateAfter(reading, 100)).toBe('pending')
    await slow.commit()
    expect((await reading).map((n) => n.id)).toEqual([slowId, fast])
  })

  it('a reader passing a gap holds up new saves only while it waits for the writers in flight, at most 50 ms at a time', async () => {
    const { events } = await open(backend({ settleMs: 10_000 }))
    const slow = await slowWriter()
    const slowId = await slow.draw('slow')
    const [fast] = await events.insertEvents([event('a', 1)])
    // The read finds the gap and, after a few quick looks, asks for the lock in exclusive mode.
    const reading = readAfter(events, 0)
    await delay(30)
    const started = Date.now()
    expect(await events.insertEvents([event('a', 2)])).toHaveLength(1)
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(await stateAfter(reading, 100)).toBe('pending')
    await slow.commit()
    expect((await reading).map((n) => n.id)).toEqual([slowId, fast, fast! + 1])
  })

  it("a writer outside the library that takes the write lock is waited for like the library's own", async () => {
    const { events } = await open(backend({ settleMs: 5_000 }))
    const slow = await slowWriter()
    await slow.raw.query(`BEGIN; SELECT pg_advisory_xact_lock_shared(${writeLockKey(schema, 'app_events')})`)
    await slow.raw.query(
      `INSERT INTO ${eventsTable()} (originator_id, originator_version, topic, state) VALUES ('raw', 1, 't', '')`,
    )
    const [fast] = await events.insertEvents([event('a', 1)])
    const reading = readAfter(events, 0)
    expect(await stateAfter(reading, 200)).toBe('pending')
    await slow.raw.query('COMMIT')
    expect((await reading).map((n) => n.originatorId)).toEqual(['raw', 'a'])
    expect((await reading).at(-1)?.id).toBe(fast)
  })

  it('no id is drawn, by a save of one event or of many, while a reader holds the write lock in exclusive mode', async () => {
    const { events } = await open(backend())
    const [first] = await events.insertEvents([event('a', 1)])
    const lastDrawn = async () =>
      Number(
        (
          await admin<{ last: string }>(
            `SELECT pg_sequence_last_value(pg_get_serial_sequence('${eventsTable()}', 'notification_id')) AS last`,
          )
        ).rows[0]!.last,
      )
    const reader = await rawClient()
    await reader.query(`SELECT pg_advisory_lock(${writeLockKey(schema, 'app_events')})`)
    // Two backend objects, so that the two saves are not coalesced into one.
    const other = (await open(postgres({ url: postgresUrl(), schema }))).events
    const saving = [events.insertEvents([event('b', 1)]), other.insertEvents([event('c', 1), event('c', 2)])]
    await delay(100)
    expect(await lastDrawn()).toBe(first)
    await reader.query(`SELECT pg_advisory_unlock(${writeLockKey(schema, 'app_events')})`)
    expect((await Promise.all(saving)).flat().sort((a, b) => a - b)).toEqual([first! + 1, first! + 2, first! + 3])
  })

  it('with settleMs 0, a read still tries once to show a gap empty', async () => {
    const { events } = await open(backend({ settleMs: 0 }))
    const ids = await events.insertEvents([event('a', 1)])
    const conflict = await failure(events.insertEvents([event('a', 1)]))
    expect(conflict.message).toMatch(/already recorded in app_events/)
    ids.push(...(await events.insertEvents([event('b', 1)])))
    expect((await readAfter(events, 0)).map((n) => n.id)).toEqual(ids)
  })

  it('a rolled-back insert leaves a gap that readers and subscriptions pass over once nothing can fill it', async () => {
    // Nothing announces a rollback: the subscription finds the gap passable when it polls.
    const { events } = await open(backend({ settleMs: 100, pollMs: 200 }))
    const [first] = await events.insertEvents([event('a', 1)])
    const slow = await slowWriter()
    const gone = await slow.draw('gone')
    const [next] = await events.insertEvents([event('a', 2)])
    expect(next).toBe(gone + 1)
    const following = follow(events, first!)
    expect(await readAfter(events, first!)).toEqual([])
    await slow.raw.query('ROLLBACK')
    expect((await readAfter(events, first!)).map((n) => n.id)).toEqual([next])
    await until(() => following.followed.length === 1)
    await following.stop()
    expect(following.followed).toEqual([next])
  })

  it('a failed save leaves a gap that is passed at once, whatever other transactions run', async () => {
    const { events } = await open(backend())
    const other = await rawClient()
    await other.query('BEGIN; SELECT pg_current_xact_id()')
    const ids = await events.insertEvents([event('a', 1), event('a', 2)])
    // A version conflict draws an id and rolls back: a gap.
    await failure(events.insertEvents([event('a', 2)]))
    const [afterGap] = await events.insertEvents([event('b', 1)])
    expect(afterGap).toBe(ids[1]! + 2)
    const started = Date.now()
    expect((await readAfter(events, 0)).map((n) => n.id)).toEqual([...ids, afterGap])
    expect(Date.now() - started).toBeLessThan(1_000)
    await other.query('COMMIT')
  })

  interface Reader {
    readonly topics: string[] | undefined
    readonly seen: number[]
    last: number
  }

  it('model-based: writers drawing, committing and rolling back in any order; no reader ever skips a committed event', async () => {
    // A read waits at most 20 ms for a gap to be shown empty (the writers
    // here wait for it); the last reads, once every transaction has ended,
    // go through a backend that waits long enough for any machine.
    const { events } = await open(backend({ settleMs: 20 }))
    const patient = (await open(postgres({ url: postgresUrl(), schema, settleMs: 10_000 }))).events
    const writers = await Promise.all(Array.from({ length: 3 }, () => slowWriter()))
    const other = await rawClient()
    const command = fc.oneof(
      fc.record({ kind: fc.constant('draw' as const), writer: fc.nat(2), topic: fc.constantFrom('t', 'u') }),
      fc.record({ kind: fc.constantFrom('commit' as const, 'rollback' as const), writer: fc.nat(2) }),
      fc.record({ kind: fc.constant('save' as const), topic: fc.constantFrom('t', 'u') }),
      fc.record({ kind: fc.constant('conflict' as const) }),
      fc.record({ kind: fc.constantFrom('begin other' as const, 'end other' as const) }),
      fc.record({ kind: fc.constant('read' as const), topics: fc.constantFrom(undefined, ['t']) }),
    )
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 10, maxLength: 40, size: 'max' }), async (commands) => {
        const prefix = `r${++run}-`
        const base = await events.maxNotificationId()
        const open = new Map<number, { id: number; topic: string }>() // what each writer drew, in its open transaction
        const committed = new Map<number, string>() // id -> topic
        let otherOpen = false
        // One reader per filter: what it has seen, and the highest id.
        const readers = new Map<string, Reader>(
          [undefined, ['t']].map((topics) => [topics?.[0] ?? '', { topics, seen: [], last: base }]),
        )
        const read = async (reader: Reader, recorder = events) => {
          const page = await recorder.selectNotifications({
            start: reader.last,
            inclusiveOfStart: false,
            limit: 100,
            topics: reader.topics,
          })
          for (const n of page) {
            expect(n.id).toBeGreaterThan(reader.last)
            expect(committed.has(n.id)).toBe(true)
            reader.last = n.id
            reader.seen.push(n.id)
          }
          // Every committed event of the reader's topics up to its last id was seen.
          const due = [...committed].filter(
            ([id, topic]) => id <= reader.last && (reader.topics?.includes(topic) ?? true),
          )
          expect(reader.seen.filter((id) => id > base)).toEqual(due.map(([id]) => id).sort((a, b) => a - b))
        }
        let saves = 0
        for (const c of commands) {
          if (c.kind === 'draw' && !open.has(c.writer)) {
            open.set(c.writer, { id: await writers[c.writer]!.draw(`${prefix}${saves++}`, c.topic), topic: c.topic })
          } else if ((c.kind === 'commit' || c.kind === 'rollback') && open.has(c.writer)) {
            await writers[c.writer]!.raw.query(c.kind.toUpperCase())
            const drawn = open.get(c.writer)!
            if (c.kind === 'commit') committed.set(drawn.id, drawn.topic)
            open.delete(c.writer)
          } else if (c.kind === 'save') {
            const [id] = await events.insertEvents([{ ...event(`${prefix}${saves++}`, 1), topic: c.topic }])
            committed.set(id!, c.topic)
          } else if (c.kind === 'conflict') {
            const twice = event(`${prefix}${saves++}`, 1)
            await failure(events.insertEvents([twice, twice]))
          } else if (c.kind === 'begin other' && !otherOpen) {
            await other.query('BEGIN; SELECT pg_current_xact_id()')
            otherOpen = true
          } else if (c.kind === 'end other' && otherOpen) {
            await other.query('COMMIT')
            otherOpen = false
          } else if (c.kind === 'read') await read(readers.get(c.topics?.[0] ?? '')!)
        }
        for (const [writer] of open) await writers[writer]!.raw.query('ROLLBACK')
        if (otherOpen) await other.query('COMMIT')
        // Once every transaction has ended, every committed event is settled and read.
        for (const reader of readers.values()) {
          await read(reader, patient)
          const due = [...committed].filter(([, topic]) => reader.topics?.includes(topic) ?? true)
          expect(reader.seen.filter((id) => id > base)).toHaveLength(due.length)
        }
      }),
      { numRuns: 60 },
    )
  })
})

describe('postgres: closing', () => {
  it('ends open subscriptions at once', async () => {
    const persistence = backend({ pollMs: 60_000 })
    const recorders = await persistence.open('app')
    const iterator = recorders.events.subscribe()[Symbol.asyncIterator]()
    const next = iterator.next()
    await delay(100)
    await recorders.close()
    expect(await stateAfter(next, 2_000)).toBe('settled')
    expect(await next).toEqual({ done: true, value: undefined })
  })

  it('refuses use after close with ProgrammingError, while other open recorders go on', async () => {
    const persistence = backend()
    const first = await persistence.open('app')
    const second = await open(persistence)
    await first.close()
    await expect(first.events.insertEvents([event('a', 1)])).rejects.toThrow(ProgrammingError)
    await expect(first.events.selectEvents('a')).rejects.toThrow(/closed/)
    await expect(first.snapshots.insertEvents([event('a', 1)])).rejects.toThrow(ProgrammingError)
    expect(await second.events.insertEvents([event('a', 1)])).toHaveLength(1)
  })
})

describe('postgres: subscriptions across processes', () => {
  it('wakes on NOTIFY from another backend object, and resumes after its listening connection is killed', async () => {
    const database = await freshDatabase()
    cleanups.push(database.drop)
    // A poll far away: only a notification (or a reconnection) can wake it in time.
    const subscriber = (await open(postgres({ url: database.url, pollMs: 60_000 }))).events
    const writer = (await open(postgres({ url: database.url }))).events
    const controller = new AbortController()
    const guard = setTimeout(() => controller.abort(), 20_000)
    const followed: number[] = []
    const following = (async () => {
      for await (const n of subscriber.subscribe({ signal: controller.signal })) followed.push(n.id)
    })()
    const until = async (count: number) => {
      while (followed.length < count && !controller.signal.aborted) await delay(10)
    }
    const ids = await writer.insertEvents([event('a', 1), event('a', 2)])
    await until(2)
    const { rows } = await admin<{ killed: boolean }>(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
       WHERE datname = current_database() AND query LIKE 'LISTEN%'`,
      [],
      database.url,
    )
    expect(rows.length).toBeGreaterThan(0)
    ids.push(...(await writer.insertEvents([event('a', 3)])))
    await until(3)
    ids.push(...(await writer.insertEvents([event('a', 4)])))
    await until(4)
    controller.abort()
    clearTimeout(guard)
    await following
    expect(followed).toEqual(ids)
  })
})
