import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import {
  Aggregate,
  Application,
  type DomainEvent,
  type FollowedTopic,
  type Persistence,
  ProcessingError,
  ProgrammingError,
  Projection,
  ProjectionRunner,
  type ProjectionStore,
  TopicError,
  TrackingConflictError,
  WaitTimeoutError,
} from '../../src/index.js'
import { type PostgresTransaction, postgres, postgresProjectionStore } from '../../src/postgres/index.js'
import { type SqliteTransaction, sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

class Counter extends Aggregate {
  static readonly topic = 'projection-test:Counter'
  total = 0

  static readonly Started = Counter.created('projection-test:Counter.Started')
  static readonly Counted = Counter.event('projection-test:Counter.Counted', (counter, e: { amount: number }) => {
    counter.total += e.amount
  })

  static start(): Counter {
    return Counter.create(Counter.Started, {})
  }

  count(amount: number): void {
    this.trigger(Counter.Counted, { amount })
  }
}

class Counters extends Application {
  static override readonly applicationName = 'Counters'

  /** Saves `counters` new counters of `events` events each (a Started event, then counts 1, 2, ...) in one save. */
  async saveCounters(counters: number, events: number): Promise<number> {
    const saved = Array.from({ length: counters }, () => {
      const counter = Counter.start()
      for (let amount = 1; amount < events; amount++) counter.count(amount)
      return counter
    })
    return (await this.save(...saved)).at(-1)!.notification.id
  }
}

/** Runs the SQL of the test projections on one backend; statements use `?` marks. */
interface Sql<T> {
  run(transaction: T, sql: string, values?: readonly unknown[]): void | Promise<void>
  all<R>(transaction: T, sql: string, values?: readonly unknown[]): R[] | Promise<R[]>
}

const sqliteSql: Sql<SqliteTransaction> = {
  run: (transaction, sql, values) => {
    if (values === undefined) transaction.exec(sql)
    else transaction.prepare(sql).run(...values)
  },
  all: <R>(transaction: SqliteTransaction, sql: string, values: readonly unknown[] = []) =>
    transaction.prepare(sql).all(...values) as R[],
}

const numbered = new Map<string, string>()
/** Returns `sql` with its `?` marks numbered, as PostgreSQL wants them. */
function dollars(sql: string): string {
  let text = numbered.get(sql)
  if (text === undefined) {
    let n = 0
    text = sql.replace(/\?/g, () => `$${++n}`)
    numbered.set(sql, text)
  }
  return text
}

const postgresSql: Sql<PostgresTransaction> = {
  // Not awaited: the queries of a batch are pipelined, and the store waits for them before committing.
  run: (transaction, sql, values) => {
    void transaction.query(dollars(sql), values)
  },
  all: async <R>(transaction: PostgresTransaction, sql: string, values?: readonly unknown[]) =>
    (await transaction.query<R>(dollars(sql), values ?? [])).rows,
}

interface Total {
  counter: string
  events: number
  total: number
  version: number
}

/** Per counter: how many of its events were processed, the sum of their amounts, and the last version. */
class Totals<T> extends Projection<T> {
  constructor(private readonly sql: Sql<T>) {
    super()
  }

  override createTables(transaction: T): void | Promise<void> {
    return this.sql.run(
      transaction,
      'CREATE TABLE IF NOT EXISTS totals (counter TEXT PRIMARY KEY, events INTEGER NOT NULL, total BIGINT NOT NULL, version INTEGER NOT NULL)',
    )
  }

  process(event: DomainEvent, transaction: T): void | Promise<void> {
    const amount = event instanceof Counter.Counted ? event.amount : 0
    return this.sql.run(
      transaction,
      `INSERT INTO totals (counter, events, total, version) VALUES (?, 1, ?, ?)
ON CONFLICT (counter) DO UPDATE SET events = totals.events + 1, total = totals.total + excluded.total, version = excluded.version`,
      [event.originatorId, amount, event.originatorVersion],
    )
  }

  clear(transaction: T): void | Promise<void> {
    return this.sql.run(transaction, 'DELETE FROM totals')
  }

  static read<T>(sql: Sql<T>, transaction: T): Total[] | Promise<Total[]> {
    return sql.all<Total>(transaction, 'SELECT counter, events, total, version FROM totals ORDER BY counter')
  }
}

interface Seen {
  topic: string
  counter: string
  version: number
  /** The tracking id written in the transaction that processed the event: the last notification id of its batch. */
  batch: number
}

/**
 * A row per event processed, with no key, so that an event processed twice
 * would show; fails on the events in `failOn`.
 */
class Sightings<T> extends Projection<T> {
  override readonly topics: readonly FollowedTopic[] | undefined
  override readonly skipUnknownTopics: boolean
  /** Events (`originatorId:originatorVersion`) that the projection fails on. */
  readonly failOn = new Set<string>()

  constructor(
    private readonly sql: Sql<T>,
    options: { topics?: readonly FollowedTopic[]; skipUnknownTopics?: boolean; store?: string } = {},
  ) {
    super()
    this.topics = options.topics
    this.skipUnknownTopics = options.skipUnknownTopics ?? false
    this.#tracking = `${options.store ?? 'view'}_tracking`
  }

  /** The store's tracking table, which the store writes before the projection's work in each transaction. */
  readonly #tracking: string

  override createTables(transaction: T): void | Promise<void> {
    return this.sql.run(
      transaction,
      'CREATE TABLE IF NOT EXISTS seen (topic TEXT NOT NULL, counter TEXT NOT NULL, version INTEGER NOT NULL, batch BIGINT NOT NULL)',
    )
  }

  process(event: DomainEvent, transaction: T): void | Promise<void> {
    const key = `${event.originatorId}:${event.originatorVersion}`
    if (this.failOn.has(key)) throw new Error(`fault at ${key}`)
    const topic = event instanceof Counter.Counted ? 'counted' : 'started'
    return this.sql.run(
      transaction,
      `INSERT INTO seen (topic, counter, version, batch)
SELECT ?, ?, ?, notification_id FROM ${this.#tracking} WHERE application_name = 'Counters'`,
      [topic, event.originatorId, event.originatorVersion],
    )
  }

  clear(transaction: T): void | Promise<void> {
    return this.sql.run(transaction, 'DELETE FROM seen')
  }

  static read<T>(sql: Sql<T>, transaction: T): Seen[] | Promise<Seen[]> {
    return sql.all<Seen>(transaction, 'SELECT topic, counter, version, batch FROM seen')
  }
}

/** A promise and the function that resolves it (Node.js 20 has no `Promise.withResolvers`). */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {}
  const promise = new Promise<void>((done) => {
    resolve = done
  })
  return { promise, resolve }
}

/** Sightings whose processing waits, once it has begun, until the test opens the gate. */
class GatedSightings<T> extends Sightings<T> {
  readonly entered = deferred()
  readonly gate = deferred()

  override async process(event: DomainEvent, transaction: T): Promise<void> {
    this.entered.resolve()
    await this.gate.promise
    await super.process(event, transaction)
  }
}

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A database for the upstream application and the projection stores, fresh for each test. */
interface Database<T> {
  readonly persistence: Persistence
  readonly sql: Sql<T>
  /** Opens a store on the database; it is closed after the test. */
  store(name?: string, pollMs?: number): ProjectionStore<T>
}

interface Backend<T> {
  readonly name: string
  /** The driver's error code for a write in a read-only transaction. */
  readonly readOnlyCode: string
  database(): Database<T>
}

function opened<T>(store: ProjectionStore<T>): ProjectionStore<T> {
  cleanups.push(() => store.close())
  return store
}

const sqliteBackend: Backend<SqliteTransaction> = {
  name: 'SQLite',
  readOnlyCode: 'SQLITE_READONLY',
  database: () => {
    // The application's events and the view in one file, each on its own connection.
    const path = join(tempDir('es-projection-'), 'counters.db')
    return {
      persistence: sqlite({ path }),
      sql: sqliteSql,
      store: (name = 'view', pollMs) => opened(sqliteProjectionStore({ path, name, pollMs })),
    }
  },
}

const postgresBackend: Backend<PostgresTransaction> = {
  name: 'PostgreSQL',
  readOnlyCode: '25006',
  database: () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const url = postgresUrl()
    return {
      persistence: postgres({ url, schema }),
      sql: postgresSql,
      store: (name = 'view', pollMs) => opened(postgresProjectionStore({ url, schema, name, pollMs })),
    }
  },
}

function describeProjections<T>(backend: Backend<T>): void {
  describe(`projections on ${backend.name}`, () => {
    it('rebuilds a view of 100,000 events, written while it ran live, to what it was live', {
      timeout: 300_000,
    }, async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      await using runner = new ProjectionRunner({ upstream: counters, projection: new Totals(sql), store })
      await runner.start()

      // 100 saves of 20 counters with 50 events each.
      let last = 0
      const writing = Date.now()
      for (let i = 0; i < 100; i++) last = await counters.saveCounters(20, 50)
      const written = Date.now()
      await runner.waitFor(last, { timeoutMs: 120_000 })
      const live = await store.read((transaction) => Totals.read(sql, transaction))
      const caughtUp = Date.now()
      expect(live).toHaveLength(2000)
      expect(live.reduce((sum, row) => sum + row.events, 0)).toBe(100_000)
      expect(live.every((row) => row.events === 50 && row.version === 50 && row.total === (49 * 50) / 2)).toBe(true)

      const rebuilding = Date.now()
      await runner.rebuild()
      await runner.waitFor(last, { timeoutMs: 120_000 })
      const rebuilt = Date.now() - rebuilding
      expect(await store.read((transaction) => Totals.read(sql, transaction))).toEqual(live)
      expect(await store.maxTrackingId('Counters')).toBe(last)
      if (process.env.EVENTSOURCING_TIMING) {
        console.info(
          `${backend.name}: wrote 100,000 events in ${written - writing} ms, live view caught up ${caughtUp - written} ms later; ` +
            `rebuilt in ${rebuilt} ms (${Math.round(100_000 / (rebuilt / 1000))} events/s)`,
        )
      }
    })

    it('commits each batch with its tracking: a failure at N leaves the view and the tracking at N - 1', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      const last = await counters.saveCounters(10, 100)
      expect(last).toBe(1000)
      const projection = new Sightings(sql)
      const failing = 338
      const [event] = await counters.notificationLog.select({ start: failing, limit: 1 })
      projection.failOn.add(`${event!.originatorId}:${event!.originatorVersion}`)
      const runner = new ProjectionRunner({ upstream: counters, projection, store, attempts: 2, retryDelayMs: 1 })
      const errors: [Error, string][] = []
      runner.on('followerError', (error, name) => errors.push([error, name]))
      const failed = new Promise((resolve) => runner.once('followerError', resolve))
      await runner.start()
      // A catch-up batch, 1 to 1,000, fails at 338; each notification of it is then done one at a time.
      await failed
      const seen = await store.read((transaction) => Sightings.read(sql, transaction))
      expect(seen).toHaveLength(failing - 1)
      expect(new Set(seen.map((row) => `${row.counter}:${row.version}`)).size).toBe(failing - 1)
      // Written one at a time, after the batch failed.
      expect(new Set(seen.map((row) => row.batch)).size).toBe(failing - 1)
      expect(await store.maxTrackingId('Counters')).toBe(failing - 1)

      const status = runner.status()
      expect(status).toMatchObject({ name: 'view', state: 'failed', positions: { Counters: failing - 1 } })
      const error = status.error as ProcessingError
      expect(error).toBeInstanceOf(ProcessingError)
      expect(errors).toEqual([[error, 'view']])
      expect(error).toMatchObject({ follower: 'view', upstream: 'Counters', attempts: 2 })
      expect(error.notification).toMatchObject({ id: failing, topic: 'projection-test:Counter.Counted' })
      expect(error.message).toBe(
        `view stopped at notification 338 of Counters (topic 'projection-test:Counter.Counted') after 2 attempts: fault at ${event!.originatorId}:38`,
      )
      // Waiting for what it will not process fails at once with its error.
      await expect(runner.waitFor(failing)).rejects.toBe(error)
      await runner.waitFor(failing - 1)

      projection.failOn.clear()
      await using again = new ProjectionRunner({ upstream: counters, projection, store })
      await again.start()
      await again.waitFor(last)
      const all = await store.read((transaction) => Sightings.read(sql, transaction))
      expect(all).toHaveLength(1000)
      expect(new Set(all.map((row) => `${row.counter}:${row.version}`)).size).toBe(1000)
      // The other 663 were written in a few batches, each with the tracking of its last notification.
      const batches = new Set(all.filter((row) => row.batch >= failing).map((row) => row.batch))
      expect(batches.size).toBeLessThanOrEqual(4)
      expect(Math.max(...batches)).toBe(last)
    })

    it('catches up in batches of 1,000 by default, one page of the log each', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      const last = await counters.saveCounters(25, 100)
      await using runner = new ProjectionRunner({ upstream: counters, projection: new Sightings(sql), store })
      await runner.start()
      await runner.waitFor(last)
      const seen = await store.read((transaction) => Sightings.read(sql, transaction))
      expect(seen).toHaveLength(2500)
      expect([...new Set(seen.map((row) => Number(row.batch)))].sort((a, b) => a - b)).toEqual([1000, 2000, 2500])
    })

    it('stops after the batch in hand, which is written whole, and resumes after it', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      const last = await counters.saveCounters(4, 50)
      const projection = new GatedSightings(sql)
      const runner = new ProjectionRunner({ upstream: counters, projection, store, batchSize: 30 })
      await runner.start()
      await projection.entered.promise
      const stopping = runner.stop()
      projection.gate.resolve()
      await stopping
      expect(runner.status()).toMatchObject({ state: 'stopped', positions: { Counters: 30 } })
      expect(await store.maxTrackingId('Counters')).toBe(30)
      expect(await store.read((transaction) => Sightings.read(sql, transaction))).toHaveLength(30)

      await runner.start()
      await runner.waitFor(last)
      await runner.stop()
      const seen = await store.read((transaction) => Sightings.read(sql, transaction))
      expect(new Set(seen.map((row) => `${row.counter}:${row.version}`)).size).toBe(200)
      expect(seen).toHaveLength(200)
    })

    it('gives the projection only the events of its topics, and tracks the others', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      const projection = new Sightings(sql, { topics: [Counter.Started] })
      await using runner = new ProjectionRunner({ upstream: counters, projection, store })
      await runner.start()
      const last = await counters.saveCounters(3, 4)
      // The last event is a count, which the projection does not follow.
      await runner.waitFor(last)
      const seen = await store.read((transaction) => Sightings.read(sql, transaction))
      expect(seen.map((row) => [row.topic, row.version])).toEqual([
        ['started', 1],
        ['started', 1],
        ['started', 1],
      ])
    })

    it('stops at an event of an unknown topic, unless told to skip it', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      await counters.saveCounters(1, 2)
      {
        await using recorders = await persistence.open('Counters')
        await recorders.events.insertEvents([
          {
            originatorId: 'gone',
            originatorVersion: 1,
            topic: 'projection-test:Gone',
            state: new Uint8Array([123, 125]),
          },
        ])
      }
      const last = await counters.saveCounters(1, 2)

      const store = newStore()
      // Three attempts a minute apart, but an unknown topic is not retried: it stops at once.
      const strict = new ProjectionRunner({
        upstream: counters,
        projection: new Sightings(sql),
        store,
        attempts: 3,
        retryDelayMs: 60_000,
      })
      const failed = new Promise<Error>((resolve) => strict.once('followerError', resolve))
      await strict.start()
      const error = (await failed) as ProcessingError
      expect(error).toBeInstanceOf(ProcessingError)
      expect(error.notification).toMatchObject({ id: 3, topic: 'projection-test:Gone' })
      expect(error.attempts).toBe(1)
      expect(error.cause).toBeInstanceOf(TopicError)
      expect(await store.maxTrackingId('Counters')).toBe(2)

      await using lenient = new ProjectionRunner({
        upstream: counters,
        projection: new Sightings(sql, { skipUnknownTopics: true }),
        store,
      })
      await lenient.start()
      await lenient.waitFor(last)
      expect(await store.read((transaction) => Sightings.read(sql, transaction))).toHaveLength(4)

      // A projection that does not follow the topic never decodes it.
      await using following = new ProjectionRunner({
        upstream: counters,
        projection: new Sightings(sql, { topics: [Counter.Counted], store: 'counted' }),
        store: newStore('counted'),
      })
      await following.start()
      await following.waitFor(last)
      expect(following.status().state).toBe('running')
    })

    it('writes the view and the tracking together, or nothing', async () => {
      const { sql, store: newStore } = backend.database()
      const store = newStore()
      await store.setup((transaction) => new Sightings(sql).createTables(transaction))
      const insert = (transaction: T, counter: string) =>
        sql.run(transaction, 'INSERT INTO seen (topic, counter, version, batch) VALUES (?, ?, ?, 0)', ['t', counter, 1])
      await store.write({ applicationName: 'Up', notificationId: 5 }, (transaction) => insert(transaction, 'a'))
      const stale = store.write({ applicationName: 'Up', notificationId: 5 }, (transaction) => insert(transaction, 'b'))
      await expect(stale).rejects.toThrow(TrackingConflictError)
      await expect(stale).rejects.toMatchObject({ applicationName: 'Up', notificationId: 5, table: 'view_tracking' })
      await expect(
        store.write({ applicationName: 'Up', notificationId: 6 }, async (transaction) => {
          await insert(transaction, 'c')
          throw new RangeError('the work failed')
        }),
      ).rejects.toThrow(new RangeError('the work failed'))
      const counters = async () =>
        (await store.read((transaction) => Sightings.read(sql, transaction))).map((row) => row.counter)
      expect(await counters()).toEqual(['a'])
      expect(await store.maxTrackingId('Up')).toBe(5)
      expect(await store.hasTrackingId('Up', 5)).toBe(true)
      expect(await store.hasTrackingId('Up', 6)).toBe(false)
      expect(await store.maxTrackingId('Other')).toBe(0)
      await store.write({ applicationName: 'Other', notificationId: 2 }, () => {})
      expect(await store.selectTracking()).toEqual([
        { applicationName: 'Other', notificationId: 2 },
        { applicationName: 'Up', notificationId: 5 },
      ])
      const writing = store.read((transaction) => insert(transaction, 'd'))
      await expect(writing).rejects.toThrow(ProgrammingError)
      await expect(writing).rejects.toThrow(/view refused a write inside read\(\).*write\(tracking, work\)/)
      await expect(writing).rejects.toHaveProperty('cause.code', backend.readOnlyCode)
      await expect(
        store.write({ applicationName: 'Up', notificationId: 7 }, (transaction) =>
          sql.run(transaction, 'INSERT INTO nowhere VALUES (?)', [1]),
        ),
      ).rejects.toThrow(ProgrammingError)
      expect(await store.maxTrackingId('Up')).toBe(5)

      await store.reset('Up', (transaction) => new Sightings(sql).clear(transaction))
      expect(await counters()).toEqual([])
      expect(await store.maxTrackingId('Up')).toBe(0)
      expect(await store.selectTracking()).toEqual([{ applicationName: 'Other', notificationId: 2 }])
    })

    it('fails a wait with WaitTimeoutError naming the projection, the application and the id', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      await using runner = new ProjectionRunner({ upstream: counters, projection: new Sightings(sql), store })
      await runner.start()
      const waiting = runner.waitFor(1, { timeoutMs: 50 })
      await expect(waiting).rejects.toThrow(WaitTimeoutError)
      await expect(waiting).rejects.toThrow(
        'view has not reached notification 1 of Counters within 50 ms: the log ends at 0',
      )
      // A wait resolves as soon as the notification is processed.
      const resolving = runner.waitFor(1)
      await counters.saveCounters(1, 1)
      await resolving
    })

    it('wakes the waiters of every store of this process on the same tracking table at once', async () => {
      const { store: newStore } = backend.database()
      const writer = newStore()
      await writer.setup(() => {})
      // With this poll interval, only the writer's commit signal can wake the waiter before its timeout.
      const waiter = newStore('view', 60_000)
      const waiting = waiter.waitForTracking('Up', 3, { timeoutMs: 5000 })
      await delay(100)
      await writer.write({ applicationName: 'Up', notificationId: 3 }, () => {})
      await waiting
    })

    it('refuses use of a closed store, and start of a running runner', async () => {
      const { persistence, sql, store: newStore } = backend.database()
      await using counters = new Counters({ persistence })
      const store = newStore()
      const runner = new ProjectionRunner({ upstream: counters, projection: new Sightings(sql), store })
      await runner.start()
      await expect(runner.start()).rejects.toThrow(ProgrammingError)
      await runner.stop()
      expect(runner.status().state).toBe('stopped')
      await store.close()
      await store.close()
      const closed = new ProgrammingError('The projection store view is closed')
      await expect(store.maxTrackingId('Counters')).rejects.toThrow(closed)
      await expect(store.write({ applicationName: 'Counters', notificationId: 1 }, () => {})).rejects.toThrow(closed)
      await expect(store.read(() => 1)).rejects.toThrow(closed)
      await expect(store.waitForTracking('Counters', 1)).rejects.toThrow(closed)
      await expect(runner.start()).rejects.toThrow(closed)
      expect(() => newStore('not a name')).toThrow(ProgrammingError)
    })
  })
}

describeProjections(sqliteBackend)
describeProjections(postgresBackend)

describe('projection stores: options', () => {
  it('refuse invalid options when made', () => {
    const url = postgresUrl()
    expect(() => sqliteProjectionStore({ name: 'view' })).toThrow(ProgrammingError)
    expect(() => sqliteProjectionStore({ name: 'view', path: ':memory:', pollMs: 0 })).toThrow(ProgrammingError)
    expect(() => sqliteProjectionStore({ name: 'a-b', path: ':memory:' })).toThrow('Invalid projection name "a-b"')
    expect(() => postgresProjectionStore({ name: 'view', url, schema: 'no schema' })).toThrow(ProgrammingError)
    expect(() => postgresProjectionStore({ name: 'view', url: 'mysql://localhost' })).toThrow(ProgrammingError)
    const store = sqliteProjectionStore({ name: 'view', path: ':memory:' })
    const projection = new Sightings(sqliteSql)
    const upstream = new Counters({ env: {} })
    expect(() => new ProjectionRunner({ upstream, projection, store, batchSize: 0 })).toThrow(
      'batchSize must be a positive integer, got 0',
    )
    expect(() => new ProjectionRunner({ upstream, projection, store, retryDelayMs: -1 })).toThrow(
      'retryDelayMs must be a non-negative integer, got -1',
    )
  })

  it('keep an SQLite view in memory, or on a connection the caller gives and keeps', async () => {
    const upstream = new Counters({ env: {} })
    const last = await upstream.saveCounters(2, 3)
    const { default: Database } = await import('better-sqlite3')
    const given = new Database(':memory:')
    for (const store of [
      sqliteProjectionStore({ name: 'view', path: ':memory:' }),
      sqliteProjectionStore({ name: 'view', database: given }),
    ]) {
      const runner = new ProjectionRunner({ upstream, projection: new Sightings(sqliteSql), store })
      await runner.start()
      await runner.waitFor(last)
      await runner.stop()
      expect(await store.read((transaction) => Sightings.read(sqliteSql, transaction))).toHaveLength(6)
      await store.close()
    }
    expect(given.prepare('SELECT count(*) AS n FROM seen').get()).toEqual({ n: 6 })
    given.close()
    await upstream.close()
  })
})
