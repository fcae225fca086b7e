// Version conflicts on PostgreSQL are told from the error's code, table and
// constraint, and the event that clashed from the write, not from the English
// text of the server's detail, which a server in another language words
// otherwise, and which it leaves out when row-level security or column
// privileges hide the key from the user.
import { afterEach, describe, expect, it } from 'vitest'
import { IntegrityError, VersionConflictError } from '../../src/persistence/errors.js'
import type { Recorders } from '../../src/persistence/recorder.js'
import { postgres } from '../../src/postgres/index.js'
import { event, failure } from '../fixtures/recorders.js'
import { admin, freshName, freshSchema, postgresUrl } from './fixtures.js'

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/**
 * Makes the tables of application `app` in a fresh schema and records `a` 1
 * and 2 as the test user; then makes a role that may log in, runs `grants`
 * (statements naming the schema and role as `{schema}` and `{role}`), and
 * returns the recorders of `app` as that role and as the test user.
 */
async function asRole(grants: string[]): Promise<{ restricted: Recorders; owner: Recorders }> {
  const role = freshName('es_writer')
  await admin(`CREATE ROLE ${role} LOGIN PASSWORD 'writer'`)
  cleanups.push(() => admin(`DROP ROLE ${role}`))
  const { schema, drop } = freshSchema()
  cleanups.push(drop)
  const owner = await open(postgres({ url: postgresUrl(), schema }))
  await owner.events.insertEvents([event('a', 1), event('a', 2)])
  for (const grant of grants) await admin(grant.replaceAll('{schema}', `"${schema}"`).replaceAll('{role}', role))
  const url = new URL(postgresUrl())
  url.username = role
  url.password = 'writer'
  const restricted = await open(postgres({ url: url.toString(), schema, createTables: false }))
  return { restricted, owner }
}

async function open(persistence: ReturnType<typeof postgres>): Promise<Recorders> {
  const recorders = await persistence.open('app')
  cleanups.push(() => recorders.close())
  return recorders
}

/** Asserts that the server left the key out of the error's detail, so the detail cannot have named the event. */
function withoutKey(error: unknown): VersionConflictError {
  expect(error).toBeInstanceOf(VersionConflictError)
  expect((error as Error).cause).toMatchObject({ code: '23505', table: 'app_events' })
  expect(((error as Error).cause as { detail?: string }).detail).toBeUndefined()
  return error as VersionConflictError
}

describe('postgres: version conflicts without the key in the detail', () => {
  it('a role that may not read the key columns gets a VersionConflictError naming the event it wrote', async () => {
    const { restricted } = await asRole([
      'GRANT USAGE ON SCHEMA {schema} TO {role}',
      'GRANT INSERT ON {schema}.app_events TO {role}',
      // The insert returns the notification ids.
      'GRANT SELECT (notification_id) ON {schema}.app_events TO {role}',
    ])
    const single = withoutKey(await failure(restricted.events.insertEvents([event('a', 2)])))
    expect(single).toMatchObject({ originatorId: 'a', originatorVersion: 2, table: 'app_events' })
    // A batch whose clash neither the detail nor a read (refused to this role) can name is a conflict still.
    withoutKey(await failure(restricted.events.insertEvents([event('b', 1), event('a', 1)])))
    expect(await restricted.events.insertEvents([event('b', 1)])).toHaveLength(1)
  })

  it('under row-level security, a batch names the first event recorded already or repeated', async () => {
    const { restricted, owner } = await asRole([
      'ALTER TABLE {schema}.app_events ENABLE ROW LEVEL SECURITY',
      'CREATE POLICY everyone ON {schema}.app_events USING (true) WITH CHECK (true)',
      'GRANT USAGE ON SCHEMA {schema} TO {role}',
      'GRANT SELECT, INSERT ON {schema}.app_events TO {role}',
    ])
    const { events } = restricted
    const recorded = withoutKey(await failure(events.insertEvents([event('b', 1), event('a', 2), event('c', 1)])))
    expect(recorded).toMatchObject({ originatorId: 'a', originatorVersion: 2, table: 'app_events' })
    const repeated = withoutKey(await failure(events.insertEvents([event('c', 3), event('c', 1), event('c', 3)])))
    expect(repeated).toMatchObject({ originatorId: 'c', originatorVersion: 3 })
    // Writes coalesced into one transaction are written alone after it fails: each names its own clash.
    const results = await Promise.allSettled([
      events.insertEvents([event('d', 1)]),
      events.insertEvents([event('e', 1), event('a', 1)]),
      events.insertEvents([event('a', 2)]),
    ])
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'rejected'])
    const [, first, second] = results.map((result) => (result.status === 'rejected' ? withoutKey(result.reason) : 0))
    expect(first).toMatchObject({ originatorId: 'a', originatorVersion: 1 })
    expect(second).toMatchObject({ originatorId: 'a', originatorVersion: 2 })
    expect((await owner.events.selectNotifications({ limit: 10 })).map((n) => n.originatorId)).toEqual(['a', 'a', 'd'])
  })

  it('under row-level security, a batch of snapshots names the first one recorded already', async () => {
    const { restricted, owner } = await asRole([
      'ALTER TABLE {schema}.app_snapshots ENABLE ROW LEVEL SECURITY',
      'CREATE POLICY everyone ON {schema}.app_snapshots USING (true) WITH CHECK (true)',
      'GRANT USAGE ON SCHEMA {schema} TO {role}',
      'GRANT SELECT, INSERT ON {schema}.app_snapshots TO {role}',
    ])
    await owner.snapshots.insertEvents([event('a', 5)])
    for (const batch of [[event('a', 5)], [event('b', 5), event('a', 5)]]) {
      const error = await failure(restricted.snapshots.insertEvents(batch))
      expect(error).toBeInstanceOf(VersionConflictError)
      expect(error).toMatchObject({ originatorId: 'a', originatorVersion: 5, table: 'app_snapshots' })
      expect((error.cause as { detail?: string }).detail).toBeUndefined()
    }
  })

  it('a clash of notification ids (a sequence set back by hand) is no version conflict', async () => {
    const { schema, drop } = freshSchema()
    cleanups.push(drop)
    const { events } = await open(postgres({ url: postgresUrl(), schema }))
    await admin(
      `INSERT INTO "${schema}".app_events OVERRIDING SYSTEM VALUE VALUES (1, 'x', 1, 't', '\\x00'), (2, 'x', 2, 't', '\\x00')`,
    )
    for (const batch of [[event('a', 1)], [event('b', 1), event('c', 1)]]) {
      const error = await failure(events.insertEvents(batch))
      expect(error).toBeInstanceOf(IntegrityError)
      expect(error).not.toBeInstanceOf(VersionConflictError)
      expect(error.cause).toMatchObject({ code: '23505', constraint: 'app_events_pkey' })
    }
  })
})
