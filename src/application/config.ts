import { distance } from 'fastest-levenshtein'
import { cassandraTables } from '../cassandra/cassandra-schema.js'
import { memory } from '../memory/memory-recorder.js'
import { AesGcmCipher } from '../persistence/cipher.js'
import { ZlibCompressor } from '../persistence/compressor.js'
import { ProgrammingError } from '../persistence/errors.js'
import { validApplicationName } from '../persistence/identifiers.js'
import { Mapper } from '../persistence/mapper.js'
import type { Persistence } from '../persistence/recorder.js'
import { parseBoolean, parseInteger } from '../persistence/settings.js'
import { JsonTranscoder, type Transcoding } from '../persistence/transcoder.js'

/** Environment variables as a plain record, like `process.env`. */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * Every variable the library reads, unprefixed: the application's and the
 * built-in backends' (whose `fromEnvironment` a test holds to this list).
 */
export const SETTING_NAMES: readonly string[] = [
  'PERSISTENCE',
  'CIPHER_KEY',
  'TAG_HASH_KEY',
  'COMPRESSOR',
  'IS_SNAPSHOTTING_ENABLED',
  'SNAPSHOTTING_INTERVAL',
  'AGGREGATE_CACHE_SIZE',
  'CREATE_TABLES',
  'SQLITE_PATH',
  'POSTGRES_URL',
  'POSTGRES_HOST',
  'POSTGRES_PORT',
  'POSTGRES_USER',
  'POSTGRES_PASSWORD',
  'POSTGRES_DBNAME',
  'POSTGRES_SCHEMA',
  'POSTGRES_POOL_SIZE',
  'CASSANDRA_CONTACT_POINTS',
  'CASSANDRA_LOCAL_DATA_CENTER',
  'CASSANDRA_KEYSPACE',
  'CASSANDRA_REPLICATION',
  'CASSANDRA_CONSISTENCY',
  'CASSANDRA_SERIAL_CONSISTENCY',
  'CASSANDRA_USERNAME',
  'CASSANDRA_PASSWORD',
  'CASSANDRA_REQUEST_TIMEOUT_MS',
  'CASSANDRA_ABANDON_AFTER_MS',
  'CASSANDRA_POLL_INTERVAL_MS',
]

const SETTINGS = new Set(SETTING_NAMES)

/**
 * An application's settings from environment variables. A variable prefixed
 * with the application's name in upper case (`DOGSCHOOL_PERSISTENCE`) overrides
 * the unprefixed one (`PERSISTENCE`), so applications in one process can be
 * configured apart.
 *
 * A misspelt setting would be ignored, so it is looked for when the config is
 * made: a variable with the application's prefix that is not a setting but
 * one slip away from one (`DOGSCHOOL_CIPHERKEY`) is an error, and an unprefixed one
 * (`CIPHERKEY`) a warning, since other software sets variables of its own.
 */
export class Config {
  readonly #prefix: string

  /**
   * Makes the settings of the named application, read from `env`.
   *
   * @throws ProgrammingError naming a variable with the application's prefix
   * that is presumably a misspelt setting, and the setting it resembles.
   */
  constructor(
    readonly applicationName: string,
    readonly env: Environment,
  ) {
    this.#prefix = `${applicationName.toUpperCase()}_`
    checkVariables(this.#prefix, env)
  }

  /** Returns the value of a variable, prefixed form first; undefined when unset or empty. */
  get(name: string): string | undefined {
    return nonEmpty(this.env[this.#prefix + name]) ?? nonEmpty(this.env[name])
  }

  /**
   * Returns a variable as a non-negative integer.
   *
   * @throws ProgrammingError naming the variable when it is not one.
   */
  integer(name: string): number | undefined {
    return parseInteger(name, this.get(name))
  }

  /**
   * Returns a variable as a boolean (true/false, yes/no, 1/0, on/off).
   *
   * @throws ProgrammingError naming the variable when it is none of those.
   */
  boolean(name: string): boolean | undefined {
    return parseBoolean(name, this.get(name))
  }
}

/** The backends that can be named in the `PERSISTENCE` variable. */
export const PERSISTENCE_NAMES = ['memory', 'sqlite', 'postgres', 'cassandra'] as const

/**
 * Returns the backend named by the `PERSISTENCE` variable (memory when unset),
 * configured from its own variables. Backends other than memory are loaded on
 * demand, so their drivers are imported only when used.
 *
 * @throws ProgrammingError for an unknown name, or a backend's missing settings.
 */
export async function persistenceFromConfig(config: Config): Promise<Persistence> {
  const get = (variable: string) => config.get(variable)
  switch (persistenceName(config)) {
    case 'memory':
      return memory()
    case 'sqlite':
      return (await import('../sqlite/index.js')).fromEnvironment(get)
    case 'postgres':
      return (await import('../postgres/index.js')).fromEnvironment(get)
    case 'cassandra':
      return (await import('../cassandra/index.js')).fromEnvironment(get)
  }
}

/**
 * Checks, without loading or connecting to anything, that the application's
 * backend (`persistence` when given, else the one `PERSISTENCE` names) can
 * store an application of the config's name.
 *
 * @throws ProgrammingError for an invalid name or an unknown `PERSISTENCE` value.
 */
export function checkPersistence(config: Config, persistence: Persistence | undefined): void {
  if (persistence !== undefined) {
    persistence.checkName(config.applicationName)
  } else if (persistenceName(config) === 'cassandra') {
    // Cassandra's table names are shorter; its rule needs no driver either.
    cassandraTables(config.applicationName)
  } else {
    // The other built-in backends take the same names, so there is no need to load the one named.
    validApplicationName(config.applicationName)
  }
}

function persistenceName(config: Config): (typeof PERSISTENCE_NAMES)[number] {
  const name = config.get('PERSISTENCE') ?? 'memory'
  const known = PERSISTENCE_NAMES.find((known) => known === name)
  if (known === undefined) {
    throw new ProgrammingError(
      `Unknown PERSISTENCE value ${JSON.stringify(name)}: use one of ${PERSISTENCE_NAMES.join(', ')}`,
    )
  }
  return known
}

/** Options that shape how events are stored; each can also come from a variable. */
export interface EncodingOptions {
  /** A base64 AES-256 key (`CIPHER_KEY`): events are encrypted with AES-GCM when set. */
  readonly cipherKey?: string
  /** Compress event state with zlib (`COMPRESSOR=zlib`). */
  readonly compress?: boolean
  /** Transcodings for user types found in events and snapshots. */
  readonly transcodings?: readonly Transcoding<unknown>[]
}

/**
 * Returns the mapper for an application: options given in code win over variables.
 *
 * @throws ProgrammingError for an unknown `COMPRESSOR` or a malformed cipher key.
 */
export function mapperFromConfig(config: Config, options: EncodingOptions): Mapper {
  const transcoder = new JsonTranscoder()
  for (const transcoding of options.transcodings ?? []) transcoder.register(transcoding)
  const cipherKey = options.cipherKey ?? config.get('CIPHER_KEY')
  const compressor = options.compress ?? compressorFromConfig(config)
  return new Mapper({
    transcoder,
    compressor: compressor ? new ZlibCompressor() : undefined,
    cipher: cipherKey === undefined ? undefined : new AesGcmCipher(cipherKey),
  })
}

function compressorFromConfig(config: Config): boolean {
  const name = config.get('COMPRESSOR')
  if (name === undefined) return false
  if (name === 'zlib') return true
  throw new ProgrammingError(`Unknown COMPRESSOR value ${JSON.stringify(name)}: use zlib, or leave it unset`)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === '' ? undefined : value
}

const warned = new Set<string>()

/**
 * Throws for a variable with `prefix` that presumably misspells a setting,
 * and warns (once per process) of such a variable without the prefix.
 */
function checkVariables(prefix: string, env: Environment): void {
  for (const [name, value] of Object.entries(env)) {
    if (nonEmpty(value) === undefined || SETTINGS.has(name)) continue
    const prefixed = name.startsWith(prefix)
    const setting = misspelt(prefixed ? name.slice(prefix.length) : name)
    if (setting === undefined) continue
    if (prefixed) {
      throw new ProgrammingError(
        `${name} is not a setting, so it would be ignored: did you mean ${prefix}${setting}? Rename it (or remove it)`,
      )
    }
    if (!warned.has(name)) {
      warned.add(name)
      process.emitWarning(`${name} is not a setting of eventsourcing and is ignored: did you mean ${setting}?`, {
        type: 'EventSourcingWarning',
        code: 'EVENTSOURCING_MISSPELT_VARIABLE',
      })
    }
  }
}

/** Returns the setting that `name` is presumably a misspelling of, or undefined. */
function misspelt(name: string): string | undefined {
  // Another application's setting, such as ARCHIVE_PERSISTENCE after the
  // prefix LOANS_ of an application beside LOANS_ARCHIVE, is not misspelt.
  if (SETTINGS.has(name) || SETTING_NAMES.some((setting) => name.endsWith(`_${setting}`))) return undefined
  return SETTING_NAMES.find((setting) => misspells(name, setting))
}

/**
 * Returns true when `name` is `setting` with a typing slip: its underscores
 * moved, added or left out (`CIPHERKEY`), one letter added, left out or
 * mistyped (`CIPHER_KY`), or two adjacent letters swapped (`CIHPER_KEY`).
 * Anything further off is taken for a variable of its own: two slips in
 * one name are rare, while two letters differ between many real names
 * (`POSTGRES_POOL` and `POSTGRES_PORT`, `COMPRESSION` and `COMPRESSOR`).
 */
function misspells(name: string, setting: string): boolean {
  return (
    name.replaceAll('_', '') === setting.replaceAll('_', '') ||
    distance(name, setting) === 1 ||
    swapsTwoLetters(name, setting)
  )
}

/** Returns true when `a` is `b` with two adjacent characters swapped. */
function swapsTwoLetters(a: string, b: string): boolean {
  let i = 0
  while (i < a.length && a[i] === b[i]) i++
  return (
    a.length === b.length &&
    i + 1 < a.length &&
    a[i] === b[i + 1] &&
    a[i + 1] === b[i] &&
    a.slice(i + 2) === b.slice(i + 2)
  )
}
