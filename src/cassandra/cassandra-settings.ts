import { ProgrammingError } from '../persistence/errors.js'
import { validIdentifier } from '../persistence/identifiers.js'
import { parseBoolean, parseInteger } from '../persistence/settings.js'

/** The consistency levels a write and a quorum read may use: each makes a read see every acknowledged write. */
export type CassandraConsistency = 'LOCAL_QUORUM' | 'QUORUM' | 'EACH_QUORUM' | 'ALL'

/** The consistency levels of the Paxos phase of a conditional write and of a read that must see it settled. */
export type CassandraSerialConsistency = 'SERIAL' | 'LOCAL_SERIAL'

/**
 * How the keyspace is replicated when it is created here: a number is the
 * replication factor in every data centre the cluster has (SimpleStrategy);
 * an object gives each data centre its factor (NetworkTopologyStrategy).
 */
export type CassandraReplication = number | Readonly<Record<string, number>>

/** The options of the Cassandra backend: where the cluster is, which keyspace, and the consistency of every statement. */
export interface CassandraOptions {
  /** The nodes the driver first connects to (`host` or `host:port`); it finds the others itself. */
  readonly contactPoints: readonly string[]
  /** The data centre whose nodes the driver prefers, and whose replicas the LOCAL_ levels count. */
  readonly localDataCenter: string
  /** The keyspace of the tables (letters, digits and underscores; created when missing). */
  readonly keyspace: string
  /**
   * How a keyspace created here is replicated (default: factor 1 in the local
   * data centre, enough for one node only: give 3 for a real cluster, or
   * create the keyspace yourself). An existing keyspace is left as it is.
   */
  readonly replication?: CassandraReplication
  /** The consistency of every read and write, and the commit of conditional writes (default LOCAL_QUORUM). */
  readonly consistency?: CassandraConsistency
  /** The consistency of the Paxos phase and of settling reads (default SERIAL, linearizable across data centres). */
  readonly serialConsistency?: CassandraSerialConsistency
  /** The user name, when the cluster authenticates (PasswordAuthenticator). */
  readonly username?: string
  /** The password of `username`. */
  readonly password?: string
  /** How long the driver waits for one request before it fails it (default 12000 ms). */
  readonly requestTimeoutMs?: number
  /** Whether the keyspace and tables are created when missing (default true). */
  readonly createTables?: boolean
  /**
   * How long a save may stay claimed but not committed before a reader that
   * waits for it aborts it (default 10,000 ms): the longest a crashed writer
   * holds up the readers of the log. A save of a live writer that takes longer
   * fails with an OperationalError and records nothing.
   */
  readonly abandonAfterMs?: number
  /** How often a subscription and a wait for tracking look for the writes of other processes (default 100 ms). */
  readonly pollIntervalMs?: number
}

/** The validated settings of the Cassandra backend. */
export interface CassandraSettings {
  readonly contactPoints: readonly string[]
  readonly localDataCenter: string
  readonly keyspace: string
  readonly replication: CassandraReplication
  readonly consistency: CassandraConsistency
  readonly serialConsistency: CassandraSerialConsistency
  readonly credentials: { readonly username: string; readonly password: string } | undefined
  readonly requestTimeoutMs: number
  readonly createTables: boolean
  readonly abandonAfterMs: number
  readonly pollIntervalMs: number
}

const CONSISTENCIES: readonly CassandraConsistency[] = ['LOCAL_QUORUM', 'QUORUM', 'EACH_QUORUM', 'ALL']
const SERIAL_CONSISTENCIES: readonly CassandraSerialConsistency[] = ['SERIAL', 'LOCAL_SERIAL']
const CONTACT_POINT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/

/**
 * Returns the validated settings of the Cassandra backend.
 *
 * @throws ProgrammingError for no contact points or a malformed one, a missing
 * data centre, a bad keyspace name, a replication factor that is not a positive
 * integer, a consistency weaker than a quorum (ONE or TWO would let a read miss
 * an acknowledged write), a password without a user, or a bad timeout.
 */
export function cassandraSettings(options: CassandraOptions): CassandraSettings {
  const { contactPoints, localDataCenter, keyspace, username, password } = options
  if (!Array.isArray(contactPoints) || contactPoints.length === 0) {
    throw new ProgrammingError('Give the Cassandra backend contactPoints: one or more host or host:port')
  }
  for (const point of contactPoints) {
    if (typeof point !== 'string' || !CONTACT_POINT.test(point)) {
      throw new ProgrammingError(`Invalid Cassandra contact point ${JSON.stringify(point)}: use host or host:port`)
    }
  }
  if (typeof localDataCenter !== 'string' || localDataCenter === '') {
    throw new ProgrammingError(
      'Give the Cassandra backend localDataCenter: the data centre of the nodes it should use (datacenter1 by default in Cassandra)',
    )
  }
  const consistency = oneOf('consistency', options.consistency ?? 'LOCAL_QUORUM', CONSISTENCIES)
  const serialConsistency = oneOf('serialConsistency', options.serialConsistency ?? 'SERIAL', SERIAL_CONSISTENCIES)
  if ((username === undefined) !== (password === undefined)) {
    throw new ProgrammingError('Give the Cassandra backend both username and password, or neither')
  }
  return {
    contactPoints: [...contactPoints],
    localDataCenter,
    keyspace: validIdentifier(keyspace, 'keyspace name'),
    replication: validReplication(options.replication ?? { [localDataCenter]: 1 }),
    consistency,
    serialConsistency,
    credentials: username === undefined || password === undefined ? undefined : { username, password },
    requestTimeoutMs: parseInteger('requestTimeoutMs', options.requestTimeoutMs, 1) ?? 12_000,
    createTables: options.createTables ?? true,
    abandonAfterMs: parseInteger('abandonAfterMs', options.abandonAfterMs, 1) ?? 10_000,
    pollIntervalMs: parseInteger('pollIntervalMs', options.pollIntervalMs, 1) ?? 100,
  }
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ProgrammingError(
      `Cassandra ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)} ` +
        '(a weaker level would let a read miss a write that was acknowledged)',
    )
  }
  return value as T
}

function validReplication(replication: CassandraReplication): CassandraReplication {
  const factors = typeof replication === 'number' ? { replication_factor: replication } : replication
  if (Object.keys(factors).length === 0) {
    throw new ProgrammingError('Cassandra replication names no data centre: give a factor, or { datacenter1: 3 }')
  }
  for (const [name, factor] of Object.entries(factors)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) {
      throw new ProgrammingError(`Invalid Cassandra data centre name ${JSON.stringify(name)} in replication`)
    }
    parseInteger(`the replication factor of ${name}`, factor, 1)
  }
  return replication
}

/**
 * Returns the options of the Cassandra backend from variables:
 * `CASSANDRA_CONTACT_POINTS` (comma-separated `host[:port]`),
 * `CASSANDRA_LOCAL_DATA_CENTER` (default `datacenter1`), `CASSANDRA_KEYSPACE`,
 * `CASSANDRA_REPLICATION` (a factor, `3`, or factors by data centre,
 * `dc1:3,dc2:3`), `CASSANDRA_CONSISTENCY`, `CASSANDRA_SERIAL_CONSISTENCY`,
 * `CASSANDRA_USERNAME`, `CASSANDRA_PASSWORD`, `CASSANDRA_REQUEST_TIMEOUT_MS`,
 * `CASSANDRA_ABANDON_AFTER_MS`, `CASSANDRA_POLL_INTERVAL_MS`, and
 * `CREATE_TABLES` (true/false; default true).
 *
 * @throws ProgrammingError when `CASSANDRA_CONTACT_POINTS` or `CASSANDRA_KEYSPACE` is not set, or a value is malformed.
 */
export function cassandraOptionsFromEnvironment(get: (name: string) => string | undefined): CassandraOptions {
  const value = (name: string) => get(name)?.trim() || undefined
  const points = value('CASSANDRA_CONTACT_POINTS')
  const keyspace = value('CASSANDRA_KEYSPACE')
  if (points === undefined || keyspace === undefined) {
    throw new ProgrammingError(
      'CASSANDRA_CONTACT_POINTS and CASSANDRA_KEYSPACE must be set for PERSISTENCE=cassandra (e.g. 10.0.0.1,10.0.0.2:9042 and dogschool)',
    )
  }
  return cassandraSettingsInput({
    contactPoints: points.split(',').map((point) => point.trim()),
    localDataCenter: value('CASSANDRA_LOCAL_DATA_CENTER') ?? 'datacenter1',
    keyspace,
    replication: parseReplication(value('CASSANDRA_REPLICATION')),
    consistency: value('CASSANDRA_CONSISTENCY')?.toUpperCase() as CassandraConsistency | undefined,
    serialConsistency: value('CASSANDRA_SERIAL_CONSISTENCY')?.toUpperCase() as CassandraSerialConsistency | undefined,
    username: value('CASSANDRA_USERNAME'),
    password: value('CASSANDRA_PASSWORD'),
    requestTimeoutMs: parseInteger('CASSANDRA_REQUEST_TIMEOUT_MS', value('CASSANDRA_REQUEST_TIMEOUT_MS'), 1),
    abandonAfterMs: parseInteger('CASSANDRA_ABANDON_AFTER_MS', value('CASSANDRA_ABANDON_AFTER_MS'), 1),
    pollIntervalMs: parseInteger('CASSANDRA_POLL_INTERVAL_MS', value('CASSANDRA_POLL_INTERVAL_MS'), 1),
    createTables: parseBoolean('CREATE_TABLES', value('CREATE_TABLES')),
  })
}

// Leaves out what was not set, so that the defaults of cassandraSettings apply; validates what was.
function cassandraSettingsInput(options: { -readonly [K in keyof CassandraOptions]: CassandraOptions[K] | undefined }) {
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
  cassandraSettings(given as unknown as CassandraOptions)
  return given as unknown as CassandraOptions
}

function parseReplication(value: string | undefined): CassandraReplication | undefined {
  if (value === undefined) return undefined
  if (/^\d+$/.test(value)) return parseInteger('CASSANDRA_REPLICATION', value, 1)
  const factors: Record<string, number> = {}
  for (const part of value.split(',')) {
    const [name, factor, extra] = part.split(':').map((piece) => piece.trim())
    if (!name || factor === undefined || extra !== undefined) {
      throw new ProgrammingError(
        `CASSANDRA_REPLICATION must be a factor (3) or factors by data centre (dc1:3,dc2:3), got ${JSON.stringify(value)}`,
      )
    }
    factors[name] = parseInteger(`CASSANDRA_REPLICATION for ${name}`, factor, 1) as number
  }
  return factors
}
