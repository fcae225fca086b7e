// The first `eventsourcing` README's example, in this library's style.
//
// That README declared an `Example` entity with attributes `a` and `b`, created
// by a factory that published a `Created` event; setting an attribute published
// an `AttributeChanged` event, and `discard()` a `Discarded` one. A persistence
// subscriber stored every published event, and the application's repository
// replayed them to get the entity back by id.
//
// `ExampleApplication` below does the same the way this library prefers: events
// stay pending on the aggregate until `save()` records them atomically.
// `PublishingExampleApplication` keeps the README's shape: events are published
// on an `EventPublisher` as they are triggered, and a `PersistenceSubscriber`
// stores them.

import { Aggregate, Application, EventPublisher, PersistenceSubscriber } from '../src/index.js'

/** The names of the attributes of an {@link Example}. */
export type ExampleAttribute = 'a' | 'b'

/** The README's event-sourced entity: two attributes that change by events. */
export class Example extends Aggregate {
  static readonly topic = 'example:Example'

  a = 0
  b = 0

  static readonly Created = Example.created('example:Example.Created', (example, e: { a: number; b: number }) => {
    example.a = e.a
    example.b = e.b
  })

  static readonly AttributeChanged = Example.event(
    'example:Example.AttributeChanged',
    (example, e: { name: ExampleAttribute; value: number }) => {
      example[e.name] = e.value
    },
  )

  /** The README's `register_new_example` factory. */
  static register(a: number, b: number): Example {
    return Example.create(Example.Created, { a, b })
  }

  /** Changes one attribute (the README did this with a property setter). */
  set(name: ExampleAttribute, value: number): void {
    this.trigger(Example.AttributeChanged, { name, value })
  }
}

/** The README's application, in this library's style: aggregates are saved. */
export class ExampleApplication extends Application {
  static override readonly applicationName = 'ExampleApplication'

  /** Registers a new example and returns its id. */
  async registerNewExample(a: number, b: number): Promise<string> {
    const example = Example.register(a, b)
    await this.save(example)
    return example.id
  }

  /** Returns an example by id (the README's `app.example_repo[id]`). */
  getExample(id: string): Promise<Example> {
    return this.repository.get(Example, id)
  }

  /** Changes an attribute of an example. */
  async changeAttribute(id: string, name: ExampleAttribute, value: number): Promise<void> {
    const example = await this.getExample(id)
    example.set(name, value)
    await this.save(example)
  }

  /** Discards an example: the repository no longer returns it. */
  async discardExample(id: string): Promise<void> {
    const example = await this.getExample(id)
    example.discard()
    await this.save(example)
  }
}

/**
 * The README's application, in the README's style: domain code publishes each
 * event on {@link PublishingExampleApplication.publisher} as soon as it is
 * triggered, and the application's persistence subscriber stores it.
 */
export class PublishingExampleApplication extends Application {
  static override readonly applicationName = 'PublishingExampleApplication'

  /** Where domain events are published as they are triggered. */
  readonly publisher = new EventPublisher()
  readonly #persistenceSubscriber = new PersistenceSubscriber(this.publisher, this)

  /** Registers a new example, publishing its created event, and returns the entity. */
  async registerNewExample(a: number, b: number): Promise<Example> {
    return this.#published(Example.register(a, b))
  }

  /** Returns an example by id, replayed from the stored events. */
  getExample(id: string): Promise<Example> {
    return this.repository.get(Example, id)
  }

  /** Changes an attribute of an entity held by the caller, publishing the event. */
  async changeAttribute(example: Example, name: ExampleAttribute, value: number): Promise<void> {
    example.set(name, value)
    await this.#published(example)
  }

  /** Discards an entity held by the caller, publishing the event. */
  async discardExample(example: Example): Promise<void> {
    example.discard()
    await this.#published(example)
  }

  /** Stops storing published events, then closes the application's storage. */
  override async close(): Promise<void> {
    this.#persistenceSubscriber.close()
    await super.close()
  }

  // An aggregate has no hook to publish from inside `trigger()`, so each
  // command publishes the events it just triggered before returning.
  async #published(example: Example): Promise<Example> {
    await this.publisher.publish(...example.collectEvents())
    return example
  }
}
