/**
 * The PostgreSQL backend (`eventsourcing/postgres`): recorders on `pg`, which
 * is loaded only when a backend opens its first recorders.
 *
 * @packageDocumentation
 */
export { fromEnvironment, type PostgresOptions, postgres } from './postgres-recorder.js'
