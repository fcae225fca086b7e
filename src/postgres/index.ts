/**
 * The PostgreSQL backend (`eventsourcing/postgres`): recorders and a
 * projection store on `pg`, which is loaded only when first needed.
 *
 * @packageDocumentation
 */
export {
  type PostgresProjectionStoreOptions,
  type PostgresQueryResult,
  type PostgresTransaction,
  postgresProjectionStore,
} from './postgres-projection-store.js'
export { fromEnvironment, optionsFromEnvironment, type PostgresOptions, postgres } from './postgres-recorder.js'
export { writeLockKey } from './postgres-schema.js'
export type { PostgresConnectionOptions } from './postgres-settings.js'
