// The workload of the projection benchmarks: 1,000 dogs with 100 events each,
// every event naming one of 50 tricks, and a projection counting the events
// per trick in a table of its own, on SQLite or PostgreSQL.
import { Aggregate, Projection } from 'eventsourcing'

export const STREAMS = 1_000
export const PER_STREAM = 100
export const EVENTS = STREAMS * PER_STREAM
export const KEYS = 50

/** The trick of the n-th event. */
export const trick = (n) => `trick-${n % KEYS}`
/** The upsert that counts one event of a trick in `table`. */
export const upsertSql = (table, placeholder) =>
  `INSERT INTO ${table} (key, n) VALUES (${placeholder}, 1) ON CONFLICT (key) DO UPDATE SET n = ${table}.n + 1`
/** Makes a view table of counts per trick. */
export const createSql = (table) => `CREATE TABLE IF NOT EXISTS ${table} (key TEXT PRIMARY KEY, n INTEGER NOT NULL)`

/** A dog whose every event names a trick: 1 registered and 99 tricks added per dog. */
export class Dog extends Aggregate {
  static Registered = Dog.created('bench:Dog.Registered', () => {})
  static TrickAdded = Dog.event('bench:Dog.TrickAdded', () => {})
}

/**
 * Counts the events per trick in `table` (one upsert per event), on SQLite or
 * PostgreSQL. With `pipelined`, `process` does not wait for its statement:
 * the PostgreSQL store sends the batch's statements on its connection without
 * waiting for each, and waits for them all before it commits.
 */
export class Counts extends Projection {
  topics = [Dog.Registered, Dog.TrickAdded]
  constructor(table, dialect, pipelined = false) {
    super()
    this.table = table
    this.dialect = dialect
    this.pipelined = pipelined
    this.upsert = upsertSql(table, dialect === 'sqlite' ? '?' : '$1')
  }
  createTables(transaction) {
    if (this.dialect === 'sqlite') transaction.exec(createSql(this.table))
    else return transaction.query(createSql(this.table)).then(() => {})
  }
  process(event, transaction) {
    if (this.dialect === 'sqlite') transaction.prepare(this.upsert).run(event.trick)
    else if (this.pipelined) transaction.query(this.upsert, [event.trick])
    else return transaction.query(this.upsert, [event.trick]).then(() => {})
  }
  clear(transaction) {
    if (this.dialect === 'sqlite') transaction.exec(`DELETE FROM ${this.table}`)
    else return transaction.query(`DELETE FROM ${this.table}`).then(() => {})
  }
}

/** Writes the 100,000 events through an Application, 10 dogs (1,000 events) a save; returns the last notification id. */
export async function writeDogs(app) {
  for (let first = 0; first < STREAMS; first += 10) {
    const dogs = []
    for (let d = first; d < first + 10; d++) {
      const dog = Dog.create(Dog.Registered, { trick: trick(d * PER_STREAM) })
      for (let v = 1; v < PER_STREAM; v++) dog.trigger(Dog.TrickAdded, { trick: trick(d * PER_STREAM + v) })
      dogs.push(dog)
    }
    await app.save(...dogs)
  }
  return app.notificationLog.maxId()
}
