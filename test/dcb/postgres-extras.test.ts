import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { DcbConflictError, type DcbRecorders } from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { dcbLockKey, dcbStoreKey } from '../../src/postgres/postgres-dcb-schema.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

const event = (type: string, tags: string[]) => ({ type, data: new Uint8Array([1]), tags })

// What the DCB conformance suite leaves to PostgreSQL: an append that drew its
// position and has not committed, held open by a raw connection as long as the test likes.
describe('PostgreSQL DCB recorder, with a late commit', () => {
  const cleanup: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step()
  })

  async function open(): Promise<{ recorders: DcbRecorders; raw: pg.Client; schema: string }> {
    const { schema, drop } = freshSchema()
    cleanup.push(drop)
    const recorders = await postgres({ url: postgresUrl(), schema }).openDcb('app')
    cleanup.push(() => recorders.close())
    const raw = new pg.Client({ connectionString: postgresUrl() })
    await raw.connect()
    cleanup.push(() => raw.end())
    return { recorders, raw, schema }
  }

  /** Begins, on `raw`, an append of one event as the recorder makes it (its locks, then its insert), and leaves it open. */
  async function beginAppend(raw: pg.Client, schema: string, type: string, tag: string): Promise<number> {
    const keys = [dcbStoreKey(schema, 'app_dcb'), dcbLockKey(schema, 'app_dcb', 'type', type)]
    keys.push(dcbLockKey(schema, 'app_dcb', 'tag', tag))
    await raw.query('BEGIN')
    for (const key of keys.sort((a, b) => (a < b ? -1 : 1))) {
      await raw.query('SELECT pg_advisory_xact_lock_shared($1::bigint)', [String(key)])
    }
    const inserted = await raw.query(
      `INSERT INTO "${schema}".app_dcb (type, data, tags) VALUES ($1, '\\x01', $2) RETURNING position`,
      [type, [tag]],
    )
    return Number(inserted.rows[0].position)
  }

  it('a read leaves its head below an event still committing, so a decision on that head fails once it commits', async () => {
    const { recorders, raw, schema } = await open()
    const store = recorders.events
    await store.append([event('Other', ['y'])])
    const late = await beginAppend(raw, schema, 'Seat', 'course:x')
    // Committed after the late one drew its position: the store's last position is above it.
    const above = await store.append([event('Other', ['y'])])
    expect(above).toBeGreaterThan(late)
    const query = [{ tags: ['course:x'] }]
    const read = await store.read(query)
    expect(read.events).toEqual([])
    expect(read.head).toBeLessThan(late)
    // The decision appends on what it read; the late event commits meanwhile.
    const deciding = store.append([event('Seat', ['course:x'])], { failIfEventsMatch: query, after: read.head })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await raw.query('COMMIT')
    await expect(deciding).rejects.toBeInstanceOf(DcbConflictError)
    expect((await store.read(query)).events.map((e) => e.position)).toEqual([late])
  })

  it('a read waits for a gap below an event it matches, and the head is the store head once it commits', async () => {
    const { recorders, raw, schema } = await open()
    const store = recorders.events
    const late = await beginAppend(raw, schema, 'Seat', 'course:x')
    const above = await store.append([event('Seat', ['course:x'])])
    const reading = store.read([{ tags: ['course:x'] }])
    await new Promise((resolve) => setTimeout(resolve, 30))
    await raw.query('COMMIT')
    const read = await reading
    expect(read.events.map((e) => e.position)).toEqual([late, above])
    expect(read.head).toBe(above)
  })

  it('a gap no commit fills (a rolled-back append) is passed with the store lock, not skipped', async () => {
    const { recorders, raw, schema } = await open()
    const store = recorders.events
    await beginAppend(raw, schema, 'Seat', 'course:x')
    const above = await store.append([event('Other', ['y'])])
    // In flight: the head stays below it however long it waits.
    expect((await store.read([{ tags: ['course:x'] }])).head).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect((await store.read([{ tags: ['course:x'] }])).head).toBe(0)
    await raw.query('ROLLBACK')
    await store.read([{ tags: ['course:x'] }])
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect((await store.read([{ tags: ['course:x'] }])).head).toBe(above)
    expect(await store.head()).toBe(above)
  })

  it('a conditional append on another boundary does not wait for an append still committing', async () => {
    const { recorders, raw, schema } = await open()
    await beginAppend(raw, schema, 'Seat', 'course:x')
    const appended = await Promise.race([
      recorders.events.append([event('Seat', ['course:y'])], {
        failIfEventsMatch: [{ tags: ['course:y'] }],
      }),
      new Promise((resolve) => setTimeout(() => resolve('waited'), 2000)),
    ])
    expect(appended).toBe(2)
    await raw.query('ROLLBACK')
  })
})

describe('PostgreSQL DCB recorder, across processes', () => {
  it('wakes a subscription of another backend object soon after an append, well before its poll', async () => {
    const { schema, drop } = freshSchema()
    const options = { url: postgresUrl(), schema, pollMs: 60_000 }
    // Two backend objects have their own connections and listeners, as two processes do.
    const reader = await postgres(options).openDcb('app')
    const writer = await postgres(options).openDcb('app')
    const stop = new AbortController()
    try {
      const received: number[] = []
      const reading = (async () => {
        for await (const { position } of reader.events.subscribe([{ tags: ['course:x'] }], { signal: stop.signal })) {
          received.push(position)
          if (received.length === 2) return
        }
      })()
      const first = await writer.events.append([event('Seat', ['course:x'])])
      await new Promise((resolve) => setTimeout(resolve, 300))
      const second = await writer.events.append([event('Seat', ['course:x'])])
      const started = performance.now()
      await reading
      // Without NOTIFY the subscription would see the appends only at its next poll, a minute away.
      expect(performance.now() - started).toBeLessThan(20_000)
      expect(received).toEqual([first, second])
    } finally {
      stop.abort()
      await Promise.all([reader.close(), writer.close()])
      await drop()
    }
  }, 30_000)
})
