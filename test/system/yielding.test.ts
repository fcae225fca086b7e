// A runner shares its process: while its followers work through a backlog on a
// backend that answers without I/O (memory, SQLite), timers, I/O and signal
// handlers of the same process must still get their turns.

import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Orders, ordersSystem } from '../../examples/orders.js'
import { EventLoopRunner, memory, type Persistence } from '../../src/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'

const ORDERS = 500
// The longest a 5 ms timer may wait while the followers catch up: far below what the catch-up takes.
const MAX_GAP_MS = 250

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
    let maxGap = 0
    let last = performance.now()
    const timer = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
    }, 5)
    const started = performance.now()
    try {
      await runner.start()
      const orders = runner.get(Orders)
      // Every order is paid once the Orders log has its three events for each.
      while ((await orders.notificationLog.maxId()) < 3 * ORDERS) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    } finally {
      clearInterval(timer)
    }
    const catchUp = performance.now() - started
    expect(maxGap, `the longest wait of a 5 ms timer during a catch-up of ${Math.round(catchUp)} ms`).toBeLessThan(
      MAX_GAP_MS,
    )
  })
})
