import { klona } from 'klona/full'
import {
  checkPayload,
  type DomainEvent,
  defineEvent,
  type Event,
  type EventOptions,
  type EventType,
} from './domain-event.js'
import { AggregateNotFoundError, OriginatorVersionError } from './errors.js'
import { uuid4 } from './ids.js'
import { topicOf } from './topics.js'
import type { Upcaster } from './upcasting.js'

/** An event payload with no fields. */
export type NoFields = Record<string, never>

/** A declared type of event that creates an aggregate of class `A`. */
export interface CreatedEventType<A = unknown, P extends object = object> extends EventType<A, P> {
  /** The class of aggregate this event creates. */
  readonly aggregateClass: new () => A
}

/**
 * An aggregate class: constructible with no arguments. Two optional statics
 * matter for snapshots: `topic`, the stable name of the class (required to take
 * snapshots), and `upcast`, the upcasters for snapshots written by older versions
 * of the class (`upcast[0]` turns version 1 state into 2; the class version is
 * `upcast.length + 1`).
 */
export type AggregateClass<A extends Aggregate = Aggregate> = (new () => A) & {
  readonly topic?: string
  readonly upcast?: readonly Upcaster[]
}

const pendingEvents = new WeakMap<Aggregate, DomainEvent[]>()

/**
 * The base class of event-sourced aggregates (entities): state that changes only
 * by triggering domain events, and is rebuilt by replaying them.
 *
 * Declare event types as static fields with {@link Aggregate.created} and
 * {@link Aggregate.event}; create instances with {@link Aggregate.create}; change
 * them with {@link Aggregate.trigger}. The own enumerable fields of an aggregate are
 * its state (what a snapshot stores).
 *
 * @example
 * ```ts
 * class Dog extends Aggregate {
 *   static readonly topic = 'dogschool:Dog'
 *   name = ''
 *   tricks: string[] = []
 *   static Registered = Dog.created('dogschool:Dog.Registered', (dog, e: { name: string }) => { dog.name = e.name })
 *   static TrickAdded = Dog.event('dogschool:Dog.TrickAdded', (dog, e: { trick: string }) => { dog.tricks.push(e.trick) })
 *   static register(name: string) { return Dog.create(Dog.Registered, { name }) }
 *   addTrick(trick: string) { this.trigger(Dog.TrickAdded, { trick }) }
 * }
 * ```
 */
export class Aggregate {
  /** Triggered by {@link Aggregate.discard}; inherited by every aggregate. */
  static readonly Discarded: EventType<Aggregate, NoFields> = defineEvent(
    Aggregate,
    'eventsourcing:Aggregate.Discarded',
    (aggregate: Aggregate) => {
      aggregate.discarded = true
    },
  )

  /** The aggregate's id: the originator id of all its events. */
  id = ''
  /** The number of events applied so far (the version of the last one). */
  version = 0
  /** The timestamp of the first event. */
  createdOn: Date = new Date(0)
  /** The timestamp of the last event. */
  modifiedOn: Date = new Date(0)
  /** True after {@link Aggregate.discard}; a repository no longer returns it. */
  discarded = false

  /**
   * Declares a type of event that changes aggregates of this class.
   *
   * @param topic the stable name the event is stored under, e.g. `'dogschool:Dog.TrickAdded'`.
   * @param apply how the event changes the aggregate; its second parameter's type is the payload type.
   */
  static event<A extends Aggregate, P extends object = NoFields>(
    this: new () => A,
    topic: string,
    apply: (aggregate: A, event: Event<P>) => void = () => {},
    options?: EventOptions,
  ): EventType<A, P> {
    return defineEvent(this, topic, apply, options)
  }

  /** Declares a type of event that creates aggregates of this class; see {@link Aggregate.event}. */
  static created<A extends Aggregate, P extends object = NoFields>(
    this: new () => A,
    topic: string,
    apply: (aggregate: A, event: Event<P>) => void = () => {},
    options?: EventOptions,
  ): CreatedEventType<A, P> {
    const type = defineEvent(this, topic, apply, options)
    Object.defineProperty(type, 'aggregateClass', { value: this })
    // Registers the class's own topic, when declared above its events, so that
    // resolveTopic finds aggregate classes as it finds event types.
    topicOf(this)
    return type as CreatedEventType<A, P>
  }

  /**
   * Creates an aggregate by triggering a created event, which stays pending until saved.
   *
   * @param options.id the aggregate's id; a random UUID when not given.
   */
  static create<A extends Aggregate, P extends object>(
    this: new () => A,
    type: CreatedEventType<A, P>,
    payload: NoInfer<P>,
    options: { id?: string } = {},
  ): A {
    checkPayload(type.topic, payload)
    const event = new type({
      ...payload,
      originatorId: options.id ?? uuid4(),
      originatorVersion: 1,
      timestamp: new Date(),
    })
    const aggregate = new this()
    applyEvent(aggregate, event)
    pending(aggregate).push(event)
    return aggregate
  }

  /**
   * Triggers an event of the given type: applies it to this aggregate and keeps
   * it pending until the aggregate is saved.
   *
   * @throws AggregateNotFoundError if the aggregate was discarded; TypeError if
   * the payload uses a reserved field name.
   */
  protected trigger<P extends object>(type: EventType<this, P>, payload: NoInfer<P>): void {
    if (this.discarded) throw new AggregateNotFoundError(this.id, `Aggregate '${this.id}' was discarded`)
    checkPayload(type.topic, payload)
    const event = new type({
      ...payload,
      originatorId: this.id,
      originatorVersion: this.version + 1,
      timestamp: new Date(),
    })
    applyEvent(this, event)
    pending(this).push(event)
  }

  /** Marks the aggregate as discarded by triggering {@link Aggregate.Discarded}. */
  discard(): void {
    this.trigger(Aggregate.Discarded, {})
  }

  /** Returns the events triggered since the last call, and forgets them. */
  collectEvents(): DomainEvent[] {
    const events = pending(this)
    pendingEvents.delete(this)
    return events
  }
}

/**
 * Returns an independent copy of an aggregate: a new instance of its class with
 * deep copies of its own fields (JavaScript `#private` fields keep their initial values).
 */
export function copyAggregate<A extends Aggregate>(aggregate: A): A {
  const cls = aggregate.constructor as new () => A
  return Object.assign(new cls(), klona({ ...aggregate }))
}

/**
 * Puts collected events back in front of an aggregate's pending events, when
 * recording them failed, so that the aggregate never claims state it did not save.
 */
export function uncollectEvents(aggregate: Aggregate, events: readonly DomainEvent[]): void {
  pendingEvents.set(aggregate, [...events, ...pending(aggregate)])
}

function pending(aggregate: Aggregate): DomainEvent[] {
  let events = pendingEvents.get(aggregate)
  if (events === undefined) {
    events = []
    pendingEvents.set(aggregate, events)
  }
  return events
}

/**
 * Applies a stored or new event to an aggregate, checking that it is the next one.
 *
 * @throws OriginatorVersionError if the event's version does not follow the aggregate's.
 */
export function applyEvent(aggregate: Aggregate, event: DomainEvent): void {
  if (
    event.originatorVersion !== aggregate.version + 1 ||
    (aggregate.version > 0 && event.originatorId !== aggregate.id)
  ) {
    throw new OriginatorVersionError(
      `Event ${event.originatorId}@${event.originatorVersion} does not follow aggregate ${aggregate.id}@${aggregate.version}`,
    )
  }
  if (aggregate.version === 0) {
    aggregate.id = event.originatorId
    aggregate.createdOn = new Date(event.timestamp)
  }
  ;(event.constructor as EventType<Aggregate>).mutate(aggregate, event)
  aggregate.version = event.originatorVersion
  // A copy: changing the aggregate's dates must not change the event's.
  aggregate.modifiedOn = new Date(event.timestamp)
}

/**
 * Rebuilds an aggregate of class `cls` from its events, starting from `initial`
 * (e.g. restored from a snapshot) or, without it, from the created event.
 *
 * @returns undefined when there are no events and no initial state.
 * @throws AggregateNotFoundError if the events create an aggregate of another class.
 */
export function replayEvents<A extends Aggregate>(
  cls: AggregateClass<A>,
  events: Iterable<DomainEvent>,
  initial?: A,
): A | undefined {
  let aggregate = initial
  for (const event of events) {
    if (aggregate === undefined) aggregate = instantiate(cls, event)
    applyEvent(aggregate, event)
  }
  return aggregate
}

function instantiate<A extends Aggregate>(cls: AggregateClass<A>, first: DomainEvent): A {
  const type = first.constructor as Partial<CreatedEventType>
  const aggregate = type.aggregateClass ? new type.aggregateClass() : undefined
  if (!(aggregate instanceof cls)) {
    throw new AggregateNotFoundError(
      first.originatorId,
      `Aggregate '${first.originatorId}' is not a ${cls.name}: its first event is ${(type as { topic?: string }).topic}`,
    )
  }
  return aggregate
}
