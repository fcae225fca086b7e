// The core public API of `eventsourcing`. Backends with drivers have their own
// entry points: `eventsourcing/sqlite`, and `eventsourcing/testing` for the
// recorder conformance suite.

export {
  type AggregateChanges,
  Application,
  type ApplicationOptions,
  type ApplicationStores,
  type EventSubscriber,
  SnapshotError,
  SubscriberError,
} from './application/application.js'
export { Config, type EncodingOptions, type Environment } from './application/config.js'
export {
  DcbApplication,
  type DcbApplicationOptions,
  type DcbApplicationReadOptions,
  type Decided,
  type DecideOptions,
  type Decision,
  type Evaluation,
  type TaggedAppendCondition,
  type TaggedReadResult,
} from './application/dcb-application.js'
export { type DcbNotification, DcbNotificationLog } from './application/dcb-notification-log.js'
export { NotificationLog, type Section, SectionIdError } from './application/notification-log.js'
export { EventPublisher, PersistenceSubscriber, type PublishedEventHandler } from './application/publisher.js'
export { type GetOptions, Repository, type RepositoryStores } from './application/repository.js'
export { type RetryOnConflictOptions, retryOnConflict } from './application/retry-on-conflict.js'
export { SnapshotStore } from './application/snapshotting.js'
export {
  Aggregate,
  type AggregateClass,
  type CreatedEventType,
  type NoFields,
} from './domain/aggregate.js'
export {
  DecisionModel,
  type DecisionModels,
  decisionModel,
  type StateOf,
  type TaggedQuery,
  type TaggedQueryItem,
} from './domain/decision-model.js'
export {
  DomainEvent,
  type DomainEventInit,
  type Event,
  type EventOptions,
  type EventType,
  type ReservedField,
} from './domain/domain-event.js'
export {
  AggregateNotFoundError,
  EventSourcingError,
  OriginatorVersionError,
  TopicError,
  UpcastError,
} from './domain/errors.js'
export { NAMESPACE_EVENTSOURCING, uuid4, uuid5, uuid7 } from './domain/ids.js'
export { Snapshot, type SnapshotFields } from './domain/snapshot.js'
export {
  TaggedEvent,
  type TaggedEventInit,
  type TaggedEventOptions,
  type TaggedEventType,
  tag,
  taggedEvent,
} from './domain/tagged-event.js'
export { getTopic, registerTopic, resolveTopic, withTopics } from './domain/topics.js'
export type { Upcaster, UpcastState } from './domain/upcasting.js'
export { MemoryRecorder, memory } from './memory/memory-recorder.js'
export { AesGcmCipher, type Cipher } from './persistence/cipher.js'
export { isPaged, type PagedSubscription } from './persistence/commit-signal.js'
export { type Compressor, ZlibCompressor } from './persistence/compressor.js'
export {
  type DcbAppendCondition,
  type DcbAppendOptions,
  type DcbConflict,
  DcbConflictError,
  type DcbEvent,
  type DcbQuery,
  type DcbQueryItem,
  type DcbReadOptions,
  type DcbReadResult,
  type DcbRecorder,
  type DcbRecorders,
  type DcbSequencedEvent,
  type DcbSubscribeOptions,
  type DcbTables,
  dcbTables,
} from './persistence/dcb.js'
export { DcbMapper } from './persistence/dcb-mapper.js'
export {
  DataError,
  IntegrityError,
  NotFoundError,
  OperationalError,
  PersistenceError,
  ProgrammingError,
  type TrackingConflict,
  TrackingConflictError,
  type VersionConflict,
  VersionConflictError,
  WaitTimeoutError,
} from './persistence/errors.js'
export { EventStore, type Recording } from './persistence/event-store.js'
export { validApplicationName } from './persistence/identifiers.js'
export { Mapper, type MapperOptions } from './persistence/mapper.js'
export type {
  AggregateRecorder,
  ApplicationRecorder,
  EventsQuery,
  Persistence,
  ProcessRecorder,
  ProjectionStore,
  Recorders,
  SelectEventsOptions,
  SelectNotificationsOptions,
  StoredApplication,
  SubscribeOptions,
  TrackingRecorder,
  WaitForTrackingOptions,
} from './persistence/recorder.js'
export type { Notification, StoredEvent, Tracking } from './persistence/stored-event.js'
export { TagHasher } from './persistence/tag-hasher.js'
export { JsonTranscoder, type Transcoder, type Transcoding } from './persistence/transcoder.js'
export {
  DcbProcessApplication,
  DcbProcessing,
  DcbProcessRunner,
  type DcbProcessRunnerOptions,
  type DcbSource,
} from './system/dcb-process-application.js'
export {
  DEFAULT_MAX_RETRY_DELAY_MS,
  type FollowOptions,
  follow,
  inBatches,
  isTransient,
  type Upstream,
} from './system/follow.js'
export {
  type FollowedTopic,
  ProcessApplication,
  ProcessingEvent,
  type Source,
  type SourcedNotification,
} from './system/process-application.js'
export { ProcessingError } from './system/processing-error.js'
export {
  Projection,
  ProjectionRunner,
  type ProjectionRunnerOptions,
  type ProjectionUpstream,
} from './system/projection.js'
export {
  type BrokerPublisher,
  type OutgoingMessage,
  Relay,
  type RelayOptions,
  Republisher,
  type RepublisherOptions,
  type Verdict,
} from './system/relay.js'
export {
  decodeMessage,
  encodeMessage,
  MalformedMessageError,
  MESSAGE_FORMAT,
  type RelayMessage,
} from './system/relay-message.js'
export {
  DEFAULT_BATCH_SIZE,
  EventLoopRunner,
  type FollowerStatus,
  MAX_BATCH_SIZE,
  type Runner,
  type RunnerEvents,
  type RunnerOptions,
} from './system/runner.js'
export { type ApplicationClass, System } from './system/system.js'
export {
  type PositionRecorder,
  TrackedFollower,
  type TrackedFollowerOptions,
  type TrackedFollowerSettings,
} from './system/tracked-follower.js'
export type { UpstreamLog, WaitForOptions } from './system/wait-for.js'
export { WorkerThreadError, WorkerThreadRunner, type WorkerThreadRunnerOptions } from './system/worker-runner.js'
