// How the commands open an application's storage: configured as applications
// are (variables, optionally prefixed with the application's name), with the
// command's flags winning over the variables.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { Config, type Environment, mapperFromConfig, persistenceFromConfig } from '../application/config.js'
import { errorCode, ProgrammingError } from '../persistence/errors.js'
import type { Mapper } from '../persistence/mapper.js'
import type { Recorders } from '../persistence/recorder.js'
import type { Transcoding } from '../persistence/transcoder.js'

/** The flags that choose and configure an application's storage, each naming the variable it sets. */
export interface StorageOptions {
  /** The application's name (its tables are named after it). */
  readonly app: string
  /** `PERSISTENCE`: sqlite or postgres. */
  readonly persistence?: string
  /** `SQLITE_PATH`. */
  readonly sqlitePath?: string
  /** `POSTGRES_URL`. */
  readonly postgresUrl?: string
  /** `POSTGRES_SCHEMA`. */
  readonly postgresSchema?: string
  /** `CIPHER_KEY`: decrypts the events' state. */
  readonly cipherKey?: string
  /** `COMPRESSOR=zlib`: decompresses the events' state. */
  readonly compress?: boolean
}

/** An application is not stored where the command looked: its tables (or its SQLite file) are missing. */
export class ApplicationNotFoundError extends ProgrammingError {}

/** An application's opened recorders and the mapper its settings describe; `await using` closes them. */
export interface Storage extends AsyncDisposable {
  readonly recorders: Recorders
  readonly mapper: Mapper
  /** The application's name. */
  readonly app: string
  /** Whether a cipher key or compression was configured, so that undecodable state is an error, not bytes to show. */
  readonly decodes: boolean
}

const FLAG_VARIABLES: readonly [keyof StorageOptions, string][] = [
  ['persistence', 'PERSISTENCE'],
  ['sqlitePath', 'SQLITE_PATH'],
  ['postgresUrl', 'POSTGRES_URL'],
  ['postgresSchema', 'POSTGRES_SCHEMA'],
  ['cipherKey', 'CIPHER_KEY'],
]

/**
 * Opens the storage of the application `options.app` names. Without
 * `createTables` the tables must exist: a mistyped name fails with
 * {@link ApplicationNotFoundError} instead of making a new empty application,
 * and an SQLite file that does not exist is not created. `transcodings` are
 * the application's for its own types (see `loadClasses`).
 *
 * @throws ApplicationNotFoundError naming the application and what is missing.
 * @throws ProgrammingError for missing or wrong settings (`PERSISTENCE` unset or memory, a bad key).
 */
export async function openStorage(
  options: StorageOptions,
  env: Environment,
  {
    createTables = false,
    transcodings = [],
  }: { createTables?: boolean; transcodings?: readonly Transcoding<unknown>[] } = {},
): Promise<Storage> {
  const config = new Config(options.app, flagEnvironment(options, env, createTables))
  const persistence = config.get('PERSISTENCE')
  if (persistence === undefined || persistence === 'memory') {
    throw new ProgrammingError(
      'No database given: set PERSISTENCE (sqlite or postgres) and its settings, or pass --sqlite-path or --postgres-url',
    )
  }
  const sqlitePath = config.get('SQLITE_PATH')
  if (!createTables && persistence === 'sqlite' && sqlitePath !== undefined && sqlitePath !== ':memory:') {
    if (!existsSync(sqlitePath)) {
      throw new ApplicationNotFoundError(
        `No application '${options.app}': the SQLite file ${sqlitePath} does not exist`,
      )
    }
  }
  const { mapper, decodes } = decoding(config, transcodings)
  const recorders = await (await persistenceFromConfig(config)).open(options.app)
  try {
    // Opening may be lazy: a first read finds a missing table (or a refused connection) now, not mid-output.
    await recorders.events.maxNotificationId()
  } catch (error) {
    await recorders.close()
    throw isMissingTable(error)
      ? new ApplicationNotFoundError(
          `No application '${options.app}' in this database (${causeMessage(error)}): check --app and the database settings`,
          { cause: error },
        )
      : error
  }
  return {
    recorders,
    mapper,
    app: options.app,
    decodes,
    [Symbol.asyncDispose]: () => recorders.close(),
  }
}

/**
 * Returns the mapper that an application's settings describe (its cipher
 * key and compression, with `transcodings` for its own types), without
 * opening its storage: for stores other than its events tables (its DCB store).
 *
 * @throws ProgrammingError for wrong settings (a bad key).
 */
export function storageMapper(
  options: StorageOptions,
  env: Environment,
  transcodings: readonly Transcoding<unknown>[] = [],
): Pick<Storage, 'mapper' | 'decodes'> {
  return decoding(new Config(options.app, flagEnvironment(options, env, false)), transcodings)
}

function decoding(config: Config, transcodings: readonly Transcoding<unknown>[]): Pick<Storage, 'mapper' | 'decodes'> {
  return {
    mapper: mapperFromConfig(config, { transcodings }),
    decodes: config.get('CIPHER_KEY') !== undefined || config.get('COMPRESSOR') !== undefined,
  }
}

/**
 * Returns where an application's events are stored, as its settings name it
 * (the backend, the file or the server and schema, the tables' name), to tell
 * two storages apart without opening them.
 */
export function storageLocation(options: StorageOptions, env: Environment): string {
  const config = new Config(options.app, flagEnvironment(options, env, false))
  const persistence = config.get('PERSISTENCE')
  const where =
    persistence === 'sqlite'
      ? resolve(config.get('SQLITE_PATH') ?? '')
      : ['POSTGRES_URL', 'POSTGRES_HOST', 'POSTGRES_PORT', 'POSTGRES_DBNAME', 'POSTGRES_SCHEMA'].map((name) =>
          config.get(name),
        )
  return JSON.stringify([persistence, where, options.app.toLowerCase()])
}

/** Returns `env` with the flags given set as the application's prefixed variables, which win over unprefixed ones. */
function flagEnvironment(options: StorageOptions, env: Environment, createTables: boolean): Environment {
  const prefix = `${options.app.toUpperCase()}_`
  const flags: Record<string, string> = { [`${prefix}CREATE_TABLES`]: String(createTables) }
  for (const [option, variable] of FLAG_VARIABLES) {
    const value = options[option]
    if (typeof value === 'string') flags[prefix + variable] = value
  }
  if (options.sqlitePath !== undefined && options.persistence === undefined) flags[`${prefix}PERSISTENCE`] = 'sqlite'
  if (options.postgresUrl !== undefined && options.persistence === undefined) flags[`${prefix}PERSISTENCE`] = 'postgres'
  if (options.compress) flags[`${prefix}COMPRESSOR`] = 'zlib'
  return { ...env, ...flags }
}

/** True for the error of a missing table or schema, as the SQLite and PostgreSQL recorders report it. */
export function isMissingTable(error: unknown): boolean {
  if (!(error instanceof ProgrammingError)) return false
  const cause = error.cause
  const code = errorCode(cause)
  return code === '42P01' || code === '3F000' || (cause instanceof Error && /no such table/.test(cause.message))
}

function causeMessage(error: unknown): string {
  return error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error)
}
