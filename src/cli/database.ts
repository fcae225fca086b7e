// How the commands over a whole database (apps, trackers) open it: the
// backend and its settings from the unprefixed variables, the flags winning,
// and nothing created.
import { existsSync } from 'node:fs'
import { Config, type Environment, persistenceFromConfig } from '../application/config.js'
import { ProgrammingError } from '../persistence/errors.js'
import type { Persistence, ProjectionStore } from '../persistence/recorder.js'
import { isMissingTable, type StorageOptions } from './storage.js'

/** The flags that choose a database, each naming the variable it sets. */
export type DatabaseOptions = Pick<StorageOptions, 'persistence' | 'sqlitePath' | 'postgresUrl' | 'postgresSchema'>

/** A database the command was pointed at does not exist: an SQLite file that is missing. */
export class DatabaseNotFoundError extends ProgrammingError {}

/** A projection named to a command has no tracking table in the database. */
export class ProjectionNotFoundError extends ProgrammingError {}

/** A database's backend, opened without creating tables, and the projection stores on it. */
export interface Database {
  readonly persistence: Persistence
  /**
   * Returns the projection store of this name on the same database (its
   * tracking table `<name>_tracking`), which is not created when missing.
   */
  projectionStore(name: string): Promise<ProjectionStore<unknown>>
}

const FLAG_VARIABLES: readonly [keyof DatabaseOptions, string][] = [
  ['persistence', 'PERSISTENCE'],
  ['sqlitePath', 'SQLITE_PATH'],
  ['postgresUrl', 'POSTGRES_URL'],
  ['postgresSchema', 'POSTGRES_SCHEMA'],
]

/**
 * Opens the database that the flags and the (unprefixed) variables choose,
 * set not to create tables. Nothing is connected until it is used.
 *
 * @throws ProgrammingError without a database (`PERSISTENCE` unset or memory) or for wrong settings.
 * @throws DatabaseNotFoundError for an SQLite file that does not exist (it is not created).
 */
export async function openDatabase(options: DatabaseOptions, env: Environment): Promise<Database> {
  const flags: Record<string, string> = { CREATE_TABLES: 'false' }
  for (const [option, variable] of FLAG_VARIABLES) {
    const value = options[option]
    if (value !== undefined) flags[variable] = value
  }
  if (options.persistence === undefined && options.sqlitePath !== undefined) flags.PERSISTENCE = 'sqlite'
  if (options.persistence === undefined && options.postgresUrl !== undefined) flags.PERSISTENCE = 'postgres'
  // Variables only: no application's prefix applies (the name given is no variable's prefix).
  const config = new Config('', { ...env, ...flags })
  const backend = config.get('PERSISTENCE')
  if (backend === undefined || backend === 'memory') {
    throw new ProgrammingError(
      'No database given: set PERSISTENCE (sqlite or postgres) and its settings, or pass --sqlite-path or --postgres-url',
    )
  }
  const path = config.get('SQLITE_PATH')
  if (backend === 'sqlite' && path !== undefined && path !== ':memory:' && !existsSync(path)) {
    throw new DatabaseNotFoundError(`The SQLite file ${path} does not exist: check --sqlite-path or SQLITE_PATH`)
  }
  const get = (name: string) => config.get(name)
  return {
    persistence: await persistenceFromConfig(config),
    async projectionStore(name) {
      const store = await projectionStoreOn(backend, get, name)
      try {
        await store.maxTrackingId('')
      } catch (error) {
        await store.close()
        throw isMissingTable(error)
          ? new ProjectionNotFoundError(
              `No projection '${name}' in this database: its table ${name.toLowerCase()}_tracking is missing`,
              {
                cause: error,
              },
            )
          : error
      }
      return store
    },
  }
}

/** Returns a projection store on the backend the variables configure, set not to create its table. */
async function projectionStoreOn(
  backend: string,
  get: (name: string) => string | undefined,
  name: string,
): Promise<ProjectionStore<unknown>> {
  if (backend === 'sqlite') {
    const { sqliteProjectionStore } = await import('../sqlite/index.js')
    return sqliteProjectionStore({ path: get('SQLITE_PATH'), name, createTables: false }) as ProjectionStore<unknown>
  }
  if (backend !== 'postgres') {
    throw new ProgrammingError(`No projection stores on ${backend}: projections are stored on SQLite or PostgreSQL`)
  }
  const { optionsFromEnvironment, postgresProjectionStore } = await import('../postgres/index.js')
  return postgresProjectionStore({
    ...optionsFromEnvironment(get),
    name,
    createTables: false,
  }) as ProjectionStore<unknown>
}
