import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { events } from '../../src/cli/commands/events.js'
import { TargetNotEmptyError } from '../../src/cli/commands/import.js'
import { type MigrateOptions, migrate, SameStorageError, TransformError } from '../../src/cli/commands/migrate.js'
import { DogSchool } from '../../src/cli/dog-school.js'
import { AesGcmCipher, DataError, type Notification, type Persistence } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { capture, STORES, type Store, seed } from './fixtures.js'

const app = 'DogSchool'

describe.each(STORES)('migrate on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  it('copies the events into another application of the database, in order, leaving the source as it was', async () => {
    const before = await notifications(store.persistence(), app)
    const out = capture()
    expect(await migrate({ app, ...store.flags, targetApp: 'Copy' }, out.io)).toBe(8)
    expect(out.stderr()).toBe("Migrated 8 events of 'DogSchool' into 'Copy'\n")
    const copied = await notifications(store.persistence(), 'Copy')
    expect(copied.map(({ id, ...event }) => event)).toEqual(before.map(({ id, ...event }) => event))
    expect(await notifications(store.persistence(), app)).toEqual(before)
    await using recorders = await store.persistence().open(app)
    expect(await recorders.events.maxTrackingId(app)).toBe(0)
  })

  it('does not copy snapshots', async () => {
    await using school = new DogSchool({
      persistence: store.persistence(),
      env: {},
      name: 'Snappy',
      snapshottingInterval: 2,
    })
    const id = await school.register('Rex')
    await school.addTrick(id, 'sit')
    await using source = await store.persistence().open('Snappy')
    expect(await source.snapshots.selectEvents(id)).toHaveLength(1)
    expect(await migrate({ app: 'Snappy', ...store.flags, targetApp: 'Copy' }, capture().io)).toBe(2)
    await using target = await store.persistence().open('Copy')
    expect(await target.snapshots.selectEvents(id)).toEqual([])
    expect(await target.events.selectEvents(id)).toHaveLength(2)
  })

  it('copies into another backend, and run again copies only the events recorded since', async () => {
    const target = { targetSqlitePath: join(tempDir(), 'target.db'), targetApp: 'Copy' }
    await migrate({ app, ...store.flags, ...target }, capture().io)
    await using school = new DogSchool({ persistence: store.persistence(), env: {} })
    await school.register('Rex')
    const again = capture()
    // The application's name spelt as its tables spell it is the same application.
    expect(await migrate({ app: 'dogschool', ...store.flags, ...target }, again.io)).toBe(1)
    expect(again.stderr()).toBe("Migrated 1 events of 'dogschool' into 'Copy' (going on after notification 8)\n")
    const copied = await notifications(sqlite({ path: target.targetSqlitePath }), 'Copy')
    expect(copied.map((event) => event.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(copied.at(-1)?.topic).toBe('dogschool:Dog.Registered')
  })

  it('rewrites each event through a transform module, and encrypts under the target cipher key', async () => {
    const key = AesGcmCipher.createKey()
    const newKey = AesGcmCipher.createKey()
    const [id] = await seed(store, { name: 'Vault', cipherKey: key })
    const options: MigrateOptions = { app: 'Vault', ...store.flags, cipherKey: key, targetApp: 'NewVault' }
    const transform = 'test/cli/modules/rename-topic.ts'
    await migrate({ ...options, transform, targetCipherKey: newKey }, capture().io)
    const out = capture()
    await events(id as string, { app: 'NewVault', ...store.flags, cipherKey: newKey, json: true }, out.io)
    const lines = out
      .stdout()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { topic: string; state: { fields: Record<string, unknown> } })
    expect(lines.map((line) => line.topic)).toEqual([
      'dogschool:Dog.Registered',
      'dogschool:Dog.TrickLearnt',
      'dogschool:Dog.TrickLearnt',
    ])
    expect(lines.map((line) => Object.keys(line.state.fields).sort())).toEqual([
      ['name', 'timestamp'],
      ['timestamp', 'trick'],
      ['timestamp', 'trick'],
    ])
    expect(lines[1]?.state.fields.trick).toBe('roll over')
    const oldKey = events(id as string, { app: 'NewVault', ...store.flags, cipherKey: key }, capture().io)
    await expect(oldKey).rejects.toThrow(DataError)
  })

  it('refuses a transform that drops, splits or moves an event, writing nothing of its batch', async () => {
    for (const [file, message] of [
      ['drop-tricks.ts', /^The transform dropped event 2 of '.*' \(topic 'dogschool:Dog.TrickAdded'\)/],
      ['split-tricks.ts', /^The transform split event 2 of '.*' \(topic 'dogschool:Dog.TrickAdded'\) into 2/],
      ['move-tricks.ts', /^The transform moved event 2 of '.*' \(topic 'dogschool:Dog.TrickAdded'\) to version 12/],
    ] as const) {
      const migrating = migrate(
        { app, ...store.flags, targetApp: 'Copy', transform: `test/cli/modules/${file}` },
        capture().io,
      )
      await expect(migrating).rejects.toThrow(TransformError)
      await expect(migrating).rejects.toThrow(message)
      expect(await notifications(store.persistence(), 'Copy')).toEqual([])
    }
  })

  it('refuses the source as its target, a target with events of its own, and a wrong key', async () => {
    const same = migrate({ app, ...store.flags }, capture().io)
    await expect(same).rejects.toThrow(SameStorageError)
    await expect(same).rejects.toThrow(
      "The target of the migration is its source ('DogSchool' in the same database): give --target-app or the target's database",
    )
    await seed(store, { name: 'Other' })
    const full = migrate({ app, ...store.flags, targetApp: 'Other' }, capture().io)
    await expect(full).rejects.toThrow(TargetNotEmptyError)
    await expect(full).rejects.toThrow(
      "Application 'Other' already has events (up to notification 8), not written by a migration from 'DogSchool': migrate into a new application",
    )
    const key = AesGcmCipher.createKey()
    const wrong = migrate({ app, ...store.flags, targetApp: 'Copy', cipherKey: key }, capture().io)
    await expect(wrong).rejects.toThrow(DataError)
    await expect(wrong).rejects.toThrow(`Cannot read event 1 of '${ids[0]}'`)
    await expect(
      migrate({ app, ...store.flags, module: 'src/cli/dog-school.ts', transform: 'x.ts' }, capture().io),
    ).rejects.toThrow('Give --module (upcast by your classes) or --transform, not both')
  })
})

async function notifications(persistence: Persistence, name: string): Promise<Notification[]> {
  await using recorders = await persistence.open(name)
  return await recorders.events.selectNotifications({ limit: 100 })
}
