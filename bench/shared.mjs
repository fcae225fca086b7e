// Helpers shared by the benchmarks.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Aggregate } from 'eventsourcing'

export { postgresServer } from './postgres-server.mjs'

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
