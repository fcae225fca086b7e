// Systems for the worker-thread runner tests, imported by the workers: the
// orders system with one more follower, Audit, that fails on some orders.
import { isMainThread } from 'node:worker_threads'
import { Order, Orders, Payments, Reservations } from '../../examples/orders.js'
import {
  Aggregate,
  type DomainEvent,
  type Notification,
  ProcessApplication,
  type ProcessingEvent,
  type Recording,
  type Source,
  System,
  uuid5,
} from '../../src/index.js'

/**
 * Follows the orders; its policy throws on an order named `bad…`, and in a
 * worker thread, ends the thread on one named `exit…` and throws outside the
 * policy, uncaught, on one named `crash…`.
 */
export class Audit extends ProcessApplication {
  static override readonly applicationName = 'Audit'
  static override readonly followTopics = [Order.Created]

  protected policy(event: DomainEvent, _processing: ProcessingEvent): void {
    if (!(event instanceof Order.Created)) return
    if (event.name.startsWith('bad')) throw new Error(`Cannot audit ${event.name}`)
    if (isMainThread) return
    if (event.name.startsWith('exit')) process.exit(7)
    if (event.name.startsWith('crash')) {
      setImmediate(() => {
        throw new Error(`Crashed on ${event.name}`)
      })
    }
  }
}

/** The orders system with Audit following Orders. */
export const auditedSystem = new System([
  [Orders, Reservations, Orders],
  [Orders, Payments, Orders],
  [Orders, Audit],
])

/** The same applications, wired the same way: a module with two such systems needs an export name. */
export const auditedSystemAgain = new System([
  [Orders, Reservations, Orders],
  [Orders, Payments, Orders],
  [Orders, Audit],
])

/** The size of the batch an order was processed in, by {@link BatchSizes}. */
export class Seen extends Aggregate {
  static readonly topic = 'worker-test:Seen'
  batch = 0
  static readonly Created = Seen.created('worker-test:Seen.Created', (seen, e: { batch: number }) => {
    seen.batch = e.batch
  })

  /** The id of the record of an order. */
  static idOf(orderId: string): string {
    return uuid5('7d1e0a52-6c1b-4d6e-9a51-2f3b8c0d9e41', orderId)
  }
}

/** Records, per order created, the size of the batch of notifications it came in. */
export class BatchSizes extends ProcessApplication {
  static override readonly applicationName = 'BatchSizes'
  static override readonly followTopics = [Order.Created]
  #batch = 0

  override processBatch(upstream: Source, notifications: readonly Notification[]): Promise<Recording[]> {
    this.#batch = notifications.length
    return super.processBatch(upstream, notifications)
  }

  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    if (!(event instanceof Order.Created)) return
    processing.save(Seen.create(Seen.Created, { batch: this.#batch }, { id: Seen.idOf(event.originatorId) }))
  }
}

/** Orders followed by BatchSizes only. */
export const batchSizesSystem = new System([[Orders, BatchSizes]])
