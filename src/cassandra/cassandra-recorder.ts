import { setTimeout as delay } from 'node:timers/promises'
import { OperationalError, ProgrammingError, VersionConflictError } from '../persistence/errors.js'
import { validIdentifier } from '../persistence/identifiers.js'
import type { AggregateRecorder, EventsQuery, SelectEventsOptions } from '../persistence/recorder.js'
import type { StoredEvent } from '../persistence/stored-event.js'
import { createEventTableCql, createKeyspaceCql, createSchema } from './cassandra-schema.js'
import { type CassandraSession, type CqlStatement, numberOf } from './cassandra-session.js'

// How often a conditional write whose outcome was settled as "not written" is tried again.
const ATTEMPTS = 3
const MAX_INT = 2_147_483_647

/**
 * The aggregate recorder on Cassandra (also the snapshot recorder): one table,
 * one partition per originator, rows ordered by version.
 *
 * Guarantees and their reasons:
 * - A batch of one originator is recorded by one conditional batch of
 *   `INSERT … IF NOT EXISTS` on its partition, which Paxos applies atomically:
 *   all rows, or none when any version exists (the optimistic concurrency
 *   check, a {@link VersionConflictError} naming it). Cassandra makes conditional
 *   batches atomic within one partition only, so a batch of several originators
 *   is refused with a ProgrammingError here, or, for snapshots
 *   (`splitByAggregate`), written as one such batch per originator; the
 *   application recorder makes saves of several aggregates atomic through its
 *   log (see the design note of issue 13).
 * - Every write to a partition goes through Paxos (deletes too), so that
 *   the ballot timestamps of conditional writes never race the client
 *   timestamps of plain ones.
 * - A conditional write that times out may have been applied. It is never
 *   repeated blindly: a read at serial consistency settles it (Paxos finishes
 *   or supersedes the proposal in flight), and the rows' `save_id` says whose
 *   they are: ours → success; another writer's → VersionConflictError; none →
 *   nothing was written and none will be, so it is tried again.
 * - Reads are at the quorum consistency of the settings, as the commits of
 *   the conditional writes are, so a read sees every write acknowledged before it began.
 */
export class CassandraAggregateRecorder implements AggregateRecorder {
  readonly #session: CassandraSession
  readonly #table: string
  readonly #cql: ReturnType<typeof statements>

  /**
   * Makes the recorder of one table of the session's keyspace (see {@link createEventTables}).
   *
   * @param options.splitByAggregate Whether a batch of several originators is
   * written as one conditional batch per originator, each atomic alone (for
   * snapshots, a cache, which the application records for all aggregates of a
   * save at once); otherwise such a batch is refused.
   */
  constructor(session: CassandraSession, table: string, options: { readonly splitByAggregate?: boolean } = {}) {
    this.#session = session
    this.#table = validIdentifier(table)
    this.#cql = statements(`${session.settings.keyspace}.${this.#table}`)
    this.#split = options.splitByAggregate ?? false
  }

  readonly #split: boolean

  /**
   * Records the events of one originator atomically: all of them, or none.
   * With `splitByAggregate`, the events of each originator of the batch are so
   * recorded, and a clash of one leaves the others recorded.
   *
   * @throws VersionConflictError if a version is already recorded or repeated in the batch; nothing of its
   * originator is written then (nothing at all when it is repeated).
   * @throws ProgrammingError if the batch holds several originators without `splitByAggregate` (see the class doc).
   * @throws OperationalError if the cluster cannot be reached, or the outcome of a timed-out write could not be settled.
   */
  async insertEvents(events: readonly StoredEvent[]): Promise<void> {
    const byOriginator = new Map<string, StoredEvent[]>()
    for (const event of events) {
      const group = byOriginator.get(event.originatorId)
      if (group === undefined) byOriginator.set(event.originatorId, [event])
      else group.push(event)
    }
    for (const [originatorId, group] of byOriginator) {
      const seen = new Set<number>()
      for (const { originatorVersion } of group) {
        if (seen.has(originatorVersion)) throw this.#conflict(originatorId, originatorVersion)
        seen.add(originatorVersion)
      }
    }
    if (byOriginator.size > 1 && !this.#split) {
      const [first, second] = byOriginator.keys()
      throw new ProgrammingError(
        `A Cassandra aggregate recorder records the events of one originator at a time (got ${first} and ` +
          `${second}): conditional batches are atomic within one partition only`,
      )
    }
    const outcomes = await Promise.allSettled(
      [...byOriginator].map(([originatorId, group]) => this.#insertOriginator(originatorId, group)),
    )
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }

  async #insertOriginator(originatorId: string, events: readonly StoredEvent[]): Promise<void> {
    const versions = events.map((event) => event.originatorVersion)
    const saveId = this.#session.driver.types.Uuid.random()
    const inserts = events.map((event) => ({
      query: this.#cql.insert,
      params: [originatorId, this.#long(event.originatorVersion), event.topic, Buffer.from(event.state), saveId],
    }))
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#write(inserts, originatorId, versions, saveId.toString())
      if (outcome === 'applied') return
      if (typeof outcome === 'number') throw this.#conflict(originatorId, outcome)
      if (attempt === ATTEMPTS) {
        throw new OperationalError(
          `Writes to ${this.#session.where} timed out ${ATTEMPTS} times; each was settled as not written ` +
            `(nothing of the batch is recorded): the cluster is overloaded, retry later`,
        )
      }
      await delay(100 * attempt)
    }
  }

  // Returns 'applied', the first version that clashed, or 'absent' when a timed-out write was settled as not written.
  async #write(
    inserts: readonly CqlStatement[],
    originatorId: string,
    versions: readonly number[],
    saveId: string,
  ): Promise<'applied' | 'absent' | number> {
    try {
      const { applied, rows } = await this.#session.conditional(inserts)
      if (applied) return 'applied'
      const clashed = new Set(rows.map((row) => numberOf(row, 'originator_version')!))
      return versions.find((version) => clashed.has(version)) ?? versions[0]!
    } catch (error) {
      if (!this.#session.outcomeUnknown(error)) throw this.#session.error(error, 'write to')
      return this.#settle(originatorId, versions, saveId, error)
    }
  }

  // Reads the batch's rows at serial consistency after a write whose outcome is unknown.
  async #settle(originatorId: string, versions: readonly number[], saveId: string, cause: unknown) {
    let rows: Awaited<ReturnType<CassandraSession['readSerial']>>
    try {
      rows = await this.#session.readSerial(this.#cql.settle, [originatorId, versions.map((v) => this.#long(v))])
    } catch (error) {
      throw new OperationalError(
        `${this.#session.error(cause, 'write to').message}; and its outcome could not be settled by a serial read ` +
          '(it may be recorded): read the aggregate before retrying',
        { cause: new AggregateError([cause, error]) },
      )
    }
    if (rows.length === 0) return 'absent'
    const foreign = rows.find((row) => String(row.get('save_id')) !== saveId)
    if (foreign !== undefined) return numberOf(foreign, 'originator_version')!
    if (rows.length === versions.length) return 'applied'
    throw new OperationalError(`A conditional batch on ${this.#session.where} was found half-applied`, { cause })
  }

  /** Returns the events of one originator in version order (or reversed with `desc`); empty when none. */
  async selectEvents(originatorId: string, options: SelectEventsOptions = {}): Promise<StoredEvent[]> {
    const { gt, lte, desc, limit } = options
    if (limit === 0) return []
    const query = desc ? this.#cql.selectDesc : this.#cql.select
    const rows = await this.#session.read(query, [
      originatorId,
      this.#long(gt ?? Number.MIN_SAFE_INTEGER),
      this.#long(lte ?? Number.MAX_SAFE_INTEGER),
      Math.min(limit ?? MAX_INT, MAX_INT),
    ])
    return rows.map((row) => ({
      originatorId: row.get('originator_id') as string,
      originatorVersion: numberOf(row, 'originator_version')!,
      topic: row.get('topic') as string,
      state: new Uint8Array(row.get('state') as Buffer),
    }))
  }

  /** Returns, for each query in order, the events of its originator after its `gt` (one partition read each, at once). */
  async selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]> {
    return Promise.all(queries.map(({ originatorId, gt }) => this.selectEvents(originatorId, { gt })))
  }

  /**
   * Deletes all events of one originator, by a conditional batch of row
   * deletions on its partition (a whole-partition delete cannot be
   * conditional); a version recorded meanwhile makes it read and try again.
   *
   * @returns the number of events deleted.
   */
  async deleteEvents(originatorId: string): Promise<number> {
    for (;;) {
      const rows = await this.#session.readSerial(this.#cql.versions, [originatorId])
      if (rows.length === 0) return 0
      const deletes = rows.map((row) => ({
        query: this.#cql.delete,
        params: [originatorId, row.get('originator_version')],
      }))
      try {
        if ((await this.#session.conditional(deletes)).applied) return rows.length
      } catch (error) {
        // A delete that timed out is settled by the serial read of the next turn.
        if (!this.#session.outcomeUnknown(error)) throw this.#session.error(error, 'delete from')
      }
    }
  }

  #conflict(originatorId: string, originatorVersion: number): VersionConflictError {
    return new VersionConflictError({ originatorId, originatorVersion, table: this.#table })
  }

  #long(value: number) {
    return this.#session.driver.types.Long.fromNumber(value)
  }
}

function statements(table: string) {
  const columns = 'originator_id, originator_version, topic, state'
  const range = 'WHERE originator_id = ? AND originator_version > ? AND originator_version <= ?'
  return {
    insert: `INSERT INTO ${table} (${columns}, save_id) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
    select: `SELECT ${columns} FROM ${table} ${range} ORDER BY originator_version ASC LIMIT ?`,
    selectDesc: `SELECT ${columns} FROM ${table} ${range} ORDER BY originator_version DESC LIMIT ?`,
    settle: `SELECT originator_version, save_id FROM ${table} WHERE originator_id = ? AND originator_version IN ?`,
    versions: `SELECT originator_version FROM ${table} WHERE originator_id = ?`,
    delete: `DELETE FROM ${table} WHERE originator_id = ? AND originator_version = ? IF EXISTS`,
  }
}

/**
 * Creates the session's keyspace and the given event tables when they are
 * missing (unless the settings say not to), serialised as `createSchema` explains.
 */
export async function createEventTables(session: CassandraSession, tables: readonly string[]): Promise<void> {
  const { keyspace, replication, createTables } = session.settings
  if (!createTables) return
  await createSchema(session, [
    createKeyspaceCql(keyspace, replication),
    ...tables.map((table) => createEventTableCql(keyspace, table)),
  ])
}
