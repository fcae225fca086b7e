import { defineTopic } from './topics.js'
import type { Upcaster, Versioning } from './upcasting.js'

/** The fields every domain event has, whatever its type. */
export interface DomainEventInit {
  /** The id of the aggregate the event belongs to. */
  readonly originatorId: string
  /** The aggregate's version after this event; the first event has version 1. */
  readonly originatorVersion: number
  /** When the event was triggered. */
  readonly timestamp: Date
}

/** Field names an event payload cannot use, because every event has them. */
export type ReservedField = keyof DomainEventInit | 'classVersion'

const RESERVED_FIELDS: readonly ReservedField[] = ['originatorId', 'originatorVersion', 'timestamp', 'classVersion']

/**
 * Throws if a payload uses a field name that every event has.
 *
 * @throws TypeError naming the field.
 */
export function checkPayload(topic: string, payload: object): void {
  for (const field of RESERVED_FIELDS) {
    if (field in payload)
      throw new TypeError(`The payload of ${topic} uses the reserved field name '${field}': rename it`)
  }
}

/**
 * An immutable fact about one aggregate. Concrete event types are declared with
 * `Aggregate.event(...)` or `Aggregate.created(...)`, which give each a topic.
 *
 * An event is frozen deeply: arrays and plain objects in its payload are copied
 * and frozen, so neither the code that triggered it nor an aggregate that keeps
 * a reference to one can rewrite history by changing it later (copy such a
 * value in `apply` when the aggregate must change it).
 */
export class DomainEvent implements DomainEventInit {
  declare readonly originatorId: string
  declare readonly originatorVersion: number
  declare readonly timestamp: Date

  /** Makes an event from its common fields and payload; it is frozen. Declared event types call this. */
  constructor(init: DomainEventInit) {
    for (const [name, value] of Object.entries(init)) (this as Record<string, unknown>)[name] = frozenCopy(value)
    Object.freeze(this)
  }
}

/** Returns arrays and plain objects as frozen deep copies, and other values as they are. */
export function frozenCopy(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy))
  const prototype = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) return value
  const copy: Record<string, unknown> = Object.create(prototype)
  for (const [name, field] of Object.entries(value)) copy[name] = frozenCopy(field)
  return Object.freeze(copy)
}

/** A domain event of one declared type: the common fields and the payload `P`. */
export type Event<P extends object = object> = DomainEvent & Readonly<P>

/**
 * A declared type of domain event: constructible, with a topic and a versioning
 * for its stored form. `P` is the payload type and `A` the aggregate type it applies to.
 */
export interface EventType<A = unknown, P extends object = object> extends Versioning {
  new (init: DomainEventInit & P): Event<P>
  /** The stable name the event is stored under. */
  readonly topic: string
  /** Changes an aggregate as this event says. */
  readonly mutate: (aggregate: A, event: Event<P>) => void
}

/** Options for declaring an event type. */
export interface EventOptions {
  /**
   * Upcasters for stored events written by older versions of this type:
   * `upcast[0]` turns version 1 into 2, and so on. The type's class version is
   * `upcast.length + 1`.
   */
  readonly upcast?: readonly Upcaster[]
}

/**
 * Declares an event type with a topic; called by the aggregate factories with
 * the aggregate class that declares it (`declaredBy`).
 *
 * @throws TopicError if the topic is empty or names something else (see `defineTopic`).
 */
export function defineEvent<A, P extends object>(
  declaredBy: abstract new () => unknown,
  topic: string,
  apply: (aggregate: A, event: Event<P>) => void,
  options: EventOptions = {},
): EventType<A, P> {
  const upcasters = options.upcast ?? []
  const type = class extends DomainEvent {
    static readonly topic = topic
    static readonly mutate = apply
    static readonly upcasters = upcasters
    static readonly classVersion = upcasters.length + 1
  }
  Object.defineProperty(type, 'name', { value: topic })
  defineTopic(topic, type, declaredBy)
  return type as unknown as EventType<A, P>
}
