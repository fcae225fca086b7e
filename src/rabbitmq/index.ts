/**
 * The RabbitMQ relays (`eventsourcing/rabbitmq`): a publisher for a `Relay`,
 * which publishes an application's log to a topic exchange with publisher
 * confirms, and a consumer that hands the messages of a durable queue to a
 * `Republisher`, in order, acknowledging each once it took effect. amqplib
 * is loaded only when a connection is first made.
 *
 * @packageDocumentation
 */

export { type RabbitMqPublisher, type RabbitMqPublisherOptions, rabbitMqPublisher } from './rabbitmq-publisher.js'
export {
  ERROR_HEADER,
  type RabbitMqRepublisher,
  type RabbitMqRepublisherEvents,
  type RabbitMqRepublisherOptions,
  type RabbitMqRepublisherStatus,
  rabbitMqRepublisher,
} from './rabbitmq-republisher.js'
export type { RabbitMqConnectionOptions } from './rabbitmq-settings.js'
