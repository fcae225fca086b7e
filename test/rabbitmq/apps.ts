// The applications of the relay tests: Tickets upstream, whose log is relayed
// through RabbitMQ, and Receipts downstream, which saves one receipt per
// ticket event it processes, so that effects can be counted exactly.

import { expect } from 'vitest'
import {
  Aggregate,
  type AggregateChanges,
  Application,
  type DomainEvent,
  OperationalError,
  ProcessApplication,
  type ProcessingEvent,
  type Tracking,
} from '../../src/index.js'

/** A ticket, stamped any number of times: its events are what the relay carries. */
export class Ticket extends Aggregate {
  static readonly topic = 'relay-test:Ticket'
  stamps = 0

  static readonly Issued = Ticket.created('relay-test:Ticket.Issued')
  static readonly Stamped = Ticket.event('relay-test:Ticket.Stamped', (ticket, e: { stamp: number }) => {
    ticket.stamps = e.stamp
  })

  static issue(): Ticket {
    return Ticket.create(Ticket.Issued, {})
  }

  stamp(): void {
    this.trigger(Ticket.Stamped, { stamp: this.stamps + 1 })
  }
}

/** The upstream application. */
export class Tickets extends Application {
  static override readonly applicationName = 'Tickets'

  /**
   * Saves `count` new tickets, each issued and stamped `stamps` times, in one save.
   *
   * @returns the last notification id.
   */
  async issue(count: number, stamps: number): Promise<number> {
    const tickets = Array.from({ length: count }, () => {
      const ticket = Ticket.issue()
      for (let i = 0; i < stamps; i++) ticket.stamp()
      return ticket
    })
    return (await this.save(...tickets)).at(-1)!.notification.id
  }

  /**
   * Saves `events` events in saves of 100 (tickets issued and stamped 9 times),
   * pausing `pauseMs` between saves.
   *
   * @returns the last notification id.
   */
  async stream(events: number, pauseMs = 0): Promise<number> {
    let last = 0
    for (let saved = 0; saved < events; saved += 100) {
      last = await this.issue(Math.min(100, events - saved) / 10, 9)
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs))
    }
    return last
  }
}

/** What Receipts did for one upstream event; its id is random, so that processing an event twice saves two. */
export class Receipt extends Aggregate {
  static readonly topic = 'relay-test:Receipt'
  ticketId = ''
  ticketVersion = 0

  static readonly Received = Receipt.created(
    'relay-test:Receipt.Received',
    (receipt, e: { ticketId: string; version: number }) => {
      receipt.ticketId = e.ticketId
      receipt.ticketVersion = e.version
    },
  )
}

/** The downstream application: one receipt per ticket event processed. */
export class Receipts extends ProcessApplication {
  static override readonly applicationName = 'Receipts'
  /** Events whose processing fails with OperationalError this many more times, by `<ticket id>/<version>`. */
  readonly failures = new Map<string, number>()
  /** Events whose processing always fails (with a plain error), by `<ticket id>/<version>`. */
  readonly broken = new Set<string>()
  /** The number of receipts each write recorded: one per message processed in that transaction. */
  readonly writes: number[] = []

  protected policy(event: DomainEvent, processing: ProcessingEvent): void {
    const key = `${event.originatorId}/${event.originatorVersion}`
    if (this.broken.has(key)) throw new Error(`The test breaks ${key}`)
    const failures = this.failures.get(key) ?? 0
    if (failures > 0) {
      this.failures.set(key, failures - 1)
      throw new OperationalError(`The test makes processing ${key} fail (${failures - 1} more times)`)
    }
    processing.save(
      Receipt.create(Receipt.Received, { ticketId: event.originatorId, version: event.originatorVersion }),
    )
  }

  protected override recordChanges(changes: readonly AggregateChanges[], tracking?: Tracking | readonly Tracking[]) {
    this.writes.push(changes.length)
    return super.recordChanges(changes, tracking)
  }
}

/**
 * Checks that Receipts holds exactly one receipt for each event of Tickets, and
 * that each ticket's receipts are in the order of its events.
 */
export async function expectEachEventOnce(tickets: Tickets, receipts: Receipts): Promise<void> {
  const upstream = await tickets.notificationLog.select({ limit: 1_000_000 })
  const expected = new Map<string, number>()
  for (const notification of upstream) {
    expected.set(notification.originatorId, (expected.get(notification.originatorId) ?? 0) + 1)
  }
  const recordings = await receipts.notificationLog.selectRecordings({ limit: 1_000_000 })
  const seen = new Map<string, number>()
  const outOfOrder: string[] = []
  const unknown: string[] = []
  for (const { domainEvent } of recordings) {
    const received = domainEvent as InstanceType<typeof Receipt.Received>
    const last = seen.get(received.ticketId) ?? 0
    if (!expected.has(received.ticketId)) unknown.push(received.ticketId)
    if (received.version !== last + 1) outOfOrder.push(`${received.ticketId}: ${received.version} after ${last}`)
    seen.set(received.ticketId, Math.max(last, received.version))
  }
  expect(unknown, 'receipts for no ticket').toEqual([])
  expect(outOfOrder.slice(0, 10), 'receipts missing, twice, or out of order').toEqual([])
  expect(recordings.length, 'receipts').toBe(upstream.length)
  expect(seen, 'receipts per ticket').toEqual(expected)
}
