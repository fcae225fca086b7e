/**
 * The Amazon SQS relays (`eventsourcing/sqs`): a publisher that a `Relay`
 * sends an application's notifications through to an SQS queue, and a
 * consumer that hands them from the queue to a `Republisher`. The AWS SDK
 * (`@aws-sdk/client-sqs`, v3) is loaded only when first needed. They work
 * against AWS, and against a local emulator given by `endpoint`.
 *
 * @packageDocumentation
 */
export type { SqsClientOptions } from './sqs-client.js'
export { type SqsPublisher, type SqsPublisherOptions, sqsPublisher, TOPIC_ATTRIBUTE } from './sqs-publisher.js'
export { type CreateQueuesOptions, createQueues, type Queues } from './sqs-queues.js'
export {
  ERROR_ATTRIBUTE,
  type MessageHandler,
  SOURCE_QUEUE_ATTRIBUTE,
  type SqsRepublisher,
  type SqsRepublisherEvents,
  type SqsRepublisherOptions,
  type SqsRepublisherStatus,
  sqsRepublisher,
} from './sqs-republisher.js'
