// A child process that runs the orders system on an EventLoopRunner, for the
// crash and multi-process tests; start it with `new SystemChild(env)` (children.ts).
//
// Settings come from the environment: the backend's (PERSISTENCE, POSTGRES_URL
// or SQLITE_PATH, ...) and RUN, the comma-separated followers to run here (all
// when unset). Over IPC it sends `started` once the followers are following,
// then `progress` with their positions, and the number of notifications each
// has in hand (handed to it in batches and not yet done), whenever they change. SIGTERM, or a `stop`
// message, stops the runner and exits 0; a follower's error is printed and
// exits 1; losing the parent stops it too, so that no child outlives its test.

import { inspect } from 'node:util'
import { ordersSystem } from '../../examples/orders.js'
import { EventLoopRunner, type ProcessApplication } from '../../src/index.js'
import type { ChildMessage } from './children.js'

// How often the followers' positions are looked at, besides after each of their saves.
const REPORT_MS = 20
// A stop that takes longer than this is a hang: the process ends with an error instead.
const STOP_TIMEOUT_MS = 10_000

function send(message: ChildMessage): void {
  if (process.connected) process.send?.(message)
}

const run = process.env.RUN?.split(',').filter((name) => name !== '')
const runner = new EventLoopRunner(ordersSystem, { run })
let stopping: Promise<never> | undefined

function exit(code: number): Promise<never> {
  stopping ??= (async () => {
    setTimeout(() => {
      console.error(`The runner did not stop within ${STOP_TIMEOUT_MS} ms`)
      process.exit(2)
    }, STOP_TIMEOUT_MS).unref()
    try {
      await starting
      await runner.stop()
    } catch (error) {
      console.error(inspect(error, { depth: 5 }))
      process.exit(code === 0 ? 1 : code)
    }
    process.exit(code)
  })()
  return stopping
}

runner.on('followerError', (error, follower) => {
  console.error(`${follower} failed: ${inspect(error, { depth: 5 })}`)
  void exit(1)
})
process.on('SIGTERM', () => void exit(0))
process.on('message', (message) => {
  if (message === 'stop') void exit(0)
})
process.on('disconnect', () => void exit(0))

const starting = runner.start()
await starting.catch((error: unknown) => {
  console.error(`The runner did not start: ${inspect(error, { depth: 5 })}`)
  process.exit(1)
})
send({ type: 'started', pid: process.pid })

let reported = ''
let scheduled = false
function report(): void {
  scheduled = false
  const positions = Object.fromEntries(runner.status().map((status) => [status.name, status.positions]))
  const json = JSON.stringify([positions, inHand])
  if (json === reported) return
  reported = json
  send({ type: 'progress', positions, inHand: { ...inHand } })
}

// Counted around each follower's processBatch and reported at once, before the batch is processed and after, so
// that the last report of a killed child says what it had in hand when it died (how the crash test knows that its
// kills land inside large batches).
const inHand: Record<string, number> = {}
for (const name of run ?? ordersSystem.followers) {
  const follower = runner.get(ordersSystem.get(name)) as ProcessApplication
  const processBatch = follower.processBatch.bind(follower)
  inHand[name] = 0
  follower.processBatch = async (upstream, batch) => {
    inHand[name]! += batch.length
    report()
    try {
      return await processBatch(upstream, batch)
    } finally {
      inHand[name]! -= batch.length
      report()
    }
  }
}
// Reported as soon as a follower here records something, so that the parent
// knows when processing goes on, and every while in case that was missed.
for (const name of run ?? ordersSystem.followers) {
  runner.get(ordersSystem.get(name)).subscribe(() => {
    if (!scheduled) setImmediate(report)
    scheduled = true
  })
}
setInterval(report, REPORT_MS)
