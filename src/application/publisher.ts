import type { DomainEvent } from '../domain/domain-event.js'
import type { Application } from './application.js'

/** Receives events published on an {@link EventPublisher}. */
export type PublishedEventHandler = (events: readonly DomainEvent[]) => void | Promise<void>

/**
 * A channel on which domain code publishes events as they are triggered, in the
 * style of the first `eventsourcing` README. New code saves aggregates with
 * {@link Application.save} instead.
 */
export class EventPublisher {
  readonly #handlers = new Set<PublishedEventHandler>()

  /** Registers a handler; returns a function that removes it. */
  subscribe(handler: PublishedEventHandler): () => void {
    this.#handlers.add(handler)
    return () => this.#handlers.delete(handler)
  }

  /** Passes events to every handler in turn; rejects with the first handler error. */
  async publish(...events: DomainEvent[]): Promise<void> {
    for (const handler of [...this.#handlers]) await handler(events)
  }
}

/**
 * Records every event published on a publisher in an application, as the first
 * README's persistence subscriber did: publishing then means storing.
 */
export class PersistenceSubscriber implements Disposable {
  readonly #unsubscribe: () => void

  /** Starts recording, in `application`, every event published on `publisher`. */
  constructor(publisher: EventPublisher, application: Application) {
    this.#unsubscribe = publisher.subscribe(async (events) => {
      await application.record(events)
    })
  }

  /** Stops recording published events. */
  close(): void {
    this.#unsubscribe()
  }

  /** Stops recording published events (for `using`). */
  [Symbol.dispose](): void {
    this.close()
  }
}
