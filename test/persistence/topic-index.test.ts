// The index on (topic, notification_id) that serves a page of the log filtered
// by topic without scanning the log: created with new tables, and on tables
// made before it when an application opens them again.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { postgres } from '../../src/postgres/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { notificationSql } from '../../src/sqlite/sqlite-schema.js'
import { event } from '../fixtures/recorders.js'
import { tempDir } from '../fixtures/temp.js'
import { admin, freshSchema, postgresUrl } from '../postgres/fixtures.js'

describe('the topic index on SQLite', () => {
  const path = () => join(tempDir('es-topic-index-'), 'log.db')

  function indexes(file: string): string[] {
    const db = new Database(file, { readonly: true })
    try {
      return db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'app_events' AND sql IS NOT NULL")
        .pluck()
        .all() as string[]
    } finally {
      db.close()
    }
  }

  it('is created with the tables, and a page of some topics searches it instead of scanning the log', async () => {
    const file = path()
    await using recorders = await sqlite({ path: file }).open('app')
    await recorders.events.insertEvents([event('a', 1)])
    expect(indexes(file)).toEqual(['app_events_tp'])
    const db = new Database(file, { readonly: true })
    const plan = db
      .prepare(
        `EXPLAIN QUERY PLAN ${notificationSql('app_events').selectNotifications({ topics: true, originator: false })}`,
      )
      .all(1, 10, '["t"]', 10) as { detail: string }[]
    db.close()
    expect(plan.map((row) => row.detail).join('\n')).toMatch(/SEARCH app_events USING (COVERING )?INDEX app_events_tp/)
  })

  it('is added to tables made before it when they are opened again', async () => {
    const file = path()
    {
      await using recorders = await sqlite({ path: file }).open('app')
      await recorders.events.insertEvents([event('a', 1), event('b', 1)])
    }
    const db = new Database(file)
    db.exec('DROP INDEX app_events_tp')
    db.close()
    expect(indexes(file)).toEqual([])
    {
      await using _ = await sqlite({ path: file, createTables: false }).open('app')
      expect(indexes(file)).toEqual([])
    }
    await using recorders = await sqlite({ path: file }).open('app')
    expect(indexes(file)).toEqual(['app_events_tp'])
    expect(await recorders.events.selectNotifications({ limit: 5, topics: ['topic'] })).toHaveLength(2)
  })
})

describe('the topic index on PostgreSQL', () => {
  const schemas: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const drop of schemas.splice(0)) await drop()
  })

  async function indexes(schema: string): Promise<string[]> {
    const result = await admin<{ indexname: string }>(
      "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'app_events' AND indexname LIKE '%_tp'",
      [schema],
    )
    return result.rows.map((row) => row.indexname)
  }

  it('is created with the tables, and added to tables made before it when they are opened again', async () => {
    const { schema, drop } = freshSchema()
    schemas.push(drop)
    const backend = (createTables: boolean) => postgres({ url: postgresUrl(), schema, createTables })
    {
      await using recorders = await backend(true).open('app')
      await recorders.events.insertEvents([event('a', 1)])
    }
    expect(await indexes(schema)).toEqual(['app_events_tp'])
    await admin(`DROP INDEX "${schema}".app_events_tp`)
    {
      await using recorders = await backend(false).open('app')
      await recorders.events.maxNotificationId()
    }
    expect(await indexes(schema)).toEqual([])
    await using recorders = await backend(true).open('app')
    await recorders.events.maxNotificationId()
    expect(await indexes(schema)).toEqual(['app_events_tp'])
  })
})
