/**
 * The Apache Cassandra backend (`eventsourcing/cassandra`): recorders on
 * `cassandra-driver` (which also works with ScyllaDB), loaded only when a
 * session is opened. Applications only: DCB is not offered here.
 *
 * @packageDocumentation
 */
export { cassandra, DcbNotOfferedError, fromEnvironment } from './cassandra-persistence.js'
export type {
  CassandraConsistency,
  CassandraOptions,
  CassandraReplication,
  CassandraSerialConsistency,
} from './cassandra-settings.js'
