import { CommitSignals } from '../persistence/commit-signal.js'
import type { DcbRecorders } from '../persistence/dcb.js'
import { ProgrammingError } from '../persistence/errors.js'
import { isApplicationName } from '../persistence/identifiers.js'
import type { Persistence, Recorders, StoredApplication } from '../persistence/recorder.js'
import { CassandraProcessRecorder, createApplicationTables } from './cassandra-application-recorder.js'
import { CassandraAggregateRecorder } from './cassandra-recorder.js'
import { cassandraTables } from './cassandra-schema.js'
import { CassandraSession } from './cassandra-session.js'
import {
  type CassandraOptions,
  type CassandraSettings,
  cassandraOptionsFromEnvironment,
  cassandraSettings,
} from './cassandra-settings.js'

/**
 * Dynamic consistency boundaries were asked of the Cassandra backend, which
 * does not offer them: a DCB append decides a condition over events of any
 * stream, which takes one serialisation point for the whole store.
 */
export class DcbNotOfferedError extends ProgrammingError {}

/** The backends that offer DCB, for the message of {@link DcbNotOfferedError}. */
const DCB_BACKENDS = 'memory, sqlite and postgres'

// How many notifications listApplications counts per read of a log.
const COUNT_PAGE = 1000

/**
 * Returns the Cassandra backend: one `cassandra-driver` session with the
 * cluster, shared by every application opened on it and shut down when the
 * last of their recorders closes. An application's events, log, tracking
 * records and snapshots are tables `<name>_events`, `_log`, `_tracking` and
 * `_snapshots` of the keyspace, which is created with them when missing
 * (unless `createTables` is false). Application names are those every
 * backend takes, of at most 38 characters (Cassandra's table names have 48 at most).
 * DCB is not offered: `openDcb` rejects with {@link DcbNotOfferedError}.
 *
 * @throws ProgrammingError for invalid options (no contact points, a bad
 * keyspace name, a consistency weaker than a quorum, ...).
 * @example
 * ```ts
 * const school = new DogSchool({
 *   persistence: cassandra({
 *     contactPoints: ['10.0.0.1', '10.0.0.2'],
 *     localDataCenter: 'dc1',
 *     keyspace: 'dogschool',
 *     replication: { dc1: 3 },
 *   }),
 * })
 * ```
 */
export function cassandra(options: CassandraOptions): Persistence {
  return new CassandraPersistence(cassandraSettings(options))
}

/**
 * Returns the Cassandra backend configured from variables: the `CASSANDRA_`
 * ones that `cassandraOptionsFromEnvironment` reads, and `CREATE_TABLES`.
 *
 * @throws ProgrammingError when `CASSANDRA_CONTACT_POINTS` or `CASSANDRA_KEYSPACE` is missing, or a value is malformed.
 */
export function fromEnvironment(get: (name: string) => string | undefined): Persistence {
  return cassandra(cassandraOptionsFromEnvironment((name) => get(name) || undefined))
}

/** The backend that {@link cassandra} returns. */
class CassandraPersistence implements Persistence {
  readonly name = 'cassandra'
  readonly #commits = new CommitSignals()
  #session: Promise<CassandraSession> | undefined
  #users = 0

  constructor(readonly settings: CassandraSettings) {}

  checkName(applicationName: string): void {
    cassandraTables(applicationName)
  }

  async open(applicationName: string): Promise<Recorders> {
    const tables = cassandraTables(applicationName)
    const session = await this.#acquire()
    // Recorders of one application in this process wake each other's subscriptions at once.
    const commits = this.#commits.acquire(tables.log)
    const release = async () => {
      commits.release()
      await this.#release()
    }
    try {
      await createApplicationTables(session, applicationName)
    } catch (error) {
      await release()
      throw error
    }
    const events = new CassandraProcessRecorder(session, applicationName, { commits: commits.signal })
    const snapshots = new CassandraAggregateRecorder(session, tables.snapshots, { splitByAggregate: true })
    let closed = false
    const close = async () => {
      if (closed) return
      closed = true
      await release()
    }
    return { events, snapshots, close, [Symbol.asyncDispose]: close }
  }

  async openDcb(applicationName: string): Promise<DcbRecorders> {
    this.checkName(applicationName)
    throw new DcbNotOfferedError(
      `DCB is not offered on Cassandra (application ${JSON.stringify(applicationName)}): a DCB append decides ` +
        'its condition over events of every stream at once, which Cassandra cannot serialise without one hot ' +
        `partition for the whole store. Use ${DCB_BACKENDS} for DCB applications, or aggregates on Cassandra`,
    )
  }

  /**
   * Lists the applications of the keyspace, found by their log tables, on a
   * session of its own that is shut down before this returns. Counting reads
   * every log, resolving each save's status as any reader does.
   */
  async listApplications(): Promise<StoredApplication[]> {
    const session = await CassandraSession.open({ ...this.settings, createTables: false })
    try {
      const rows = await session.read('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [
        this.settings.keyspace,
      ])
      const names = new Set(rows.map((row) => String(row.get('table_name'))))
      const listed: StoredApplication[] = []
      for (const table of [...names].sort()) {
        const name = table.slice(0, -'_log'.length)
        if (!table.endsWith('_log') || !isApplicationName(name) || !names.has(`${name}_events`)) continue
        listed.push(await countLog(new CassandraProcessRecorder(session, name), name))
      }
      return listed
    } finally {
      await session.close()
    }
  }

  async #acquire(): Promise<CassandraSession> {
    this.#users++
    this.#session ??= CassandraSession.open(this.settings)
    const opening = this.#session
    try {
      return await opening
    } catch (error) {
      this.#users--
      if (this.#session === opening) this.#session = undefined
      throw error
    }
  }

  async #release(): Promise<void> {
    if (--this.#users > 0) return
    const session = this.#session
    this.#session = undefined
    await (await session)?.close()
  }
}

async function countLog(recorder: CassandraProcessRecorder, name: string): Promise<StoredApplication> {
  const maxNotificationId = await recorder.maxNotificationId()
  let events = 0
  for (let start = 1; start <= maxNotificationId; ) {
    const page = await recorder.selectNotifications({ start, limit: COUNT_PAGE, stop: maxNotificationId })
    events += page.length
    const last = page.at(-1)
    if (last === undefined) break
    start = last.id + 1
  }
  return { name, events, maxNotificationId }
}
