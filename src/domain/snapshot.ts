import { klona } from 'klona/full'
import type { Aggregate, AggregateClass } from './aggregate.js'
import { DomainEvent, type DomainEventInit } from './domain-event.js'
import { classOf, defineTopic, getTopic, topicOf } from './topics.js'
import { upcast } from './upcasting.js'

/** The payload of a {@link Snapshot}. */
export interface SnapshotFields {
  /** The topic of the aggregate's class. */
  readonly aggregateTopic: string
  /** The class version of the aggregate when the snapshot was taken. */
  readonly aggregateClassVersion: number
  /** The aggregate's own fields. */
  readonly state: Readonly<Record<string, unknown>>
}

/**
 * The state of an aggregate at one version. A snapshot is a cache: when it
 * cannot be used (class renamed, state no longer upcastable), the aggregate is
 * rebuilt from its events instead.
 */
export class Snapshot extends DomainEvent implements SnapshotFields {
  static readonly topic = 'eventsourcing:Snapshot'
  static readonly upcasters = []
  static readonly classVersion = 1

  // Declared, not defined: a defined field would be redefined after DomainEvent's constructor froze the instance.
  declare readonly aggregateTopic: string
  declare readonly aggregateClassVersion: number
  declare readonly state: Readonly<Record<string, unknown>>

  /** Makes a snapshot from its fields; {@link Snapshot.take} is the usual way. */
  constructor(init: DomainEventInit & SnapshotFields) {
    super(init)
  }

  /** Takes a snapshot of an aggregate's current state. Its class must have a `topic`. */
  static take(aggregate: Aggregate): Snapshot {
    const cls = aggregate.constructor as AggregateClass
    return new Snapshot({
      originatorId: aggregate.id,
      originatorVersion: aggregate.version,
      timestamp: aggregate.modifiedOn,
      aggregateTopic: getTopic(cls),
      aggregateClassVersion: (cls.upcast?.length ?? 0) + 1,
      state: klona({ ...aggregate }),
    })
  }

  /**
   * Returns true if this snapshot can be restored as an instance of `cls`
   * (its topic names `cls`, directly or through a registered old topic).
   */
  isFor(cls: AggregateClass): boolean {
    return topicOf(cls) === this.aggregateTopic || classOf(this.aggregateTopic) === cls
  }

  /** Rebuilds the aggregate, upcasting its state to the current class version. */
  restore<A extends Aggregate>(cls: AggregateClass<A>): A {
    const state = upcast(cls.name, klona({ ...this.state }), this.aggregateClassVersion, {
      classVersion: (cls.upcast?.length ?? 0) + 1,
      upcasters: cls.upcast ?? [],
    })
    return Object.assign(new cls(), state)
  }
}

defineTopic(Snapshot.topic, Snapshot)
