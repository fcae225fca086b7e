// End to end: 10,000 events of an application relayed through RabbitMQ into a
// follower on the other side, each taking effect exactly once.

import { afterEach, expect, it } from 'vitest'
import { expectEachEventOnce } from './apps.js'
import { rawBroker } from './fixtures.js'
import { type Flow, openFlow } from './flow.js'

const EVENTS = 10_000

const cleanups: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

export function flowTests(): void {
  it('relays 10,000 events into a follower, each processed exactly once and in order', {
    timeout: 60_000,
  }, async () => {
    const started = Date.now()
    const flow: Flow = await openFlow()
    cleanups.push(() => flow.close())
    const relay = await flow.startRelay()
    // Half recorded before the relay catches up, half while it runs.
    const half = await flow.tickets.stream(EVENTS / 2)
    const last = await flow.tickets.stream(EVENTS / 2, 2)
    expect(last).toBeGreaterThan(half)
    await flow.untilProcessed(EVENTS, 50_000)
    await relay.waitFor(last)
    expect(flow.consumer.status()).toMatchObject({ state: 'running', processed: EVENTS, deadLettered: 0 })
    await expectEachEventOnce(flow.tickets, flow.receipts)
    const raw = await rawBroker()
    cleanups.push(() => raw.close())
    expect(await raw.count(flow.deadLetterQueue)).toBe(0)
    if (process.env.EVENTSOURCING_TIMING) {
      console.log(`10,000 events end to end in ${Date.now() - started} ms: ${JSON.stringify(flow.consumer.status())}`)
    }
  })
}
