// A runner of the orders system in a child process is killed with SIGKILL five
// times at random moments while 2,000 orders flow through the system; after
// each restart processing resumes, and at the end every order is reserved and
// paid exactly once, counted from the downstream logs. The followers process
// in batches (the runner's default size): a backlog is made before the first
// child starts, and one builds up while each next one starts, so that kills
// land inside large batches, as the child's reports of what it has in hand show.

import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { Orders, Payments, Reservations } from '../../examples/orders.js'
import { tempDir } from '../fixtures/temp.js'
import { freshDatabase } from '../postgres/fixtures.js'
import { killChildren, SystemChild } from './children.js'
import { auditOrders, backlog, expectEachOrderOnce, type Followers, followersOf, untilAllPaid } from './orders-audit.js'

const ORDERS = 2000
// Orders made before the first child starts, and before each next one, for it to catch up with in large batches.
const BACKLOG = 500
const RESTART_BACKLOG = 100
// At least one kill lands while a follower has more notifications than this in hand.
const LARGE_BATCH = 50
const KILLS = 5
// A kill that finds nothing left to process hit the child while it idled between
// orders: it does not count as one of the five, and at most this many happen.
const IDLE_KILLS = 5
// Orders are made at this pace, unless the next kill is due and has not come yet.
const STREAM_MS = 5_000
// How many orders may arrive after a kill is due before it comes, so that orders still arrive at each kill.
const SLACK = 100
// A kill comes this long at most after the child was seen processing.
const MAX_JITTER_MS = 20
// Set CRASH_SEED to repeat a run: failures name the seed of theirs.
const SEED = Number(process.env.CRASH_SEED ?? 20_260_426)

const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  await killChildren()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Returns a function giving numbers in [0, 1) from a seed (mulberry32). */
function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/**
 * Makes `count` orders named `order 0`, `order 1`, ... at a pace that would
 * make them all in `ms`, adding their ids to `ids`; waits while `mayCreate(i)`
 * is false for the next order.
 */
async function streamOrders(
  orders: Orders,
  count: number,
  ms: number,
  ids: string[],
  mayCreate: (index: number) => boolean,
): Promise<void> {
  let credit = 0
  let last = Date.now()
  while (ids.length < count) {
    const now = Date.now()
    // At most 100 ms of orders at once, after a slow save or a wait for a kill.
    if (mayCreate(ids.length)) credit = Math.min(credit + ((now - last) * count) / ms, (100 * count) / ms)
    last = now
    while (credit >= 1 && ids.length < count && mayCreate(ids.length)) {
      ids.push(await orders.createOrder(`order ${ids.length}`))
      credit--
    }
    await delay(10)
  }
}

/** Resolves once `isDone()`, checking every 5 ms; throws if `ms` passes first. */
async function until(isDone: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!isDone()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`)
    await delay(5)
  }
}

/** Returns the tracking position of each follower, by follower and upstream name. */
async function trackingPositions(followers: Followers): Promise<Record<string, Record<string, number>>> {
  const positions: Record<string, Record<string, number>> = {}
  for (const [follower, upstream] of followers) {
    positions[follower.name] = { ...positions[follower.name], [upstream.name]: await follower.position(upstream.name) }
  }
  return positions
}

/** Returns true if a follower in the child processed an event beyond its position in `before`. */
function movedOn(child: SystemChild, before: Record<string, Record<string, number>>): boolean {
  return Object.entries(child.positions).some(([follower, positions]) =>
    Object.entries(positions).some(([upstream, id]) => id > (before[follower]?.[upstream] ?? 0)),
  )
}

type Storage = () => Promise<Record<string, string>>

const storages: [string, Storage][] = [
  [
    'PostgreSQL',
    async () => {
      const database = await freshDatabase()
      cleanups.push(database.drop)
      return { PERSISTENCE: 'postgres', POSTGRES_URL: database.url, POSTGRES_POOL_SIZE: '4' }
    },
  ],
  ['an SQLite file', async () => ({ PERSISTENCE: 'sqlite', SQLITE_PATH: join(tempDir('es-crash-'), 'orders.db') })],
]

describe.each(storages)('the orders system on %s, its runner killed five times', (name, storage) => {
  it('reserves and pays each of 2,000 orders exactly once', { timeout: 120_000 }, async () => {
    const started = Date.now()
    const random = seeded(SEED)
    const env = await storage()
    const orders = new Orders({ env })
    const reservations = new Reservations({ env })
    const payments = new Payments({ env })
    cleanups.push(
      () => orders.close(),
      () => reservations.close(),
      () => payments.close(),
    )
    await Promise.all([orders.connect(), reservations.connect(), payments.connect()])
    const apps = { orders, reservations, payments }
    const followers = followersOf(apps)

    // Each kill is due once this many orders were made, and comes when the child is processing.
    const due = Array.from({ length: KILLS }, () => Math.floor(ORDERS * (0.05 + 0.85 * random()))).sort((a, b) => a - b)
    const kills: { orders: number; startMs: number | undefined; backlog: number; inHand: number }[] = []
    const idleKills: number[] = []
    const ids: string[] = []
    while (ids.length < BACKLOG) ids.push(await orders.createOrder(`order ${ids.length}`))
    let child = new SystemChild(env)
    await child.until(() => child.started, 30_000, 'the first child to start')
    // While a restarted child has a backlog to resume with, orders stop a little after the next kill is due, so
    // that they do not all arrive before the last kill; at any other time a pause could keep the child idle for good.
    let restarting = false
    const streaming = streamOrders(orders, ORDERS, STREAM_MS, ids, (index) => {
      const next = due[kills.length]
      return !restarting || next === undefined || index < next + SLACK
    })
    let atKill: Record<string, Record<string, number>> = {}
    while (kills.length < KILLS) {
      const what = `kill ${kills.length + 1} (seed ${SEED})`
      // Processing resumed: a follower went past where the last run was killed.
      await child.until(() => movedOn(child, atKill), 30_000, `the child to resume before ${what}`)
      restarting = false
      await until(() => ids.length >= due[kills.length]!, 60_000, `the orders due before ${what}`)
      // Processing goes on: the child reported new positions just now, and has more to do.
      const deadline = Date.now() + 10_000
      let checks = 0
      try {
        do {
          const reports = child.reports
          await child.until(() => child.reports > reports, deadline - Date.now(), `the child to process before ${what}`)
          checks++
        } while ((await backlog(followers, 1)) === 0)
        // While it catches up, a kill waits a little for a large batch in hand, and then comes at once, inside it
        // (a batch of 100 takes a few milliseconds on SQLite).
        const large =
          (await backlog(followers, LARGE_BATCH + 1)) > LARGE_BATCH &&
          (await child
            .until(() => Math.max(...Object.values(child.inHand)) > LARGE_BATCH, 1000, 'a large batch')
            .then(
              () => true,
              () => false,
            ))
        // Otherwise a few milliseconds more, so that kills fall at different points of processing an event.
        const jitter = Math.floor(random() * MAX_JITTER_MS)
        if (!large) await delay(jitter)
      } catch (error) {
        const state = { made: ids.length, checks, positions: child.positions, backlog: await backlog(followers), kills }
        throw new Error(`${(error as Error).message}\n${JSON.stringify(state)}`)
      }
      await child.kill()
      expect(child.exit).toEqual({ code: null, signal: 'SIGKILL' })
      // Its last report, sent as it took a batch or finished one: what it had in hand when it died.
      const inHand = Math.max(0, ...Object.values(child.inHand))
      atKill = await trackingPositions(followers)
      const left = await backlog(followers)
      if (left > 0) kills.push({ orders: ids.length, startMs: child.startMs, backlog: left, inHand })
      else idleKills.push(ids.length)
      expect(idleKills.length, `kills of an idle child (seed ${SEED})`).toBeLessThanOrEqual(IDLE_KILLS)
      restarting = left > 0
      // Not past where the stream would stop before the next kill, nor before the last run, which only finishes.
      const upTo = Math.min(ids.length + RESTART_BACKLOG, (due[kills.length] ?? 0) + SLACK)
      while (ids.length < upTo) ids.push(await orders.createOrder(`order ${ids.length}`))
      child = new SystemChild(env)
    }
    expect(ids.length, 'orders made by the last kill').toBeLessThan(ORDERS)
    const largest = Math.max(...kills.map((kill) => kill.inHand))
    expect(
      largest,
      `the most a follower had in hand at a kill (${JSON.stringify(kills)}, seed ${SEED})`,
    ).toBeGreaterThan(LARGE_BATCH)
    await streaming
    await child.until(() => movedOn(child, atKill), 30_000, `the child to resume after the last kill`)
    const summary = `seed ${SEED}, kills ${JSON.stringify(kills)}, idle kills ${JSON.stringify(idleKills)}`
    await untilAllPaid(apps, ORDERS, [child], `every order to be paid (${summary})`)
    expect(await child.stop()).toEqual({ code: 0, signal: null })
    expectEachOrderOnce(await auditOrders(env), ids)
    if (process.env.EVENTSOURCING_TIMING) {
      console.log(`${name}: ${summary}, ${Date.now() - started} ms`)
    }
  })
})
