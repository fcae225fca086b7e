/** The base class of every error this library throws on purpose. */
export class EventSourcingError extends Error {
  /** Makes the error; `options.cause` is the error it wraps, if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A topic is unknown, or is already registered for another class. */
export class TopicError extends EventSourcingError {}

/** An event does not follow on from the aggregate it is applied to. */
export class OriginatorVersionError extends EventSourcingError {}

/** No aggregate has the requested id (or it was discarded, or deleted). */
export class AggregateNotFoundError extends EventSourcingError {
  /** Makes the error for the aggregate with id `aggregateId`. */
  constructor(
    readonly aggregateId: string,
    message = `Aggregate '${aggregateId}' was not found`,
  ) {
    super(message)
  }
}

/** Stored state could not be brought up to the current class version. */
export class UpcastError extends EventSourcingError {}
