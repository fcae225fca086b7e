// The commands that look over a whole database (apps, trackers) and log --originator.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { apps } from '../../src/cli/commands/apps.js'
import { log } from '../../src/cli/commands/log.js'
import { trackers } from '../../src/cli/commands/trackers.js'
import { DatabaseNotFoundError, ProjectionNotFoundError } from '../../src/cli/database.js'
import { FollowersNotFoundError, followedTopicsOf } from '../../src/cli/followed-topics.js'
import { UserModuleError } from '../../src/cli/user-module.js'
import { ProcessApplication, ProgrammingError, type ProjectionStore } from '../../src/index.js'
import { postgresProjectionStore } from '../../src/postgres/index.js'
import { sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { capture, STORES, type Store, seed } from './fixtures.js'

const registered = 'dogschool:Dog.Registered'
// A user's module with two followers of the dog school (see its comments).
const followers = 'test/cli/modules/dog-followers.ts'

describe.each(STORES)('the database commands on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  /** Records what a follower `Counter` and a projection `tricks` have processed of the dog school's 8 events. */
  async function follow(): Promise<void> {
    await using counter = await store.persistence().open('Counter')
    await counter.events.insertTracking({ applicationName: 'DogSchool', notificationId: 3 })
    // A relay's consumer tracks each upstream aggregate apart; another upstream lives elsewhere.
    await counter.events.insertEvents([], {
      tracking: [
        { applicationName: `DogSchool/${ids[0]}`, notificationId: 3 },
        { applicationName: `DogSchool/${ids[1]}`, notificationId: 6 },
        { applicationName: 'Remote', notificationId: 40 },
      ],
    })
  }

  describe('apps', () => {
    it('lists the applications with their event counts and last ids, as a table and as JSON', async () => {
      await follow()
      const out = capture()
      await apps({ ...store.flags }, out.io)
      expect(out.stdout()).toMatch(/│ application │ events │ last id │/)
      expect(out.stdout()).toMatch(/│ counter\s+│ 0\s+│ 0\s+│/)
      expect(out.stdout()).toMatch(/│ dogschool\s+│ 8\s+│ 8\s+│/)
      const json = capture()
      await apps({ ...store.flags, json: true }, json.io)
      expect(jsonLines(json.stdout())).toEqual([
        { name: 'counter', events: 0, maxNotificationId: 0 },
        { name: 'dogschool', events: 8, maxNotificationId: 8 },
      ])
    })

    it('says when there are none, and creates nothing', async () => {
      const empty = newStore()
      try {
        const out = capture()
        if (empty.flags.sqlitePath !== undefined) {
          await expect(apps({ ...empty.flags }, out.io)).rejects.toThrow(DatabaseNotFoundError)
          await expect(apps({ ...empty.flags }, out.io)).rejects.toThrow(/cli\.db does not exist/)
          expect(existsSync(empty.flags.sqlitePath)).toBe(false)
          return
        }
        await apps({ ...empty.flags }, out.io)
        expect(out.stdout()).toBe('No applications.\n')
        await apps({ ...empty.flags }, out.io)
        expect(out.stdout()).toBe('No applications.\nNo applications.\n')
      } finally {
        await empty.drop()
      }
    })

    it('fails without a database', async () => {
      await expect(apps({}, capture().io)).rejects.toThrow(/No database given/)
      await expect(apps({ persistence: 'memory' }, capture().io)).rejects.toThrow(ProgrammingError)
    })
  })

  describe('trackers', () => {
    it('shows each position, the upstream head and how far behind, summarising tracking per aggregate', async () => {
      await follow()
      const out = capture()
      await trackers({ ...store.flags }, out.io)
      const text = out.stdout()
      expect(text).toMatch(/│ follower │ upstream\s+│ position │ upstream head │ behind │/)
      expect(text).toMatch(/│ counter\s+│ DogSchool\s+│ 3\s+│ 8\s+│ 5\s+│/)
      expect(text).toMatch(/│ counter\s+│ DogSchool \(per aggregate: 2\) │ 6\s+│ 8\s+│ 2\s+│/)
      expect(text).toMatch(/│ counter\s+│ Remote\s+│ 40\s+│ -\s+│ -\s+│/)
      expect(text).not.toMatch(/│ dogschool/)
      const json = capture()
      await trackers({ ...store.flags, json: true }, json.io)
      expect(jsonLines(json.stdout())).toEqual([
        { follower: 'counter', kind: 'application', upstream: 'DogSchool', position: 3, head: 8, behind: 5 },
        { follower: 'counter', kind: 'application', upstream: 'Remote', position: 40, head: null, behind: null },
        {
          follower: 'counter',
          kind: 'application',
          upstream: 'DogSchool',
          aggregates: 2,
          position: 6,
          head: 8,
          behind: 2,
        },
      ])
    })

    it('counts only the topics followed when told them: a follower that ignores most topics is not far behind', async () => {
      await follow()
      const json = capture()
      await trackers({ ...store.flags, topics: [registered], json: true }, json.io)
      // After id 3, the dogs registered are ids 4 and 7; after 6, only 7.
      expect(jsonLines(json.stdout()).map((row) => [row.upstream, row.position, row.behind])).toEqual([
        ['DogSchool', 3, 2],
        ['Remote', 40, null],
        ['DogSchool', 6, 1],
      ])
    })

    it('counts each follower of --module in the topics it follows; --topic overrides them', async () => {
      // Registrar follows registrations only, Auditor everything, Reports is not in the module.
      for (const [name, notificationId] of [
        ['Registrar', 7],
        ['Auditor', 2],
        ['Reports', 5],
      ] as const) {
        await using follower = await store.persistence().open(name)
        await follower.events.insertTracking({ applicationName: 'DogSchool', notificationId })
      }
      const json = capture()
      await trackers({ ...store.flags, module: followers, json: true }, json.io)
      // After id 7 only a trick (8) is recorded: Registrar is not behind. After 2, six notifications; after 5, three.
      expect(jsonLines(json.stdout())).toEqual([
        { follower: 'auditor', kind: 'application', upstream: 'DogSchool', position: 2, head: 8, behind: 6 },
        { follower: 'registrar', kind: 'application', upstream: 'DogSchool', position: 7, head: 8, behind: 0 },
        { follower: 'reports', kind: 'application', upstream: 'DogSchool', position: 5, head: 8, behind: 3 },
      ])
      expect(json.stderr()).toBe(
        `Module ${followers} declares no process application reports: counted behind in all topics.\n`,
      )
      const overridden = capture()
      await trackers({ ...store.flags, module: followers, topics: [registered], json: true }, overridden.io)
      expect(jsonLines(overridden.stdout()).map((row) => [row.follower, row.behind])).toEqual([
        ['auditor', 2],
        ['registrar', 0],
        ['reports', 1],
      ])
      expect(overridden.stderr()).toBe('')
    })

    it('fails on a --module that declares no process application, and on one that cannot be loaded', async () => {
      await follow()
      const attempt = trackers({ ...store.flags, module: 'test/cli/modules/nothing.ts' }, capture().io)
      await expect(attempt).rejects.toThrow(FollowersNotFoundError)
      await expect(attempt).rejects.toThrow(
        /Module test\/cli\/modules\/nothing\.ts exports no ProcessApplication subclass, nor a System with one/,
      )
      await expect(trackers({ ...store.flags, module: 'test/cli/modules/none.ts' }, capture().io)).rejects.toThrow(
        UserModuleError,
      )
    })

    it('shows the projections named, and fails on one whose tracking table is missing, creating nothing', async () => {
      const views = projectionStore(store, 'tricks')
      await views.write({ applicationName: 'DogSchool', notificationId: 8 }, () => {})
      await views.close()
      const json = capture()
      await trackers({ ...store.flags, projections: ['tricks'], json: true }, json.io)
      expect(jsonLines(json.stdout())).toEqual([
        { follower: 'tricks', kind: 'projection', upstream: 'DogSchool', position: 8, head: 8, behind: 0 },
      ])
      const attempt = trackers({ ...store.flags, projections: ['trics'] }, capture().io)
      await expect(attempt).rejects.toThrow(ProjectionNotFoundError)
      await expect(attempt).rejects.toThrow(
        /No projection 'trics' in this database: its table trics_tracking is missing/,
      )
      await expect(trackers({ ...store.flags, projections: ['trics'] }, capture().io)).rejects.toThrow(
        ProjectionNotFoundError,
      )
    })

    it('says when no application follows another', async () => {
      const out = capture()
      await trackers({ ...store.flags }, out.io)
      expect(out.stdout()).toBe('No followers: no application of this database has tracking records.\n')
    })
  })

  describe('log --originator', () => {
    it("prints only one aggregate's notifications, with the other filters", async () => {
      const out = capture()
      await log({ app: 'DogSchool', ...store.flags, originator: ids[1], json: true }, out.io)
      expect(jsonLines(out.stdout()).map((line) => [line.id, line.originatorId, line.originatorVersion])).toEqual([
        [4, ids[1], 1],
        [5, ids[1], 2],
        [6, ids[1], 3],
      ])
      const table = capture()
      await log({ app: 'DogSchool', ...store.flags, originator: ids[1], topics: [registered], from: 2 }, table.io)
      expect(table.stdout()).toMatch(new RegExp(`│ 4\\s+│ ${ids[1]} │ 1\\s+│ ${registered}`))
      expect(table.stdout().match(/dogschool:Dog/g)).toHaveLength(1)
      // Fido's three events fill a page of three, and no more of his follow.
      const whole = capture()
      await log({ app: 'DogSchool', ...store.flags, originator: ids[0], limit: 3 }, whole.io)
      expect(whole.stdout()).not.toContain('More:')
      const paged = capture()
      await log({ app: 'DogSchool', ...store.flags, originator: ids[0], limit: 2 }, paged.io)
      expect(paged.stdout()).toMatch(/More: --from 3\n$/)
      const none = capture()
      await log({ app: 'DogSchool', ...store.flags, originator: 'no-such-dog' }, none.io)
      expect(none.stdout()).toBe('No notifications.\n')
    })
  })
})

it('refuses a module with two process applications of the same name', () => {
  class Registrar extends ProcessApplication {
    protected policy(): void {}
  }
  const module = {
    Registrar,
    Other: class extends Registrar {
      static override readonly applicationName = 'registrar'
    },
  }
  expect(() => followedTopicsOf('m.ts', module)).toThrow(
    "Module m.ts has two process applications named 'registrar': give one a static applicationName",
  )
  expect(followedTopicsOf('m.ts', { Registrar })).toEqual(new Map([['registrar', undefined]]))
})

it('apps names a missing SQLite file without creating it', async () => {
  const sqlitePath = join(tempDir('es-cli-'), 'missing.db')
  await expect(apps({ sqlitePath }, capture().io)).rejects.toThrow(DatabaseNotFoundError)
  expect(existsSync(sqlitePath)).toBe(false)
})

/** Returns a projection store in the store's database. */
function projectionStore(store: Store, name: string): ProjectionStore<unknown> {
  const { sqlitePath, postgresUrl, postgresSchema } = store.flags
  return (
    sqlitePath !== undefined
      ? sqliteProjectionStore({ path: sqlitePath, name })
      : postgresProjectionStore({ url: postgresUrl, schema: postgresSchema, name })
  ) as ProjectionStore<unknown>
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trimEnd()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}
