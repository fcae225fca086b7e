import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataError, OperationalError, ProgrammingError } from '../../src/persistence/errors.js'
import type { Recorders } from '../../src/persistence/recorder.js'
import type { Notification } from '../../src/persistence/stored-event.js'
import { fromEnvironment, sqlite } from '../../src/sqlite/index.js'
import { importDriver } from '../../src/sqlite/sqlite-database.js'
import { event, failure } from '../fixtures/recorders.js'

let directory: string
const opened: { close(): unknown }[] = []

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'eventsourcing-sqlite-'))
})

afterEach(async () => {
  for (const resource of opened.splice(0).reverse()) await resource.close()
  await rm(directory, { recursive: true, force: true })
})

function track<T extends { close(): unknown }>(resource: T): T {
  opened.push(resource)
  return resource
}

async function open(options: Parameters<typeof sqlite>[0], applicationName = 'app'): Promise<Recorders> {
  return track(await sqlite(options).open(applicationName))
}

describe('sqlite: files', () => {
  it('puts a file database in WAL mode with synchronous NORMAL, or FULL when asked', async () => {
    const path = join(directory, 'wal.db')
    await open({ path })
    const raw = track(new Database(path))
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal')

    const given = track(new Database(join(directory, 'given.db')))
    await open({ database: given, synchronous: 'full' })
    expect(given.pragma('synchronous', { simple: true })).toBe(2)
    await open({ database: given })
    expect(given.pragma('synchronous', { simple: true })).toBe(1)
    expect(given.pragma('journal_mode', { simple: true })).toBe('wal')
  })

  it('opens a connection per open(), so two opens see each other through the file', async () => {
    const path = join(directory, 'two.db')
    const one = await open({ path })
    const two = await open({ path })
    const [id] = await one.events.insertEvents([event('a', 1)])
    expect((await two.events.selectNotifications({ limit: 10 })).map((n) => n.id)).toEqual([id])
    await one.close()
    expect(await two.events.maxNotificationId()).toBe(id)
  })

  it('fails with ProgrammingError when the tables are missing and may not be created', async () => {
    const { events, snapshots } = await open({ path: join(directory, 'empty.db'), createTables: false })
    const error = await failure(events.insertEvents([event('a', 1)]))
    expect(error).toBeInstanceOf(ProgrammingError)
    expect(error.message).toMatch(/app_events/)
    expect(error.message).toMatch(/CREATE_TABLES=true/)
    expect(error.cause).toBeDefined()
    expect(await failure(events.selectNotifications({ limit: 1 }))).toBeInstanceOf(ProgrammingError)
    expect(await failure(events.maxTrackingId('up'))).toBeInstanceOf(ProgrammingError)
    expect(await failure(snapshots.selectEvents('a'))).toBeInstanceOf(ProgrammingError)
  })

  it('fails with DataError when the file is not an SQLite database', async () => {
    const path = join(directory, 'notes.txt')
    await writeFile(path, 'These are not the bytes of an SQLite database. '.repeat(100))
    const error = await failure(sqlite({ path }).open('app'))
    expect(error).toBeInstanceOf(DataError)
    expect(error.message).toContain(path)
    expect(error.message).toMatch(/not an SQLite database/)
  })

  it('fails with OperationalError when the directory does not exist', async () => {
    const error = await failure(sqlite({ path: join(directory, 'missing', 'x.db') }).open('app'))
    expect(error).toBeInstanceOf(OperationalError)
    expect(error.message).toMatch(/directory exists/)
  })

  it('fails with OperationalError when another connection holds the write lock past the busy timeout', async () => {
    const path = join(directory, 'busy.db')
    const { events } = await open({ path, busyTimeoutMs: 50 })
    const other = track(new Database(path))
    other.exec('BEGIN IMMEDIATE')
    try {
      const error = await failure(events.insertEvents([event('a', 1)]))
      expect(error).toBeInstanceOf(OperationalError)
      expect(error.message).toMatch(/locked/)
    } finally {
      other.exec('ROLLBACK')
    }
    await events.insertEvents([event('a', 1)])
  })
})

describe('sqlite: waking subscribers and waiters', () => {
  // With polls an hour apart, only the in-process commit signal can wake them in time.
  const pollMs = 3_600_000

  /** Resolves to the first notification a subscription yields, or fails after `ms`. */
  async function firstOf(subscription: AsyncIterable<Notification>, controller: AbortController, ms = 1000) {
    const timer = setTimeout(() => controller.abort(), ms)
    try {
      for await (const n of subscription) return n
      throw new Error(`nothing was yielded within ${ms} ms`)
    } finally {
      clearTimeout(timer)
      controller.abort()
    }
  }

  it('wakes a subscriber at once on a commit through another backend object on the same file', async () => {
    const path = join(directory, 'shared.db')
    const one = await open({ path, pollMs })
    const two = await open({ path, pollMs })
    const controller = new AbortController()
    const first = firstOf(one.events.subscribe({ signal: controller.signal }), controller)
    await delay(20)
    const [id] = await two.events.insertEvents([event('a', 1)])
    expect((await first).id).toBe(id)
  })

  it('shares the signal between names of one file, but not between applications or files', async () => {
    const link = join(directory, 'link')
    await symlink(directory, link)
    const one = await open({ path: join(directory, 'named.db'), pollMs })
    const two = await open({ path: `${link}/./named.db`, pollMs })
    const controller = new AbortController()
    const first = firstOf(one.events.subscribe({ signal: controller.signal }), controller)
    await delay(20)
    const [id] = await two.events.insertEvents([event('a', 1)])
    expect((await first).id).toBe(id)

    const other = await open({ path: join(directory, 'named.db'), pollMs }, 'other')
    const elsewhere = await open({ path: join(directory, 'elsewhere.db'), pollMs })
    const idle = new AbortController()
    const none = firstOf(one.events.subscribe({ gt: id, signal: idle.signal }), idle, 200)
    await other.events.insertEvents([event('a', 1)])
    await elsewhere.events.insertEvents([event('a', 1)])
    await expect(none).rejects.toThrow(/nothing was yielded/)
  })

  it('wakes waitForTracking at once on a commit through another backend object on the same file', async () => {
    const path = join(directory, 'tracked.db')
    const one = await open({ path, pollMs })
    const two = await open({ path, pollMs })
    const waiting = one.events.waitForTracking('up', 1, { timeoutMs: 1000 })
    await delay(20)
    await two.events.insertTracking({ applicationName: 'up', notificationId: 1 })
    await waiting
  })

  it('still wakes subscribers after every recorder on the file was closed and it is opened again', async () => {
    const path = join(directory, 'reopened.db')
    await (await sqlite({ path, pollMs }).open('app')).close()
    const one = await open({ path, pollMs })
    const two = await open({ path, pollMs })
    const controller = new AbortController()
    const first = firstOf(one.events.subscribe({ signal: controller.signal }), controller)
    await delay(20)
    const [id] = await two.events.insertEvents([event('a', 1)])
    expect((await first).id).toBe(id)
  })

  it('ends a waiting subscription at once when aborted, without waiting for the next poll', async () => {
    const { events } = await open({ path: join(directory, 'abort.db'), pollMs })
    const controller = new AbortController()
    const reading = (async () => {
      for await (const n of events.subscribe({ signal: controller.signal })) throw new Error(`yielded ${n.id}`)
    })()
    await delay(20)
    controller.abort()
    const late = delay(1000, 'still waiting for its next poll', { ref: false })
    expect(await Promise.race([reading.then(() => 'ended'), late])).toBe('ended')
  })
})

describe('sqlite: names and options', () => {
  it('refuses application names that do not make valid table names with ProgrammingError', async () => {
    const persistence = sqlite({ path: ':memory:' })
    for (const name of ['dog school', 'x"; DROP TABLE y; --', 'école', '1dogs', 'a'.repeat(60)]) {
      expect(await failure(persistence.open(name)), name).toBeInstanceOf(ProgrammingError)
    }
  })

  it('refuses invalid options with ProgrammingError', () => {
    expect(() => sqlite({})).toThrow(ProgrammingError)
    expect(() => sqlite({ path: '' })).toThrow(ProgrammingError)
    expect(() => sqlite({ path: ':memory:', busyTimeoutMs: -1 })).toThrow(ProgrammingError)
    expect(() => sqlite({ path: ':memory:', pollMs: 0 })).toThrow(ProgrammingError)
  })

  it('is configured from SQLITE_PATH and CREATE_TABLES', async () => {
    const env = (vars: Record<string, string>) => (name: string) => vars[name]
    expect(() => fromEnvironment(env({}))).toThrow(/SQLITE_PATH/)
    expect(() => fromEnvironment(env({}))).toThrow(ProgrammingError)
    expect(() => fromEnvironment(env({ SQLITE_PATH: ':memory:', CREATE_TABLES: 'maybe' }))).toThrow(/CREATE_TABLES/)
    expect(() => fromEnvironment(env({ SQLITE_PATH: ':memory:', CREATE_TABLES: 'maybe' }))).toThrow(ProgrammingError)
    const persistence = fromEnvironment(env({ SQLITE_PATH: ':memory:' }))
    expect(persistence.name).toBe('sqlite')
    const { events } = track(await persistence.open('app'))
    expect(await events.insertEvents([event('a', 1)])).toHaveLength(1)
    for (const value of ['false', 'NO', '0']) {
      const { events } = track(
        await fromEnvironment(env({ SQLITE_PATH: ':memory:', CREATE_TABLES: value })).open('app'),
      )
      expect(await failure(events.maxNotificationId())).toBeInstanceOf(ProgrammingError)
    }
    for (const value of ['true', 'yes', '1']) {
      const { events } = track(
        await fromEnvironment(env({ SQLITE_PATH: ':memory:', CREATE_TABLES: value })).open('app'),
      )
      expect(await events.maxNotificationId()).toBe(0)
    }
  })

  it('tells how to install better-sqlite3 when it is missing', async () => {
    const missing = Object.assign(new Error("Cannot find package 'better-sqlite3' imported from x"), {
      code: 'ERR_MODULE_NOT_FOUND',
    })
    const error = await failure(importDriver(() => Promise.reject(missing)))
    expect(error).toBeInstanceOf(ProgrammingError)
    expect(error.message).toContain('npm install better-sqlite3@12')
    expect(error.cause).toBe(missing)
  })
})

describe('sqlite: :memory: and given databases', () => {
  it('shares one :memory: database between the opens of one backend, until the last closes', async () => {
    const persistence = sqlite({ path: ':memory:' })
    const one = await persistence.open('app')
    const two = await persistence.open('app')
    const [id] = await one.events.insertEvents([event('a', 1)])
    expect(await two.events.maxNotificationId()).toBe(id)
    await one.close()
    expect(await failure(one.events.maxNotificationId())).toBeInstanceOf(ProgrammingError)
    expect(await two.events.maxNotificationId()).toBe(id)
    await two.close()
    const three = track(await persistence.open('app'))
    expect(await three.events.maxNotificationId()).toBe(0)
    const other = track(await sqlite({ path: ':memory:' }).open('app'))
    expect(await other.events.maxNotificationId()).toBe(0)
  })

  it('uses a given database for every open and leaves it open', async () => {
    const database = track(new Database(':memory:'))
    const persistence = sqlite({ database })
    const one = await persistence.open('app')
    const two = track(await persistence.open('app'))
    await one.events.insertEvents([event('a', 1)])
    await one.close()
    expect(await two.events.selectEvents('a')).toHaveLength(1)
    expect(database.prepare('SELECT COUNT(*) AS n FROM app_events').get()).toEqual({ n: 1 })
  })
})
