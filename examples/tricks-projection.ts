// The number of dogs that know each trick: a projection of the dog school's
// log into a table `tricks (trick, dogs)`, kept by a ProjectionRunner.
//
// The view lives in SQLite or PostgreSQL, with a tracking table beside it, and
// each batch of events changes the view and the tracking in one transaction:
// a restarted runner resumes where the view is, and counts nothing twice. The
// SQL is the same on both databases but for the parameter marks; only the
// calls differ (better-sqlite3 is synchronous, pg is not). A dog taught the
// same trick twice is counted twice.
//
//   await using store = sqliteProjectionStore({ path: 'dogs.db', name: 'tricks' })
//   await using runner = new ProjectionRunner({ upstream: school, projection: new SqliteTricks(), store })
//   await runner.start()
//   const recordings = await school.save(dog)
//   await runner.waitFor(recordings.at(-1)!.notification.id)   // the view has the dog's tricks
//   const tricks = await store.read((transaction) => SqliteTricks.dogsPerTrick(transaction))

import { type DomainEvent, Projection } from '../src/index.js'
import type { PostgresTransaction } from '../src/postgres/index.js'
import type { SqliteTransaction } from '../src/sqlite/index.js'
import { Dog } from './dog-school.js'

const createTable = 'CREATE TABLE IF NOT EXISTS tricks (trick TEXT PRIMARY KEY, dogs INTEGER NOT NULL)'
const countDog = (mark: string) =>
  `INSERT INTO tricks (trick, dogs) VALUES (${mark}, 1) ON CONFLICT (trick) DO UPDATE SET dogs = tricks.dogs + 1`
const clear = 'DELETE FROM tricks'
const select = 'SELECT trick, dogs FROM tricks ORDER BY trick'

/** How many dogs know a trick. */
export interface TrickCount {
  readonly trick: string
  readonly dogs: number
}

/** The number of dogs per trick, in an SQLite table. */
export class SqliteTricks extends Projection<SqliteTransaction> {
  override readonly topics = [Dog.TrickAdded]

  override createTables(transaction: SqliteTransaction): void {
    transaction.exec(createTable)
  }

  process(event: DomainEvent, transaction: SqliteTransaction): void {
    if (event instanceof Dog.TrickAdded) transaction.prepare(countDog('?')).run(event.trick)
  }

  clear(transaction: SqliteTransaction): void {
    transaction.exec(clear)
  }

  /** Returns every trick with its number of dogs, by trick. */
  static dogsPerTrick(transaction: SqliteTransaction): TrickCount[] {
    return transaction.prepare(select).all() as TrickCount[]
  }
}

/** The number of dogs per trick, in a PostgreSQL table. */
export class PostgresTricks extends Projection<PostgresTransaction> {
  override readonly topics = [Dog.TrickAdded]

  override async createTables(transaction: PostgresTransaction): Promise<void> {
    await transaction.query(createTable)
  }

  process(event: DomainEvent, transaction: PostgresTransaction): void {
    // Not awaited: the store pipelines the queries of a batch, and waits for them all before it commits.
    if (event instanceof Dog.TrickAdded) void transaction.query(countDog('$1'), [event.trick])
  }

  async clear(transaction: PostgresTransaction): Promise<void> {
    await transaction.query(clear)
  }

  /** Returns every trick with its number of dogs, by trick. */
  static async dogsPerTrick(transaction: PostgresTransaction): Promise<TrickCount[]> {
    return (await transaction.query<TrickCount>(select)).rows
  }
}
