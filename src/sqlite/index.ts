/**
 * The SQLite backend (`eventsourcing/sqlite`): recorders on better-sqlite3 v12,
 * which is loaded only when a database is opened.
 *
 * @packageDocumentation
 */
export type { SqliteDatabase, SqliteStatement } from './sqlite-database.js'
export { fromEnvironment, type SqliteOptions, sqlite } from './sqlite-recorder.js'
