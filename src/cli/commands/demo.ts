import Table from 'cli-table3'
import { Config, type Environment } from '../../application/config.js'
import { ProgrammingError } from '../../persistence/errors.js'
import type { Recording } from '../../persistence/event-store.js'
import { DogSchool } from '../dog-school.js'

/** Where a command writes its output, e.g. `(text) => process.stdout.write(text)`. */
export type Write = (text: string) => void

/** Where the demo runs. */
export interface DemoOptions {
  /** The SQLite file (`--db`), which wins over `SQLITE_PATH`; refused when `PERSISTENCE` names another backend. */
  readonly db?: string
  /** The variables that choose and configure the backend, as an application reads them (default `process.env`). */
  readonly env?: Environment
}

/** The SQLite file of the demo when neither `--db` nor `SQLITE_PATH` names one. */
export const DEMO_DB = 'eventsourcing-demo.db'

const DOGS: readonly { readonly name: string; readonly tricks: readonly string[] }[] = [
  { name: 'Fido', tricks: ['roll over', 'play dead'] },
  { name: 'Buster', tricks: ['fetch', 'sit'] },
  { name: 'Milou', tricks: ['jump'] },
]

// The fields every event has; the table shows them in their own columns.
const COMMON_FIELDS = new Set(['originatorId', 'originatorVersion', 'timestamp'])
const PAGE_SIZE = 100

/**
 * The `demo` command: runs the dog school application, registers a few dogs
 * and teaches them tricks, reads the dogs back from their events, and writes
 * the events this run recorded as a table from the application's notification
 * log. It runs on the backend that `PERSISTENCE` and its variables configure
 * (prefixed with `DOGSCHOOL_` or not, as for any application), and on the
 * SQLite file `db`, `SQLITE_PATH` or {@link DEMO_DB} when `PERSISTENCE` is not
 * set. Earlier runs' events stay where they were recorded.
 *
 * @param write receives the output, a line or a table at a time.
 * @throws ProgrammingError for `db` with a `PERSISTENCE` other than sqlite, or
 * a backend's missing or wrong settings.
 */
export async function demo(options: DemoOptions, write: Write): Promise<void> {
  const { env, where } = demoEnvironment(options)
  await using school = new DogSchool({ env })
  const lastBefore = await school.notificationLog.maxId()
  write(`Dog school on ${where}\n\n`)

  const ids: string[] = []
  for (const { name, tricks } of DOGS) {
    const id = await school.register(name)
    for (const trick of tricks) await school.addTrick(id, trick)
    ids.push(id)
  }

  write('Dogs, rebuilt from their events:\n')
  for (const id of ids) {
    const dog = await school.getDog(id)
    write(`  ${dog.name.padEnd(8)} ${dog.tricks.join(', ')}  (${dog.id})\n`)
  }

  const recordings = await readLog(school, lastBefore + 1)
  const total = recordings.at(-1)?.notification.id ?? lastBefore
  write(`\nNotification log, the ${recordings.length} events of this run (${total} in the log):\n`)
  write(`${logTable(recordings)}\n`)
}

/**
 * Returns the variables the dog school runs with, SQLite made the default, and
 * where that is, for the first line of the output.
 */
function demoEnvironment({ db, env = process.env }: DemoOptions): { env: Environment; where: string } {
  const config = new Config(DogSchool.applicationName, env)
  const persistence = config.get('PERSISTENCE')
  if (persistence === undefined || persistence === 'sqlite') {
    const path = db ?? config.get('SQLITE_PATH') ?? DEMO_DB
    // Prefixed, so that they win over the unprefixed variables, as a flag should.
    return {
      env: { ...env, DOGSCHOOL_PERSISTENCE: 'sqlite', DOGSCHOOL_SQLITE_PATH: path },
      where: `SQLite file ${path}`,
    }
  }
  if (db !== undefined) {
    throw new ProgrammingError(
      `--db names an SQLite file, but PERSISTENCE is ${persistence}: leave out --db to run on ${persistence}, or unset PERSISTENCE`,
    )
  }
  return { env, where: describeBackend(persistence, config) }
}

/** Names the backend and where it is, without the password a URL may hold. */
function describeBackend(persistence: string, config: Config): string {
  switch (persistence) {
    case 'memory':
      return 'memory (nothing is kept after the run)'
    case 'postgres': {
      const url = config.get('POSTGRES_URL')
      // A malformed URL is left for the backend to report, in its own words.
      const server =
        url === undefined
          ? `${config.get('POSTGRES_HOST') ?? 'localhost'}:${config.get('POSTGRES_PORT') ?? 5432}`
          : URL.canParse(url)
            ? `${new URL(url).host}${new URL(url).pathname}`
            : 'POSTGRES_URL'
      const schema = config.get('POSTGRES_SCHEMA')
      return `PostgreSQL at ${server}${schema ? `, schema ${schema}` : ''}`
    }
    case 'cassandra':
      return `Cassandra at ${config.get('CASSANDRA_CONTACT_POINTS')}, keyspace ${config.get('CASSANDRA_KEYSPACE')}`
    default:
      return persistence
  }
}

async function readLog(school: DogSchool, start: number): Promise<Recording[]> {
  const recordings: Recording[] = []
  for (let from = start; ; ) {
    const page = await school.notificationLog.selectRecordings({ start: from, limit: PAGE_SIZE })
    recordings.push(...page)
    const last = page.at(-1)
    if (last === undefined || page.length < PAGE_SIZE) return recordings
    from = last.notification.id + 1
  }
}

function logTable(recordings: readonly Recording[]): string {
  const table = new Table({
    head: ['id', 'originator', 'version', 'topic', 'fields'],
    // No colours: the output is often piped or read by tests.
    style: { head: [], border: [] },
  })
  for (const { notification, domainEvent } of recordings) {
    const fields = Object.entries(domainEvent)
      .filter(([name]) => !COMMON_FIELDS.has(name))
      .map(([name, value]) => `${name}=${formatValue(value)}`)
      .join(', ')
    table.push([
      notification.id,
      `${notification.originatorId.slice(0, 8)}…`,
      notification.originatorVersion,
      notification.topic,
      fields,
    ])
  }
  return table.toString()
}

function formatValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (value instanceof Date) return value.toISOString()
  return JSON.stringify(value) ?? String(value)
}
