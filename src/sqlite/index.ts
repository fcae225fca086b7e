/**
 * The SQLite backend (`eventsourcing/sqlite`): recorders and a projection
 * store on better-sqlite3 v12, which is loaded only when a database is opened.
 *
 * @packageDocumentation
 */
export type { SqliteDatabase, SqliteStatement } from './sqlite-database.js'
export {
  type SqliteProjectionStoreOptions,
  type SqliteTransaction,
  sqliteProjectionStore,
} from './sqlite-projection-store.js'
export { fromEnvironment, type SqliteOptions, sqlite } from './sqlite-recorder.js'
