// Systems for the worker-thread runner tests, imported by the workers: the
// orders system with one more follower, Audit, that fails on some orders.
import { isMainThread } from 'node:worker_threads'
import { Order, Orders, Payments, Reservations } from '../../examples/orders.js'
import { type DomainEvent, ProcessApplication, type ProcessingEvent, System } from '../../src/index.js'

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
