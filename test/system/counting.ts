// A follower of the orders example for the system tests: Counting counts the
// orders created upstream, and can be told to fail on an order, or to hold it
// until the test lets it go.

import { Order } from '../../examples/orders.js'
import { Aggregate, type DomainEvent, ProcessApplication, type ProcessingEvent } from '../../src/index.js'

/** One per order counted. */
export class Counter extends Aggregate {
  static readonly topic = 'tests:Counter'
  orderId = ''
  static readonly Counted = Counter.created('tests:Counter.Counted', (counter, e: { orderId: string }) => {
    counter.orderId = e.orderId
  })
}

/** The names of the orders that Counting fails to count. */
export const failOn = new Set<string>()

/** The orders that Counting holds until their gate opens, by name. */
const gates = new Map<string, { readonly held: Promise<void>; readonly open: () => void }>()

/** Holds the orders of `name` until the returned function is called. */
export function hold(name: string): () => void {
  let open!: () => void
  const held = new Promise<void>((resolve) => {
    open = resolve
  })
  gates.set(name, { held, open })
  return open
}

/** Opens every gate, so that a runner stopping does not wait for a held order for ever. */
export function openGates(): void {
  for (const { open } of gates.values()) open()
  gates.clear()
}

/** Counts the orders created upstream (only Order.Created): a Counter each; fails on those in {@link failOn}. */
export class Counting extends ProcessApplication {
  static override readonly applicationName: string = 'Counting'
  static override readonly followTopics = [Order.Created]

  protected async policy(event: DomainEvent, processing: ProcessingEvent): Promise<void> {
    if (!(event instanceof Order.Created)) return
    await gates.get(event.name)?.held
    if (failOn.has(event.name)) throw new Error(`cannot count ${event.name}`)
    processing.save(Counter.create(Counter.Counted, { orderId: event.originatorId }))
  }
}
