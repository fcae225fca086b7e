// A runner shares its process: while its followers work through a backlog on a
// backend that answers without I/O (memory, SQLite), timers, I/O and signal
// handlers of the same process must still get their turns.

import { join } from 'node:path'
import { setImmediate } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { Orders, ordersSystem } from '../../examples/orders.js'
import { EventLoopRunner, memory, type Persistence } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'

const ORDERS = 500
// How many turns of the event loop the catch-up must give at least. Counted, not timed (the machine may be
// loaded): a runner that never yields gives none until it has caught up, one that yields after each batch
// gives one per batch, and catching up 500 orders takes dozens of batches.
const MIN_TURNS = 5

const backends: [string, () => Persistence][] = [
  ['memory', () => memory()],
  ['an SQLite file', () => sqlite({ path: join(tempDir('es-yield-'), 'orders.db') })],
]

describe.each(backends)('an EventLoopRunner catching up on %s', (_, newPersistence) => {
  it('lets the timers of its process run', async () => {
    const persistence = newPersistence()
    await using setup = new Orders({ persistence })
    for (let i = 0; i < ORDERS; i++) await setup.createOrder(`order ${i}`)
    await using runner = new EventLoopRunner(ordersSystem, { persistence })
    await runner.start()
    const orders = runner.get(Orders)
    // Every order is paid once the Orders log has its three events for each. Each check waits for the next
    // turn of the event loop, so the checks count the turns the runner gives while it catches up.
    let turns = 0
    while ((await orders.notificationLog.maxId()) < 3 * ORDERS) {
      turns++
      await setImmediate()
    }
    expect(turns, 'turns of the event loop while the followers caught up').toBeGreaterThanOrEqual(MIN_TURNS)
  })
})
