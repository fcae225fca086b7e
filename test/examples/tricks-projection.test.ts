import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Dog, DogSchool } from '../../examples/dog-school.js'
import { PostgresTricks, SqliteTricks, type TrickCount } from '../../examples/tricks-projection.js'
import {
  type Persistence,
  type Projection,
  ProjectionRunner,
  type ProjectionStore,
  type Recording,
  WaitTimeoutError,
} from '../../src/index.js'
import { postgres, postgresProjectionStore } from '../../src/postgres/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A database for the school and the view, on one backend. */
interface Database<T> {
  readonly persistence: Persistence
  /** Opens a store of the view; it is closed after the test. */
  store(): ProjectionStore<T>
  projection(): Projection<T>
  dogsPerTrick(transaction: T): TrickCount[] | Promise<TrickCount[]>
}

/** An SQLite file that holds both the school's events and the view. */
function sqliteDatabase(): Database<Parameters<typeof SqliteTricks.dogsPerTrick>[0]> {
  const path = join(tempDir('es-tricks-'), 'dogs.db')
  return {
    persistence: sqlite({ path }),
    store: () => opened(sqliteProjectionStore({ path, name: 'tricks' })),
    projection: () => new SqliteTricks(),
    dogsPerTrick: SqliteTricks.dogsPerTrick,
  }
}

/** A fresh schema that holds both the school's events and the view. */
function postgresDatabase(): Database<Parameters<typeof PostgresTricks.dogsPerTrick>[0]> {
  const { schema, drop } = freshSchema()
  cleanups.push(drop)
  const url = postgresUrl()
  return {
    persistence: postgres({ url, schema }),
    store: () => opened(postgresProjectionStore({ url, schema, name: 'tricks' })),
    projection: () => new PostgresTricks(),
    dogsPerTrick: PostgresTricks.dogsPerTrick,
  }
}

function opened<T>(store: ProjectionStore<T>): ProjectionStore<T> {
  cleanups.push(() => store.close())
  return store
}

/** Registers a dog that knows `tricks`, and returns the recording of its last event. */
async function dogWith(school: DogSchool, name: string, ...tricks: string[]): Promise<Recording> {
  const dog = Dog.register(name)
  for (const trick of tricks) dog.addTrick(trick)
  return (await school.save(dog)).at(-1)!
}

/** Teaches a registered dog a trick, and returns the recording. */
async function teach(school: DogSchool, id: string, trick: string): Promise<Recording> {
  const dog = await school.repository.get(Dog, id)
  dog.addTrick(trick)
  return (await school.save(dog))[0]!
}

function describeTricks<T>(backend: string, newDatabase: () => Database<T>): void {
  describe(`the tricks projection on ${backend}`, () => {
    it('counts the dogs per trick as tricks are taught, readable once waited for', async () => {
      const database = newDatabase()
      await using school = new DogSchool({ persistence: database.persistence })
      const store = database.store()
      await using runner = new ProjectionRunner({ upstream: school, projection: database.projection(), store })
      await runner.start()
      const read = () => store.read((transaction) => database.dogsPerTrick(transaction))
      expect(await read()).toEqual([])

      await runner.waitFor((await dogWith(school, 'Fido', 'sit', 'roll over')).notification.id)
      expect(await read()).toEqual([
        { trick: 'roll over', dogs: 1 },
        { trick: 'sit', dogs: 1 },
      ])

      const buster = await dogWith(school, 'Buster')
      // A registration is not counted, but its position is tracked, so it can be waited for.
      await runner.waitFor(buster.notification.id)
      const taught = await teach(school, buster.notification.originatorId, 'sit')
      await runner.waitFor(taught.notification.id)
      expect(await read()).toEqual([
        { trick: 'roll over', dogs: 1 },
        { trick: 'sit', dogs: 2 },
      ])
      expect(runner.status()).toEqual({
        name: 'tricks',
        state: 'running',
        positions: { DogSchool: taught.notification.id },
      })
    })

    it('is waited for up to the last trick taught: stopped, it has passed the registrations after it', async () => {
      const database = newDatabase()
      await using school = new DogSchool({ persistence: database.persistence })
      const store = database.store()
      const runner = new ProjectionRunner({ upstream: school, projection: database.projection(), store })
      await runner.start()
      const fido = await dogWith(school, 'Fido', 'sit')
      await runner.waitFor(fido.notification.id)
      await runner.stop()
      const buster = await dogWith(school, 'Buster')
      await runner.waitFor(buster.notification.id, { timeoutMs: 1000 })
      expect(await store.maxTrackingId('DogSchool')).toBe(fido.notification.id)
      const taught = await teach(school, buster.notification.originatorId, 'sit')
      await expect(runner.waitFor(taught.notification.id, { timeoutMs: 200 })).rejects.toThrow(WaitTimeoutError)
    })

    it('resumes after a restart where the view is, counting nothing twice', async () => {
      const database = newDatabase()
      await using school = new DogSchool({ persistence: database.persistence })
      const fido = await dogWith(school, 'Fido', 'sit')
      {
        await using runner = new ProjectionRunner({
          upstream: school,
          projection: database.projection(),
          store: database.store(),
        })
        await runner.start()
        await runner.waitFor(fido.notification.id)
      }
      // Taught while no runner runs.
      await teach(school, fido.notification.originatorId, 'beg')
      const last = await dogWith(school, 'Buster', 'sit')

      const store = database.store()
      await using runner = new ProjectionRunner({ upstream: school, projection: database.projection(), store })
      await runner.start()
      await runner.waitFor(last.notification.id)
      expect(await store.read((transaction) => database.dogsPerTrick(transaction))).toEqual([
        { trick: 'beg', dogs: 1 },
        { trick: 'sit', dogs: 2 },
      ])
      expect(await store.maxTrackingId('DogSchool')).toBe(last.notification.id)
    })

    it('rebuilds the view from the log to what it was live', async () => {
      const database = newDatabase()
      await using school = new DogSchool({ persistence: database.persistence })
      const store = database.store()
      await using runner = new ProjectionRunner({ upstream: school, projection: database.projection(), store })
      await runner.start()
      const tricks = ['sit', 'beg', 'fetch', 'roll over']
      let last: Recording | undefined
      for (let i = 0; i < 20; i++) last = await dogWith(school, `dog ${i}`, ...tricks.slice(0, i % 5))
      await runner.waitFor(last!.notification.id)
      const read = () => store.read((transaction) => database.dogsPerTrick(transaction))
      const live = await read()
      expect(live).toEqual([
        { trick: 'beg', dogs: 12 },
        { trick: 'fetch', dogs: 8 },
        { trick: 'roll over', dogs: 4 },
        { trick: 'sit', dogs: 16 },
      ])

      await runner.rebuild()
      await runner.waitFor(last!.notification.id)
      expect(await read()).toEqual(live)
    })
  })
}

describeTricks('SQLite', sqliteDatabase)
describeTricks('PostgreSQL', postgresDatabase)
