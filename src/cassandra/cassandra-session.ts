import type cassandraDriver from 'cassandra-driver'
import { importDriver as importOptional, loadOnce } from '../persistence/driver.js'
import { errorMessage, OperationalError, PersistenceError, ProgrammingError } from '../persistence/errors.js'
import type { CassandraSettings } from './cassandra-settings.js'

/** The `cassandra-driver` module. */
export type CassandraDriver = typeof cassandraDriver

type Client = cassandraDriver.Client
type Row = cassandraDriver.types.Row
type ResultSet = cassandraDriver.types.ResultSet

/** One statement of a conditional batch: CQL with `?` markers and its values. */
export interface CqlStatement {
  readonly query: string
  readonly params: readonly unknown[]
}

/**
 * Imports `cassandra-driver` with `importer`, dynamically, so that the core
 * never loads the driver, which is an optional peer dependency.
 *
 * @throws ProgrammingError saying how to install the driver when it is missing.
 */
export function importDriver(
  importer: () => Promise<{ default: CassandraDriver }> = () => import('cassandra-driver'),
): Promise<CassandraDriver> {
  return importOptional(
    importer,
    () => 'The Cassandra backend needs the cassandra-driver package: npm install cassandra-driver',
  )
}

const loadDriver = loadOnce(() => importDriver())

// A condition is `IF NOT EXISTS`, `IF EXISTS` or `IF <column> ...` at the end of the statement's text.
const CONDITION = /\sIF\s+(NOT\s+EXISTS|EXISTS|[A-Za-z_"][\s\S]*)$/i

/**
 * A connected `cassandra-driver` client that runs every statement with its
 * consistency set explicitly (the driver's default, LOCAL_ONE, would also be
 * the commit consistency of conditional writes) and turns its errors into
 * typed persistence errors that name the contact points and the consistency.
 */
export class CassandraSession {
  private constructor(
    readonly driver: CassandraDriver,
    readonly client: Client,
    readonly settings: CassandraSettings,
  ) {}

  /**
   * Connects to the cluster of `settings`.
   *
   * @throws OperationalError naming the contact points when no node answers.
   */
  static async open(settings: CassandraSettings): Promise<CassandraSession> {
    const driver = await loadDriver()
    const { contactPoints, localDataCenter, credentials, requestTimeoutMs } = settings
    const client = new driver.Client({
      contactPoints: [...contactPoints],
      localDataCenter,
      credentials,
      protocolOptions: { port: nativePort(contactPoints) },
      socketOptions: { readTimeout: requestTimeoutMs },
      // Statements say themselves whether they may be retried; these defaults cover anything that does not.
      queryOptions: {
        consistency: consistencyCode(driver, settings.consistency),
        serialConsistency: consistencyCode(driver, settings.serialConsistency),
        isIdempotent: false,
        prepare: true,
      },
    })
    const session = new CassandraSession(driver, client, settings)
    try {
      await client.connect()
    } catch (error) {
      await client.shutdown().catch(() => {})
      throw session.error(error, 'connect to')
    }
    return session
  }

  /** Where the cluster is, for messages: the contact points and the data centre. */
  get where(): string {
    return `Cassandra at ${this.settings.contactPoints.join(', ')} (data centre ${this.settings.localDataCenter})`
  }

  /**
   * Reads every row a query selects, at the quorum consistency of the settings;
   * the read may be retried by the driver, since it changes nothing.
   */
  async read(query: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#rows(query, params, this.settings.consistency)
  }

  /**
   * Reads every row a single-partition query selects at the serial consistency
   * of the settings: Paxos first finishes or supersedes any conditional write in
   * progress on the partition, so what this returns is settled.
   */
  async readSerial(query: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#rows(query, params, this.settings.serialConsistency)
  }

  /**
   * Runs a conditional batch on one partition (a single statement when there
   * is one): atomic, decided by Paxos at the serial consistency and committed at
   * the quorum consistency. Never retried by the driver: a conditional write
   * whose outcome is unknown must be settled by a serial read, not repeated.
   *
   * @returns whether it was applied, and the rows that stopped it when not.
   * @throws ProgrammingError if a statement carries no condition (the driver
   * would report a plain write as applied); the driver's own error otherwise,
   * untyped, so that the caller can settle it first ({@link outcomeUnknown}).
   */
  async conditional(statements: readonly CqlStatement[]): Promise<{ applied: boolean; rows: Row[] }> {
    for (const { query } of statements) {
      if (!CONDITION.test(query.trim())) {
        throw new ProgrammingError(`A conditional write must carry IF: ${query}`)
      }
    }
    const options = {
      prepare: true,
      isIdempotent: false,
      consistency: consistencyCode(this.driver, this.settings.consistency),
      serialConsistency: consistencyCode(this.driver, this.settings.serialConsistency),
    }
    const result =
      statements.length === 1
        ? await this.client.execute(statements[0]!.query, [...statements[0]!.params], options)
        : await this.client.batch(
            statements.map(({ query, params }) => ({ query, params: [...params] })),
            { ...options, logged: true },
          )
    return { applied: appliedColumn(result), rows: result.rows }
  }

  /** Runs a schema statement on one chosen coordinator (see cassandra-schema.ts) and waits for schema agreement. */
  async schema(query: string, coordinator: cassandraDriver.Host): Promise<void> {
    let result: ResultSet
    try {
      result = await this.client.execute(query, [], {
        host: coordinator,
        isIdempotent: true,
        consistency: consistencyCode(this.driver, this.settings.consistency),
      })
    } catch (error) {
      throw this.error(error, 'change the schema of')
    }
    // Both exist in driver 4.x, but its type declarations leave them out.
    const info = result.info as { isSchemaInAgreement?: boolean }
    const metadata = this.client.metadata as unknown as { checkSchemaAgreement(): Promise<boolean> }
    if (info.isSchemaInAgreement === false && !(await metadata.checkSchemaAgreement())) {
      throw new OperationalError(
        `The nodes of ${this.where} did not agree on the schema within 10 s after: ${query} ` +
          '(a node may be down or slow: check nodetool describecluster, then open the recorders again)',
      )
    }
  }

  /** Releases the connections. */
  async close(): Promise<void> {
    await this.client.shutdown()
  }

  /**
   * Returns a driver error as a typed persistence error carrying it as
   * `cause`: a refused statement or credentials → ProgrammingError; anything
   * else (no node reachable, too few replicas alive, a timeout) → OperationalError
   * naming the contact points and the consistency asked for.
   */
  error(error: unknown, doing: string): PersistenceError {
    if (error instanceof PersistenceError) return error
    const { errors, types } = this.driver
    const options = { cause: error }
    const message = errorMessage(error)
    if (error instanceof errors.ResponseError) {
      const codes = types.responseErrorCodes
      if ([codes.syntaxError, codes.invalid, codes.configError].includes(error.code)) {
        return new ProgrammingError(`${this.where} refused a statement: ${message}`, options)
      }
      if ([codes.unauthorized, codes.badCredentials].includes(error.code)) {
        return new ProgrammingError(
          `${this.where} refused access (${message}): check the user and its permissions`,
          options,
        )
      }
    }
    if (error instanceof errors.AuthenticationError) {
      return new ProgrammingError(
        `${this.where} refused the credentials (${message}): check username and password`,
        options,
      )
    }
    const { consistency, serialConsistency } = this.settings
    return new OperationalError(
      `Could not ${doing} ${this.where} at consistency ${consistency} (serial ${serialConsistency}): ${message}`,
      options,
    )
  }

  /**
   * Returns true when a failed conditional write may have been applied
   * anyway: a timeout (the coordinator's or the driver's), a lost connection,
   * or too few replicas alive (which Cassandra may also report after the Paxos
   * proposal was accepted, at its commit). Only a statement refused before it
   * ran changed nothing. The driver reports each node's failure inside a
   * NoHostAvailableError, and the write is unknown if any of them is.
   */
  outcomeUnknown(error: unknown): boolean {
    const { errors, types } = this.driver
    if (error instanceof errors.NoHostAvailableError) {
      return Object.values((error.innerErrors ?? {}) as Record<string, unknown>).some((inner) =>
        this.outcomeUnknown(inner),
      )
    }
    if (error instanceof PersistenceError) return false
    if (error instanceof errors.AuthenticationError || error instanceof errors.ArgumentError) return false
    if (!(error instanceof errors.ResponseError)) return true
    const codes = types.responseErrorCodes
    return ![codes.syntaxError, codes.invalid, codes.configError, codes.unauthorized, codes.badCredentials].includes(
      error.code,
    )
  }

  async #rows(query: string, params: readonly unknown[], level: string): Promise<Row[]> {
    const consistency = consistencyCode(this.driver, level)
    try {
      const result = await this.client.execute(query, [...params], { prepare: true, isIdempotent: true, consistency })
      const rows: Row[] = []
      // The result set fetches the further pages as it is iterated.
      for await (const row of result) rows.push(row)
      return rows
    } catch (error) {
      throw this.error(error, 'read from')
    }
  }
}

/** Returns the driver's code of a consistency level named as in CQL (`LOCAL_QUORUM` → `localQuorum`). */
function consistencyCode(driver: CassandraDriver, level: string): number {
  const name = level.toLowerCase().replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase())
  const code = (driver.types.consistencies as unknown as Record<string, number | undefined>)[name]
  if (code === undefined) throw new ProgrammingError(`Unknown Cassandra consistency ${level}`)
  return code
}

/**
 * Returns the `[applied]` column of a conditional write's result. The driver's
 * `wasApplied()` is true for any result without that column, so a statement that
 * lost its condition would pass for applied: its absence is an error here.
 */
function appliedColumn(result: ResultSet): boolean {
  const row = result.rows[0]
  const applied = row?.get('[applied]')
  if (typeof applied !== 'boolean') {
    throw new ProgrammingError(
      'Cassandra returned no [applied] column for a conditional write: the statement had no IF',
    )
  }
  return applied
}

/**
 * The port of the nodes' native transport: the one the contact points name,
 * when they all name the same one, else Cassandra's 9042. The driver reaches
 * the nodes it discovers beyond the contact points on this one port.
 */
function nativePort(contactPoints: readonly string[]): number {
  const ports = new Set(contactPoints.map((point) => /:(\d+)$/.exec(point)?.[1]))
  const [only] = ports
  return ports.size === 1 && only !== undefined ? Number(only) : 9042
}

/**
 * Returns a bigint (or int) column of a row as a number, or undefined when it
 * is null. A bigint arrives as the driver's Long: its toNumber() is exact
 * below 2^53, where ids and versions stay, and far cheaper than Number(),
 * which goes through its string.
 */
export function numberOf(row: Row, column: string): number | undefined {
  const value = row.get(column) as { toNumber(): number } | number | null | undefined
  if (value === null || value === undefined) return undefined
  return typeof value === 'number' ? value : value.toNumber()
}
