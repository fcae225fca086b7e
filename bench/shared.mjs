// Helpers shared by the benchmarks.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'

/** The middle value of `values` (the upper of the two middle ones for an even count). */
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

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
