import { setTimeout as delay } from 'node:timers/promises'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { IntegrityError, OperationalError, PersistenceError, ProgrammingError } from '../../src/persistence/errors.js'
import type { Persistence, Recorders } from '../../src/persistence/recorder.js'
import type { Notification } from '../../src/persistence/stored-event.js'
import { fromEnvironment, type PostgresOptions, postgres } from '../../src/postgres/index.js'
import { importDriver } from '../../src/postgres/postgres-pool.js'
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
    // A row's xmin is the id of the transaction that wrote it, assigned at its
    // first insert, so under the table lock: xmin order is commit order.
    const { rows } = await admin<{ id: string; tx: string }>(
      `SELECT notification_id AS id, xmin::text AS tx FROM ${eventsTable()} ORDER BY notification_id`,
    )
    expect(rows.length).toBe(50)
    const transactions = rows.map((row) => Number(row.tx))
    expect(new Set(transactions).size).toBeLessThan(50)
    expect([...transactions].sort((a, b) => a - b)).toEqual(transactions)
  })

  it('a duplicate among concurrent saves fails alone with IntegrityError; the others succeed', async () => {
    const { events } = await open(backend())
    const batches = Array.from({ length: 50 }, (_, i) => [event(`a${i}`, 1)])
    batches[30] = [event('fresh', 1), event('a7', 1)]
    const results = await Promise.allSettled(batches.map((batch) => events.insertEvents(batch)))
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
    expect(failed).toHaveLength(1)
    expect((results[failed[0]!] as PromiseRejectedResult).reason).toBeInstanceOf(IntegrityError)
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

describe('postgres: interleaved transactions', () => {
  it('a save waits for a transaction holding the table lock; readers see nothing new meanwhile', async () => {
    const { events } = await open(backend())
    const [first] = await events.insertEvents([event('a', 1)])
    const table = eventsTable()
    const raw = await rawClient()
    await raw.query(`BEGIN; LOCK TABLE ${table} IN EXCLUSIVE MODE`)
    const saving = events.insertEvents([event('a', 2)])
    for (let poll = 0; poll < 5; poll++) {
      expect(await events.selectNotifications({ start: first!, inclusiveOfStart: false, limit: 10 })).toEqual([])
      expect(await events.maxNotificationId()).toBe(first)
      await delay(20)
    }
    expect(await stateAfter(saving, 50)).toBe('pending')
    await raw.query('COMMIT')
    expect(await saving).toEqual([first! + 1])
  })

  it('a slow transaction that took its id first and commits last is not skipped by a reader', async () => {
    const { events } = await open(backend())
    const [first] = await events.insertEvents([event('a', 1)])
    const table = eventsTable()
    const raw = await rawClient()
    await raw.query(`BEGIN; LOCK TABLE ${table} IN EXCLUSIVE MODE`)
    const { rows } = await raw.query<{ id: string }>(
      `INSERT INTO ${table} (originator_id, originator_version, topic, state) VALUES ($1, 1, 'topic', '\\x00') RETURNING notification_id AS id`,
      ['slow'],
    )
    const slowId = Number(rows[0]!.id)
    const saving = events.insertEvents([event('a', 2)])
    const controller = new AbortController()
    const followed: Notification[] = []
    const following = (async () => {
      for await (const n of events.subscribe({ gt: first, signal: controller.signal })) {
        followed.push(n)
        if (followed.length === 2) controller.abort()
      }
    })()
    await delay(100)
    expect(await events.selectNotifications({ start: first!, inclusiveOfStart: false, limit: 10 })).toEqual([])
    expect(followed).toEqual([])
    await raw.query('COMMIT')
    const [fast] = await saving
    expect(fast).toBe(slowId + 1)
    await following
    expect(followed.map((n) => n.id)).toEqual([slowId, fast])
    const log = await events.selectNotifications({ start: first!, inclusiveOfStart: false, limit: 10 })
    expect(log.map((n) => n.originatorId)).toEqual(['slow', 'a'])
  })

  it('a rolled-back insert leaves a gap that readers and subscriptions pass over', async () => {
    const { events } = await open(backend())
    const [first] = await events.insertEvents([event('a', 1)])
    const table = eventsTable()
    const raw = await rawClient()
    await raw.query(`BEGIN; LOCK TABLE ${table} IN EXCLUSIVE MODE`)
    await raw.query(
      `INSERT INTO ${table} (originator_id, originator_version, topic, state) VALUES ('gone', 1, 't', '')`,
    )
    const saving = events.insertEvents([event('a', 2)])
    const controller = new AbortController()
    const followed: number[] = []
    const following = (async () => {
      for await (const n of events.subscribe({ gt: first, signal: controller.signal })) {
        followed.push(n.id)
        controller.abort()
      }
    })()
    await raw.query('ROLLBACK')
    const [next] = await saving
    expect(next).toBe(first! + 2)
    await following
    expect(followed).toEqual([next])
    const log = await events.selectNotifications({ start: first!, inclusiveOfStart: false, limit: 10 })
    expect(log.map((n) => n.id)).toEqual([next])
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
